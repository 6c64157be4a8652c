//! Arbitrary bytes through everything a counterparty can reach: framing, field splitting,
//! dictionary validation, and the session state machine (logged on, memory store,
//! simulated time). Nothing may panic, and the session must keep its invariants.
#![no_main]

use fix_codec::dictionary::{session_dictionary, ValidationOptions, Validator};
use fix_codec::{frame, FrameError, Parser, UtcTimestamp};
use fix_session::{Dictionaries, MemoryStore, Now, Role, Session, SessionConfig, SessionId};
use libfuzzer_sys::fuzz_target;
use fix_codec::Dictionary;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn dictionary() -> &'static Arc<Dictionary> {
    static DICT: OnceLock<Arc<Dictionary>> = OnceLock::new();
    DICT.get_or_init(|| Arc::new(session_dictionary("FIX.4.2").expect("builtin dictionary")))
}

fuzz_target!(|data: &[u8]| {
    let dict = dictionary();
    let mut parser = Parser::default();
    let mut validator = Validator::new(ValidationOptions::default());
    let now = Now { mono: Instant::now(), wall: UtcTimestamp::from_secs(1_700_000_000) };
    let config = SessionConfig::new(SessionId::new("FIX.4.2", "ISLD", "TW"), Role::Acceptor);
    let dicts = Dictionaries { transport: Arc::clone(dict), app: None };
    let mut session = Session::new(config, Box::new(MemoryStore::new(now.wall)), dicts, now);
    session.handle_connect(now);
    let logon = fix_codec::human::encode_human("35=A|34=1|49=TW|52=20231114-22:13:20|56=ISLD|98=0|108=30|", "FIX.4.2");
    let _ = session.handle_message(now, &logon);

    let mut pos = 0;
    let mut t = now;
    while pos < data.len() {
        t = t.plus(Duration::from_millis(100));
        match frame::check(&data[pos..], 4096) {
            Ok(f) => {
                let bytes = &data[pos..pos + f.len];
                if let Ok(msg) = parser.parse(bytes) {
                    let _ = validator.validate(dict, None, msg);
                    let _ = msg.get_u64(34);
                    let _ = fix_codec::UtcTimestamp::parse(msg.get(52).unwrap_or_default());
                }
                let _ = session.handle_message(t, bytes);
                pos += f.len;
            }
            Err(FrameError::Incomplete) => break,
            Err(FrameError::TooLarge { .. }) => break,
            Err(FrameError::Garbled { skip, .. }) | Err(FrameError::BadChecksum { skip, .. }) => {
                assert!(skip > 0 || pos + skip <= data.len());
                pos += skip.max(1);
            }
        }
        session.handle_timeout(t);
        while session.poll_event().is_some() {}
        if let Some(out) = session.poll_transmit() {
            // Everything the session sends must itself be well-framed.
            let mut at = 0;
            while at < out.len() {
                let f = frame::check(&out[at..], usize::MAX).expect("session output is valid FIX");
                at += f.len;
            }
        }
        session.clear_transmit();
        assert!(session.next_target_seq() >= 1 && session.next_sender_seq() >= 1);
    }
});
