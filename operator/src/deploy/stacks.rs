//! Creating or updating one CloudFormation stack through a change set: create the change
//! set, wait until it is ready, report its changes, then (unless it is a dry run) execute
//! it and wait for the stack, reporting progress and, on failure, the failed resources'
//! reasons.

use super::plan::StackPlan;
use super::DeployError;
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter};
use aws_sdk_cloudformation::Client;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One change a change set would make.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    /// `Add`, `Modify`, `Remove`, …
    pub action: String,
    /// The resource's logical id.
    pub logical_id: String,
    /// Its type.
    pub resource_type: String,
    /// `True`, `False` or `Conditional` for a modification.
    pub replacement: Option<String>,
}

/// What happened to a stack.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum Outcome {
    /// The stack was created.
    Created,
    /// The stack was updated.
    Updated,
    /// The change set had no changes (it was deleted).
    Unchanged,
    /// Dry run: the change set was shown and deleted.
    Planned,
}

/// A stack's report.
#[derive(Debug, Clone, Serialize)]
pub struct StackReport {
    /// The stack.
    pub stack: String,
    /// Its region.
    pub region: String,
    /// The change set's name.
    pub change_set: String,
    /// Its changes.
    pub changes: Vec<Change>,
    /// What happened.
    pub outcome: Outcome,
    /// The stack's outputs after the change.
    pub outputs: BTreeMap<String, String>,
}

fn cfn_err<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    action: &'static str,
    stack: &str,
) -> impl FnOnce(aws_sdk_cloudformation::error::SdkError<E, R>) -> DeployError {
    let stack = stack.to_string();
    move |e| DeployError::Cloudformation {
        action,
        stack,
        detail: match (e.code(), e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            _ => DisplayErrorContext(&e).to_string(),
        },
    }
}

/// The stack's status, or None when it does not exist.
async fn status(client: &Client, stack: &str) -> Result<Option<String>, DeployError> {
    match client.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out
            .stacks()
            .first()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_string())),
        Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => Ok(None),
        Err(e) => Err(cfn_err("describing", stack)(e)),
    }
}

async fn outputs(client: &Client, stack: &str) -> Result<BTreeMap<String, String>, DeployError> {
    let out = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(cfn_err("reading the outputs of", stack))?;
    Ok(out
        .stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

/// Creates or updates `plan` from `template` with `parameters`; with `dry_run`, only shows
/// the change set. `progress` is told each status seen while waiting.
pub async fn deploy(
    client: &Client,
    region: &str,
    plan: &StackPlan,
    template: &str,
    parameters: &BTreeMap<String, String>,
    dry_run: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<StackReport, DeployError> {
    let stack = plan.name.as_str();
    let before = status(client, stack).await?;
    if let Some(s) = before.as_deref() {
        if s == "ROLLBACK_COMPLETE" || s.ends_with("_IN_PROGRESS") && s != "REVIEW_IN_PROGRESS" {
            return Err(DeployError::StackBusy {
                stack: stack.into(),
                status: s.into(),
            });
        }
    }
    let creating = before.is_none() || before.as_deref() == Some("REVIEW_IN_PROGRESS");
    let change_set = format!(
        "fixctl-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let kind = if creating {
        ChangeSetType::Create
    } else {
        ChangeSetType::Update
    };
    if !create_change_set(client, stack, &change_set, kind, template, parameters).await? {
        return Ok(StackReport {
            stack: stack.into(),
            region: region.into(),
            change_set,
            changes: Vec::new(),
            outcome: if dry_run {
                Outcome::Planned
            } else {
                Outcome::Unchanged
            },
            outputs: outputs(client, stack).await.unwrap_or_default(),
        });
    }
    let described = wait_change_set(client, stack, &change_set, progress).await?;
    let changes = changes_of(&described);
    let mut report = StackReport {
        stack: stack.into(),
        region: region.into(),
        change_set: change_set.clone(),
        changes,
        outcome: Outcome::Planned,
        outputs: BTreeMap::new(),
    };
    let failed = described.status().is_some_and(|s| s.as_str() == "FAILED");
    let reason = described.status_reason().unwrap_or_default().to_string();
    if failed && !(reason.contains("didn't contain changes") || reason.contains("No updates")) {
        return Err(DeployError::Cloudformation {
            action: "preparing the change set of",
            stack: stack.into(),
            detail: reason,
        });
    }
    // A change set the service accepted is executed even when it lists no resource
    // change: it still updates the stack's parameters (which the rolling upgrade reads
    // back), and a change set with nothing at all to do ends FAILED above.
    if failed || dry_run {
        let _ = client
            .delete_change_set()
            .stack_name(stack)
            .change_set_name(&change_set)
            .send()
            .await;
        if creating && before.is_none() {
            // A CREATE change set leaves an empty stack in REVIEW_IN_PROGRESS: remove it.
            let _ = client.delete_stack().stack_name(stack).send().await;
        }
        if !dry_run {
            report.outcome = Outcome::Unchanged;
            report.outputs = outputs(client, stack).await.unwrap_or_default();
        }
        return Ok(report);
    }
    client
        .execute_change_set()
        .stack_name(stack)
        .change_set_name(&change_set)
        .send()
        .await
        .map_err(cfn_err("executing the change set of", stack))?;
    wait_done(client, stack, progress).await?;
    report.outcome = if creating {
        Outcome::Created
    } else {
        Outcome::Updated
    };
    report.outputs = outputs(client, stack).await?;
    Ok(report)
}

/// Creates the change set; false when the service refuses it for having no changes.
async fn create_change_set(
    client: &Client,
    stack: &str,
    change_set: &str,
    kind: ChangeSetType,
    template: &str,
    parameters: &BTreeMap<String, String>,
) -> Result<bool, DeployError> {
    let parameters = parameters
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    let created = client
        .create_change_set()
        .stack_name(stack)
        .change_set_name(change_set)
        .change_set_type(kind)
        .template_body(template)
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .send()
        .await;
    match created {
        Ok(_) => Ok(true),
        // CloudFormation answers a no-op update with a FAILED change set; some
        // implementations (moto) refuse to create it instead.
        Err(e)
            if e.message()
                .is_some_and(|m| m.contains("No updates are to be performed")) =>
        {
            Ok(false)
        }
        Err(e) => Err(cfn_err("creating a change set for", stack)(e)),
    }
}

type Described = aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;

/// Waits until the change set is ready (or failed) and returns its description.
async fn wait_change_set(
    client: &Client,
    stack: &str,
    change_set: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Described, DeployError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let d = client
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
            .map_err(cfn_err("describing the change set of", stack))?;
        let s = d
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if s == "CREATE_COMPLETE" || s == "FAILED" {
            return Ok(d);
        }
        if Instant::now() > deadline {
            return Err(DeployError::Timeout(format!(
                "change set {change_set} of {stack}"
            )));
        }
        progress(&format!("{stack}: change set {s}"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The resource changes a change set lists.
fn changes_of(described: &Described) -> Vec<Change> {
    described
        .changes()
        .iter()
        .filter_map(|c| c.resource_change())
        .map(|r| Change {
            action: r
                .action()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default(),
            logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
            resource_type: r.resource_type().unwrap_or_default().to_string(),
            replacement: r.replacement().map(|x| x.as_str().to_string()),
        })
        .collect()
}

async fn wait_done(
    client: &Client,
    stack: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), DeployError> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let s = status(client, stack).await?.unwrap_or_default();
        progress(&format!("{stack}: {s}"));
        if s.ends_with("_COMPLETE") && !s.contains("ROLLBACK") {
            return Ok(());
        }
        if s.contains("ROLLBACK") || s.ends_with("_FAILED") {
            if s.ends_with("_IN_PROGRESS") {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            let events = client
                .describe_stack_events()
                .stack_name(stack)
                .send()
                .await
                .map_err(cfn_err("reading the events of", stack))?;
            let reasons: Vec<String> = events
                .stack_events()
                .iter()
                .filter(|e| {
                    e.resource_status()
                        .is_some_and(|s| s.as_str().ends_with("_FAILED"))
                })
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.logical_resource_id().unwrap_or_default(),
                        e.resource_status_reason().unwrap_or_default()
                    )
                })
                .collect();
            return Err(DeployError::StackFailed {
                stack: stack.into(),
                status: s,
                reasons: reasons.join("; "),
            });
        }
        if Instant::now() > deadline {
            return Err(DeployError::Timeout(format!("stack {stack}")));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
