//! Mutual authentication of replication peers with a shared key.
//!
//! Before any frame, the two ends of a replication connection prove to each other that
//! they hold the group's key (`[engine.replication] key_env` or `key_file`), so a host
//! that merely reaches the replication port can neither read the journal nor pose as a
//! standby (and join the in-sync set, slowing or, under `halt`, stopping writes), and a
//! standby never follows a leader that does not hold the key. The proofs are not bound
//! to the connection (no TLS): a host that sits between two instances, or that a standby
//! dials by a stale peer address, can relay the exchange and then read the stream.
//!
//! The exchange (HMAC-SHA256, fresh 32-byte nonces from both ends, so no proof can be
//! replayed on another connection):
//!
//! ```text
//! leader  → standby   "FIXREPL2" · mode (0 open, 1 keyed) · leader nonce
//! standby → leader    standby nonce · HMAC(key, "standby" · both nonces)
//! leader  → standby   HMAC(key, "leader" · both nonces)
//! ```
//!
//! Without a key the mode is 0 and the proofs are zeros; a keyed end refuses an open one
//! and the other way round, each with an error that names the setting to change. The
//! key authenticates the peers only: without `[engine.replication.tls]` records then
//! travel CRC-checked but not encrypted, so the replication network must be private (a
//! VPC, or the chart's NetworkPolicy); with it, this exchange and the stream run inside
//! mutual TLS.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What the leader sends first.
const MAGIC: &[u8; 8] = b"FIXREPL2";
const NONCE: usize = 32;
const PROOF: usize = 32;
pub use crate::config::cluster::MIN_KEY_LEN;

/// The group's replication key.
#[derive(Clone)]
pub struct PeerKey(hmac::Key);

impl PeerKey {
    /// A key from its bytes; `None` when shorter than [`MIN_KEY_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= MIN_KEY_LEN).then(|| Self(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    fn proof(&self, label: &[u8], leader: &[u8; NONCE], standby: &[u8; NONCE]) -> [u8; PROOF] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(MAGIC);
        ctx.update(label);
        ctx.update(leader);
        ctx.update(standby);
        let mut out = [0u8; PROOF];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn verify(
        &self,
        label: &[u8],
        leader: &[u8; NONCE],
        standby: &[u8; NONCE],
        proof: &[u8; PROOF],
    ) -> bool {
        let mut msg = Vec::with_capacity(MAGIC.len() + label.len() + 2 * NONCE);
        msg.extend_from_slice(MAGIC);
        msg.extend_from_slice(label);
        msg.extend_from_slice(leader);
        msg.extend_from_slice(standby);
        hmac::verify(&self.0, &msg, proof).is_ok()
    }
}

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerKey(<hidden>)")
    }
}

/// Why the exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The connection failed or closed during the exchange.
    #[error("replication handshake: {0}")]
    Io(#[from] std::io::Error),
    /// The peer does not speak this protocol (an older engine, or not an engine).
    #[error("the peer does not speak replication protocol 2 (every instance of a group must run a version with authenticated replication)")]
    NotAPeer,
    /// This end has a key, the other has none.
    #[error("the peer has no replication key: set the same [engine.replication] key_env or key_file on every instance of the group")]
    PeerOpen,
    /// The other end has a key, this one has none.
    #[error("the peer requires a replication key: set [engine.replication] key_env or key_file to the group's key")]
    PeerKeyed,
    /// The peer's proof does not match this end's key.
    #[error("the peer's replication key differs from this instance's: give every instance of the group the same key")]
    WrongKey,
    /// The leader closed the connection instead of proving itself.
    #[error("the leader closed the connection on this instance's proof: most likely its replication key differs (give every instance of the group the same key), or it stopped leading just then")]
    ClosedOnProof,
    /// No randomness.
    #[error("no random nonce available from the operating system")]
    Random,
}

fn nonce() -> Result<[u8; NONCE], AuthError> {
    let mut n = [0u8; NONCE];
    SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| AuthError::Random)?;
    Ok(n)
}

/// The leader's half: challenge the standby, check its proof, prove itself.
pub(crate) async fn as_leader<S>(io: &mut S, key: Option<&PeerKey>) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ours = nonce()?;
    let mut hello = Vec::with_capacity(MAGIC.len() + 1 + NONCE);
    hello.extend_from_slice(MAGIC);
    hello.push(u8::from(key.is_some()));
    hello.extend_from_slice(&ours);
    io.write_all(&hello).await?;
    let mut answer = [0u8; NONCE + PROOF];
    io.read_exact(&mut answer).await?;
    let (theirs, proof) = split(&answer);
    let Some(key) = key else {
        return Ok(());
    };
    if !key.verify(b"standby", &ours, &theirs, &proof) {
        return Err(if proof == [0; PROOF] {
            AuthError::PeerOpen
        } else {
            AuthError::WrongKey
        });
    }
    io.write_all(&key.proof(b"leader", &ours, &theirs)).await?;
    Ok(())
}

/// The standby's half: answer the leader's challenge and check the leader's proof.
pub(crate) async fn as_standby<S>(io: &mut S, key: Option<&PeerKey>) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hello = [0u8; MAGIC.len() + 1 + NONCE];
    io.read_exact(&mut hello).await?;
    if &hello[..MAGIC.len()] != MAGIC {
        return Err(AuthError::NotAPeer);
    }
    let keyed = match hello[MAGIC.len()] {
        0 => false,
        1 => true,
        _ => return Err(AuthError::NotAPeer),
    };
    let mut leader = [0u8; NONCE];
    leader.copy_from_slice(&hello[MAGIC.len() + 1..]);
    let key = match (key, keyed) {
        (None, false) => None,
        (Some(k), true) => Some(k),
        (Some(_), false) => return Err(AuthError::PeerOpen),
        (None, true) => return Err(AuthError::PeerKeyed),
    };
    let ours = nonce()?;
    let mut answer = Vec::with_capacity(NONCE + PROOF);
    answer.extend_from_slice(&ours);
    answer.extend_from_slice(&key.map_or([0; PROOF], |k| k.proof(b"standby", &leader, &ours)));
    io.write_all(&answer).await?;
    if let Some(key) = key {
        let mut proof = [0u8; PROOF];
        io.read_exact(&mut proof).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                // The leader closes without a word when it refuses our proof (it may
                // also have stopped leading just then: the next attempt tells).
                AuthError::ClosedOnProof
            } else {
                AuthError::Io(e)
            }
        })?;
        if !key.verify(b"leader", &leader, &ours, &proof) {
            return Err(AuthError::WrongKey);
        }
    }
    Ok(())
}

fn split(answer: &[u8; NONCE + PROOF]) -> ([u8; NONCE], [u8; PROOF]) {
    let mut n = [0u8; NONCE];
    let mut p = [0u8; PROOF];
    n.copy_from_slice(&answer[..NONCE]);
    p.copy_from_slice(&answer[NONCE..]);
    (n, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PeerKey {
        PeerKey::new(s.as_bytes()).expect("long enough")
    }

    async fn exchange(
        leader: Option<PeerKey>,
        standby: Option<PeerKey>,
    ) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let l = tokio::spawn(async move {
            let r = as_leader(&mut a, leader.as_ref()).await;
            drop(a);
            r
        });
        let s = as_standby(&mut b, standby.as_ref()).await;
        drop(b);
        (l.await.expect("leader task"), s)
    }

    #[tokio::test]
    async fn the_same_key_on_both_ends_passes() {
        let (l, s) = exchange(Some(key("0123456789abcdef")), Some(key("0123456789abcdef"))).await;
        assert!(l.is_ok() && s.is_ok(), "{l:?} {s:?}");
    }

    #[tokio::test]
    async fn no_key_on_either_end_passes() {
        let (l, s) = exchange(None, None).await;
        assert!(l.is_ok() && s.is_ok(), "{l:?} {s:?}");
    }

    #[tokio::test]
    async fn a_different_key_is_refused_on_both_ends() {
        let (l, s) = exchange(Some(key("0123456789abcdef")), Some(key("fedcba9876543210"))).await;
        assert!(matches!(l, Err(AuthError::WrongKey)), "{l:?}");
        assert!(matches!(s, Err(AuthError::ClosedOnProof)), "{s:?}");
    }

    #[tokio::test]
    async fn a_keyed_end_refuses_an_open_one_and_says_which_setting() {
        let (_, s) = exchange(Some(key("0123456789abcdef")), None).await;
        assert!(matches!(s, Err(AuthError::PeerKeyed)), "{s:?}");
        let (_, s) = exchange(None, Some(key("0123456789abcdef"))).await;
        assert!(matches!(s, Err(AuthError::PeerOpen)), "{s:?}");
        assert!(AuthError::PeerOpen.to_string().contains("key_env"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(PeerKey::new(b"short").is_none());
        assert!(format!("{:?}", key("0123456789abcdef")).contains("hidden"));
    }

    #[test]
    fn a_proof_is_bound_to_both_nonces_and_the_role() {
        let k = key("0123456789abcdef");
        let (a, b) = ([1u8; NONCE], [2u8; NONCE]);
        let p = k.proof(b"standby", &a, &b);
        assert!(k.verify(b"standby", &a, &b, &p));
        assert!(!k.verify(b"leader", &a, &b, &p));
        assert!(!k.verify(b"standby", &b, &a, &p));
        assert!(!k.verify(b"standby", &a, &[3u8; NONCE], &p));
    }
}
