//! One write to the counterparty, bounded: it ends when the counterparty has taken the
//! bytes, after [`write_stall_limit`] without it reading, or the moment this instance is
//! deposed (lease lost, or lost and regained under another epoch), so a session task never
//! blocks past its lease nor sends with a stale term.

use fix_lease::{Leadership, RoleState};
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
        Leadership::Leader { epoch } => Some(epoch),
        Leadership::Standby => None,
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
            let same = matches!(state.role, Leadership::Leader { epoch: e } if Some(e) == epoch);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_role_state as state;
    use std::time::{Duration, Instant};

    /// A write blocked on a counterparty ends when the lease is lost and regained under
    /// another epoch (the watch may show only the new term), or when the lease's local
    /// deadline passes with no news at all; a renewal of the same term does not end it.
    #[tokio::test]
    async fn a_blocked_write_ends_at_a_lose_and_regain_or_at_the_deadline() {
        let long = Duration::from_secs(60);
        let (tx, mut rx) = watch::channel(state(Leadership::Leader { epoch: 5 }, long));
        let epoch = leading_epoch(Some(&rx));
        assert_eq!(epoch, Some(5));
        let regained = {
            let tx = tx.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send_replace(state(Leadership::Leader { epoch: 5 }, long)); // a renewal
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send_replace(state(Leadership::Leader { epoch: 6 }, long));
                std::future::pending::<()>().await;
            }
        };
        let started = Instant::now();
        tokio::select! {
            () = deposed(Some(&mut rx), epoch) => {}
            () = regained => unreachable!("the regain task never ends"),
            () = tokio::time::sleep(Duration::from_secs(5)) => panic!("a regain under epoch 6 went unnoticed"),
        }
        assert!(
            started.elapsed() >= Duration::from_millis(90),
            "not at the renewal"
        );

        let (_tx, mut rx) = watch::channel(state(
            Leadership::Leader { epoch: 7 },
            Duration::from_millis(100),
        ));
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), deposed(Some(&mut rx), Some(7)))
            .await
            .expect("the local deadline ends the write");
        assert!(started.elapsed() >= Duration::from_millis(90));
    }
}
