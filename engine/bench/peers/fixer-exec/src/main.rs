//! fixer peer for fix-bench: a FIX.4.4 acceptor (EXEC ← CLIENT, CLIENT1 … by default 50)
//! that answers every NewOrderSingle with an ExecutionReport New and then a Fill, the
//! same work as fix-engine's `exec` application.
//!
//! ```text
//! fixer-exec PORT memory|file DIR DICTIONARY_XML
//! ```
//!
//! `memory`: fixer's MemoryStoreFactory. `file`: its FileStoreFactory under DIR with
//! FileStoreSync=Y (fsync per message, fixer's default). Data dictionary validation on,
//! no message log, listening on 127.0.0.1 only. Prints `listening` when ready.

use fixer::acceptor::Acceptor;
use fixer::application::Application;
use fixer::errors::MessageRejectErrorResult;
use fixer::log::null_log::NullLogFactory;
use fixer::message::Message;
use fixer::registry::send_to_target_owned;
use fixer::session::session_id::SessionID;
use fixer::settings::Settings;
use fixer::store::MemoryStoreFactory;
use fixer::store::file_store::FileStoreFactory;
use fixer::tag::TAG_MSG_TYPE;
use simple_error::SimpleResult;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::BufReader;
use tokio::sync::mpsc;

type Outgoing = (Message, Arc<SessionID>);

/// Answers orders; sends go through a channel because callbacks are synchronous.
struct Exec {
    out: mpsc::UnboundedSender<Outgoing>,
    next_id: AtomicU64,
}

impl Exec {
    fn report(&self, order: &Message, order_id: u64, fill: bool) -> Option<Message> {
        let cl_ord_id = order.body.get_string(11).ok()?;
        let symbol = order.body.get_string(55).ok()?;
        let side = order.body.get_string(54).ok()?;
        let qty = order.body.get_string(38).ok()?;
        let exec_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut m = Message::new();
        m.header.set_bytes(TAG_MSG_TYPE, b"8");
        m.body.set_string(37, &order_id.to_string());
        m.body.set_string(11, &cl_ord_id);
        m.body.set_string(17, &exec_id.to_string());
        m.body.set_string(150, if fill { "F" } else { "0" });
        m.body.set_string(39, if fill { "2" } else { "0" });
        m.body.set_string(55, &symbol);
        m.body.set_string(54, &side);
        m.body.set_string(38, &qty);
        if fill {
            m.body.set_string(32, &qty);
            m.body.set_string(31, "100");
            m.body.set_string(151, "0");
            m.body.set_string(14, &qty);
            m.body.set_string(6, "100");
        } else {
            m.body.set_string(151, &qty);
            m.body.set_string(14, "0");
            m.body.set_string(6, "0");
        }
        Some(m)
    }
}

impl Application for Exec {
    fn on_create(&self, _: &Arc<SessionID>) {}
    fn on_logon(&self, _: &Arc<SessionID>) {}
    fn on_logout(&self, _: &Arc<SessionID>) {}
    fn to_admin(&self, _: &mut Message, _: &Arc<SessionID>) {}
    fn to_app(&self, _: &mut Message, _: &Arc<SessionID>) -> SimpleResult<()> {
        Ok(())
    }
    fn from_admin(&self, _: &Message, _: &Arc<SessionID>) -> MessageRejectErrorResult {
        Ok(())
    }
    fn from_app(&self, msg: &Message, session: &Arc<SessionID>) -> MessageRejectErrorResult {
        if msg.header.get_bytes(TAG_MSG_TYPE).unwrap_or(b"") != b"D" {
            return Ok(());
        }
        let order_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        for fill in [false, true] {
            if let Some(m) = self.report(msg, order_id, fill) {
                let _ = self.out.send((m, Arc::clone(session)));
            }
        }
        Ok(())
    }
}

fn settings_text(port: &str, dir: &str, dictionary: &str, sessions: usize) -> String {
    let mut s = format!(
        "[DEFAULT]\nSocketAcceptHost=127.0.0.1\nSocketAcceptPort={port}\nSenderCompID=EXEC\nResetOnLogon=Y\nFileStorePath={dir}/store\nFileStoreSync=Y\nDataDictionary={dictionary}\nHeartBtInt=30\n"
    );
    for k in 0..sessions {
        let target = if k == 0 {
            "CLIENT".to_string()
        } else {
            format!("CLIENT{k}")
        };
        s.push_str(&format!(
            "[SESSION]\nBeginString=FIX.4.4\nTargetCompID={target}\n"
        ));
    }
    s
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (port, store, dir, dictionary, sessions) = match args.as_slice() {
        [_, port, store, dir, dictionary] => (port, store, dir, dictionary, 50),
        [_, port, store, dir, dictionary, sessions] => match sessions.parse::<usize>() {
            Ok(n) if n >= 1 => (port, store, dir, dictionary, n),
            _ => {
                eprintln!("SESSIONS must be a number of at least 1, not {sessions}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("usage: fixer-exec PORT memory|file DIR DICTIONARY_XML [SESSIONS (50)]");
            std::process::exit(2);
        }
    };
    let text = settings_text(port, dir, dictionary, sessions);
    let settings = Settings::parse(BufReader::new(text.as_bytes())).await?;
    let store_factory = match store.as_str() {
        "memory" => MemoryStoreFactory::new(),
        "file" => {
            let own = Settings::parse(BufReader::new(text.as_bytes())).await?;
            FileStoreFactory::new(Arc::new(tokio::sync::Mutex::new(own)))
        }
        other => {
            eprintln!("store must be memory or file, not {other}");
            std::process::exit(2);
        }
    };
    let (out, mut queue) = mpsc::unbounded_channel::<Outgoing>();
    let app: Arc<dyn Application> = Arc::new(Exec {
        out,
        next_id: AtomicU64::new(1),
    });
    let mut acceptor = Acceptor::new(app, store_factory, settings, NullLogFactory::new()).await?;
    acceptor.start().await?;
    println!("listening");
    let sender = tokio::spawn(async move {
        while let Some((m, session)) = queue.recv().await {
            if let Err(e) = send_to_target_owned(m, &session).await {
                eprintln!("fixer-exec: send failed: {e}");
            }
        }
    });
    tokio::signal::ctrl_c().await?;
    acceptor.stop().await;
    sender.abort();
    Ok(())
}
