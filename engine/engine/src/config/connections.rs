//! `[engine.connections]`: caps on FIX connections that have not reached their session.

use serde::{Deserialize, Serialize};

/// `[engine.connections]`
///
/// A connection is *pending* from its accept until its first message has named a
/// configured session (TLS handshake and Logon included, at most the logon timeout).
/// Beyond either cap a new connection *queues*: it is not read until a slot frees (first
/// come, first served, skipping addresses still at their cap), for at most the logon
/// timeout counted from its accept. A logon storm after a failover, a thousand sessions
/// through one proxy address, therefore logs on in turn instead of being refused. Beyond
/// the queue's caps a new connection is closed at once, so a flood of idle connections
/// can exhaust neither file descriptors nor memory, and one host cannot take every slot
/// (nor every place in the queue) from the others.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsSection {
    /// Pending connections over all FIX listeners (default 256).
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// Pending connections from one IP address (default 16).
    #[serde(default = "default_max_pending_per_address")]
    pub max_pending_per_address: usize,
    /// Connections waiting for a pending slot, over all addresses (default 4096; 0: none
    /// wait, a connection over the caps is closed at once).
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
    /// Connections from one IP address waiting for a pending slot (default 2048).
    #[serde(default = "default_max_queued_per_address")]
    pub max_queued_per_address: usize,
}

fn default_max_queued() -> usize {
    4096
}

fn default_max_queued_per_address() -> usize {
    2048
}

fn default_max_pending() -> usize {
    256
}

fn default_max_pending_per_address() -> usize {
    16
}

impl Default for ConnectionsSection {
    fn default() -> Self {
        Self {
            max_pending: default_max_pending(),
            max_pending_per_address: default_max_pending_per_address(),
            max_queued: default_max_queued(),
            max_queued_per_address: default_max_queued_per_address(),
        }
    }
}
