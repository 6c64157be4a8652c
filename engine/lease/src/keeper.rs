//! The role loop: contend for the lease, renew it, and demote at the local deadline.
//!
//! A [`Keeper`] task publishes the node's [`RoleState`] on a watch channel. It becomes
//! leader when an acquire succeeds and renews every `renew_interval`. It is standby again
//! the moment its local deadline passes without a successful renew — even while a renew
//! call is still hanging on a dead database — or when a renew is refused. The runtime must
//! stop sending and close its FIX sockets as soon as it sees `Standby`: the deadline comes
//! before any contender has watched the lease unchanged for a TTL, so that happens before
//! anyone else can be granted the lease. An acquire that took so long that little of its
//! trust window is left is renewed before it is published ([`confirm`]); if that fails,
//! the lease is given back and this node stays standby.

use crate::holder::{Holder, LeaseConfig};
use crate::store::LeaseStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What this node may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
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
    pub role: Role,
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
            role: Role::Standby,
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
    pub fn role(&self) -> Role {
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

fn publish(
    tx: &watch::Sender<RoleState>,
    role: Role,
    valid_until: Option<Instant>,
    reason: String,
) {
    publish_timed(tx, role, valid_until, reason, None, None);
}

fn publish_timed(
    tx: &watch::Sender<RoleState>,
    role: Role,
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
        if matches!(role, Role::Leader { .. }) && !matches!(s.role, Role::Leader { .. }) {
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

/// When to renew `h` next: a renew interval from now, or at once when less than that is
/// left of its trust window (an acquire or renew that took long, retried through a
/// store outage, say, leaves little of it; waiting the full interval would let the
/// deadline pass with the lease still good in the store).
fn next_renew(h: &Holder, renew_interval: Duration, now: Instant) -> Instant {
    if h.valid_until.saturating_duration_since(now) <= renew_interval {
        now
    } else {
        (now + renew_interval).min(h.valid_until)
    }
}

/// How many renews [`confirm`] tries before giving up on a freshly acquired lease.
const CONFIRM_ATTEMPTS: usize = 3;

/// Makes sure a freshly acquired lease has time left before anyone is told it leads. An
/// acquire that took longer than a renew interval short of the trust window (retried
/// through a store outage, say) has spent it: publishing it would make a leader that is
/// demoted a moment later, or one whose window has already passed. Such a lease is
/// renewed first (a conditional renew is safe whatever the local clock says: it fails if
/// anyone took the lease meanwhile). `Err` carries why the lease is not used; the store
/// lets it expire.
async fn confirm(
    store: &dyn LeaseStore,
    cfg: &LeaseConfig,
    mut h: Holder,
) -> Result<Holder, String> {
    let mut why = None;
    for _ in 0..CONFIRM_ATTEMPTS {
        if h.valid_until.saturating_duration_since(Instant::now()) > cfg.renew_interval {
            return Ok(h);
        }
        let renewed = tokio::time::timeout(cfg.trust_window(), h.renew(store, cfg)).await;
        h = match renewed {
            Ok(Ok(Some(next))) => next,
            Ok(Ok(None)) => {
                return Err("the lease was taken over while confirming a slow acquire".into())
            }
            Ok(Err(e)) => {
                why = Some(format!(
                    "acquired the lease too slowly to trust, and confirming it failed: {e}"
                ));
                break;
            }
            Err(_) => {
                why = Some("acquired the lease too slowly to trust, and confirming it took longer than the trust window".into());
                break;
            }
        };
    }
    if why.is_none() && h.is_valid(Instant::now()) {
        return Ok(h);
    }
    // Not used: give it back (a conditional release, harmless if it no longer is ours)
    // so that another instance need not wait a TTL for it.
    let released = tokio::time::timeout(cfg.trust_window(), store.release(&h.grant)).await;
    if !matches!(released, Ok(Ok(_))) {
        tracing::warn!("could not give back a lease acquired too slowly to use; it will expire");
    }
    Err(why.unwrap_or_else(|| {
        format!(
            "the lease store answers slower than the trust window ({:?}) allows",
            cfg.trust_window()
        )
    }))
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

async fn run(
    store: Arc<dyn LeaseStore>,
    cfg: LeaseConfig,
    tx: watch::Sender<RoleState>,
    mut commands: mpsc::Receiver<Command>,
    eligible: watch::Receiver<bool>,
) {
    let mut held: Option<Holder> = None;
    let mut paused_until = Instant::now();
    loop {
        let mut retry_in = cfg.renew_interval;
        let now = Instant::now();
        let started = Instant::now();
        // Contend, or renew what we hold; never past the local deadline.
        match held.take() {
            None if now >= paused_until && *eligible.borrow() => {
                if !in_active_region(store.as_ref(), &cfg, &tx).await {
                    // Another region is active: stay standby, look again next interval.
                } else {
                    match Holder::acquire(store.as_ref(), &cfg).await {
                        Ok(Some(h)) => match confirm(store.as_ref(), &cfg, h).await {
                            Ok(h) => {
                                let epoch = h.grant.epoch;
                                publish_timed(
                                    &tx,
                                    Role::Leader { epoch },
                                    Some(h.valid_until),
                                    format!("acquired the lease with epoch {epoch}"),
                                    Some(started.elapsed()),
                                    Some(own(&cfg, &h)),
                                );
                                held = Some(h);
                            }
                            Err(reason) => publish(&tx, Role::Standby, None, reason),
                        },
                        Ok(None) => {
                            // Someone else holds it: see who, and look again within an
                            // interval (each look carries on watching the holder's beat).
                            if let Ok(Some(state)) = store.read(&cfg.group).await {
                                let expires_in_ms = state.expires_at_ms - state.now_ms;
                                retry_in = Duration::from_millis(expires_in_ms.max(0) as u64 + 5)
                                    .min(cfg.renew_interval);
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
                        }
                        Err(e) => tracing::warn!(error = %e, "lease acquire failed; retrying"),
                    }
                }
            }
            None => {}
            Some(h) => {
                let deadline = tokio::time::Instant::from_std(h.valid_until);
                tokio::select! {
                    renewed = h.renew(store.as_ref(), &cfg) => match renewed {
                        Ok(Some(next)) => {
                            let epoch = next.grant.epoch;
                            let holder = Some(own(&cfg, &next));
                            publish_timed(&tx, Role::Leader { epoch }, Some(next.valid_until), "renewed".into(), Some(started.elapsed()), holder);
                            held = Some(next);
                        }
                        Ok(None) => publish(&tx, Role::Standby, None, "the lease was taken over (renew refused)".into()),
                        Err(e) => {
                            tracing::warn!(error = %e, "lease renew failed; retrying until the local deadline");
                            if Instant::now() < h.valid_until {
                                held = Some(h);
                            } else {
                                publish(&tx, Role::Standby, None, format!("could not renew before the local deadline: {e}"));
                            }
                        }
                    },
                    () = tokio::time::sleep_until(deadline) => {
                        publish(&tx, Role::Standby, None, "local deadline passed while renewing (lease store unresponsive)".into());
                    }
                }
            }
        }
        // Wait for the next renew/attempt, the deadline, or a command.
        let wake = match &held {
            Some(h) => next_renew(h, cfg.renew_interval, Instant::now()),
            None => Instant::now() + retry_in,
        };
        tokio::select! {
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                if let Some(h) = &held {
                    if Instant::now() >= h.valid_until {
                        publish(&tx, Role::Standby, None, "local deadline passed before the renew".into());
                        held = None;
                    }
                }
            }
            cmd = commands.recv() => match cmd {
                Some(Command::StepDown { pause, done }) => {
                    if let Some(h) = held.take() {
                        publish(&tx, Role::Standby, None, "stepping down on request".into());
                        if let Err(e) = store.release(&h.grant).await {
                            tracing::warn!(error = %e, "lease release failed; it will expire instead");
                        }
                    }
                    paused_until = Instant::now() + pause;
                    let _ = done.send(());
                }
                None => return,
            },
        }
    }
}
