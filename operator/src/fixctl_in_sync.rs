//! `fixctl in-sync show|clear`: the group's recorded in-sync set, the instances that may
//! take a free lease (`replicated` durability). Clearing it is the way out when every
//! instance it names is gone for good (scaled down, its volume lost): nobody else may
//! lead until then.

use crate::Output;
use anyhow::Context;
use fix_lease::{LeaseState, LeaseStore};
use fix_operator::config::FixctlConfig;
use std::path::Path;

/// The lease store and group from `--config`'s `[lease]`.
async fn lease(config: Option<&Path>) -> anyhow::Result<(std::sync::Arc<dyn LeaseStore>, String)> {
    let path = config.context(
        "pass --config FILE with a [lease] section (url, group): the in-sync set is kept in the group's lease store",
    )?;
    let cfg = FixctlConfig::from_file(path)?;
    let l = cfg.lease.with_context(|| {
        format!(
            "{}: no [lease] section; add one with the engines' lease url and group",
            path.display()
        )
    })?;
    let store = fix_lease::connect(&l.url)
        .await
        .with_context(|| format!("{}: [lease] url", path.display()))?;
    Ok((store, l.group))
}

fn describe(group: &str, state: Option<&LeaseState>) -> serde_json::Value {
    let Some(s) = state else {
        return serde_json::json!({ "group": group, "lease": null, "in_sync": null });
    };
    serde_json::json!({
        "group": group,
        "holder": (!s.owner.is_empty()).then_some(&s.owner),
        "epoch": s.epoch,
        "held": s.is_held(),
        "in_sync": s.in_sync.as_ref().map(|r| &r.members),
    })
}

fn print(v: &serde_json::Value, output: Output) {
    match output {
        Output::Json => println!("{v}"),
        Output::Human => {
            let members = v["in_sync"].as_array().map_or(
                "none recorded (any instance may take a free lease)".to_string(),
                |m| {
                    m.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            );
            println!(
                "group {}: lease {} (epoch {}); in-sync set: {members}",
                v["group"].as_str().unwrap_or_default(),
                match (v["holder"].as_str(), v["held"].as_bool()) {
                    (Some(h), Some(true)) => format!("held by {h}"),
                    (Some(h), _) => format!("free, last held by {h}"),
                    _ => "never held".to_string(),
                },
                v["epoch"]
            );
        }
    }
}

/// Prints the lease and its in-sync set.
pub async fn show(config: Option<&Path>, output: Output) -> anyhow::Result<()> {
    let (store, group) = lease(config).await?;
    let state = store.read(&group).await?;
    print(&describe(&group, state.as_ref()), output);
    Ok(())
}

/// Removes the recorded set, only while the lease is free, with `yes`, and only if the
/// lease is still at the epoch read (a store-side condition: a member that takes the lease
/// meanwhile keeps its set).
pub async fn clear(config: Option<&Path>, yes: bool, output: Output) -> anyhow::Result<()> {
    let (store, group) = lease(config).await?;
    let before = store.read(&group).await?;
    let Some(state) = before.as_ref().filter(|s| s.in_sync.is_some()) else {
        print(&describe(&group, before.as_ref()), output);
        eprintln!("nothing to clear");
        return Ok(());
    };
    if state.is_held() {
        anyhow::bail!(
            "the lease of group {group} is held by {} (epoch {}): its leader keeps the in-sync set itself (a standby that is gone drops out of it after standby_wait_ms). Clear the set only while nobody leads",
            state.owner,
            state.epoch
        );
    }
    if !yes {
        anyhow::bail!(
            "clearing the in-sync set [{}] lets any instance of group {group} take the lease, including one that lacks records the last leader acknowledged (those would be lost). Do it only if every instance it names is gone for good, then run again with --yes",
            state.in_sync.as_ref().map(|r| r.members.join(", ")).unwrap_or_default()
        );
    }
    // Only at the epoch just read: if anyone took the lease meanwhile, its set stays.
    let cleared = store.clear_in_sync_at(&group, state.epoch).await?;
    let after = store.read(&group).await?;
    if !cleared {
        anyhow::bail!(
            "nothing cleared: the lease of group {group} moved past epoch {} while this ran ({}); look again with `fixctl in-sync show`",
            state.epoch,
            after.as_ref().map_or("gone".to_string(), |a| format!("now epoch {}, {}", a.epoch, a.owner))
        );
    }
    print(&describe(&group, after.as_ref()), output);
    Ok(())
}
