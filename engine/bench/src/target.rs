//! This engine as the system under test, in-process on its own runtime thread: one
//! FIX.4.4 acceptor EXEC←CLIENT running `exec` (NewOrderSingle → ExecutionReport New,
//! then Fill).

use std::net::SocketAddr;
use std::sync::mpsc;

/// Where sessions keep their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Store {
    /// Memory only.
    Memory,
    /// The journal with group-committed fdatasync.
    Journal,
}

/// A running engine; stops when dropped.
pub struct Target {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Target {
    /// Starts the engine with `store` (journal in a temporary directory, fsync on) on a
    /// runtime placed as `runtime` says.
    pub fn start(
        store: Store,
        runtime: fix_engine::config::RuntimeSection,
    ) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let toml = format!(
            "[engine]\nstore = '{}'\ndata_dir = '{}'\nfsync = true\napp = 'exec'\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\nheartbeat_interval = 30\n",
            match store {
                Store::Memory => "memory",
                Store::Journal => "journal",
            },
            dir.path().display()
        );
        let config = fix_engine::EngineConfig::from_toml(&toml, "bench")
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let (ready_tx, ready) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("engine-under-test".into())
            .spawn(move || {
                let rt = match fix_engine::runtime::build(&runtime) {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    match fix_engine::Engine::start(config).await {
                        Ok(engine) => {
                            let id =
                                fix_engine::engine::EngineHandle::session_ids(&engine.handle());
                            let addr = id.first().and_then(|i| engine.listen_addr(i));
                            let _ = ready_tx
                                .send(addr.ok_or_else(|| "no listening session".to_string()));
                            let _ = stopped.await;
                            engine.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                });
            })?;
        let addr = ready
            .recv()
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .map_err(std::io::Error::other)?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// The acceptor's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
