//! Engine services on moto's ECS, as infra/engines.yaml lays them out: one service per
//! engine, one running task each whose group is `service:NAME` (as ECS names a service's
//! tasks). moto starts no task for a service, so each is started with `RunTask`.

// Each test binary that includes this module uses part of it.
#![allow(dead_code)]
use aws_sdk_ecs::types::{ContainerDefinition, DesiredStatus, LaunchType, NetworkMode};

/// moto's URL (scripts/test.sh starts moto).
pub fn moto_url() -> String {
    std::env::var("FIX_TEST_MOTO_URL").expect("FIX_TEST_MOTO_URL (scripts/test.sh starts moto)")
}

/// An ECS client for `region` on moto.
pub fn client(region: &str) -> aws_sdk_ecs::Client {
    use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(moto_url())
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    aws_sdk_ecs::Client::from_conf(conf)
}

/// `cluster` in `region` with one service and one running task per name in `services`.
pub async fn engines(region: &str, cluster: &str, services: &[&str]) {
    let c = client(region);
    c.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .expect("ECS cluster");
    let def = c
        .register_task_definition()
        .family("fix-engine")
        // Host networking: moto checks an awsvpc task's subnets against its EC2, which
        // these tests do not set up; nothing here depends on the mode.
        .network_mode(NetworkMode::Host)
        .cpu("256")
        .memory("512")
        .container_definitions(
            ContainerDefinition::builder()
                .name("engine")
                .image("fix-engine:test")
                .cpu(256)
                .memory(512)
                .build(),
        )
        .send()
        .await
        .expect("task definition");
    let def_arn = def
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .expect("task definition ARN")
        .to_string();
    for service in services {
        c.create_service()
            .cluster(cluster)
            .service_name(*service)
            .task_definition(&def_arn)
            .desired_count(1)
            .launch_type(LaunchType::Fargate)
            .send()
            .await
            .expect("ECS service");
        c.run_task()
            .cluster(cluster)
            .task_definition(&def_arn)
            .launch_type(LaunchType::Fargate)
            .group(format!("service:{service}"))
            .send()
            .await
            .expect("a running task");
    }
}

/// The running tasks of `service` (by their group), and of the whole cluster.
pub async fn running(region: &str, cluster: &str, service: &str) -> (Vec<String>, usize) {
    let c = client(region);
    let all = c
        .list_tasks()
        .cluster(cluster)
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .expect("list tasks")
        .task_arns()
        .to_vec();
    if all.is_empty() {
        return (Vec::new(), 0);
    }
    let described = c
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(all.clone()))
        .send()
        .await
        .expect("describe tasks");
    let group = format!("service:{service}");
    let mine = described
        .tasks()
        .iter()
        .filter(|t| t.group() == Some(group.as_str()))
        .filter_map(|t| t.task_arn().map(str::to_string))
        .collect();
    (mine, all.len())
}
