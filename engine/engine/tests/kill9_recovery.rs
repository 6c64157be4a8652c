//! `kill -9` mid-traffic: after a restart the session resumes with sequence numbers that
//! never go backwards, every message the engine had sent can be resent, and every order it
//! had journaled is answered exactly once — orders received but not yet processed when the
//! process died are replayed to the application at start-up.

use fix_codec::human::{encode_human, to_human};
use fix_codec::{frame, FrameError, OwnedMessage, TimePrecision, UtcTimestamp};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn start_engine(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fix-engine"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("engine starts")
}

fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                return s;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("engine never listened: {e}"),
        }
    }
}

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn send(&mut self, fields: &str) {
        let now = UtcTimestamp::now().format(TimePrecision::Millis);
        let wire = encode_human(&fields.replace("<T>", &now), "FIX.4.4");
        // A write into a killed engine may fail; the test checks what was acknowledged.
        let _ = self.s.write_all(&wire);
    }

    fn recv(&mut self) -> Option<OwnedMessage> {
        loop {
            match frame::check(&self.buf, 1 << 20) {
                Ok(f) => {
                    let bytes: Vec<u8> = self.buf.drain(..f.len).collect();
                    return OwnedMessage::parse(bytes).ok();
                }
                Err(FrameError::Incomplete) => {}
                Err(e) => panic!("engine sent an unreadable frame: {e}"),
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn seq(m: &OwnedMessage) -> u64 {
    m.as_ref().get_u64(34).ok().flatten().unwrap_or(0)
}

#[test]
fn after_kill_9_sequence_numbers_continue_and_every_acknowledged_message_is_resent() {
    kill_9_mid_stream("durable");
}

/// With `delivery = "early"` the application sees orders before they are synced, but an
/// echo leaves only once the order and the echo are durable together: the same promise.
#[test]
fn with_early_delivery_too_every_acknowledged_message_survives_kill_9() {
    kill_9_mid_stream("early");
}

fn kill_9_mid_stream(delivery: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let config = dir.path().join("engine.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\ndata_dir = '{}'\napp = 'echo'\ndelivery = '{delivery}'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '127.0.0.1:{port}'\nheartbeat_interval = 30\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let mut engine = start_engine(&config);
    let mut c = Client {
        s: connect(port),
        buf: Vec::new(),
    };
    c.send("35=A|34=1|49=CLIENT|52=<T>|56=EXEC|98=0|108=30|");
    let logon = c.recv().expect("logon answer");
    assert_eq!(logon.as_ref().msg_type(), b"A");

    // Stream orders from a second thread while this one reads echoes; kill mid-stream.
    let mut writer = Client {
        s: c.s.try_clone().expect("clone"),
        buf: Vec::new(),
    };
    let sender = std::thread::spawn(move || {
        for i in 0..5000u64 {
            writer.send(&format!("35=D|34={}|49=CLIENT|52=<T>|56=EXEC|11=ORD{i}|21=1|55=IBM|54=1|60=<T>|38=100|40=1|", i + 2));
        }
    });
    let mut echoed: Vec<(u64, String)> = Vec::new();
    while echoed.len() < 300 {
        let m = c.recv().expect("echo while running");
        if m.as_ref().msg_type() == b"D" {
            echoed.push((
                seq(&m),
                m.as_ref().get_str(11).unwrap_or_default().to_string(),
            ));
        }
    }
    engine.kill().expect("kill -9");
    let _ = engine.wait();
    while let Some(m) = c.recv() {
        if m.as_ref().msg_type() == b"D" {
            echoed.push((
                seq(&m),
                m.as_ref().get_str(11).unwrap_or_default().to_string(),
            ));
        }
    }
    let _ = sender.join();
    let last_seen = echoed.iter().map(|(s, _)| *s).max().unwrap_or(0);
    assert!(
        last_seen >= 301,
        "echoes received before the kill: {last_seen}"
    );

    // Restart on the same journal and log on with a fresh connection.
    let mut engine = start_engine(&config);
    let mut c = Client {
        s: connect(port),
        buf: Vec::new(),
    };
    c.send("35=A|34=6000|49=CLIENT|52=<T>|56=EXEC|98=0|108=30|");
    let logon = c.recv().expect("logon answer after restart");
    assert_eq!(
        logon.as_ref().msg_type(),
        b"A",
        "{}",
        to_human(logon.as_ref().bytes())
    );
    assert!(
        seq(&logon) > last_seen,
        "sequence numbers went backwards: logon {} after {last_seen}",
        seq(&logon)
    );
    // The client claims 6000 (more than it ever sent), so the engine always asks for the
    // gap from what it journaled; it must not expect
    // less than what it had acknowledged (every echo means the order was journaled).
    let rr = c.recv().expect("resend request for unjournaled inbound");
    assert_eq!(rr.as_ref().msg_type(), b"2");
    let begin = rr.as_ref().get_u64(7).ok().flatten().unwrap_or(0);
    assert!(
        begin > echoed.len() as u64,
        "engine lost acknowledged inbound: expects {begin}, {} were echoed",
        echoed.len()
    );
    c.send(&format!(
        "35=4|34={begin}|43=Y|49=CLIENT|52=<T>|56=EXEC|122=<T>|123=Y|36=6001|"
    ));
    // Ask for everything again: every echo received before the kill must come back.
    c.send("35=2|34=6001|49=CLIENT|52=<T>|56=EXEC|7=1|16=0|");
    let mut resent = std::collections::BTreeMap::new();
    let mut covered_to = 1;
    while covered_to < seq(&logon) {
        let m = c.recv().expect("resent message");
        match m.as_ref().msg_type() {
            b"D" => {
                assert!(m.as_ref().get_flag(43), "resends carry PossDupFlag=Y");
                resent.insert(
                    seq(&m),
                    m.as_ref().get_str(11).unwrap_or_default().to_string(),
                );
                covered_to = seq(&m) + 1;
            }
            b"4" => covered_to = m.as_ref().get_u64(36).ok().flatten().unwrap_or(covered_to),
            _ => {}
        }
    }
    println!(
        "delivery {delivery}: kill -9 after {} echoes (last seq {last_seen}); restart logon seq {}; engine expected inbound {begin}; {} messages resent",
        echoed.len(),
        seq(&logon),
        resent.len()
    );
    for (s, id) in &echoed {
        assert_eq!(
            resent.get(s),
            Some(id),
            "echo {s} ({id}) not resent from the journal"
        );
    }
    engine.kill().expect("stop");
    let _ = engine.wait();
}
