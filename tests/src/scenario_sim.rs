//! Plays a scenario against fix-engine's session layer on simulated time: no sockets, no
//! clocks, milliseconds per scenario. The session is the one the engine builds from the
//! same settings (`EngineConfig::plans`), with the built-in echo application and a
//! memory store; what the runtime does around it (framing the byte stream, handing
//! application messages over, disconnecting) is done here the same way. The TCP runner
//! ([`crate::scenario::run`]) plays the same files end to end.

use crate::client::{message_bytes, raw_bytes};
use crate::scenario::{is_interval_heartbeat, matches, without_seq_num, Scenario, Step};
use fix_codec::human::to_human;
use fix_codec::{frame, FrameError, MessageRef, OwnedMessage, UtcTimestamp};
use fix_engine::{AppContext, Application, EchoApp, EngineConfig};
use fix_session::{Dictionaries, Disposition, MemoryStore, Now, Session, SessionEvent};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an expectation waits (simulated), as the TCP runner's 5 s.
const WAIT: Duration = Duration::from_secs(5);

/// The largest frame accepted (as the runtime's read buffer).
const MAX_FRAME: usize = 1 << 20;

struct Player {
    session: Session,
    app: EchoApp,
    now: Now,
    /// Bytes from the counterparty not framed yet.
    input: Vec<u8>,
    /// Messages the session sent, not yet looked at.
    output: VecDeque<String>,
    /// The session asked to close the connection.
    closed: bool,
}

impl Player {
    fn collect(&mut self) {
        if let Some(bytes) = self.session.poll_transmit() {
            let text = to_human(bytes);
            let begin = format!("8={}|", self.session.id().begin_string);
            for m in text.split(&begin).filter(|m| !m.is_empty()) {
                self.output.push_back(format!("{begin}{m}"));
            }
        }
        self.session.clear_transmit();
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SessionEvent::Disconnect { .. } => self.closed = true,
                SessionEvent::Deliver(m) => self.deliver(m.as_ref()),
                _ => {}
            }
        }
    }

    fn deliver(&mut self, msg: MessageRef<'_>) {
        let mut ctx = AppContext::new(&mut self.session, self.now);
        // The echo application refuses nothing the scenarios send.
        let _ = self.app.from_app(&mut ctx, msg);
    }

    /// The counterparty's bytes arrive; complete frames go to the session.
    fn feed(&mut self, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.input.extend_from_slice(bytes);
        let mut pos = 0;
        while pos < self.input.len() && !self.closed {
            let chunk = self.input[pos..].to_vec();
            match frame::check(&chunk, MAX_FRAME) {
                Ok(f) => {
                    let message = &chunk[..f.len];
                    if self.session.handle_message(self.now, message) == Disposition::Deliver {
                        if let Ok(owned) = OwnedMessage::parse(message.to_vec()) {
                            self.deliver(owned.as_ref());
                        }
                    }
                    self.collect();
                    pos += f.len;
                }
                Err(FrameError::Incomplete) => break,
                Err(e @ FrameError::TooLarge { .. }) => {
                    self.session.handle_bad_frame(self.now, &e);
                    self.closed = true;
                    break;
                }
                Err(
                    e @ (FrameError::Garbled { skip, .. } | FrameError::BadChecksum { skip, .. }),
                ) => {
                    self.session.handle_bad_frame(self.now, &e);
                    self.collect();
                    pos += skip.max(1);
                }
            }
        }
        self.input.drain(..pos.min(self.input.len()));
    }

    /// Simulated time passes until `until`, timers firing on the way; stops early once
    /// something was sent or the connection closed when `stop_on_output`.
    fn advance(&mut self, by: Duration, stop_on_output: bool) {
        let until = self.now.mono + by;
        loop {
            if stop_on_output && (!self.output.is_empty() || self.closed) {
                return;
            }
            let next = self.session.poll_timeout().filter(|t| *t <= until);
            let Some(t) = next else {
                let rest = until.saturating_duration_since(self.now.mono);
                self.now = self.now.plus(rest);
                return;
            };
            let step = t.saturating_duration_since(self.now.mono);
            self.now = self.now.plus(step);
            self.session.handle_timeout(self.now);
            self.collect();
        }
    }

    /// The next message the session sends (waiting up to [`WAIT`]); `None` when the
    /// connection closed first or nothing came.
    fn next_message(&mut self) -> Result<String, &'static str> {
        self.advance(WAIT, true);
        match self.output.pop_front() {
            Some(m) => Ok(m),
            None if self.closed => Err("the connection closed"),
            None => Err("nothing arrived in 5 s"),
        }
    }
}

/// Runs `s` on simulated time.
pub fn run_simulated(s: &Scenario) -> Result<(), String> {
    if s.dictionary.is_some() {
        return Err(format!("{}: a dictionary scenario needs FIX_DICTIONARY_DIR; the simulated runner uses the built-in dictionaries", s.name));
    }
    let mut toml = format!(
        "[engine]\nstore = 'memory'\n[[session]]\nbegin_string = '{}'\nsender_comp_id = 'ISLD'\ntarget_comp_id = 'TW'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n",
        s.begin_string
    );
    for line in &s.settings {
        toml.push_str(line);
        toml.push('\n');
    }
    let config = EngineConfig::from_toml(&toml, &s.name).map_err(|e| e.to_string())?;
    let plan = config
        .plans()
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no session")?;
    let dicts = Dictionaries::builtin(&s.begin_string).ok_or("no built-in dictionary")?;
    let now = Now {
        mono: Instant::now(),
        wall: UtcTimestamp::now(),
    };
    let mut session = Session::new(
        plan.config.clone(),
        Box::new(MemoryStore::new(now.wall)),
        dicts,
        now,
    );
    if let Some(check) = plan.credentials.clone() {
        session.set_authenticator(Arc::new(check));
    }
    let mut p = Player {
        session,
        app: EchoApp::default(),
        now,
        input: Vec::new(),
        output: VecDeque::new(),
        closed: false,
    };
    let begin = s.begin_string.clone();
    for (line, step) in &s.steps {
        let at = format!("{}:{line}", s.name);
        match step {
            Step::Use(_) => return Err(format!("{at}: two connections are played over TCP only")),
            Step::Connect => {
                p.input.clear();
                p.output.clear();
                p.closed = false;
                p.session.handle_connect(p.now);
                p.collect();
            }
            Step::Disconnect => {
                p.session.handle_disconnect(p.now);
                p.collect();
                p.closed = true;
            }
            Step::Send(fields) => p.feed(&message_bytes(fields, &begin)),
            Step::SendRaw(text) => p.feed(&raw_bytes(text, &begin)),
            Step::Sleep(secs) => p.advance(Duration::from_secs_f64(*secs), false),
            Step::Expect(fields) => {
                let got = p
                    .next_message()
                    .map_err(|e| format!("{at}: expected {fields}, but {e}"))?;
                if !matches(fields, &got) {
                    return Err(format!("{at}: expected\n  {fields}\nreceived\n  {got}"));
                }
            }
            Step::ExpectAfterHeartbeats(fields) => loop {
                let got = p
                    .next_message()
                    .map_err(|e| format!("{at}: expected {fields}, but {e}"))?;
                if is_interval_heartbeat(&got) {
                    continue;
                }
                if !matches(&without_seq_num(fields), &without_seq_num(&got)) {
                    return Err(format!("{at}: expected\n  {fields}\nreceived\n  {got}"));
                }
                break;
            },
            Step::ExpectDisconnect => {
                if let Ok(m) = p.next_message() {
                    return Err(format!("{at}: expected a disconnect, received {m}"));
                }
                if !p.closed {
                    return Err(format!(
                        "{at}: expected a disconnect, connection still open after 5 s"
                    ));
                }
                p.session.handle_disconnect(p.now);
                p.collect();
                p.output.clear();
            }
            Step::ExpectSilence(secs) => {
                p.advance(Duration::from_secs_f64(*secs), true);
                if let Some(m) = p.output.pop_front() {
                    return Err(format!("{at}: expected silence, received {m}"));
                }
                if p.closed {
                    return Err(format!("{at}: expected silence, the connection closed"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(text: &str) -> Result<(), String> {
        run_simulated(&Scenario::parse("t.fixs", text).expect("parses"))
    }

    const LOGON: &str = "connect\n> 35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=2\n< 35=A|34=1|49=ISLD|56=TW|98=0|108=2\n";

    #[test]
    fn a_wrong_expectation_fails_with_what_arrived() {
        let e = play(&format!(
            "{LOGON}> 35=1|34=2|49=TW|52=<TIME>|56=ISLD|112=X\n< 35=0|34=3|49=ISLD|56=TW|112=X\n"
        ))
        .expect_err("MsgSeqNum 2 was sent, not 3");
        assert!(e.contains("34=2"), "{e}");
    }

    #[test]
    fn timers_run_on_simulated_time() {
        // Silent for HeartBtInt (2 s): a Heartbeat; then a TestRequest after 1.2 × 2 s more.
        play(&format!(
            "{LOGON}expect-silence 1.9\n< 35=0|34=2|49=ISLD|56=TW\n< 35=1|34=3|49=ISLD|56=TW|112=*\n"
        ))
        .expect("heartbeat then test request");
        let e =
            play(&format!("{LOGON}expect-silence 2.5\n")).expect_err("a heartbeat comes at 2 s");
        assert!(e.contains("expected silence"), "{e}");
    }
}
