//! Per-session message logs: one line per message, `|`-separated.

use fix_codec::{frame, Human, UtcTimestamp};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

/// A session's message log (or nothing, when no log directory is configured).
pub struct MessageLog {
    out: Option<BufWriter<File>>,
}

impl MessageLog {
    /// Opens `<dir>/<session>.messages.log` for appending.
    pub fn open(dir: Option<&Path>, session: &str) -> std::io::Result<Self> {
        let Some(dir) = dir else {
            return Ok(Self { out: None });
        };
        std::fs::create_dir_all(dir)?;
        let name: String = session
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.messages.log")))?;
        Ok(Self {
            out: Some(BufWriter::new(f)),
        })
    }

    /// Logs every frame in `bytes` with a direction marker (`<` in, `>` out).
    pub fn record(&mut self, direction: char, bytes: &[u8]) {
        let Some(out) = &mut self.out else {
            return;
        };
        let ts = UtcTimestamp::now().format(fix_codec::TimePrecision::Micros);
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = frame::check(rest, usize::MAX).map_or(rest.len(), |f| f.len);
            let _ = writeln!(out, "{ts} {direction} {}", Human(&rest[..n]));
            rest = &rest[n..];
        }
    }

    /// Writes buffered lines out.
    pub fn flush(&mut self) {
        if let Some(out) = &mut self.out {
            let _ = out.flush();
        }
    }
}
