//! Starting replication from `[engine.replication]`: TCP between instances (`local`,
//! `replicated`, `replicated-written`) or through the SQL journal (`sql`).

use crate::config::{Durability, ReplicationSection};
use crate::error::EngineError;
use crate::replication::in_sync::InSyncSet;
use crate::replication::sql::{SqlChannel, SqlJournal};
use crate::replication::Replication;
use crate::storage::{Replicas, Storage};
use fix_cluster::source::Counted;
use fix_lease::RoleState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Replication prepared before the sessions start.
pub struct Setup {
    /// Shared status.
    pub state: Arc<Replication>,
    durability: Durability,
    listen: Option<SocketAddr>,
    peers: Vec<String>,
    sql: Option<Arc<SqlJournal>>,
    key: Option<crate::replication::peer_auth::PeerKey>,
    tls: Option<crate::tls::ReplicationTls>,
}

/// The lease as the replication tasks see it.
pub(crate) struct LeaseSide<'a> {
    /// This instance's lease settings.
    pub(crate) config: &'a fix_lease::LeaseConfig,
    /// The lease store (the in-sync set is recorded there).
    pub(crate) store: Arc<dyn fix_lease::LeaseStore>,
    /// Told when a leader's stream breaks ([`crate::takeover`]).
    pub(crate) takeover: crate::takeover::TakeoverHint,
}

impl Setup {
    /// Checks the section, connects the SQL journal if needed, and makes `storage` wait
    /// for the durability the mode asks for.
    pub async fn prepare(
        section: &ReplicationSection,
        lease: &fix_lease::LeaseConfig,
        lease_url: &str,
        storage: &mut Storage,
    ) -> Result<Self, EngineError> {
        let (group, region) = (lease.group.as_str(), lease.region.clone());
        let (listen, peers) = section.addresses()?;
        let key = section
            .key_bytes()?
            .map(|bytes| {
                crate::replication::peer_auth::PeerKey::new(&bytes).ok_or_else(|| {
                    EngineError::Replication(
                        "the replication key is too short (see [engine.replication] key_env / key_file)".into(),
                    )
                })
            })
            .transpose()?;
        let tls = section
            .tls
            .as_ref()
            .map(crate::tls::ReplicationTls::new)
            .transpose()
            .map_err(|e| EngineError::Replication(format!("[engine.replication.tls]: {e}")))?;
        let sql = match section.durability {
            Durability::Sql => Some(Arc::new(
                SqlJournal::connect(lease_url, group)
                    .await
                    .map_err(|e| EngineError::Replication(e.to_string()))?,
            )),
            _ => None,
        };
        let eligible = peers.is_empty() || sql.is_some();
        let wait = Duration::from_millis(section.standby_wait_ms.unwrap_or(1000));
        let in_sync = InSyncSet::new(
            &lease.owner,
            section.on_standby_loss,
            wait,
            section.durability.keeps_in_sync_set(),
        );
        let state = Replication::new(eligible, in_sync);
        state.set_region(
            region,
            section.cross_region == crate::config::CrossRegion::Sync,
        );
        match section.durability {
            Durability::Local => {}
            Durability::Replicated | Durability::ReplicatedWritten => {
                storage.require_replicas(Replicas::InSync(
                    Arc::clone(&state),
                    wait,
                    section.durability.counted(),
                ));
            }
            // The SQL shipper is the one "standby"; never go on without it.
            Durability::Sql => storage.require_replicas(Replicas::SqlShipper(Arc::clone(&state))),
        }
        Ok(Self {
            state,
            durability: section.durability,
            listen,
            peers,
            sql,
            key,
            tls,
        })
    }

    /// The SQL channel (with `sql` durability), following `role`.
    pub fn sql_channel(
        &self,
        storage: &Storage,
        role: &watch::Receiver<RoleState>,
    ) -> Option<SqlChannel> {
        let (journal, durable) = storage.journal()?;
        Some(SqlChannel {
            journal: journal.clone(),
            durable,
            role: role.clone(),
            sql: Arc::clone(self.sql.as_ref()?),
            state: Arc::clone(&self.state),
            lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Starts the tasks: the SQL channel, or the TCP source and follower with the task
    /// that records the in-sync set in the lease store. `sync_stall` is how long a
    /// journal sync may be in flight before the disk counts as stalled (`[engine]
    /// sync_stall_ms`).
    pub async fn spawn(
        &self,
        storage: &Storage,
        role: &watch::Receiver<RoleState>,
        sql: Option<SqlChannel>,
        lease: LeaseSide<'_>,
        refused: prometheus_client::metrics::counter::Counter,
        sync_stall: Option<Duration>,
    ) -> Result<Vec<JoinHandle<()>>, EngineError> {
        if let Some(channel) = sql {
            return Ok(vec![tokio::spawn(channel.run())]);
        }
        let LeaseSide {
            config: lease,
            store: lease_store,
            takeover,
        } = lease;
        let name = lease.owner.clone();
        let (Some((journal, durable)), Some(written), Some(listen)) =
            (storage.journal(), storage.written(), self.listen)
        else {
            return Ok(Vec::new());
        };
        // Under `replicated-written` what counts, is streamed and is acknowledged is what
        // is written to the journal files; otherwise what is durable.
        let counted = self.durability.counted();
        let held = match counted {
            Counted::Written => written.clone(),
            Counted::Durable => durable.clone(),
        };
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| EngineError::Bind {
                addr: listen,
                source,
            })?;
        tracing::info!(addr = %listen, peers = self.peers.len(), durability = ?self.durability, "replication listening");
        let source = crate::replication::source::Source {
            journal: journal.clone(),
            counted,
            held: held.clone(),
            role: role.clone(),
            state: Arc::clone(&self.state),
            key: self.key.clone(),
            tls: self.tls.clone(),
        };
        let follower = crate::replication::follower::Follower {
            journal: journal.clone(),
            durable: durable.clone(),
            written: (counted == Counted::Written).then_some(written),
            sync_stall,
            role: role.clone(),
            state: Arc::clone(&self.state),
            peers: self.peers.clone(),
            name,
            key: self.key.clone(),
            tls: self.tls.clone(),
            takeover,
        };
        let in_sync = crate::replication::in_sync_task::InSyncTask {
            store: lease_store,
            group: lease.group.clone(),
            owner: lease.owner.clone(),
            region: lease.region.clone(),
            role: role.clone(),
            journal: journal.clone(),
            counted,
            held,
            state: Arc::clone(&self.state),
        };
        Ok(vec![
            tokio::spawn(crate::replication::source::serve(listener, source, refused)),
            tokio::spawn(follower.run()),
            tokio::spawn(in_sync.run()),
        ])
    }
}
