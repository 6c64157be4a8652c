//! Session schedules: when a session may be logged on, and when a new session period
//! (with its daily sequence reset) begins. Times are local to a time zone.

use chrono::{
    DateTime, Datelike, Duration as ChronoDuration, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;
use fix_codec::UtcTimestamp;

/// A daily (`StartTime`/`EndTime`) or weekly (`StartDay`/`EndDay` too) schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Local start time.
    pub start_time: NaiveTime,
    /// Local end time.
    pub end_time: NaiveTime,
    /// For weekly sessions, the day the week's session starts.
    pub start_day: Option<Weekday>,
    /// For weekly sessions, the day it ends.
    pub end_day: Option<Weekday>,
    /// The zone the times are in (`TimeZone`, default UTC).
    pub time_zone: Tz,
}

fn to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    // In a DST gap there is no such local time: take the first instant after it.
    let mut probe = local;
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += ChronoDuration::minutes(30);
    }
    Utc.from_utc_datetime(&local)
}

fn to_chrono(ts: UtcTimestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ts.0)
}

impl Schedule {
    /// A daily schedule in UTC.
    pub fn daily(start_time: NaiveTime, end_time: NaiveTime) -> Self {
        Self {
            start_time,
            end_time,
            start_day: None,
            end_day: None,
            time_zone: Tz::UTC,
        }
    }

    /// The start of the session period containing `now`, or `None` outside session time.
    pub fn period_start(&self, now: UtcTimestamp) -> Option<UtcTimestamp> {
        let now = to_chrono(now);
        let local = now.with_timezone(&self.time_zone).naive_local();
        let (start, end) = match (self.start_day, self.end_day) {
            (Some(sd), Some(ed)) => {
                let back =
                    (local.weekday().num_days_from_monday() + 7 - sd.num_days_from_monday()) % 7;
                let mut start = (local.date() - ChronoDuration::days(i64::from(back)))
                    .and_time(self.start_time);
                if start > local {
                    start -= ChronoDuration::days(7);
                }
                let fwd = (ed.num_days_from_monday() + 7 - sd.num_days_from_monday()) % 7;
                let mut end =
                    (start.date() + ChronoDuration::days(i64::from(fwd))).and_time(self.end_time);
                if end <= start {
                    end += ChronoDuration::days(7);
                }
                (start, end)
            }
            _ => {
                let mut start = local.date().and_time(self.start_time);
                if start > local {
                    start -= ChronoDuration::days(1);
                }
                let mut end = start.date().and_time(self.end_time);
                if end <= start {
                    end += ChronoDuration::days(1);
                }
                (start, end)
            }
        };
        let start_utc = to_utc(self.time_zone, start);
        let end_utc = to_utc(self.time_zone, end);
        (now >= start_utc && now < end_utc)
            .then(|| UtcTimestamp(start_utc.timestamp_nanos_opt().unwrap_or(0)))
    }

    /// Whether `now` is inside session time.
    pub fn is_session_time(&self, now: UtcTimestamp) -> bool {
        self.period_start(now).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
    }

    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32) -> UtcTimestamp {
        UtcTimestamp::from_ymd_hms(y, mo, d, h, mi, 0).unwrap_or_default()
    }

    #[test]
    fn a_daily_session_is_open_between_start_and_end() {
        let s = Schedule::daily(t(8, 0), t(17, 0));
        assert!(!s.is_session_time(at(2024, 3, 4, 7, 59)));
        assert_eq!(
            s.period_start(at(2024, 3, 4, 12, 0)),
            Some(at(2024, 3, 4, 8, 0))
        );
        assert!(!s.is_session_time(at(2024, 3, 4, 17, 0)));
    }

    #[test]
    fn a_daily_session_may_span_midnight() {
        let s = Schedule::daily(t(22, 0), t(6, 0));
        assert_eq!(
            s.period_start(at(2024, 3, 5, 1, 0)),
            Some(at(2024, 3, 4, 22, 0))
        );
        assert!(!s.is_session_time(at(2024, 3, 5, 12, 0)));
    }

    #[test]
    fn a_weekly_session_runs_from_start_day_to_end_day() {
        let mut s = Schedule::daily(t(18, 0), t(17, 0));
        s.start_day = Some(Weekday::Sun);
        s.end_day = Some(Weekday::Fri);
        // 2024-03-06 is a Wednesday.
        assert_eq!(
            s.period_start(at(2024, 3, 6, 12, 0)),
            Some(at(2024, 3, 3, 18, 0))
        );
        // Saturday is closed.
        assert!(!s.is_session_time(at(2024, 3, 9, 12, 0)));
    }

    #[test]
    fn times_are_read_in_the_configured_zone() {
        let mut s = Schedule::daily(t(8, 0), t(17, 0));
        s.time_zone = chrono_tz::America::New_York;
        // 08:30 in New York on 2024-03-04 (EST, UTC-5) is 13:30 UTC.
        assert!(s.is_session_time(at(2024, 3, 4, 13, 30)));
        assert!(!s.is_session_time(at(2024, 3, 4, 12, 30)));
    }
}
