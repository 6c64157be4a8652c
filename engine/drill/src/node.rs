//! One engine instance as a real process: its configuration, start, `kill -9`,
//! SIGSTOP/SIGCONT, and its admin API.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Running an engine in this process failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineProcessError {
    /// The configuration could not be read.
    #[error(transparent)]
    Config(#[from] fix_engine::config::ConfigError),
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] fix_engine::EngineError),
    /// The engine stopped with an error.
    #[error(transparent)]
    Run(#[from] fix_engine::runtime::RunError),
}

/// Runs one engine from `config` in this process until Ctrl-C or SIGTERM, logging to
/// stderr: what `EXE engine --config FILE` does for the drill's and fixctl's engines.
pub fn run_engine(config: &Path) -> Result<(), EngineProcessError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let config = fix_engine::EngineConfig::from_file(config)?;
    Ok(fix_engine::runtime::run(config)?)
}

/// Admin token the drill's engines use.
pub const TOKEN: &str = "drill-token";

/// The replication key of engines in network namespaces (`[engine.replication] key_env`).
pub const REPLICATION_KEY: &str = "drill-replication-key-for-namespaces";

/// How to run one engine of the group.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Instance name (lease owner).
    pub name: String,
    /// Its data directory (journal, config, log).
    pub dir: PathBuf,
    /// FIX acceptor port.
    pub fix_port: u16,
    /// Admin API port.
    pub admin_port: u16,
    /// Replication port.
    pub repl_port: u16,
    /// The other instances' replication addresses.
    pub peers: Vec<SocketAddr>,
    /// The address it listens on (loopback, or its namespace's address).
    pub host: Ipv4Addr,
    /// The network namespace it runs in (`ip netns exec`), if any. Replication then
    /// leaves loopback and is keyed ([`REPLICATION_KEY`]).
    pub netns: Option<String>,
    /// Lease store URL.
    pub lease_url: String,
    /// Its region in a multi-region group.
    pub region: Option<String>,
    /// Writes wait for a standby of another region too.
    pub cross_region_sync: bool,
    /// The Kafka bridge's `[engine.kafka]` body: with it, `app = "kafka"` instead of the
    /// `exec` simulator.
    pub kafka: Option<String>,
    /// Also accept `EXEC`←`SLOW` (the zero-window counterparty) on the FIX port.
    pub stalled_reader: bool,
    /// FIX sessions: `EXEC`←`CLIENT`, then `CLIENT2` … (all on the FIX port).
    pub sessions: usize,
    /// `local` or `replicated`.
    pub durability: String,
    /// Lease TTL in ms.
    pub ttl_ms: u64,
    /// Renew interval in ms.
    pub renew_ms: u64,
    /// Safety margin in ms.
    pub margin_ms: u64,
}

impl NodeSpec {
    /// The engine configuration (TOML): a FIX.4.4 acceptor EXEC←CLIENT (the trader; and
    /// CLIENT2 … when it opens more sessions), and
    /// EXEC←SLOW on the same port for the zero-window fault's counterparty when asked,
    /// with the `exec` simulator (or the Kafka bridge).
    pub fn toml(&self) -> String {
        let peers: Vec<String> = self.peers.iter().map(|p| format!("'{p}'")).collect();
        let key = if self.netns.is_some() {
            "key_env = 'FIX_DRILL_REPLICATION_KEY'\n"
        } else {
            ""
        };
        format!(
            "[engine]\ndata_dir = '{dir}'\napp = '{app}'\n\
             [engine.lease]\nurl = '{url}'\ngroup = '{group}'\nowner = '{name}'\nttl_ms = {ttl}\nrenew_interval_ms = {renew}\nsafety_margin_ms = {margin}\n{region}\
             [engine.replication]\nlisten = '{host}:{repl}'\npeers = [{peers}]\ndurability = '{durability}'\nstandby_wait_ms = 300\ncross_region = '{cross}'\n{key}\
             [engine.admin]\nlisten = '{host}:{admin}'\ntoken = '{TOKEN}'\n\
             [[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '{host}:{fix}'\nheartbeat_interval = 1\n{slow}",
            host = self.host,
            group = crate::cluster::GROUP,
            dir = self.dir.display(),
            url = self.lease_url,
            name = self.name,
            ttl = self.ttl_ms,
            renew = self.renew_ms,
            margin = self.margin_ms,
            region = self
                .region
                .as_ref()
                .map_or(String::new(), |r| format!("region = '{r}'\n")),
            repl = self.repl_port,
            peers = peers.join(", "),
            durability = self.durability,
            cross = if self.cross_region_sync { "sync" } else { "async" },
            admin = self.admin_port,
            fix = self.fix_port,
            slow = if self.stalled_reader {
                format!(
                    "[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = '{}'\nrole = 'acceptor'\nlisten = '{}:{}'\nheartbeat_interval = 1\n",
                    crate::stalled_reader::COMP_ID,
                    self.host,
                    self.fix_port
                )
            } else {
                String::new()
            },
            app = if self.kafka.is_some() { "kafka" } else { "exec" },
        ) + &(2..=self.sessions)
            .map(|k| {
                format!(
                    "[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT{k}'\nrole = 'acceptor'\nlisten = '{}:{}'\nheartbeat_interval = 1\n",
                    self.host, self.fix_port
                )
            })
            .collect::<String>()
            + &self
            .kafka
            .as_ref()
            .map_or(String::new(), |k| format!("[engine.kafka]\n{k}\n"))
    }
}

/// Turns one of the fault shim's switches on (the file holds `content`, written whole
/// and renamed so that the shim never reads half of it) or off (no file).
fn switch(file: &Path, content: Option<String>) -> std::io::Result<()> {
    match content {
        Some(c) => {
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, c)?;
            std::fs::rename(tmp, file)
        }
        None => match std::fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// A running (or stopped) engine process.
pub struct Node {
    /// How it runs.
    pub spec: NodeSpec,
    exe: PathBuf,
    child: Option<Child>,
}

fn signal(pid: u32, sig: &str) -> std::io::Result<()> {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill {sig} {pid} failed")))
    }
}

impl Node {
    /// A node run by `exe engine --config FILE` (the drill binary's engine mode).
    pub fn new(exe: &Path, spec: NodeSpec) -> Self {
        Self {
            spec,
            exe: exe.to_path_buf(),
            child: None,
        }
    }

    /// Starts the process (its log goes to `engine.log` in its directory).
    pub fn start(&mut self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.spec.dir)?;
        let config = self.spec.dir.join("engine.toml");
        std::fs::write(&config, self.spec.toml())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.spec.dir.join("engine.log"))?;
        let mut command = match &self.spec.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str()])
                    .arg(&self.exe)
                    .env("FIX_DRILL_REPLICATION_KEY", REPLICATION_KEY);
                c
            }
            None => Command::new(&self.exe),
        };
        let child = command
            .arg("engine")
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("FIX_DRILL_ENGINE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("RUST_BACKTRACE")
            .envs(self.fault_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// With `FIX_DRILL_ENGINE_PRELOAD` set (to the fault shim, [`crate::shim::build`]),
    /// the engine runs under that shim: its fsyncs fail while [`Node::fail_fsync`] is on,
    /// its journal writes while [`Node::fail_journal_writes`] is, fsyncs are slow while
    /// [`Node::slow_fsync`] is, and its wall clock is stepped while
    /// [`Node::step_clock`] says so. Set it only in a
    /// test binary of its own (or the drill's `main`): the variable is the process's.
    fn fault_env(&self) -> Vec<(String, String)> {
        match std::env::var("FIX_DRILL_ENGINE_PRELOAD") {
            Ok(shim) if !shim.is_empty() => vec![
                ("LD_PRELOAD".into(), shim),
                (
                    "FIX_FAULT_FSYNC_FAIL_IF".into(),
                    self.fsync_trigger().display().to_string(),
                ),
                (
                    "FIX_FAULT_WRITE_FAIL_IF".into(),
                    self.write_trigger().display().to_string(),
                ),
                (
                    "FIX_FAULT_CLOCK_OFFSET_FILE".into(),
                    self.clock_offset_file().display().to_string(),
                ),
                (
                    "FIX_FAULT_FSYNC_SLOW_IF".into(),
                    self.slow_trigger().display().to_string(),
                ),
            ],
            _ => Vec::new(),
        }
    }

    fn fsync_trigger(&self) -> PathBuf {
        self.spec.dir.join("fail-fsync")
    }

    /// Makes every fsync of this engine fail (true) or work again (false), when it runs
    /// under the fault shim (see `FIX_DRILL_ENGINE_PRELOAD`).
    pub fn fail_fsync(&self, fail: bool) -> std::io::Result<()> {
        switch(&self.fsync_trigger(), fail.then(String::new))
    }

    fn write_trigger(&self) -> PathBuf {
        self.spec.dir.join("fail-journal-write")
    }

    /// Makes every write to this engine's journal files fail (true) or work again
    /// (false), when it runs under the fault shim.
    pub fn fail_journal_writes(&self, fail: bool) -> std::io::Result<()> {
        switch(&self.write_trigger(), fail.then(String::new))
    }

    fn slow_trigger(&self) -> PathBuf {
        self.spec.dir.join("slow-fsync")
    }

    /// Makes every fsync of this engine take `ms` longer (`None`: no longer), when it
    /// runs under the fault shim.
    pub fn slow_fsync(&self, ms: Option<u64>) -> std::io::Result<()> {
        switch(&self.slow_trigger(), ms.map(|ms| ms.to_string()))
    }

    fn clock_offset_file(&self) -> PathBuf {
        self.spec.dir.join("clock-offset-ms")
    }

    /// Steps this engine's wall clock by `offset_ms` (`None`: back to the true time),
    /// when it runs under the fault shim. Its monotonic clock is untouched.
    pub fn step_clock(&self, offset_ms: Option<i64>) -> std::io::Result<()> {
        switch(
            &self.clock_offset_file(),
            offset_ms.map(|ms| ms.to_string()),
        )
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: the engine logs its sessions out and stops; waits up to `limit`, then
    /// kills it.
    pub fn terminate(&mut self, limit: std::time::Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = signal(c.id(), "-TERM");
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if matches!(c.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// SIGSTOP: the process freezes with its sockets open.
    pub fn pause(&self) -> std::io::Result<()> {
        self.pid().map_or(Ok(()), |p| signal(p, "-STOP"))
    }

    /// SIGCONT.
    pub fn resume(&self) -> std::io::Result<()> {
        self.pid().map_or(Ok(()), |p| signal(p, "-CONT"))
    }

    /// Its process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The FIX port's address.
    pub fn fix_addr(&self) -> SocketAddr {
        SocketAddr::from((self.spec.host, self.spec.fix_port))
    }

    /// The admin API's address.
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from((self.spec.host, self.spec.admin_port))
    }

    /// `/readyz`, if it answers.
    pub async fn readiness(&self) -> Option<fix_engine::admin::api::Readiness> {
        crate::http::readiness(self.admin_addr()).await
    }

    /// Whether it answers `/readyz` as the leader.
    pub async fn is_leader(&self) -> bool {
        self.readiness()
            .await
            .is_some_and(|v| v.role == fix_engine::admin::api::RoleName::Leader)
    }

    /// The last lines of its log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.spec.dir.join("engine.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(p) = self.pid() {
            let _ = signal(p, "-CONT");
        }
        self.kill9();
    }
}
