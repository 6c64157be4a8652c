//! Plays a scenario's steps over TCP and records what each observation step saw.

use super::{same_message, Observed};
use crate::client::{FixClient, Received};
use crate::scenario::{is_interval_heartbeat, matches, without_seq_num, Step};
use fix_codec::human::to_human;
use std::time::Duration;

/// Where the scenario's `connect` steps go.
pub enum Peer<'a> {
    /// Connect to an acceptor.
    Dial(std::net::SocketAddr),
    /// Take the next connection the initiator under test makes here.
    Accept(&'a tokio::net::TcpListener),
}

/// How long an initiator may take to connect.
const ACCEPT_LIMIT: Duration = Duration::from_secs(10);

impl Peer<'_> {
    async fn connect(&self, c: &mut FixClient) -> std::io::Result<()> {
        match self {
            Peer::Dial(addr) => c.connect(*addr).await,
            Peer::Accept(listener) => {
                let (stream, _) = tokio::time::timeout(ACCEPT_LIMIT, listener.accept())
                    .await
                    .map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("the initiator did not connect within {ACCEPT_LIMIT:?}"),
                        )
                    })??;
                c.attach(stream);
                Ok(())
            }
        }
    }
}

/// Plays one version's steps against `peer`. With `reference`, every observation must
/// equal QuickFIX's; the scenario's own expectations must hold always.
pub async fn play(
    begin_string: &str,
    steps: &[(usize, Step)],
    peer: &Peer<'_>,
    reference: Option<&[Observed]>,
) -> Result<Vec<Observed>, String> {
    let mut clients = [FixClient::new(begin_string), FixClient::new(begin_string)];
    let mut current = 0;
    let mut seen = Vec::new();
    let wait = Duration::from_secs(5);
    for (line, step) in steps {
        let at = format!("line {line}");
        let c = &mut clients[current];
        let observed = match step {
            Step::Use(n) => {
                current = *n;
                continue;
            }
            Step::Connect => {
                peer.connect(c)
                    .await
                    .map_err(|e| format!("{at}: connect: {e}"))?;
                continue;
            }
            Step::Disconnect => {
                c.disconnect();
                continue;
            }
            Step::Send(fields) => {
                c.send(fields)
                    .await
                    .map_err(|e| format!("{at}: send: {e}"))?;
                continue;
            }
            Step::SendRaw(text) => {
                c.send_raw(text)
                    .await
                    .map_err(|e| format!("{at}: send: {e}"))?;
                continue;
            }
            Step::Sleep(secs) => {
                tokio::time::sleep(Duration::from_secs_f64(*secs)).await;
                continue;
            }
            Step::Expect(_) | Step::ExpectDisconnect => observe(c, wait).await,
            Step::ExpectAfterHeartbeats(_) => loop {
                match observe(c, wait).await {
                    Observed::Message(m) if is_interval_heartbeat(&m) => {}
                    Observed::Message(m) => break Observed::Message(without_seq_num(&m)),
                    other => break other,
                }
            },
            Step::ExpectSilence(secs) => observe(c, Duration::from_secs_f64(*secs)).await,
        };
        let expected_ok = match (step, &observed) {
            (Step::Expect(fields), Observed::Message(m)) => matches(fields, m),
            (Step::ExpectAfterHeartbeats(fields), Observed::Message(m)) => {
                matches(&without_seq_num(fields), m)
            }
            (Step::ExpectDisconnect, Observed::Closed) => true,
            (Step::ExpectSilence(_), Observed::Nothing) => true,
            _ => false,
        };
        if let Some(reference) = reference {
            let want = reference.get(seen.len());
            let same = match (want, &observed) {
                (Some(Observed::Message(r)), Observed::Message(m)) => same_message(r, m),
                (Some(Observed::Closed), Observed::Closed) => true,
                (Some(Observed::Nothing), Observed::Nothing) => true,
                _ => false,
            };
            if !same {
                let want = want.map_or("(no observation)".to_string(), |w| w.to_string());
                return Err(format!(
                    "{at}: QuickFIX answered\n    {want}\n  fix-engine answered\n    {observed}"
                ));
            }
        }
        if !expected_ok {
            let what = match step {
                Step::Expect(f) | Step::ExpectAfterHeartbeats(f) => f.clone(),
                Step::ExpectDisconnect => "(disconnect)".into(),
                _ => "(nothing)".into(),
            };
            return Err(format!(
                "{at}: the scenario expects\n    {what}\n  but got\n    {observed}"
            ));
        }
        seen.push(observed);
    }
    Ok(seen)
}

async fn observe(c: &mut FixClient, wait: Duration) -> Observed {
    match c.next(wait).await {
        Received::Message(m) => Observed::Message(to_human(&m)),
        Received::Closed => Observed::Closed,
        Received::TimedOut => Observed::Nothing,
    }
}
