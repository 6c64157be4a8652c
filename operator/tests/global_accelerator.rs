//! Global Accelerator through the real `aws-sdk-globalaccelerator` client pointed at the
//! local emulator: the emulator answers as the service documents (errors included), the
//! router moves weights or traffic dials and reads them back, and the supervisor drives
//! it through a real failover.

use aws_sdk_globalaccelerator::types::{EndpointConfiguration, PortRange, Protocol};
use aws_sdk_globalaccelerator::Client;
use fix_operator::emulator::Emulator;
use fix_operator::router::global_accelerator::{GlobalAcceleratorRouter, Layout};
use fix_operator::router::TrafficRouter;
use std::collections::BTreeMap;

fn client(url: &str) -> Client {
    fix_operator::emulator::provision::ga_client(url)
}

/// An accelerator with a TCP listener on 9878; returns the listener ARN.
async fn listener(c: &Client) -> String {
    let acc = c
        .create_accelerator()
        .name("fix")
        .idempotency_token("t1")
        .send()
        .await
        .expect("CreateAccelerator")
        .accelerator
        .expect("accelerator");
    assert_eq!(acc.status().map(|s| s.as_str()), Some("DEPLOYED"));
    c.create_listener()
        .accelerator_arn(acc.accelerator_arn().expect("arn"))
        .port_ranges(PortRange::builder().from_port(9878).to_port(9878).build())
        .protocol(Protocol::Tcp)
        .idempotency_token("t2")
        .send()
        .await
        .expect("CreateListener")
        .listener
        .and_then(|l| l.listener_arn)
        .expect("listener arn")
}

fn endpoint(id: &str, weight: i32) -> EndpointConfiguration {
    EndpointConfiguration::builder()
        .endpoint_id(id)
        .weight(weight)
        .client_ip_preservation_enabled(true)
        .build()
}

async fn group(c: &Client, listener: &str, region: &str, endpoints: &[(&str, i32)]) -> String {
    let mut req = c
        .create_endpoint_group()
        .listener_arn(listener)
        .endpoint_group_region(region)
        .idempotency_token(region);
    for (id, w) in endpoints {
        req = req.endpoint_configurations(endpoint(id, *w));
    }
    req.send()
        .await
        .expect("CreateEndpointGroup")
        .endpoint_group
        .and_then(|g| g.endpoint_group_arn)
        .expect("group arn")
}

#[tokio::test]
async fn the_emulator_answers_the_sdk_as_the_service_documents() {
    let emu = Emulator::start().await.expect("emulator");
    let c = client(&emu.url());
    let l = listener(&c).await;
    let g = group(&c, &l, "us-east-1", &[("nlb-a", 100), ("nlb-b", 0)]).await;
    let described = c
        .describe_endpoint_group()
        .endpoint_group_arn(&g)
        .send()
        .await
        .expect("DescribeEndpointGroup")
        .endpoint_group
        .expect("group");
    assert_eq!(described.endpoint_group_region(), Some("us-east-1"));
    let weights: Vec<(Option<&str>, Option<i32>)> = described
        .endpoint_descriptions()
        .iter()
        .map(|d| (d.endpoint_id(), d.weight()))
        .collect();
    assert_eq!(
        weights,
        vec![(Some("nlb-a"), Some(100)), (Some("nlb-b"), Some(0))]
    );
    assert_eq!(described.traffic_dial_percentage(), Some(100.0));

    // Errors arrive as the SDK's typed errors.
    let e = c
        .update_endpoint_group()
        .endpoint_group_arn(&g)
        .endpoint_configurations(endpoint("nlb-a", 300))
        .send()
        .await
        .expect_err("weight above 255")
        .into_service_error();
    assert!(e.is_invalid_argument_exception(), "{e:?}");
    let e = c
        .describe_endpoint_group()
        .endpoint_group_arn(format!("{g}-nope"))
        .send()
        .await
        .expect_err("unknown group")
        .into_service_error();
    assert!(e.is_endpoint_group_not_found_exception(), "{e:?}");
    let e = c
        .create_endpoint_group()
        .listener_arn(&l)
        .endpoint_group_region("us-east-1")
        .idempotency_token("again")
        .send()
        .await
        .expect_err("one group per region")
        .into_service_error();
    assert!(e.is_endpoint_group_already_exists_exception(), "{e:?}");
    let e = c
        .create_listener()
        .accelerator_arn("arn:aws:globalaccelerator::123456789012:accelerator/none")
        .port_ranges(PortRange::builder().from_port(1).to_port(2).build())
        .protocol(Protocol::Tcp)
        .idempotency_token("t3")
        .send()
        .await
        .expect_err("unknown accelerator")
        .into_service_error();
    assert!(e.is_accelerator_not_found_exception(), "{e:?}");
}

#[tokio::test]
async fn the_weights_router_moves_the_weight_and_reads_it_back() {
    let emu = Emulator::start().await.expect("emulator");
    let c = client(&emu.url());
    let l = listener(&c).await;
    let g = group(&c, &l, "us-east-1", &[("nlb-a", 100), ("nlb-b", 0)]).await;
    let endpoints: BTreeMap<String, String> = [("engine-a", "nlb-a"), ("engine-b", "nlb-b")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let router = GlobalAcceleratorRouter::new(
        Layout::Weights {
            group_arn: g.clone(),
            endpoints,
        },
        Some(&emu.url()),
    )
    .await;
    assert_eq!(
        router.current().await.expect("read"),
        Some("engine-a".into())
    );
    router.route_to("engine-b").await.expect("route");
    assert_eq!(
        router.current().await.expect("read"),
        Some("engine-b".into())
    );
    let stored = emu
        .state()
        .ga
        .lock()
        .expect("lock")
        .group(&g)
        .expect("group");
    assert_eq!(stored["EndpointDescriptions"][0]["Weight"], 0);
    assert_eq!(stored["EndpointDescriptions"][1]["Weight"], 100);
    assert_eq!(
        stored["EndpointDescriptions"][1]["ClientIPPreservationEnabled"], true,
        "settings other than the weight are kept"
    );

    // Bad input changes nothing and says why.
    let e = router
        .route_to("engine-z")
        .await
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("engine-z") && e.contains("engine-a, engine-b"),
        "{e}"
    );
    emu.throttle_next(10);
    let e = router
        .route_to("engine-a")
        .await
        .expect_err("throttled")
        .to_string();
    assert!(e.contains("ThrottlingException"), "{e}");
    emu.throttle_next(0);
    assert_eq!(
        router.current().await.expect("read"),
        Some("engine-b".into())
    );
}

#[tokio::test]
async fn the_dials_router_raises_the_new_leaders_region_first() {
    let emu = Emulator::start().await.expect("emulator");
    let c = client(&emu.url());
    let l = listener(&c).await;
    let east = group(&c, &l, "us-east-1", &[("nlb-a", 128)]).await;
    let west = group(&c, &l, "eu-west-1", &[("nlb-b", 128)]).await;
    let groups: BTreeMap<String, String> = [("engine-a", east.clone()), ("engine-b", west.clone())]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect();
    let router = GlobalAcceleratorRouter::new(Layout::Dials { groups }, Some(&emu.url())).await;
    assert_eq!(
        router.current().await.expect("read"),
        None,
        "both dials at 100"
    );
    router.route_to("engine-b").await.expect("route");
    assert_eq!(
        router.current().await.expect("read"),
        Some("engine-b".into())
    );
    let ga = emu.state().ga.lock().expect("lock");
    assert_eq!(ga.group(&east).expect("east")["TrafficDialPercentage"], 0.0);
    assert_eq!(
        ga.group(&west).expect("west")["TrafficDialPercentage"],
        100.0
    );
}
