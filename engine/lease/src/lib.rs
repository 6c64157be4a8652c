//! # fix-lease
//!
//! Who leads an engine group is decided by a lease: one row (or item) per group holding
//! `owner`, `epoch` and `expires_at`, changed only by single conditional statements, so
//! two contenders can never both succeed. No wall clock decides who holds it: a contender
//! takes a lease only after watching its holder's beat stand still for a whole TTL
//! (`README.md`).
//!
//! - [`LeaseStore`]: acquire, renew, release, read. Every successful acquire increments the
//!   group's **epoch**, the fencing token that journal writes and replication frames carry;
//!   epochs only ever grow. The row also holds the **in-sync set** ([`InSync`]) that
//!   `replicated` durability records: while one is recorded, only its members may acquire,
//!   and only the live holder may change it, expecting the record it replaces.
//! - [`sql::SqlLeaseStore`]: SQLite (the embedded default), PostgreSQL and MySQL/MariaDB
//!   (the stand-in for Aurora MySQL), chosen by URL scheme.
//! - [`dynamo::DynamoLeaseStore`]: DynamoDB with conditional `UpdateItem`. Across regions
//!   only a home-region table or a strongly consistent global table is accepted
//!   ([`consistency`]).
//! - [`Holder`]: the holder's view. It treats the lease as lost at a **local monotonic
//!   deadline** — the moment the acquire or renew request was *sent*, plus the TTL, minus a
//!   safety margin — which always falls before the database's own expiry, whatever the
//!   clocks of the two machines say.
//! - [`Keeper`]: the role loop publishing [`Leadership::Leader`] or [`Leadership::Standby`]; it
//!   demotes exactly at the local deadline even while a renew call hangs.
//! - [`region`]: the active region of a multi-region group, a second lease row that only
//!   the active region's instances may contend past.

#[cfg(feature = "dynamodb")]
pub mod consistency;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
mod holder;
pub mod keeper;
pub mod region;
pub mod role;
pub mod sql;
mod store;
mod watch;

pub use holder::{Holder, LeaseConfig, DEFAULT_RENEW_INTERVAL, DEFAULT_SAFETY_MARGIN, DEFAULT_TTL};
pub use keeper::{Keeper, Leadership, LeaseHolder, LookNow, RoleState};
pub use store::{Grant, InSync, LeaseError, LeaseState, LeaseStore};

/// Connects to the lease store named by `url`: `sqlite://PATH`, `postgres://…`,
/// `mysql://…`, or `dynamodb://TABLE[?region=R&endpoint=URL]` (credentials from the
/// environment, the region from `region` or the environment; with `endpoint`, static
/// test credentials for a local emulator, which may create the table).
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn LeaseStore>, LeaseError> {
    #[cfg(not(feature = "dynamodb"))]
    if url.starts_with("dynamodb://") {
        return Err(LeaseError::NotBuilt {
            backend: "dynamodb",
            feature: "dynamodb",
        });
    }
    #[cfg(feature = "dynamodb")]
    if let Some(rest) = url.strip_prefix("dynamodb://") {
        let (table, query) = rest.split_once('?').unwrap_or((rest, ""));
        if table.is_empty() {
            return Err(LeaseError::UnsupportedUrl(url.to_string()));
        }
        let param = |k: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        };
        let store = match param("endpoint") {
            Some(endpoint) => dynamo::DynamoLeaseStore::with_endpoint(
                &endpoint,
                &param("region").unwrap_or_else(|| "us-east-1".into()),
                table,
            ),
            None => dynamo::DynamoLeaseStore::from_env(table, param("region").as_deref()).await,
        };
        store.ensure_table().await?;
        return Ok(std::sync::Arc::new(store));
    }
    Ok(std::sync::Arc::new(sql::SqlLeaseStore::connect(url).await?))
}
