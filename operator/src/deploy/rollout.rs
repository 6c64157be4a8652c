//! The zero-downtime upgrade of an engine group on ECS: when a deployment changes the
//! engines stack's image, the stack is updated in phases instead of at once (which would
//! restart every engine together). Each engine's task definition takes its image from a
//! parameter of its own (`ImageEngineA`, …) when that is set, else from the common
//! `Image`, so CloudFormation stays the one source of truth (no drift):
//!
//! 1. every standby: the stack with the old `Image` and the standby's own parameter set
//!    to the new image (CloudFormation replaces that service's task and waits for it to
//!    be stable); then wait until the new task has caught up with the leader;
//! 2. the leader steps down (`POST /step-down`) and an upgraded standby takes over the
//!    sessions with the same sequence numbers; wait until it leads and is ready;
//! 3. the stack with the new `Image` and every per-engine parameter cleared: only the old
//!    leader's service changes; wait until it has caught up as a standby.
//!
//! It refuses to start unless exactly one engine leads and every other one is a
//! caught-up standby, and it resumes an interrupted upgrade (a per-engine parameter
//! already at the new image means that engine is done). Every wait polls a condition.

use super::plan::StackPlan;
use super::stacks::{self, StackReport};
use super::DeployError;
use crate::supervisor::{admin_request, AdminAddr};
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::Client;
use fix_engine::admin::api::{Readiness, RoleName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn default_image_parameter() -> String {
    "Image".into()
}

fn default_token_env() -> String {
    "FIX_ADMIN_TOKEN".into()
}

fn default_step_down_pause_ms() -> u64 {
    30_000
}

fn default_ready_timeout_s() -> u64 {
    900
}

/// The deployment file's `rollout` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutPlan {
    /// The engines stack (one of `stacks`).
    pub stack: String,
    /// Its parameter holding the engines' image (default `Image`).
    #[serde(default = "default_image_parameter")]
    pub image_parameter: String,
    /// The engines: name, admin API address, and the parameter that pins its image.
    pub engines: Vec<RolloutEngine>,
    /// Environment variable with the engines' admin token (default `FIX_ADMIN_TOKEN`).
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// How long the stepped-down leader stays out of the lease contest (default 30 s).
    #[serde(default = "default_step_down_pause_ms")]
    pub step_down_pause_ms: u64,
    /// How long one engine may take to be ready again (default 900 s).
    #[serde(default = "default_ready_timeout_s")]
    pub ready_timeout_s: u64,
}

/// One engine of the rollout.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutEngine {
    /// Its name (as in `/readyz` and the logs).
    pub name: String,
    /// Its admin API, `HOST:PORT`.
    pub admin: String,
    /// The stack parameter that, when set, is this engine's image.
    pub image_parameter: String,
}

/// One phase of an upgrade, as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// `upgrade-standby`, `step-down` or `upgrade-old-leader`.
    pub kind: String,
    /// The engine it concerned.
    pub engine: String,
    /// The stack's image parameters read back after the phase.
    pub parameters: BTreeMap<String, String>,
    /// The leader when the phase ended.
    pub leader: String,
    /// How long it took.
    pub ms: u128,
}

/// What an upgrade did.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    /// The image before.
    pub from_image: String,
    /// The image after.
    pub to_image: String,
    /// Who led before.
    pub leader_before: String,
    /// Who leads after.
    pub leader_after: String,
    /// The phases, in order (planned only, in a dry run).
    pub phases: Vec<Phase>,
}

fn rollout_err(engine: &str, detail: impl Into<String>) -> DeployError {
    DeployError::Rollout {
        engine: engine.into(),
        detail: detail.into(),
    }
}

/// The stack's current parameters, or None when it does not exist.
async fn stack_parameters(
    client: &Client,
    stack: &str,
) -> Result<Option<BTreeMap<String, String>>, DeployError> {
    match client.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out.stacks().first().map(|s| {
            s.parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_string(),
                        p.parameter_value().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        })),
        Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => Ok(None),
        Err(e) => Err(DeployError::Cloudformation {
            action: "reading the parameters of",
            stack: stack.into(),
            detail: e.message().unwrap_or("no answer").to_string(),
        }),
    }
}

/// An engine's `/readyz`, or None when it does not answer.
async fn readiness(e: &RolloutEngine) -> Option<Readiness> {
    let admin = AdminAddr::Host(e.admin.clone());
    let (_, body) = admin_request(&admin, "GET", "/readyz", None, Duration::from_secs(2))
        .await
        .ok()?;
    serde_json::from_str(&body).ok()
}

fn leads(v: &Readiness) -> bool {
    v.leads()
}

fn caught_up(v: &Readiness) -> bool {
    let follower = v.replication.as_ref().and_then(|r| r.follower.as_ref());
    v.role != RoleName::Leader
        && follower.is_some_and(|f| f.caught_up && f.leader.is_some())
        && v.in_sync != Some(false)
}

/// The leader's name; errors unless exactly one engine leads and the others are
/// caught-up standbys.
async fn check_group(r: &RolloutPlan) -> Result<String, DeployError> {
    let mut leader = None;
    for e in &r.engines {
        let Some(v) = readiness(e).await else {
            return Err(rollout_err(
                &e.name,
                format!(
                    "does not answer on {}: an upgrade needs every engine up (see `fixctl status`)",
                    e.admin
                ),
            ));
        };
        if leads(&v) {
            if let Some(other) = leader.replace(e.name.clone()) {
                return Err(rollout_err(
                    &e.name,
                    format!("leads, and so does {other}: settle the group before upgrading"),
                ));
            }
        } else if !caught_up(&v) {
            return Err(rollout_err(&e.name, "is not a caught-up standby: upgrading now would leave no standby to take over; wait until it has caught up"));
        }
    }
    leader.ok_or_else(|| rollout_err("-", "no engine leads: nothing to upgrade without an outage"))
}

/// Polls until `ok` holds for engine `e` (or the limit passes).
async fn wait_for(
    e: &RolloutEngine,
    what: &str,
    limit: Duration,
    progress: &(dyn Fn(&str) + Sync),
    ok: impl Fn(&Readiness) -> bool,
) -> Result<(), DeployError> {
    progress(&format!("waiting until {} {what}", e.name));
    let deadline = Instant::now() + limit;
    loop {
        if readiness(e).await.is_some_and(|v| ok(&v)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DeployError::Timeout(format!("{} {what}", e.name)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stack's parameters for a phase: `image` as the common image, the engines in
/// `upgraded` pinned to `pinned`, the others cleared.
fn phase_parameters(
    r: &RolloutPlan,
    desired: &BTreeMap<String, String>,
    image: &str,
    upgraded: &[&str],
    pinned: &str,
) -> BTreeMap<String, String> {
    let mut p = desired.clone();
    p.insert(r.image_parameter.clone(), image.into());
    for e in &r.engines {
        let v = if upgraded.contains(&e.name.as_str()) {
            pinned
        } else {
            ""
        };
        p.insert(e.image_parameter.clone(), v.into());
    }
    p
}

fn image_parameters(r: &RolloutPlan, all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    std::iter::once(&r.image_parameter)
        .chain(r.engines.iter().map(|e| &e.image_parameter))
        .filter_map(|k| all.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// The engines stack being rolled: where it is and what the deployment asks of it.
pub struct EnginesStack<'a> {
    /// CloudFormation in the stack's region.
    pub client: &'a Client,
    /// The stack's region.
    pub region: &'a str,
    /// The stack.
    pub stack: &'a StackPlan,
    /// Its template.
    pub template: &'a str,
    /// The parameters the deployment asks for.
    pub desired: &'a BTreeMap<String, String>,
    /// Told what is being waited for.
    pub progress: &'a (dyn Fn(&str) + Sync),
}

impl EnginesStack<'_> {
    /// One change set with `p` (planned only in a dry run).
    async fn apply(
        &self,
        p: &BTreeMap<String, String>,
        dry_run: bool,
    ) -> Result<StackReport, DeployError> {
        stacks::deploy(
            self.client,
            self.region,
            self.stack,
            self.template,
            p,
            dry_run,
            self.progress,
        )
        .await
    }

    /// The image parameters as the stack has them now.
    async fn images_now(&self, r: &RolloutPlan) -> Result<BTreeMap<String, String>, DeployError> {
        let now = stack_parameters(self.client, &self.stack.name).await?;
        Ok(image_parameters(r, &now.unwrap_or_default()))
    }
}

fn phase(
    kind: &str,
    engine: &str,
    parameters: BTreeMap<String, String>,
    leader: &str,
    t: Instant,
) -> Phase {
    Phase {
        kind: kind.into(),
        engine: engine.into(),
        parameters,
        leader: leader.into(),
        ms: t.elapsed().as_millis(),
    }
}

/// The stack update as a rolling upgrade when it changes the image of a running group;
/// `None` when it does not (a first creation, or the same image: update it as usual).
pub async fn roll(
    target: &EnginesStack<'_>,
    r: &RolloutPlan,
    dry_run: bool,
) -> Result<Option<(Vec<StackReport>, RolloutReport)>, DeployError> {
    let (stack, desired) = (target.stack, target.desired);
    let Some(current) = stack_parameters(target.client, &stack.name).await? else {
        return Ok(None);
    };
    let new = desired.get(&r.image_parameter).cloned().ok_or_else(|| {
        rollout_err(
            "-",
            format!(
                "stack {} sets no {} parameter: the rollout needs the image to deploy",
                stack.name, r.image_parameter
            ),
        )
    })?;
    let old = current.get(&r.image_parameter).cloned().unwrap_or_default();
    let done: Vec<&str> = r
        .engines
        .iter()
        .filter(|e| current.get(&e.image_parameter).is_some_and(|v| *v == new))
        .map(|e| e.name.as_str())
        .collect();
    if old == new && done.is_empty() {
        return Ok(None);
    }
    let leader = check_group(r).await?;
    let token = std::env::var(&r.token_env).ok();
    if token.is_none() && !dry_run {
        return Err(rollout_err(
            &leader,
            format!(
                "the leader's step-down needs the admin token: set {}",
                r.token_env
            ),
        ));
    }
    let mut report = RolloutReport {
        from_image: old.clone(),
        to_image: new.clone(),
        leader_before: leader.clone(),
        leader_after: leader.clone(),
        phases: Vec::new(),
    };
    let standbys: Vec<&RolloutEngine> = r.engines.iter().filter(|e| e.name != leader).collect();
    let mut stack_reports = upgrade_standbys(
        target,
        r,
        &standbys,
        (&old, &new),
        &done,
        dry_run,
        &mut report,
    )
    .await?;
    let final_parameters = phase_parameters(r, desired, &new, &[], "");
    if dry_run {
        let after = standbys.first().map_or("a standby", |s| s.name.as_str());
        let now = Instant::now();
        report
            .phases
            .push(phase("step-down", &leader, BTreeMap::new(), after, now));
        let images = image_parameters(r, &final_parameters);
        report
            .phases
            .push(phase("upgrade-old-leader", &leader, images, after, now));
        return Ok(Some((stack_reports, report)));
    }
    if done.contains(&leader.as_str()) {
        // Resumed after the step-down: the leader already runs the new image.
        stack_reports.push(target.apply(&final_parameters, false).await?);
        return Ok(Some((stack_reports, report)));
    }
    // 2. The leader steps down; an upgraded standby takes over.
    let t = Instant::now();
    let old_leader = r
        .engines
        .iter()
        .find(|e| e.name == leader)
        .ok_or_else(|| rollout_err(&leader, "not in rollout.engines"))?;
    (target.progress)(&format!("{leader} steps down"));
    let limit = Duration::from_secs(r.ready_timeout_s);
    let new_leader = step_down(r, old_leader, &standbys, token.as_deref(), limit).await?;
    report
        .phases
        .push(phase("step-down", &leader, BTreeMap::new(), &new_leader, t));
    // 3. The old leader, now a standby.
    let t = Instant::now();
    (target.progress)(&format!("upgrading {leader}, the old leader"));
    stack_reports.push(target.apply(&final_parameters, false).await?);
    let what = "has caught up with the new leader";
    wait_for(old_leader, what, limit, target.progress, caught_up).await?;
    let images = target.images_now(r).await?;
    report
        .phases
        .push(phase("upgrade-old-leader", &leader, images, &new_leader, t));
    report.leader_after = new_leader;
    Ok(Some((stack_reports, report)))
}

/// Phase 1: each standby not yet `done`, one at a time, pinned to the new image while
/// the others keep the old one; in a dry run only the first (its change set is all that
/// can be shown before anything has changed).
async fn upgrade_standbys(
    target: &EnginesStack<'_>,
    r: &RolloutPlan,
    standbys: &[&RolloutEngine],
    (old, new): (&str, &str),
    done: &[&str],
    dry_run: bool,
    report: &mut RolloutReport,
) -> Result<Vec<StackReport>, DeployError> {
    let limit = Duration::from_secs(r.ready_timeout_s);
    let mut upgraded: Vec<&str> = done.to_vec();
    let mut stack_reports = Vec::new();
    for s in standbys {
        if upgraded.contains(&s.name.as_str()) {
            continue;
        }
        let t = Instant::now();
        upgraded.push(&s.name);
        let p = phase_parameters(r, target.desired, old, &upgraded, new);
        (target.progress)(&format!("upgrading standby {} first", s.name));
        stack_reports.push(target.apply(&p, dry_run).await?);
        let images = if dry_run {
            image_parameters(r, &p)
        } else {
            wait_for(
                s,
                "has caught up with the leader",
                limit,
                target.progress,
                caught_up,
            )
            .await?;
            target.images_now(r).await?
        };
        let leader = report.leader_before.clone();
        report
            .phases
            .push(phase("upgrade-standby", &s.name, images, &leader, t));
        if dry_run {
            break;
        }
    }
    Ok(stack_reports)
}

/// Steps `old_leader` down and waits until one of `standbys` leads; returns its name.
async fn step_down(
    r: &RolloutPlan,
    old_leader: &RolloutEngine,
    standbys: &[&RolloutEngine],
    token: Option<&str>,
    limit: Duration,
) -> Result<String, DeployError> {
    let leader = &old_leader.name;
    let (code, body) = admin_request(
        &AdminAddr::Host(old_leader.admin.clone()),
        "POST",
        &format!("/step-down?pause_ms={}", r.step_down_pause_ms),
        token,
        Duration::from_secs(5),
    )
    .await
    .map_err(|e| rollout_err(leader, format!("step-down: {e}")))?;
    if code != 202 {
        return Err(rollout_err(
            leader,
            format!("step-down: HTTP {code}: {}", body.trim()),
        ));
    }
    let deadline = Instant::now() + limit;
    loop {
        for s in standbys {
            if readiness(s).await.is_some_and(|v| leads(&v)) {
                return Ok(s.name.clone());
            }
        }
        if Instant::now() > deadline {
            return Err(DeployError::Timeout(format!(
                "an upgraded standby taking over from {leader}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
