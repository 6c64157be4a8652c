//! The role loop: contend for the lease, renew it, and demote at the local deadline.
//!
//! A [`Keeper`] task publishes the node's [`RoleState`] on a watch channel. It becomes
//! leader when an acquire succeeds and renews every `renew_interval`. It is standby again
//! the moment its local deadline passes without a successful renew — even while a renew
//! call is still hanging on a dead database — or when a renew is refused. The runtime must
//! stop sending and close its FIX sockets as soon as it sees `Standby`: the deadline comes
//! before any contender has watched the lease unchanged for a TTL, so that happens before
//! anyone else can be granted the lease. An acquire that took so long that little of its
//! trust window is left is renewed before it is published (`crate::role`); if that fails,
//! the lease is given back and this node stays standby.

use crate::holder::{Holder, LeaseConfig};
use crate::role::{CallResult, LeaseCall, RoleMachine};
use crate::store::LeaseStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What this node may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// Not the leader: send nothing, accept no FIX sessions.
    Standby,
    /// The leader, with its fencing epoch.
    Leader {
        /// The epoch to stamp on every write.
        epoch: u64,
    },
}

/// The role and when it was last confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleState {
    /// Current role.
    pub role: Leadership,
    /// While leader: the local deadline after which the lease is no longer trusted.
    pub valid_until: Option<Instant>,
    /// Why the role last changed.
    pub reason: String,
    /// How many times this node became leader.
    pub terms: u64,
    /// How long the last successful acquire or renew took.
    pub last_call: Option<Duration>,
    /// Who holds the lease, as last seen: this node while leader, otherwise the lease
    /// store's row read after a failed acquire.
    pub holder: Option<LeaseHolder>,
    /// This node names no region, or its region was the group's active region when last
    /// looked at (only then may it contend).
    pub in_active_region: bool,
}

/// The lease's holder as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// Its owner id.
    pub owner: String,
    /// Its epoch.
    pub epoch: u64,
    /// Milliseconds until it expires (by the store's clock) when read; negative once
    /// expired.
    pub expires_in_ms: i64,
    /// The in-sync set recorded in the store when read (`None`: none recorded, or not
    /// read since this node acquired).
    pub in_sync: Option<Vec<String>>,
}

enum Command {
    StepDown {
        pause: Duration,
        done: tokio::sync::oneshot::Sender<()>,
    },
    LookNow,
}

/// Tells a [`Keeper`] that the leader looks gone (a standby's replication stream from
/// it broke), so that it reads the lease at once instead of at its next interval
/// ([`RoleMachine::look_now`]). Cheap to clone; a keeper that has stopped ignores it.
#[derive(Clone)]
pub struct LookNow(mpsc::Sender<Command>);

impl LookNow {
    /// Asks for a look now. Never waits: when looks are already queued, one more adds
    /// nothing.
    pub fn look_now(&self) {
        let _ = self.0.try_send(Command::LookNow);
    }
}

impl std::fmt::Debug for LookNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookNow")
    }
}

/// Handle to a running keeper.
pub struct Keeper {
    owner: String,
    state: watch::Receiver<RoleState>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl Keeper {
    /// Starts contending for `cfg.group` in `store`.
    pub fn spawn(store: Arc<dyn LeaseStore>, cfg: LeaseConfig) -> Self {
        let (_, eligible) = watch::channel(true);
        Self::spawn_gated(store, cfg, eligible)
    }

    /// Like [`Keeper::spawn`], but contends only while `eligible` is true (a standby whose
    /// journal has not caught up with the leader must not take over). A held lease is
    /// renewed regardless.
    pub fn spawn_gated(
        store: Arc<dyn LeaseStore>,
        cfg: LeaseConfig,
        eligible: watch::Receiver<bool>,
    ) -> Self {
        let (tx, state) = watch::channel(RoleState {
            role: Leadership::Standby,
            valid_until: None,
            reason: "starting".into(),
            terms: 0,
            last_call: None,
            holder: None,
            in_active_region: true,
        });
        let (commands, rx) = mpsc::channel(4);
        let owner = cfg.owner.clone();
        let task = tokio::spawn(run(store, cfg, tx, rx, eligible));
        Self {
            owner,
            state,
            commands,
            task,
        }
    }

    /// This node's owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Watches the role.
    pub fn subscribe(&self) -> watch::Receiver<RoleState> {
        self.state.clone()
    }

    /// The role now.
    pub fn role(&self) -> Leadership {
        self.state.borrow().role
    }

    /// Gives the lease up (if held) and does not contend again for `pause`, so a standby
    /// takes over. Returns once the role is `Standby` and the release was attempted.
    pub async fn step_down(&self, pause: Duration) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self
            .commands
            .send(Command::StepDown { pause, done })
            .await
            .is_ok()
        {
            let _ = wait.await;
        }
    }

    /// A handle that makes this keeper look at the lease at once ([`LookNow`]).
    pub fn look_now_handle(&self) -> LookNow {
        LookNow(self.commands.clone())
    }

    /// Stops the loop (the lease is left to expire).
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn publish_timed(
    tx: &watch::Sender<RoleState>,
    role: Leadership,
    valid_until: Option<Instant>,
    reason: String,
    took: Option<Duration>,
    holder: Option<LeaseHolder>,
) {
    tx.send_modify(|s| {
        s.last_call = took;
        if holder.is_some() {
            s.holder = holder;
        }
        if matches!(role, Leadership::Leader { .. }) && !matches!(s.role, Leadership::Leader { .. })
        {
            s.terms += 1;
        }
        if s.role != role {
            tracing::info!(?role, %reason, "lease role changed");
        }
        s.role = role;
        s.valid_until = valid_until;
        s.reason = reason;
    });
}

fn own(cfg: &LeaseConfig, h: &Holder) -> LeaseHolder {
    LeaseHolder {
        owner: cfg.owner.clone(),
        epoch: h.grant.epoch,
        expires_in_ms: h
            .valid_until
            .saturating_duration_since(Instant::now())
            .as_millis() as i64,
        in_sync: None,
    }
}

/// Whether this instance may contend: it names no region, or the group's active region
/// is unset or its own. A store error counts as "no" (it would fail the acquire too).
async fn in_active_region(
    store: &dyn LeaseStore,
    cfg: &LeaseConfig,
    tx: &watch::Sender<RoleState>,
) -> bool {
    let Some(mine) = &cfg.region else {
        return true;
    };
    let active = match crate::region::active_region(store, &cfg.group).await {
        Ok(None) => true,
        Ok(Some(active)) if &active == mine => true,
        Ok(Some(active)) => {
            let reason = format!("region {mine} is not the active region ({active})");
            tx.send_if_modified(|s| {
                let changed = s.reason != reason || s.in_active_region;
                s.reason = reason;
                s.in_active_region = false;
                changed
            });
            return false;
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading the active region failed; retrying");
            return false;
        }
    };
    tx.send_if_modified(|s| {
        let changed = s.in_active_region != active;
        s.in_active_region = active;
        changed
    });
    active
}

/// Why `owner` may not take a free lease: it is not in the recorded in-sync set.
fn out_of_sync(owner: &str, state: &crate::LeaseState) -> Option<String> {
    let members = &state.in_sync.as_ref()?.members;
    if state.is_held() || members.iter().any(|m| m == owner) {
        return None;
    }
    Some(format!(
        "not in the in-sync set [{}] recorded under epoch {}: this instance may lack records the last leader acknowledged, so only those instances may lead",
        members.join(", "),
        state.epoch
    ))
}

/// Publishes the machine's role changes (with who holds the lease, while this node does).
fn publish_changes(m: &mut RoleMachine, tx: &watch::Sender<RoleState>) {
    while let Some(change) = m.poll_change() {
        let role = change
            .leading
            .map_or(Leadership::Standby, |epoch| Leadership::Leader { epoch });
        let holder = change
            .leading
            .and_then(|_| m.held().map(|h| own(m.config(), h)));
        publish_timed(
            tx,
            role,
            change.valid_until,
            change.reason,
            change.took,
            holder,
        );
    }
}

/// Asks the store for the lease (in the active region only); on a refusal, reads who
/// holds it and says when to look again.
async fn acquire(
    store: &dyn LeaseStore,
    cfg: &LeaseConfig,
    tx: &watch::Sender<RoleState>,
) -> (CallResult, Option<Duration>) {
    if !in_active_region(store, cfg, tx).await {
        // Another region is active: stay standby, look again next interval.
        return (CallResult::Refused, None);
    }
    // Bounded, so that a dead store cannot keep the loop from a step-down command; a
    // grant that comes later than this is never used (the store lets it expire).
    let acquired =
        tokio::time::timeout(cfg.ttl * 4, store.acquire(&cfg.group, &cfg.owner, cfg.ttl))
            .await
            .unwrap_or(Err(crate::LeaseError::Timeout("an acquire")));
    match acquired {
        Ok(Some(grant)) => (CallResult::Granted(grant), None),
        Ok(None) => {
            // Someone else holds it: see who, and look again within an interval (each
            // look carries on watching the holder's beat).
            // When the store's watch of the holder's beat ends, by this machine's clock:
            // look again then (a millisecond after, so the watch is over), not an
            // interval later. Stores that do not watch: the expiry as the store's clock
            // tells, a guess.
            let watch_ends = store.watch_ends(&cfg.group);
            let mut retry_in = None;
            if let Ok(Some(state)) = store.read(&cfg.group).await {
                let expires_in_ms = state.expires_at_ms - state.now_ms;
                if expires_in_ms > 0 {
                    retry_in = Some(Duration::from_millis(expires_in_ms as u64 + 5));
                }
                let reason = out_of_sync(&cfg.owner, &state);
                let holder = LeaseHolder {
                    owner: state.owner,
                    epoch: state.epoch,
                    expires_in_ms,
                    in_sync: state.in_sync.map(|r| r.members),
                };
                tx.send_if_modified(|s| {
                    let mut changed = s.holder.as_ref() != Some(&holder);
                    s.holder = Some(holder);
                    if let Some(reason) = reason {
                        changed |= s.reason != reason;
                        s.reason = reason;
                    }
                    changed
                });
            }
            match watch_ends {
                Some(t) if t > Instant::now() => {
                    retry_in = Some(t.duration_since(Instant::now()) + Duration::from_millis(1));
                }
                // The watch is over and the lease was still refused (this instance is
                // not in the recorded in-sync set, say): nothing changes before the
                // holder's next write, so look again in an interval, not at once.
                Some(_) => retry_in = None,
                None => {}
            }
            (CallResult::Refused, retry_in)
        }
        Err(e) => {
            tracing::warn!(error = %e, "lease acquire failed; retrying");
            (CallResult::Failed(e.to_string()), None)
        }
    }
}

/// Makes one call the machine asked for and hands it the outcome. A renew is abandoned
/// at the lease's local deadline (or after a trust window for a confirming renew).
async fn call(
    store: &dyn LeaseStore,
    m: &mut RoleMachine,
    call: LeaseCall,
    tx: &watch::Sender<RoleState>,
) {
    let cfg = m.config().clone();
    match call {
        LeaseCall::Acquire => {
            let (result, retry_in) = acquire(store, &cfg, tx).await;
            m.handle_result(Instant::now(), result, retry_in);
        }
        LeaseCall::Renew(grant) => {
            let limit = m
                .held()
                .map_or(Instant::now() + cfg.trust_window(), |h| h.valid_until);
            let renewed = tokio::time::timeout_at(
                tokio::time::Instant::from_std(limit),
                store.renew(&grant, cfg.ttl),
            )
            .await;
            let result = match renewed {
                Ok(Ok(Some(grant))) => CallResult::Granted(grant),
                Ok(Ok(None)) => CallResult::Refused,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "lease renew failed; retrying until the local deadline");
                    CallResult::Failed(e.to_string())
                }
                Err(_) => {
                    // Past the deadline: the machine demotes; a confirming renew fails.
                    m.tick(Instant::now());
                    CallResult::Failed("the renew took longer than the trust window".into())
                }
            };
            m.handle_result(Instant::now(), result, None);
        }
        LeaseCall::Release(grant) => {
            let released = tokio::time::timeout(cfg.trust_window(), store.release(&grant)).await;
            if !matches!(released, Ok(Ok(_))) {
                tracing::warn!("lease release failed; it will expire instead");
            }
            m.handle_result(Instant::now(), CallResult::Refused, None);
        }
    }
}

async fn run(
    store: Arc<dyn LeaseStore>,
    cfg: LeaseConfig,
    tx: watch::Sender<RoleState>,
    mut commands: mpsc::Receiver<Command>,
    mut eligible: watch::Receiver<bool>,
) {
    let mut m = RoleMachine::new(cfg.clone(), *eligible.borrow());
    let mut gate_open = true;
    loop {
        m.set_eligible(*eligible.borrow_and_update());
        while let Some(c) = m.poll_call(Instant::now()) {
            call(store.as_ref(), &mut m, c, &tx).await;
            publish_changes(&mut m, &tx);
        }
        publish_changes(&mut m, &tx);
        let wake = m
            .next_wake()
            .unwrap_or_else(|| Instant::now() + cfg.renew_interval);
        tokio::select! {
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                m.tick(Instant::now());
                publish_changes(&mut m, &tx);
            }
            changed = eligible.changed(), if gate_open => {
                // A closed gate keeps its last word.
                gate_open = changed.is_ok();
            }
            cmd = commands.recv() => match cmd {
                Some(Command::StepDown { pause, done }) => {
                    m.step_down(Instant::now(), pause);
                    publish_changes(&mut m, &tx);
                    if let Some(c) = m.poll_call(Instant::now()) {
                        call(store.as_ref(), &mut m, c, &tx).await;
                    }
                    let _ = done.send(());
                }
                Some(Command::LookNow) => m.look_now(Instant::now()),
                None => return,
            },
        }
    }
}
