//! A scripted counterparty for failover tests: log on as CLIENT to EXEC (the drill's and
//! fixctl's engines) with a chosen MsgSeqNum, send an order and wait for its fill.

use crate::client::{FixClient, Received};
use fix_codec::human::to_human;
use std::net::SocketAddr;
use std::time::Duration;

/// The value of `tag` in a received message.
pub fn field(r: &Received, tag: &str) -> Option<String> {
    let Received::Message(m) = r else { return None };
    to_human(m)
        .split('|')
        .find_map(|f| f.strip_prefix(&format!("{tag}=")).map(str::to_string))
}

/// Logs on with MsgSeqNum `seq`; returns the client and the Logon answer's MsgSeqNum.
/// Panics (the test fails) when the answer is not a Logon.
pub async fn logon(addr: SocketAddr, seq: u64) -> (FixClient, u64) {
    let mut c = FixClient::connected("FIX.4.4", addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    c.send(&format!(
        "35=A|34={seq}|49=CLIENT|52=<TIME>|56=EXEC|98=0|108=30|"
    ))
    .await
    .unwrap_or_else(|e| panic!("send Logon: {e}"));
    let r = c.next(Duration::from_secs(5)).await;
    assert_eq!(field(&r, "35").as_deref(), Some("A"), "logon answer: {r:?}");
    let theirs = field(&r, "34").and_then(|s| s.parse().ok()).unwrap_or(0);
    (c, theirs)
}

/// Sends NewOrderSingle `cl` with MsgSeqNum `seq`; waits for its fill and returns the
/// fill's MsgSeqNum.
pub async fn fill(c: &mut FixClient, seq: u64, cl: &str) -> u64 {
    c.send(&format!(
        "35=D|34={seq}|49=CLIENT|52=<TIME>|56=EXEC|11={cl}|21=1|55=X|54=1|60=<TIME>|40=1|38=10|"
    ))
    .await
    .unwrap_or_else(|e| panic!("send order {cl}: {e}"));
    loop {
        let r = c.next(Duration::from_secs(5)).await;
        assert!(
            matches!(r, Received::Message(_)),
            "waiting for the fill of {cl}: {r:?}"
        );
        if field(&r, "35").as_deref() == Some("8") && field(&r, "39").as_deref() == Some("2") {
            assert_eq!(field(&r, "11").as_deref(), Some(cl));
            return field(&r, "34").and_then(|s| s.parse().ok()).unwrap_or(0);
        }
    }
}
