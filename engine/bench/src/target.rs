//! This engine as the system under test, in-process, each instance on its own runtime
//! thread: FIX.4.4 acceptor sessions EXEC←CLIENT, EXEC←CLIENT1, ... running `exec`
//! (NewOrderSingle → ExecutionReport New, then Fill). With `Store::Replicated` a standby
//! instance follows the leader's journal over loopback and every reply waits for its
//! acknowledgement (`durability = "replicated"`, SQLite lease).

use crate::load::comp_id;
use fix_engine::config::RuntimeSection;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where sessions keep their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Store {
    /// Memory only.
    Memory,
    /// The journal with group-committed fdatasync.
    Journal,
    /// The journal written but never synced (`fsync = false`): what the peers' file
    /// stores do (QuickFIX's FileStore and fixer's only write and flush to the OS), for a
    /// like-for-like comparison. Not durable across a power cut.
    JournalNoFsync,
    /// The journal (fdatasync) on a leader and a standby, replies sent once the standby
    /// has the messages on its disk too.
    Replicated,
    /// The journal on a leader and a standby, replies sent once both have written the
    /// messages to their journal files (`replicated-written`; both fsync in the
    /// background).
    ReplicatedWritten,
}

impl Store {
    /// How the doc and the tables name it.
    pub fn describe(self) -> &'static str {
        match self {
            Store::Memory => "memory store",
            Store::Journal => "journal (fsync, group commit)",
            Store::JournalNoFsync => "journal without fsync",
            Store::Replicated => "journal replicated to a standby (both fsync)",
            Store::ReplicatedWritten => {
                "journal replicated to a standby (both written, fsync in the background)"
            }
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// Where sessions keep their state.
    pub store: Store,
    /// Acceptor sessions (CompIDs as the load generator's).
    pub sessions: usize,
    /// The (leader's) runtime: threads, cores, busy polling.
    pub runtime: RuntimeSection,
    /// `[engine] delivery = "early"` instead of `durable`.
    pub early: bool,
}

/// What a running instance reports: its first session's port, whether it leads, and
/// whether a standby streams from it.
#[derive(Debug, Clone, Copy, Default)]
struct Probe {
    addr: Option<SocketAddr>,
    leads: bool,
    standby_streaming: bool,
}

/// One engine on its own runtime thread.
struct Instance {
    probe: Arc<Mutex<Result<Probe, String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Instance {
    /// Starts `toml` on a runtime placed as `runtime` says; what it reports is refreshed
    /// every 10 ms.
    fn start(toml: String, runtime: RuntimeSection) -> std::io::Result<Self> {
        let mut config = fix_engine::EngineConfig::from_toml(&toml, "bench")
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        config.engine.runtime = runtime.clone();
        let sessions = config.sessions.len();
        let probe = Arc::new(Mutex::new(Ok(Probe::default())));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let report = Arc::clone(&probe);
        let set = move |p: Result<Probe, String>| {
            if let Ok(mut r) = report.lock() {
                *r = p;
            }
        };
        let thread = std::thread::Builder::new()
            .name("engine-under-test".into())
            .spawn(move || {
                let rt = match fix_engine::runtime::build(&runtime, sessions) {
                    Ok(rt) => rt,
                    Err(e) => return set(Err(e.to_string())),
                };
                rt.block_on(async move {
                    let engine = match fix_engine::Engine::start(config).await {
                        Ok(engine) => engine,
                        Err(e) => return set(Err(e.to_string())),
                    };
                    let handle = engine.handle();
                    loop {
                        set(Ok(Probe {
                            addr: handle
                                .session_ids()
                                .iter()
                                .find(|i| i.target_comp_id == "CLIENT")
                                .and_then(|i| engine.listen_addr(i)),
                            leads: matches!(handle.role(), fix_lease::Leadership::Leader { .. }),
                            standby_streaming: handle
                                .replication()
                                .is_some_and(|r| r.standbys().iter().any(|s| s.streaming)),
                        }));
                        tokio::select! {
                            _ = &mut stopped => break,
                            () = tokio::time::sleep(Duration::from_millis(10)) => {}
                        }
                    }
                    engine.shutdown().await;
                });
            })?;
        Ok(Self {
            probe,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Waits (up to 15 s) until what the instance reports satisfies `ready`.
    fn wait(&self, what: &str, ready: fn(&Probe) -> bool) -> std::io::Result<Probe> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let probe = self
                .probe
                .lock()
                .map_err(|_| std::io::Error::other("engine probe poisoned"))?
                .clone()
                .map_err(|e| std::io::Error::other(format!("starting the engine: {e}")))?;
            if ready(&probe) {
                return Ok(probe);
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "the engine did not {what} within 15 s ({probe:?})"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The engine(s) under test; stop when dropped.
pub struct Target {
    addr: SocketAddr,
    // Dropped in order: the leader first, then its standby, then the directory.
    _instances: Vec<Instance>,
    _dir: tempfile::TempDir,
}

fn sessions_toml(sessions: usize) -> String {
    (0..sessions.max(1))
        .map(|k| {
            format!(
                "[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = '{}'\nrole = 'acceptor'\nlisten = '127.0.0.1:{{port}}'\nheartbeat_interval = 30\n",
                comp_id(k)
            )
        })
        .collect()
}

/// A port free on loopback right now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Target {
    /// Starts the engine as `opts` says (journals in a temporary directory).
    pub fn start(opts: &TargetOptions) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let sessions = sessions_toml(opts.sessions).replace("{port}", &port.to_string());
        let fsync = opts.store != Store::JournalNoFsync;
        // Every session of the generator connects from 127.0.0.1 at once: over the
        // default caps on connections waiting for their Logon they queue for their turn.
        let delivery = if opts.early { "early" } else { "durable" };
        let engine = |name: &str, store: &str| {
            format!(
                "[engine]\nstore = '{store}'\ndata_dir = '{}'\nfsync = {fsync}\napp = 'exec'\ndelivery = '{delivery}'\n",
                dir.path().join(name).display()
            )
        };
        match opts.store {
            Store::Memory | Store::Journal | Store::JournalNoFsync => {
                let store = if opts.store == Store::Memory {
                    "memory"
                } else {
                    "journal"
                };
                let toml = format!("{}{sessions}", engine("a", store));
                let instance = Instance::start(toml, opts.runtime.clone())?;
                let probe = instance.wait("listen", |p| p.addr.is_some())?;
                Ok(Self {
                    addr: probe
                        .addr
                        .ok_or_else(|| std::io::Error::other("no listening session"))?,
                    _instances: vec![instance],
                    _dir: dir,
                })
            }
            Store::Replicated | Store::ReplicatedWritten => {
                let durability = if opts.store == Store::Replicated {
                    "replicated"
                } else {
                    "replicated-written"
                };
                let (ra, rb) = (free_port()?, free_port()?);
                let lease = dir.path().join("lease.db");
                let pair = |name: &str, me: u16, peer: u16| {
                    format!(
                        "{}[engine.lease]\nurl = 'sqlite://{}'\nowner = '{name}'\n[engine.replication]\nlisten = '127.0.0.1:{me}'\npeers = ['127.0.0.1:{peer}']\ndurability = '{durability}'\n{}",
                        engine(name, "journal"),
                        lease.display(),
                        // The standby listens on its own port (unused while it follows).
                        if name == "a" {
                            sessions.clone()
                        } else {
                            sessions.replace(&format!(":{port}'"), ":0'")
                        }
                    )
                };
                let leader = Instance::start(pair("a", ra, rb), opts.runtime.clone())?;
                leader.wait("lead", |p| p.leads)?;
                // One thread, on the leader's cores when it is pinned: on this machine the
                // other core is the load generator's, which spins without yielding.
                let standby_runtime = RuntimeSection {
                    worker_threads: Some(1),
                    pin_cores: opts.runtime.pin_cores.clone(),
                    ..RuntimeSection::default()
                };
                let standby = Instance::start(pair("b", rb, ra), standby_runtime)?;
                let probe = leader.wait("see its standby streaming", |p| p.standby_streaming)?;
                Ok(Self {
                    addr: probe
                        .addr
                        .ok_or_else(|| std::io::Error::other("no listening session"))?,
                    _instances: vec![leader, standby],
                    _dir: dir,
                })
            }
        }
    }

    /// The acceptor's address (the leader's).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
