//! `fixctl deploy`: the stacks of a deployment file created or updated in order through
//! change sets ([`stacks`]), each change set printed first (`--dry-run` stops there), an
//! earlier stack's outputs passed on as a later template's parameters, and the engines'
//! TOML written to SSM parameters.
//!
//! With a `rollout` section, an update that changes the engines' image is a rolling
//! upgrade ([`rollout`]): the standbys first, then the leader steps down, then the old
//! leader.

pub mod plan;
pub mod rollout;
pub mod stacks;

use plan::{template_parameters, DeployPlan, PlanError};
use serde::Serialize;
use stacks::StackReport;
use std::collections::BTreeMap;

/// A deployment failed; the variant names the failed action.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The deployment file.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A CloudFormation call failed.
    #[error("{action} stack {stack}: {detail}")]
    Cloudformation {
        /// What was being done.
        action: &'static str,
        /// The stack.
        stack: String,
        /// The service's answer.
        detail: String,
    },
    /// The stack cannot take a change now.
    #[error("stack {stack} is {status}: wait for it to finish, or delete it if it is ROLLBACK_COMPLETE (a failed first creation), then deploy again")]
    StackBusy {
        /// The stack.
        stack: String,
        /// Its status.
        status: String,
    },
    /// The change failed and was rolled back.
    #[error("stack {stack} ended {status}: {reasons}")]
    StackFailed {
        /// The stack.
        stack: String,
        /// Its final status.
        status: String,
        /// The failed resources and why.
        reasons: String,
    },
    /// Writing an SSM parameter failed.
    #[error("writing SSM parameter {name}: {detail}")]
    Ssm {
        /// The parameter.
        name: String,
        /// The service's answer.
        detail: String,
    },
    /// The rolling upgrade cannot go on.
    #[error("rolling upgrade, {engine}: {detail}")]
    Rollout {
        /// The engine concerned (`-` for the group).
        engine: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// Something did not finish in time.
    #[error("{0} did not finish in time")]
    Timeout(String),
}

/// The deployment's report.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    /// Every stack, in order.
    pub stacks: Vec<StackReport>,
    /// The SSM parameters written (or, in a dry run, that would be).
    pub parameters: Vec<String>,
    /// The rolling upgrade of the engines, when the image changed.
    pub rollout: Option<rollout::RolloutReport>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

async fn sdk_config(region: &str, endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()));
    match endpoint_url {
        Some(url) => {
            loader
                .endpoint_url(url)
                .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                    "test", "test", None, None, "static",
                ))
                .load()
                .await
        }
        None => loader.load().await,
    }
}

/// Writes (or overwrites) the SSM parameter `name`.
async fn put_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    text: &str,
) -> Result<(), DeployError> {
    use aws_sdk_ssm::error::ProvideErrorMetadata;
    let tier = if text.len() > 4096 {
        aws_sdk_ssm::types::ParameterTier::Advanced
    } else {
        aws_sdk_ssm::types::ParameterTier::Standard
    };
    ssm.put_parameter()
        .name(name)
        .value(text)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .tier(tier)
        .overwrite(true)
        .send()
        .await
        .map_err(|e| DeployError::Ssm {
            name: name.to_string(),
            detail: e.message().map_or_else(
                || aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
                str::to_string,
            ),
        })?;
    Ok(())
}

/// Runs the deployment; `progress` is told what is being waited for.
pub async fn run(
    plan: &DeployPlan,
    dry_run: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<DeployReport, DeployError> {
    let engine_parameters = plan.engine_parameters()?;
    let supervisor_parameter = plan.supervisor_parameter()?;
    let ssm =
        aws_sdk_ssm::Client::new(&sdk_config(&plan.region, plan.endpoint_url.as_deref()).await);
    let mut written = Vec::new();
    // No stack owns the supervisor's parameter, and its tasks read it as they start:
    // written before the stacks.
    if let Some((name, text)) = &supervisor_parameter {
        if !dry_run {
            put_parameter(&ssm, name, text).await?;
            progress(&format!("wrote {name}"));
        }
        written.push(name.clone());
    }
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    let mut reports = Vec::new();
    let mut rolled_out = None;
    for stack in &plan.stacks {
        let region = stack.region.as_deref().unwrap_or(&plan.region);
        let conf = sdk_config(region, plan.endpoint_url.as_deref()).await;
        let client = aws_sdk_cloudformation::Client::new(&conf);
        let template = plan.template(stack)?;
        let mut parameters: BTreeMap<String, String> = template_parameters(&template)
            .into_iter()
            .filter_map(|p| outputs.get(&p).map(|v| (p, v.clone())))
            .collect();
        parameters.extend(stack.parameters.clone());
        let rolled = match plan.rollout.as_ref().filter(|r| r.stack == stack.name) {
            Some(r) => {
                let target = rollout::EnginesStack {
                    client: &client,
                    region,
                    stack,
                    template: &template,
                    desired: &parameters,
                    progress,
                };
                rollout::roll(&target, r, dry_run).await?
            }
            None => None,
        };
        let stack_reports = match rolled {
            Some((stack_reports, report)) => {
                rolled_out = Some(report);
                stack_reports
            }
            None => vec![
                stacks::deploy(
                    &client,
                    region,
                    stack,
                    &template,
                    &parameters,
                    dry_run,
                    progress,
                )
                .await?,
            ],
        };
        for report in stack_reports {
            outputs.extend(report.outputs.clone());
            reports.push(report);
        }
    }
    // The engines' parameters belong to the config stack: written once it exists.
    for (name, text) in &engine_parameters {
        if !dry_run {
            put_parameter(&ssm, name, text).await?;
            progress(&format!("wrote {name}"));
        }
        written.push(name.clone());
    }
    Ok(DeployReport {
        stacks: reports,
        parameters: written,
        rollout: rolled_out,
        dry_run,
    })
}
