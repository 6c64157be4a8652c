//! The active region of a multi-region group, kept in the lease store itself.
//!
//! When a group's instances run in several regions (all in one lease group, in one store
//! whose writes are exclusive across regions: a strongly consistent DynamoDB global
//! table, one home-region table, or one Aurora cluster's writer; see
//! [`crate::consistency`]), only the instances of the **active region** may contend for
//! the lease. The active region is a second lease row,
//! `GROUP@active-region`, held without expiry by the region's name. Moving it is two
//! conditional writes (release the old holder's grant, acquire for the new region), so
//! it needs nothing from the old region: a disaster-recovery runbook moves it while the
//! source region is dark, and engines there that come back see the pin and stay standby.
//!
//! A group without the row (never pinned) lets every instance contend, as a
//! single-region group does. Moving the pin to another region also removes the group's
//! recorded in-sync set (`replicated` durability): with `cross_region = "async"` no
//! instance of the new region is a member, and the move is the operator's decision to
//! let the new region lead.

use crate::store::{Grant, LeaseError, LeaseStore};
use std::time::Duration;

/// How long a pin lasts: it is moved, never left to expire (about 100 years).
const PIN_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The lease row that names the active region of `group`.
pub fn pin_group(group: &str) -> String {
    format!("{group}@active-region")
}

/// The active region of `group`, or `None` when the group was never pinned.
pub async fn active_region(
    store: &dyn LeaseStore,
    group: &str,
) -> Result<Option<String>, LeaseError> {
    let state = store.read(&pin_group(group)).await?;
    Ok(state.filter(|s| s.is_held()).map(|s| s.owner))
}

/// The pin as moved: its region and the pin row's epoch (one more on every move).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPin {
    /// The active region now.
    pub region: String,
    /// The pin row's epoch.
    pub epoch: u64,
    /// The region it was taken from, when it moved.
    pub moved_from: Option<String>,
}

/// Makes `region` the active region of `group`. Idempotent: a group already pinned to
/// `region` is left as it is (`moved_from` is `None`).
pub async fn set_active_region(
    store: &dyn LeaseStore,
    group: &str,
    region: &str,
) -> Result<RegionPin, LeaseError> {
    let pin = pin_group(group);
    let stored = store.read(&pin).await?;
    let current = stored.clone().filter(|s| s.is_held());
    if let Some(state) = &current {
        if state.owner == region {
            return Ok(RegionPin {
                region: region.to_string(),
                epoch: state.epoch,
                moved_from: None,
            });
        }
    }
    // Release whatever stands there, held or not: a pin that only looks expired (an
    // older version released it by the clock) is still watched for its 100-year TTL by
    // the acquire below until released.
    if let Some(state) = stored.filter(|s| s.expires_at_ms != 0 && !s.owner.is_empty()) {
        let grant = Grant {
            group: pin.clone(),
            owner: state.owner.clone(),
            epoch: state.epoch,
            expires_at_ms: state.expires_at_ms,
        };
        store.release(&grant).await?;
    }
    match store.acquire(&pin, region, PIN_TTL).await? {
        Some(grant) => {
            if current.is_some() {
                // The old region's in-sync set names no instance of the new one.
                store.clear_in_sync(group).await?;
            }
            Ok(RegionPin {
                region: region.to_string(),
                epoch: grant.epoch,
                moved_from: current.map(|s| s.owner),
            })
        }
        None => Err(LeaseError::PinContended {
            group: group.to_string(),
            region: region.to_string(),
        }),
    }
}
