//! Stopping engines on Amazon ECS: a region's, the fence of a disaster recovery, or one
//! engine's task, the fence of an old leader that still claims to lead.
//!
//! [`EcsEngines::stop`] scales every engine service of a region to zero (so ECS starts no
//! replacement) and stops the tasks still running; [`EcsEngines::stop_tasks`] stops one
//! service's tasks and lets ECS replace them; both through `aws-sdk-ecs`. Every call is
//! bounded by a timeout: in a disaster the region's ECS API may not answer, and the
//! caller decides whether that stops the runbook.

use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecs::types::DesiredStatus;
use aws_sdk_ecs::Client;
use std::time::Duration;
use thiserror::Error;

/// How long one ECS call may take before the region counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An ECS call failed.
#[derive(Debug, Error)]
#[error("ECS in {region} ({cluster}) failed while {action}: {detail}")]
pub struct EcsError {
    /// The region.
    pub region: String,
    /// The cluster.
    pub cluster: String,
    /// What was being done.
    pub action: String,
    /// The SDK's error with its context.
    pub detail: String,
    /// The API did not answer (timeout, no connection, a server error or throttling),
    /// as opposed to an answer refusing the call (permissions, a wrong cluster or
    /// service name), which needs a fix.
    pub unreachable: bool,
}

/// Every failure of [`EcsEngines::stop`], one per service that could not be stopped.
#[derive(Debug, Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct EcsErrors(pub Vec<EcsError>);

impl EcsErrors {
    /// Whether every failure was the API not answering.
    pub fn all_unreachable(&self) -> bool {
        self.0.iter().all(|e| e.unreachable)
    }
}

/// Whether `e` means the API did not answer rather than refused: no connection or a
/// timeout (not missing credentials or a name that does not resolve to anything we could
/// ask), or an answer that is a server error or throttling (HTTP 5xx or 429).
fn unreachable<E>(
    e: &aws_sdk_ecs::error::SdkError<E, aws_sdk_ecs::config::http::HttpResponse>,
) -> bool {
    use aws_sdk_ecs::error::SdkError;
    let overloaded = |status: u16| status >= 500 || status == 429;
    match e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout(),
        SdkError::ResponseError(r) => overloaded(r.raw().status().as_u16()),
        SdkError::ServiceError(s) => overloaded(s.raw().status().as_u16()),
        _ => false,
    }
}

/// Whether `task` is known to have started at or after `moment`, or to be starting
/// still (ECS's `startedAt`, `lastStatus`; an API that reports neither tells nothing).
fn started_after(task: &aws_sdk_ecs::types::Task, moment: std::time::SystemTime) -> bool {
    let starting = matches!(
        task.last_status(),
        Some("PROVISIONING" | "PENDING" | "ACTIVATING")
    );
    let later = task
        .started_at()
        .and_then(|t| std::time::SystemTime::try_from(*t).ok())
        .is_some_and(|t| t >= moment);
    starting || later
}

/// What [`EcsEngines::stop`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Services set to desired count 0.
    pub services: Vec<String>,
    /// Task ARNs stopped.
    pub tasks: Vec<String>,
}

/// The engine services of one region's ECS cluster.
#[derive(Debug, Clone)]
pub struct EcsEngines {
    client: Client,
    region: String,
    cluster: String,
    services: Vec<String>,
}

impl EcsEngines {
    /// The services of `cluster` in `region`, with credentials from the environment, or
    /// at `endpoint_url` (an emulator) with test credentials.
    pub async fn new(
        region: &str,
        cluster: &str,
        services: &[String],
        endpoint_url: Option<&str>,
    ) -> Self {
        let timeouts = aws_sdk_ecs::config::timeout::TimeoutConfig::builder()
            .operation_timeout(CALL_TIMEOUT)
            .build();
        let conf = match endpoint_url {
            Some(url) => aws_sdk_ecs::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.to_string()))
                .endpoint_url(url)
                .credentials_provider(Credentials::new("test", "test", None, None, "static"))
                .timeout_config(timeouts)
                .build(),
            None => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(region.to_string()))
                    .load()
                    .await;
                aws_sdk_ecs::config::Builder::from(&shared)
                    .timeout_config(timeouts)
                    .build()
            }
        };
        Self {
            client: Client::from_conf(conf),
            region: region.to_string(),
            cluster: cluster.to_string(),
            services: services.to_vec(),
        }
    }

    fn error<E>(
        &self,
        action: String,
        e: aws_sdk_ecs::error::SdkError<E, aws_sdk_ecs::config::http::HttpResponse>,
    ) -> EcsError
    where
        E: std::error::Error + 'static,
    {
        EcsError {
            region: self.region.clone(),
            cluster: self.cluster.clone(),
            action,
            unreachable: unreachable(&e),
            detail: aws_sdk_ecs::error::DisplayErrorContext(e).to_string(),
        }
    }

    /// Scales every service to zero (so ECS starts no replacement), then asks each of its
    /// running tasks to stop with `reason` (ECS sends SIGTERM, then SIGKILL after the
    /// container's stop timeout; this does not wait for that). Every service is tried
    /// even when one fails. Idempotent: what is stopped already stays so.
    pub async fn stop(&self, reason: &str) -> Result<Stopped, EcsErrors> {
        let mut done = Stopped::default();
        let mut failed = Vec::new();
        for service in &self.services {
            if let Err(e) = self.stop_service(service, reason, &mut done).await {
                failed.push(e);
            }
        }
        if failed.is_empty() {
            Ok(done)
        } else {
            Err(EcsErrors(failed))
        }
    }

    async fn stop_service(
        &self,
        service: &str,
        reason: &str,
        done: &mut Stopped,
    ) -> Result<(), EcsError> {
        self.client
            .update_service()
            .cluster(&self.cluster)
            .service(service)
            .desired_count(0)
            .send()
            .await
            .map_err(|e| self.error(format!("scaling {service} to 0"), e))?;
        done.services.push(service.to_string());
        done.tasks
            .extend(self.stop_tasks(service, reason, None).await?);
        Ok(())
    }

    /// Asks every running task of `service` to stop with `reason`, leaving the service's
    /// desired count alone (ECS starts a replacement, which joins as a standby): the
    /// fence of one engine that still claims to lead. With `started_before`, a task
    /// known to have started at or after it, or known to be still starting, is left
    /// alone (it cannot be the one whose claim was seen then). Returns the task ARNs
    /// stopped.
    pub async fn stop_tasks(
        &self,
        service: &str,
        reason: &str,
        started_before: Option<std::time::SystemTime>,
    ) -> Result<Vec<String>, EcsError> {
        let mut pages = self
            .client
            .list_tasks()
            .cluster(&self.cluster)
            .service_name(service)
            .desired_status(DesiredStatus::Running)
            .into_paginator()
            .send();
        let mut listed = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| self.error(format!("listing the tasks of {service}"), e))?;
            listed.extend(page.task_arns().iter().cloned());
        }
        let tasks = self.of_service(service, listed, started_before).await?;
        for task in &tasks {
            self.client
                .stop_task()
                .cluster(&self.cluster)
                .task(task)
                .reason(reason)
                .send()
                .await
                .map_err(|e| self.error(format!("stopping task {task} of {service}"), e))?;
        }
        Ok(tasks)
    }

    /// The tasks among `listed` that belong to `service`: ECS names a service's tasks'
    /// group `service:NAME`. Checked rather than trusted to the `serviceName` filter of
    /// `ListTasks` (an emulator that ignores it would have one engine's fence stop every
    /// engine).
    async fn of_service(
        &self,
        service: &str,
        listed: Vec<String>,
        started_before: Option<std::time::SystemTime>,
    ) -> Result<Vec<String>, EcsError> {
        let group = format!("service:{service}");
        let mut tasks = Vec::new();
        for chunk in listed.chunks(100) {
            let described = self
                .client
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| self.error(format!("describing the tasks of {service}"), e))?;
            tasks.extend(
                described
                    .tasks()
                    .iter()
                    .filter(|t| t.group() == Some(group.as_str()))
                    .filter(|t| started_before.is_none_or(|b| !started_after(t, b)))
                    .filter_map(|t| t.task_arn().map(str::to_string)),
            );
        }
        Ok(tasks)
    }

    /// The services this handle stops.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The cluster.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::primitives::DateTime;
    use aws_sdk_ecs::types::Task;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_task_started_after_the_claim_or_still_starting_is_not_the_claimer() {
        let claim = SystemTime::now();
        let at = |t: SystemTime| DateTime::from(t);
        let before = Task::builder()
            .last_status("RUNNING")
            .started_at(at(claim - Duration::from_secs(60)))
            .build();
        let after = Task::builder()
            .last_status("RUNNING")
            .started_at(at(claim + Duration::from_secs(1)))
            .build();
        let pending = Task::builder().last_status("PENDING").build();
        let unknown = Task::builder().build();
        assert!(!started_after(&before, claim), "the claimer");
        assert!(started_after(&after, claim), "a replacement started since");
        assert!(
            started_after(&pending, claim),
            "a replacement still starting"
        );
        assert!(
            !started_after(&unknown, claim),
            "an API that says nothing (moto) cannot rule a task out"
        );
    }
}
