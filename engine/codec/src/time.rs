//! UTC timestamps in FIX formats (`YYYYMMDD-HH:MM:SS[.sss…]`), without a calendar crate.
//!
//! Conversions use the proleptic Gregorian civil-date arithmetic (days since 1970-01-01),
//! valid far beyond any date FIX will carry.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UtcTimestamp(pub i64);

/// How many fractional digits to write in a UTCTimestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecision {
    /// `HH:MM:SS`
    Seconds,
    /// `HH:MM:SS.sss`
    #[default]
    Millis,
    /// `HH:MM:SS.ssssss`
    Micros,
    /// `HH:MM:SS.sssssssss`
    Nanos,
}

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0')))
}

/// Parses `HH:MM:SS[.f{1,9}]` into nanoseconds since midnight (leap second 60 allowed).
pub fn parse_time_of_day(b: &[u8]) -> Option<i64> {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, mi, s) = (digits(&b[0..2])?, digits(&b[3..5])?, digits(&b[6..8])?);
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let frac = match &b[8..] {
        [] => 0,
        [b'.', rest @ ..] if !rest.is_empty() && rest.len() <= 9 => {
            i64::from(digits(rest)?) * 10i64.pow(9 - rest.len() as u32)
        }
        _ => return None,
    };
    Some((i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)) * NANOS_PER_SEC + frac)
}

/// Parses `YYYYMMDD` into days since the epoch.
pub fn parse_date(b: &[u8]) -> Option<i64> {
    if b.len() != 8 {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[4..6])?, digits(&b[6..8])?);
    let y = i64::from(y);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

impl UtcTimestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(d.as_nanos() as i64)
    }

    /// From seconds since the epoch.
    pub fn from_secs(secs: i64) -> Self {
        Self(secs * NANOS_PER_SEC)
    }

    /// Builds a timestamp from calendar fields; `None` when they are not a valid date/time.
    pub fn from_ymd_hms(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<Self> {
        if !(1..=12).contains(&mo)
            || d == 0
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || s > 59
        {
            return None;
        }
        let days = days_from_civil(y.clamp(-1_000_000, 1_000_000), mo, d);
        let secs = days * SECS_PER_DAY + i64::from(h * 3600 + mi * 60 + s);
        secs.checked_mul(NANOS_PER_SEC).map(Self)
    }

    /// Parses a FIX UTCTimestamp (`YYYYMMDD-HH:MM:SS[.f{1,9}]`).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < 17 || b[8] != b'-' {
            return None;
        }
        let days = parse_date(&b[..8])?;
        let tod = parse_time_of_day(&b[9..])?;
        // i64 nanoseconds reach 2262; later dates are out of range, not a panic.
        days.checked_mul(SECS_PER_DAY * NANOS_PER_SEC)
            .and_then(|n| n.checked_add(tod))
            .map(Self)
    }

    /// Adds signed nanoseconds.
    pub fn add_nanos(self, n: i64) -> Self {
        Self(self.0.saturating_add(n))
    }

    /// Whole seconds since the epoch.
    pub fn secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }

    /// `(year, month, day, hour, minute, second, nanos)`.
    pub fn parts(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let secs = self.secs();
        let nanos = self.0.rem_euclid(NANOS_PER_SEC) as u32;
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, sod / 3600, (sod / 60) % 60, sod % 60, nanos)
    }

    /// Writes the FIX form into `out` (at least 27 bytes) and returns its length.
    pub fn format_into(self, out: &mut [u8], precision: TimePrecision) -> usize {
        let (y, mo, d, h, mi, s, nanos) = self.parts();
        let y = y.clamp(0, 9999) as u32;
        fn put(out: &mut [u8], at: &mut usize, v: u32, width: u32) {
            for i in 0..width {
                out[*at + i as usize] = b'0' + ((v / 10u32.pow(width - 1 - i)) % 10) as u8;
            }
            *at += width as usize;
        }
        let mut at = 0;
        put(out, &mut at, y, 4);
        put(out, &mut at, mo, 2);
        put(out, &mut at, d, 2);
        out[at] = b'-';
        at += 1;
        put(out, &mut at, h, 2);
        out[at] = b':';
        at += 1;
        put(out, &mut at, mi, 2);
        out[at] = b':';
        at += 1;
        put(out, &mut at, s, 2);
        let (frac, width) = match precision {
            TimePrecision::Seconds => return at,
            TimePrecision::Millis => (nanos / 1_000_000, 3),
            TimePrecision::Micros => (nanos / 1_000, 6),
            TimePrecision::Nanos => (nanos, 9),
        };
        out[at] = b'.';
        at += 1;
        put(out, &mut at, frac, width);
        at
    }

    /// The FIX form as a string.
    pub fn format(self, precision: TimePrecision) -> String {
        let mut buf = [0u8; 32];
        let n = self.format_into(&mut buf, precision);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_timestamp_formats_and_parses() {
        let ts = UtcTimestamp::from_ymd_hms(2024, 2, 29, 13, 5, 9).expect("valid");
        assert_eq!(ts.format(TimePrecision::Millis), "20240229-13:05:09.000");
        assert_eq!(UtcTimestamp::parse(b"20240229-13:05:09"), Some(ts));
        assert_eq!(
            UtcTimestamp::parse(b"20240229-13:05:09.5"),
            Some(ts.add_nanos(500_000_000))
        );
    }

    #[test]
    fn invalid_dates_and_times_are_refused() {
        for bad in [
            &b"20230229-00:00:00"[..],
            b"20241301-00:00:00",
            b"20240101-24:00:00",
            b"20240101 00:00:00",
            b"20240101-00:00:00.",
            b"20240101-00:00:00.1234567890",
        ] {
            assert_eq!(
                UtcTimestamp::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn dates_beyond_the_nanosecond_range_are_refused_not_a_panic() {
        // Found by the fuzz target: year 9999 overflowed i64 nanoseconds.
        assert_eq!(UtcTimestamp::parse(b"99991231-23:59:59"), None);
        assert_eq!(UtcTimestamp::from_ymd_hms(9999, 12, 31, 0, 0, 0), None);
        assert!(UtcTimestamp::parse(b"22620101-00:00:00").is_some());
    }

    proptest! {
        #[test]
        fn nanosecond_timestamps_round_trip(n in 0i64..4_000_000_000_000_000_000i64) {
            let ts = UtcTimestamp(n);
            let text = ts.format(TimePrecision::Nanos);
            prop_assert_eq!(UtcTimestamp::parse(text.as_bytes()), Some(ts));
        }
    }
}
