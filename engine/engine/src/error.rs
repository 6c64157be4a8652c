//! What can go wrong starting or talking to the engine.

use crate::config::ConfigError;
use fix_session::SendError;
use std::net::SocketAddr;
use thiserror::Error;

/// Starting or talking to the engine failed.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Kafka bridge could not be set up.
    #[error(transparent)]
    Kafka(#[from] BridgeError),
    /// The journal could not be opened or recovered.
    #[error("cannot open the store: {0}")]
    Store(#[from] fix_store::JournalError),
    /// A data dictionary could not be loaded.
    #[error("session {session}: cannot load data dictionary {path}: {source}")]
    Dictionary {
        /// The session.
        session: String,
        /// The file.
        path: String,
        /// Why.
        source: fix_codec::dictionary::LoadError,
    },
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A message log could not be opened.
    #[error("cannot open the message log of {session}: {source}")]
    MessageLog {
        /// The session.
        session: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("session {session}: {source}")]
    Tls {
        /// The session.
        session: String,
        /// Why.
        source: crate::tls::TlsError,
    },
    /// This instance is a standby: it holds no lease and sends nothing.
    #[error("session {0}: this instance is a standby (it does not hold the lease); send through the leader")]
    NotLeader(String),
    /// Replication could not be set up.
    #[error("replication: {0}")]
    Replication(String),
    /// The lease store could not be reached or set up.
    #[error("lease: {0}")]
    Lease(#[from] fix_lease::LeaseError),
    /// The action needs the session logged out first.
    #[error("session {0} is logged on: log it out first")]
    LoggedOn(String),
    /// No such session.
    #[error("no session {0} in this engine")]
    UnknownSession(String),
    /// The session task has stopped.
    #[error("session {0} has stopped")]
    Stopped(String),
    /// Sending failed.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// The bridge could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// `app = "kafka"` without its section.
    #[error(
        "app = \"kafka\" needs an [engine.kafka] section with at least brokers = \"HOST:PORT\""
    )]
    MissingSection,
    /// This build left the bridge out.
    #[error("app = \"kafka\": this fix-engine was built without the Kafka bridge (build with the `kafka` feature, on by default)")]
    NotBuilt,
    /// The Kafka client refused its settings.
    #[error("cannot create the Kafka {client}: {detail} (check [engine.kafka] brokers and client settings)")]
    Client {
        /// `producer` or `consumer`.
        client: &'static str,
        /// librdkafka's answer.
        detail: String,
    },
}
