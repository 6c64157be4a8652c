//! `fixctl local up` and `fixctl local drill`: the whole system on this machine.

use crate::{look, print_rows, LocalArgs, Output};
use anyhow::Context;
use fix_operator::local::{self, LocalGroup, LocalOptions};
use fix_operator::supervisor::AdminAddr;
use std::time::{Duration, Instant};

pub(crate) fn local_options(
    args: &LocalArgs,
    dir: &std::path::Path,
) -> anyhow::Result<LocalOptions> {
    if !["local", "replicated"].contains(&args.durability.as_str()) {
        anyhow::bail!(
            "--durability {}: use local or replicated (sql needs PostgreSQL or MySQL; run engines with your own configuration for that)",
            args.durability
        );
    }
    Ok(LocalOptions {
        exe: std::env::current_exe().context("finding fixctl to start engines with")?,
        dir: dir.to_path_buf(),
        listen: args.listen,
        durability: args.durability.clone(),
        router: args.router,
    })
}

pub(crate) async fn local_up(args: LocalArgs, output: Output) -> anyhow::Result<()> {
    let tmp = local::work_dir(args.dir.as_deref()).context("creating the work directory")?;
    let opts = local_options(&args, tmp.path())?;
    let mut group = LocalGroup::start(&opts).await?;
    let entry: Vec<String> = group.entry.iter().map(ToString::to_string).collect();
    eprintln!(
        "fixctl local: leader and standby running, routed by {}; counterparties connect to {} (FIX.4.4, TargetCompID EXEC, SenderCompID CLIENT). Journals and logs in {}. An engine that exits is started again. Ctrl-C stops.",
        group.router.name(),
        entry.join(" or "),
        tmp.path().display()
    );
    let mut last: Option<(Instant, u64)> = None;
    // One listener for the whole run: a Ctrl-C that arrives while a snapshot is being
    // taken must not be missed (a new listener per turn would not see it).
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            r = &mut ctrl_c => { r.context("waiting for Ctrl-C")?; break; }
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        for name in group.restart_exited() {
            eprintln!("fixctl local: engine {name} had exited; started it again (as Kubernetes or ECS would)");
        }
        let engines: Vec<(String, AdminAddr)> = group
            .cluster
            .nodes
            .iter()
            .map(|n| (n.spec.name.clone(), n.admin_addr().into()))
            .collect();
        let rows = look(&engines).await;
        let total: u64 = rows
            .iter()
            .filter(|r| r.leads())
            .filter_map(|r| r.readiness.as_ref())
            .flat_map(|r| &r.sessions)
            .map(|s| s.next_sender_seq + s.next_target_seq)
            .sum();
        let now = Instant::now();
        let rate = last.map_or(0.0, |(t, n)| {
            total.saturating_sub(n) as f64 / (now - t).as_secs_f64()
        });
        last = Some((now, total));
        let routed = group.router.current().await.ok().flatten();
        match output {
            // One JSON document per line (NDJSON), one line per snapshot.
            Output::Json => println!(
                "{}",
                serde_json::json!({
                    "engines": rows,
                    "routed_to": routed,
                    "messages_per_s": rate,
                })
            ),
            Output::Human => {
                print_rows(&rows, output);
                println!(
                    "routed to: {}   messages/s: {rate:.0}\n",
                    routed.unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    eprintln!("stopping: logging sessions out");
    group.stop();
    Ok(())
}

pub(crate) async fn local_drill(
    args: LocalArgs,
    cycles: u32,
    rate: u32,
    output: Output,
) -> anyhow::Result<()> {
    let tmp = local::work_dir(args.dir.as_deref()).context("creating the work directory")?;
    let opts = local_options(&args, tmp.path())?;
    let bar = indicatif::ProgressBar::new(u64::from(cycles));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} failover {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("starting a leader, a standby, the lease and the proxy…");
    bar.enable_steady_tick(Duration::from_millis(120));
    let report = local::drill(&opts, cycles, rate, |done, line| {
        bar.set_position(u64::from(done));
        if bar.is_hidden() {
            eprintln!("cycle {done}: {line}");
        } else {
            bar.println(format!("cycle {done}: {line}"));
        }
    })
    .await;
    bar.finish_and_clear();
    let report = report.with_context(|| {
        format!(
            "the drill failed; engine logs are in {}",
            tmp.path().display()
        )
    })?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Human => print_report(&report),
    }
    if report.tally.lost > 0 || report.tally.unflagged_duplicates > 0 || report.tally.gaps > 0 {
        return Err(crate::fixctl_exit::Exit::DataLost(
            "the failover lost, repeated or skipped messages (see the report)".into(),
        )
        .into());
    }
    Ok(())
}

pub(crate) fn print_report(r: &local::DrillReport) {
    println!(
        "failover report, routed by {} (kill -9 of the leader under load; times in ms after the kill)",
        r.router
    );
    println!(
        "{:>5}  {:<20} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "cycle", "takeover", "epoch", "detected", "lease", "routed", "logon"
    );
    for (i, c) in r.cycles.iter().enumerate() {
        println!(
            "{:>5}  {:<20} {:>6} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
            i + 1,
            format!("{} → {}", c.killed, c.new_leader),
            c.epoch,
            c.detected_ms,
            c.lease_granted_ms,
            c.routed_ms,
            c.first_logon_ms
        );
    }
    println!(
        "orders sent {}, answered {}, lost {}; duplicates without PossDupFlag {}, flagged {}; sequence gaps {}",
        r.sent, r.answered, r.tally.lost, r.tally.unflagged_duplicates, r.tally.flagged_duplicates, r.tally.gaps
    );
}
