//! One write to the counterparty, bounded: it ends when the counterparty has taken the
//! bytes, after [`write_stall_limit`] without it reading, or the moment this instance is
//! deposed (lease lost, or lost and regained under another epoch), so a session task never
//! blocks past its lease nor sends with a stale term.

use fix_lease::{Role as LeaseRole, RoleState};
use tokio::sync::watch;

/// How one write to the counterparty ended.
pub(super) enum Written {
    Done,
    Failed,
    /// The counterparty read nothing for the whole limit (its TCP window stayed shut).
    Stalled,
    /// The lease was lost (or lost and regained under another epoch) while writing.
    Deposed,
}

/// How long one write may wait on a counterparty that does not read: two heartbeat
/// intervals (it would fail a TestRequest by then), at least two seconds.
pub(super) fn write_stall_limit(heartbeat: std::time::Duration) -> std::time::Duration {
    (heartbeat * 2).max(std::time::Duration::from_secs(2))
}

/// The epoch this instance leads with now (`None` without a lease or while standby).
pub(super) fn leading_epoch(role: Option<&watch::Receiver<RoleState>>) -> Option<u64> {
    match role?.borrow().role {
        LeaseRole::Leader { epoch } => Some(epoch),
        LeaseRole::Standby => None,
    }
}

/// Resolves once this instance no longer leads with `epoch`: the role changed, or the
/// lease's local deadline passed. Never without a lease.
pub(super) async fn deposed(role: Option<&mut watch::Receiver<RoleState>>, epoch: Option<u64>) {
    let Some(role) = role else {
        return std::future::pending().await;
    };
    loop {
        let deadline = {
            let state = role.borrow_and_update();
            let same = matches!(state.role, LeaseRole::Leader { epoch: e } if Some(e) == epoch);
            if !same
                || state
                    .valid_until
                    .is_some_and(|t| std::time::Instant::now() >= t)
            {
                return;
            }
            state.valid_until
        };
        let until_deadline = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = role.changed() => {
                if changed.is_err() {
                    return std::future::pending().await;
                }
            }
            () = until_deadline => return,
        }
    }
}
