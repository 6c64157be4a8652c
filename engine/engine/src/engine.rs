//! Starting the engine: open the store, create sessions, bind listeners, run tasks.

use crate::acceptor::{self, Routes};
use crate::actor::{Command, SessionActor};
use crate::app::Application;
use crate::builtin::{EchoApp, ExecApp};
use crate::config::{AppKind, EngineConfig, SessionPlan};
pub use crate::error::EngineError;
pub use crate::handle::EngineHandle;
use crate::msglog::MessageLog;
use crate::storage::Storage;
use fix_codec::{Dictionary, UtcTimestamp};
use fix_session::{Dictionaries, Now, Session, SessionId};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A running engine.
pub struct Engine {
    sessions: HashMap<SessionId, mpsc::Sender<Command>>,
    /// Each session's status as its task leaves it while leading.
    published: HashMap<SessionId, crate::actor::PublishedStatus>,
    listen_addrs: HashMap<SessionId, SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    listeners: Vec<JoinHandle<()>>,
    storage: Storage,
    keeper: Option<Arc<fix_lease::Keeper>>,
    metrics: Arc<crate::metrics::Metrics>,
    admin_addr: Option<SocketAddr>,
    replication: Option<Arc<crate::replication::Replication>>,
    /// The role the sessions follow (the lease's, once the journal is open for it).
    serving: Option<tokio::sync::watch::Receiver<fix_lease::RoleState>>,
    /// New FIX connections are refused while set (a planned rotation quiesces the
    /// leader); cleared whenever this instance starts a new term as leader.
    logons_held: Arc<std::sync::atomic::AtomicBool>,
    /// Set first thing in [`Engine::shutdown`]: ends the application's terms.
    stopping: crate::app::Stopping,
}

fn load_dictionaries(plan: &SessionPlan) -> Result<Dictionaries, EngineError> {
    let id = &plan.config.id;
    let load = |path: &std::path::Path| {
        Dictionary::from_file(path)
            .map(Arc::new)
            .map_err(|source| EngineError::Dictionary {
                session: id.to_string(),
                path: path.display().to_string(),
                source,
            })
    };
    let mut dicts = Dictionaries::builtin(&id.begin_string)
        .ok_or_else(|| EngineError::UnknownSession(id.to_string()))?;
    if let Some(t) = &plan.transport_data_dictionary {
        dicts.transport = load(t)?;
    }
    if let Some(d) = &plan.data_dictionary {
        let app = load(d)?;
        if id.begin_string != "FIXT.1.1" && plan.transport_data_dictionary.is_none() {
            dicts.transport = Arc::clone(&app);
        }
        dicts.app = Some(app);
    }
    Ok(dicts)
}

impl Engine {
    /// Starts every session of `config` with its built-in application.
    pub async fn start(config: EngineConfig) -> Result<Self, EngineError> {
        let app: Arc<dyn Application> = match config.engine.app {
            AppKind::Echo => Arc::new(EchoApp::default()),
            AppKind::Exec => Arc::new(ExecApp::default()),
            #[cfg(not(feature = "kafka"))]
            AppKind::Kafka => return Err(crate::kafka::BridgeError::NotBuilt.into()),
            #[cfg(feature = "kafka")]
            AppKind::Kafka => {
                let section = config
                    .engine
                    .kafka
                    .as_ref()
                    .ok_or(crate::kafka::BridgeError::MissingSection)?;
                let group = config.engine.lease.as_ref().map(|l| l.group.as_str());
                let kafka_metrics = crate::metrics::KafkaMetrics::default();
                let bridge = crate::kafka::Bridge::new(section, group, kafka_metrics.clone())?;
                let metrics = crate::metrics::Metrics::with_kafka(kafka_metrics);
                let mut engine =
                    Self::start_with_metrics(config, bridge.application(), metrics).await?;
                engine.tasks.push(bridge.spawn_outbound(engine.handle()));
                return Ok(engine);
            }
        };
        Self::start_with(config, app).await
    }

    /// Starts every session of `config` with the given application.
    pub async fn start_with(
        config: EngineConfig,
        app: Arc<dyn Application>,
    ) -> Result<Self, EngineError> {
        Self::start_with_metrics(config, app, crate::metrics::Metrics::new()).await
    }

    async fn start_with_metrics(
        config: EngineConfig,
        app: Arc<dyn Application>,
        metrics: crate::metrics::Metrics,
    ) -> Result<Self, EngineError> {
        let plans = config.plans()?;
        let mut storage = Storage::open(&config.engine, config.engine.lease.is_some())?;
        let lease = match &config.engine.lease {
            Some(l) => Some((l.lease_config()?, fix_lease::connect(&l.url).await?)),
            None => None,
        };
        let replication = match (&config.engine.replication, &config.engine.lease, &lease) {
            (Some(r), Some(l), Some((cfg, _))) => {
                Some(crate::replication_setup::Setup::prepare(r, cfg, &l.url, &mut storage).await?)
            }
            _ => None,
        };
        let keeper = match &lease {
            Some((cfg, store)) => {
                tracing::info!(group = %cfg.group, owner = %cfg.owner, backend = store.backend(), "contending for the lease");
                let (cfg, store) = (cfg.clone(), Arc::clone(store));
                let keeper = match &replication {
                    Some(setup) => {
                        fix_lease::Keeper::spawn_gated(store, cfg, setup.state.eligible())
                    }
                    None => fix_lease::Keeper::spawn(store, cfg),
                };
                Some(Arc::new(keeper))
            }
            None => None,
        };
        // Sessions follow this role; it turns Leader only after the journal is open for
        // the epoch (see `follow_lease`, started once the sessions exist).
        let (serving_tx, serving) = match &keeper {
            Some(_) => {
                let (tx, rx) = tokio::sync::watch::channel(fix_lease::RoleState {
                    role: fix_lease::Leadership::Standby,
                    valid_until: None,
                    reason: "starting".into(),
                    terms: 0,
                    last_call: None,
                    holder: None,
                    in_active_region: true,
                });
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let metrics = Arc::new(metrics);
        // A takeover comes within one TTL of the leader's last renew: an expectation
        // older than two is wrong (another instance won, or this one may not lead).
        let takeover = crate::takeover::TakeoverHint::new(
            lease
                .as_ref()
                .map_or(std::time::Duration::ZERO, |(cfg, _)| cfg.ttl * 2),
            keeper.as_ref().map(|k| k.look_now_handle()),
        );
        let mut sessions = HashMap::new();
        let mut published = HashMap::new();
        let mut by_addr: HashMap<SocketAddr, HashMap<SessionId, mpsc::Sender<Command>>> =
            HashMap::new();
        // Per listening address: the longest logon timeout and largest message size of its
        // sessions bound the wait for (and size of) a connection's first message.
        let mut limits: HashMap<SocketAddr, (std::time::Duration, usize)> = HashMap::new();
        let mut tls_by_addr: HashMap<SocketAddr, tokio_rustls::TlsAcceptor> = HashMap::new();
        let mut tasks = Vec::new();
        let stopping = crate::app::Stopping::default();
        let now = Now::system();
        for plan in plans {
            let id = plan.config.id.clone();
            let dicts = load_dictionaries(&plan)?;
            let store = storage.store_for(&id, UtcTimestamp::now())?;
            let mut session = Session::new(plan.config.clone(), store, dicts, now);
            session.set_hooks(Arc::new(crate::app::AppHooks(Arc::clone(&app))));
            if let Some(check) = &plan.credentials {
                session.set_authenticator(Arc::new(check.clone()));
            }
            let log = MessageLog::open(config.engine.log_dir.as_deref(), &id.to_string()).map_err(
                |source| EngineError::MessageLog {
                    session: id.to_string(),
                    source,
                },
            )?;
            let (tx, rx) = mpsc::channel(1024);
            if let Some(addr) = plan.listen {
                if let (Some(tls), Entry::Vacant(slot)) = (&plan.tls, tls_by_addr.entry(addr)) {
                    let config =
                        crate::tls::server_config(tls).map_err(|source| EngineError::Tls {
                            session: id.to_string(),
                            source,
                        })?;
                    slot.insert(tokio_rustls::TlsAcceptor::from(config));
                }
                let limit = limits.entry(addr).or_default();
                limit.0 = limit.0.max(plan.config.logon_timeout);
                limit.1 = limit.1.max(plan.config.max_message_size);
                by_addr
                    .entry(addr)
                    .or_default()
                    .insert(id.clone(), tx.clone());
            }
            let mut actor = SessionActor::new(
                session,
                plan,
                storage.clone(),
                Arc::clone(&app),
                log,
                rx,
                Arc::clone(&metrics),
            );
            if let Some(role) = &serving {
                actor = actor.with_role(role.clone());
            }
            if replication.is_some() {
                actor = actor.with_takeover(takeover.clone());
            }
            actor = actor.with_stopping(stopping.clone());
            actor.busy_poll = config.engine.runtime.busy_poll;
            actor.delivery = config.engine.delivery;
            published.insert(id.clone(), actor.published());
            tasks.push(tokio::spawn(actor.run()));
            sessions.insert(id, tx);
        }
        let mut listeners: Vec<JoinHandle<()>> = Vec::new();
        let sql_channel = match (&replication, &serving) {
            (Some(setup), Some(role)) => setup.sql_channel(&storage, role),
            _ => None,
        };
        let logons_held = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let (Some(k), Some(tx)) = (&keeper, serving_tx) {
            listeners.push(follow_lease(
                Arc::clone(k),
                storage.clone(),
                tx,
                Arc::clone(&metrics),
                sql_channel.clone(),
                Arc::clone(&logons_held),
                lease
                    .as_ref()
                    .and_then(|(cfg, _)| config.engine.sync_stall(cfg.ttl)),
            ));
        }
        if let Some((journal, _)) = storage.journal() {
            let m = Arc::clone(&metrics);
            journal.on_commit_timing(move |d| m.journal_fsync_seconds.observe(d.as_secs_f64()));
        }
        if let (Some(setup), Some(role), Some((cfg, store))) = (&replication, &serving, &lease) {
            listeners.extend(
                setup
                    .spawn(
                        &storage,
                        role,
                        sql_channel,
                        crate::replication_setup::LeaseSide {
                            config: cfg,
                            store: Arc::clone(store),
                            takeover: takeover.clone(),
                        },
                        metrics.replication_connections_refused.clone(),
                        config.engine.sync_stall(cfg.ttl),
                    )
                    .await?,
            );
        }
        let mut listen_addrs = HashMap::new();
        let pending = crate::pending::Pending::new(
            config.engine.connections,
            metrics.connections_refused.clone(),
        );
        for (addr, routes) in by_addr {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| EngineError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| EngineError::Bind { addr, source })?;
            tracing::info!(%bound, sessions = routes.len(), "listening");
            for id in routes.keys() {
                listen_addrs.insert(id.clone(), bound);
            }
            let (logon_timeout, max_size) = limits.get(&addr).copied().unwrap_or_default();
            let endpoint = acceptor::Endpoint {
                routes: Arc::new(routes) as Routes,
                logon_timeout,
                max_size,
                tls: tls_by_addr.get(&addr).cloned(),
                held: Arc::clone(&logons_held),
                pending: pending.clone(),
            };
            let standby_listens = config
                .engine
                .lease
                .as_ref()
                .is_none_or(|l| l.standby_listens);
            listeners.push(match (&serving, standby_listens) {
                (Some(role), false) => tokio::spawn(acceptor::serve_while_leading(
                    listener,
                    bound,
                    role.clone(),
                    endpoint,
                )),
                _ => tokio::spawn(acceptor::serve(listener, endpoint)),
            });
        }
        let mut engine = Self {
            sessions,
            published,
            listen_addrs,
            tasks,
            listeners,
            storage,
            keeper,
            metrics,
            admin_addr: None,
            replication: replication.map(|r| r.state),
            serving: serving.clone(),
            logons_held,
            stopping,
        };
        if let Some(admin) = &config.engine.admin {
            let addr: SocketAddr = admin.listen.parse().map_err(|_| {
                EngineError::Config(crate::config::ConfigError::Invalid {
                    session: "engine".into(),
                    key: "admin.listen".into(),
                    value: admin.listen.clone(),
                    allowed: "IP:PORT, e.g. 127.0.0.1:9100".into(),
                })
            })?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| EngineError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| EngineError::Bind { addr, source })?;
            tracing::info!(%bound, "admin API listening");
            engine.admin_addr = Some(bound);
            let handle = engine.handle();
            let refused_admin = engine.metrics.admin_connections_refused.clone();
            engine.listeners.push(tokio::spawn(crate::admin::serve(
                listener,
                handle,
                admin.token(),
                refused_admin,
            )));
        }
        Ok(engine)
    }

    /// The address an acceptor session listens on (with the real port when 0 was asked).
    pub fn listen_addr(&self, id: &SessionId) -> Option<SocketAddr> {
        self.listen_addrs.get(id).copied()
    }

    /// Where the admin API listens, if configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Session ids.
    pub fn session_ids(&self) -> Vec<SessionId> {
        self.sessions.keys().cloned().collect()
    }

    /// A handle for sending from other tasks.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            sessions: Arc::new(self.sessions.clone()),
            published: Arc::new(self.published.clone()),
            keeper: self.keeper.clone(),
            metrics: Arc::clone(&self.metrics),
            replication: self.replication.clone(),
            journal: self.storage.journal().map(|(j, _)| j.clone()),
            serving: self.serving.clone(),
            logons_held: Arc::clone(&self.logons_held),
        }
    }

    /// Logs every session out, waits for the handshakes (5 s at most, for all sessions
    /// together), and stops. The application's terms end first: what it was still waiting
    /// for (a broker's acknowledgement) stays unprocessed in the journal, handed to it
    /// again at the next start or to the next leader.
    pub async fn shutdown(self) {
        self.stopping.stop();
        // One bound for all the sessions together (a pod's grace period is 30 s): a
        // session still busy then (its command queue full, or no Logout answer) is
        // stopped without finishing its logout.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let logouts = self.sessions.values().map(|tx| async move {
            let (done, wait) = oneshot::channel();
            if tx.send(Command::Shutdown(done)).await.is_ok() {
                let _ = wait.await;
            }
        });
        let _ = tokio::time::timeout_at(deadline, futures::future::join_all(logouts)).await;
        // Wait for the aborted tasks to finish so the listening sockets are closed when
        // this returns (a restarted engine can bind the same port at once).
        for task in self.listeners.into_iter().chain(self.tasks) {
            task.abort();
            let _ = task.await;
        }
        if let Some(k) = &self.keeper {
            // Hand over at once instead of letting a standby wait for the TTL.
            k.step_down(std::time::Duration::from_secs(3600)).await;
        }
        self.storage.shutdown();
    }
}

/// How long an instance whose journal failed stays out of the election: for good (it
/// needs a restart once the disk is fixed; `/healthz` says so).
const JOURNAL_FAILED_PAUSE: std::time::Duration =
    std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// How often the journal is checked for a failed write or fsync.
const JOURNAL_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// Follows the keeper: opens the journal for the new epoch *before* telling the sessions
/// (through `tx`) that they lead, and fences it as soon as the lease is lost. With `sql`
/// durability the SQL journal is read to its end first; if that fails the lease is given
/// up rather than leading with a journal that may lack what the old leader made durable.
/// A journal that fails (disk full, EIO, a failed fsync, or a write and fsync in flight
/// for longer than `stall_limit`) gives the lease up at once and keeps this instance out
/// of every later election, so an in-sync standby takes over within the lease's RTO.
fn follow_lease(
    keeper: Arc<fix_lease::Keeper>,
    storage: Storage,
    tx: tokio::sync::watch::Sender<fix_lease::RoleState>,
    metrics: Arc<crate::metrics::Metrics>,
    sql: Option<crate::replication::sql::SqlChannel>,
    logons_held: Arc<std::sync::atomic::AtomicBool>,
    stall_limit: Option<std::time::Duration>,
) -> JoinHandle<()> {
    let mut source = keeper.subscribe();
    storage.fence();
    tokio::spawn(async move {
        let mut led: Option<u64> = None;
        let mut failed: Option<String> = None;
        loop {
            if failed.is_none() {
                // Only a leader's disk is judged by its speed: a standby catching up
                // writes large batches, and a slow standby is left out of the in-sync
                // set instead.
                let stalled = stall_limit
                    .filter(|_| led.is_some())
                    .and_then(|limit| storage.fail_if_stalled(limit));
                if let Some(e) = stalled.or_else(|| storage.failure()) {
                    tracing::error!(error = %e, "the journal failed: giving the lease up and staying out of every election until restarted");
                    storage.fence();
                    // The sessions hear it before the lease is released: not one byte
                    // after another instance may hold it.
                    let mut state = source.borrow().clone();
                    state.role = fix_lease::Leadership::Standby;
                    state.valid_until = None;
                    state.reason = format!("journal failed ({e})");
                    tx.send_replace(state);
                    failed = Some(e);
                    keeper.step_down(JOURNAL_FAILED_PAUSE).await;
                }
            }
            let mut state = source.borrow_and_update().clone();
            if let Some(e) = &failed {
                state.role = fix_lease::Leadership::Standby;
                state.valid_until = None;
                state.reason =
                    format!("journal failed ({e}): restart this instance once its disk is fixed");
            }
            if let Some(took) = state.last_call {
                metrics.lease_renew_seconds.observe(took.as_secs_f64());
            }
            match state.role {
                fix_lease::Leadership::Leader { epoch } if led != Some(epoch) => {
                    let drained = match &sql {
                        Some(channel) => channel.drain().await.map_err(|e| e.to_string()),
                        None => Ok(()),
                    };
                    let opened =
                        drained.and_then(|()| storage.open_epoch(epoch).map_err(|e| e.to_string()));
                    match opened {
                        Ok(()) => {
                            led = Some(epoch);
                            // A hold from an earlier term (a rotation away) ends here.
                            logons_held.store(false, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(e) => {
                            tracing::error!(epoch, error = %e, "refusing to lead: giving the lease up");
                            storage.fence();
                            state.role = fix_lease::Leadership::Standby;
                            state.reason = e;
                            tx.send_replace(state);
                            keeper.step_down(std::time::Duration::from_secs(2)).await;
                            continue;
                        }
                    }
                }
                fix_lease::Leadership::Leader { .. } => {}
                fix_lease::Leadership::Standby => {
                    led = None;
                    storage.fence();
                }
            }
            tx.send_replace(state);
            tokio::select! {
                changed = source.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(JOURNAL_CHECK), if failed.is_none() => {}
            }
        }
    })
}
