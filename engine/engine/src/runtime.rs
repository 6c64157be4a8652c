//! Building the tokio runtime the engine runs on, with its CPU placement
//! (`[engine.runtime]`): how many worker threads, and which cores they are pinned to;
//! and [`run`], the one run loop every binary that runs an engine uses (`fix-engine`,
//! `fix-drill engine`, `fixctl engine`).

use crate::config::RuntimeSection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Sessions above which every worker checks the runtime's shared run queue at every
/// poll. A worker's own run queue holds 256 tasks; when more sessions are ready at once
/// (a thousand busy sessions) the rest overflow to the shared queue, which tokio looks
/// at only every 61 polls by default, while the sessions in the worker's own queue are
/// served again and again: with 1 000 sessions in a closed loop, p50 2.6 ms but p99
/// 170 ms. Checked at every poll, p99.9 is within 2 × p50 (`docs/bench/sessions.md`).
pub const FAIR_SCHEDULING_ABOVE_SESSIONS: usize = 128;

/// A multi-threaded runtime as `section` says, for an engine with `sessions` sessions.
/// Pinning to a core that does not exist is an error naming the cores there are.
pub fn build(
    section: &RuntimeSection,
    sessions: usize,
) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().thread_name("fix-engine");
    if sessions > FAIR_SCHEDULING_ABOVE_SESSIONS {
        b.global_queue_interval(1);
    }
    if let Some(n) = section.worker_threads {
        if n == 0 {
            return Err(std::io::Error::other(
                "engine.runtime.worker_threads must be at least 1",
            ));
        }
        b.worker_threads(n);
    }
    if !section.pin_cores.is_empty() {
        let available: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if let Some(bad) = section.pin_cores.iter().find(|c| !available.contains(c)) {
            return Err(std::io::Error::other(format!(
                "engine.runtime.pin_cores names core {bad}, but this machine has cores {available:?}"
            )));
        }
        let cores = Arc::new(section.pin_cores.clone());
        let next = Arc::new(AtomicUsize::new(0));
        b.on_thread_start(move || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let core = cores[i % cores.len()];
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                tracing::warn!(core, "could not pin a runtime thread");
            }
        });
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_checked_and_applied() {
        let bad = RuntimeSection {
            worker_threads: Some(0),
            pin_cores: vec![],
            ..RuntimeSection::default()
        };
        assert!(build(&bad, 1).is_err());
        let missing = RuntimeSection {
            worker_threads: Some(1),
            pin_cores: vec![100_000],
            ..RuntimeSection::default()
        };
        let e = build(&missing, 1)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("100000") && e.contains("this machine has cores"),
            "{e}"
        );
        let pinned = RuntimeSection {
            worker_threads: Some(1),
            pin_cores: vec![0],
            ..RuntimeSection::default()
        };
        let rt = build(&pinned, 1).expect("core 0 exists");
        assert_eq!(rt.block_on(async { 7 }), 7);
    }
}

/// Why [`run`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The runtime or a signal handler could not be set up.
    #[error("starting the async runtime or its signal handlers: {0}")]
    Runtime(#[from] std::io::Error),
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] crate::EngineError),
}

/// Runs an engine from `config` until Ctrl-C or SIGTERM (also while it starts, waiting
/// for the lease store, say: as a container's first process, a signal it does not
/// handle is ignored), then logs its sessions out and returns.
pub fn run(config: crate::EngineConfig) -> Result<(), RunError> {
    build(&config.engine.runtime, config.sessions.len())?.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let engine = tokio::select! {
            e = crate::Engine::start(config) => e?,
            r = tokio::signal::ctrl_c() => { r?; return Ok(()); }
            _ = term.recv() => return Ok(()),
        };
        for id in engine.session_ids() {
            match engine.listen_addr(&id) {
                Some(addr) => tracing::info!(session = %id, %addr, "acceptor ready"),
                None => tracing::info!(session = %id, "initiator ready"),
            }
        }
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: logging sessions out");
        engine.shutdown().await;
        Ok(())
    })
}
