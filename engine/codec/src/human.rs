//! The `|`-separated human form used in logs, tests and scenario files.

use crate::SOH;
use std::fmt;

/// Displays a message with SOH shown as `|`.
pub struct Human<'a>(pub &'a [u8]);

impl fmt::Display for Human<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == SOH as char {
                    f.write_str("|")?;
                } else {
                    fmt::Write::write_char(f, c)?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// The message as a `|`-separated string.
pub fn to_human(bytes: &[u8]) -> String {
    Human(bytes).to_string()
}

/// Turns a `|`-separated string into wire bytes, as written (no length or checksum fixing).
pub fn from_human(text: &str) -> Vec<u8> {
    text.bytes()
        .map(|b| if b == b'|' { SOH } else { b })
        .collect()
}

/// Builds a correctly framed message from `|`-separated fields; any 8, 9 and 10 given are
/// replaced (8 is kept as the BeginString when present, else `default_begin`).
pub fn encode_human(text: &str, default_begin: &str) -> Vec<u8> {
    let mut begin = default_begin.to_string();
    let mut body = Vec::new();
    for field in text.split('|').filter(|f| !f.is_empty()) {
        match field.split_once('=') {
            Some(("8", v)) => begin = v.to_string(),
            Some(("9", _)) | Some(("10", _)) => {}
            _ => {
                body.extend_from_slice(field.as_bytes());
                body.push(SOH);
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(b"8=");
    out.extend_from_slice(begin.as_bytes());
    out.push(SOH);
    out.extend_from_slice(format!("9={}", body.len()).as_bytes());
    out.push(SOH);
    out.extend_from_slice(&body);
    let sum = crate::frame::checksum(&out);
    out.extend_from_slice(format!("10={sum:03}").as_bytes());
    out.push(SOH);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_form_round_trips() {
        let text = "8=FIX.4.2|9=5|35=0|10=161|";
        assert_eq!(to_human(&from_human(text)), text);
    }

    #[test]
    fn encode_human_fills_length_and_checksum() {
        let wire = encode_human("35=0|", "FIX.4.2");
        assert_eq!(to_human(&wire), "8=FIX.4.2|9=5|35=0|10=161|");
    }

    #[test]
    fn invalid_utf8_is_escaped() {
        assert_eq!(to_human(&[b'a', 0xff, 1]), "a\\xff|");
    }
}
