//! Global Accelerator: accelerators, listeners and endpoint groups, with the calls a
//! router needs (`CreateAccelerator`, `CreateListener`, `CreateEndpointGroup`,
//! `UpdateEndpointGroup`, `DescribeEndpointGroup`) validated as the service model says.

use super::{error_response, target, ApiError, State};
use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const PREFIX: &str = "GlobalAccelerator_V20180706";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const ACCOUNT: &str = "123456789012";

/// The service's state.
#[derive(Debug, Default)]
pub struct Ga {
    accelerators: BTreeMap<String, Value>,
    listeners: BTreeMap<String, (String, Value)>,
    groups: BTreeMap<String, Value>,
    next: u64,
}

impl Ga {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", self.next, self.next)
    }

    /// An endpoint group as stored (for assertions).
    pub fn group(&self, arn: &str) -> Option<Value> {
        self.groups.get(arn).cloned()
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64().floor())
}

fn required<'a>(req: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    req[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::new("InvalidArgumentException", format!("{field} is required")))
}

/// `EndpointConfigurations` → `EndpointDescriptions`, checked (at most 10; weight 0–255,
/// default 128).
fn endpoints(req: &Value) -> Result<Option<Vec<Value>>, ApiError> {
    let Some(list) = req.get("EndpointConfigurations") else {
        return Ok(None);
    };
    let list = list.as_array().ok_or_else(|| {
        ApiError::new(
            "InvalidArgumentException",
            "EndpointConfigurations must be a list",
        )
    })?;
    if list.len() > 10 {
        return Err(ApiError::new(
            "InvalidArgumentException",
            "an endpoint group has at most 10 endpoints",
        ));
    }
    list.iter()
        .map(|e| {
            let id = required(e, "EndpointId")?;
            let weight = e["Weight"].as_i64().unwrap_or(128);
            if !(0..=255).contains(&weight) {
                return Err(ApiError::new(
                    "InvalidArgumentException",
                    format!("Weight {weight} is outside 0-255"),
                ));
            }
            Ok(json!({
                "EndpointId": id,
                "Weight": weight,
                "HealthState": "HEALTHY",
                "ClientIPPreservationEnabled": e["ClientIPPreservationEnabled"].as_bool().unwrap_or(false),
            }))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn dial(req: &Value) -> Result<Option<f64>, ApiError> {
    match req.get("TrafficDialPercentage").and_then(Value::as_f64) {
        Some(d) if !(0.0..=100.0).contains(&d) => Err(ApiError::new(
            "InvalidArgumentException",
            format!("TrafficDialPercentage {d} is outside 0-100"),
        )),
        other => Ok(other),
    }
}

fn call(ga: &mut Ga, op: &str, req: &Value) -> Result<Value, ApiError> {
    match op {
        "CreateAccelerator" => {
            let name = required(req, "Name")?.to_string();
            required(req, "IdempotencyToken")?;
            let id = ga.id();
            let arn = format!("arn:aws:globalaccelerator::{ACCOUNT}:accelerator/{id}");
            let acc = json!({
                "AcceleratorArn": arn, "Name": name,
                "IpAddressType": req["IpAddressType"].as_str().unwrap_or("IPV4"),
                "Enabled": req["Enabled"].as_bool().unwrap_or(true),
                "IpSets": [{"IpFamily": "IPv4", "IpAddresses": ["192.0.2.250", "198.51.100.52"]}],
                "DnsName": format!("{id}.awsglobalaccelerator.com"),
                "Status": "DEPLOYED", "CreatedTime": now(), "LastModifiedTime": now(),
            });
            ga.accelerators.insert(arn, acc.clone());
            Ok(json!({ "Accelerator": acc }))
        }
        "CreateListener" => {
            let acc = required(req, "AcceleratorArn")?.to_string();
            required(req, "IdempotencyToken")?;
            if !ga.accelerators.contains_key(&acc) {
                return Err(ApiError::new(
                    "AcceleratorNotFoundException",
                    format!("accelerator {acc} not found"),
                ));
            }
            let ranges = req["PortRanges"]
                .as_array()
                .filter(|r| !r.is_empty())
                .ok_or_else(|| {
                    ApiError::new("InvalidArgumentException", "PortRanges is required")
                })?;
            for r in ranges {
                let (from, to) = (
                    r["FromPort"].as_i64().unwrap_or(0),
                    r["ToPort"].as_i64().unwrap_or(0),
                );
                if from < 1 || to > 65535 || from > to {
                    return Err(ApiError::new(
                        "InvalidPortRangeException",
                        format!("port range {from}-{to} is not valid"),
                    ));
                }
            }
            let protocol = required(req, "Protocol")?;
            let arn = format!("{acc}/listener/{}", &ga.id()[..8]);
            let l = json!({"ListenerArn": arn, "PortRanges": ranges, "Protocol": protocol,
                "ClientAffinity": req["ClientAffinity"].as_str().unwrap_or("NONE")});
            ga.listeners.insert(arn, (acc, l.clone()));
            Ok(json!({ "Listener": l }))
        }
        "CreateEndpointGroup" => {
            let listener = required(req, "ListenerArn")?.to_string();
            let region = required(req, "EndpointGroupRegion")?.to_string();
            required(req, "IdempotencyToken")?;
            if !ga.listeners.contains_key(&listener) {
                return Err(ApiError::new(
                    "ListenerNotFoundException",
                    format!("listener {listener} not found"),
                ));
            }
            if ga.groups.values().any(|g| {
                g["ListenerArn"] == listener.as_str() && g["EndpointGroupRegion"] == region.as_str()
            }) {
                return Err(ApiError::new(
                    "EndpointGroupAlreadyExistsException",
                    format!("an endpoint group for {region} already exists on this listener"),
                ));
            }
            let arn = format!("{listener}/endpoint-group/{}", &ga.id()[..12]);
            let g = json!({
                "EndpointGroupArn": arn, "EndpointGroupRegion": region, "ListenerArn": listener,
                "EndpointDescriptions": endpoints(req)?.unwrap_or_default(),
                "TrafficDialPercentage": dial(req)?.unwrap_or(100.0),
                "HealthCheckPort": req["HealthCheckPort"].as_i64().unwrap_or(9878),
                "HealthCheckProtocol": req["HealthCheckProtocol"].as_str().unwrap_or("TCP"),
                "HealthCheckIntervalSeconds": req["HealthCheckIntervalSeconds"].as_i64().unwrap_or(30),
                "ThresholdCount": req["ThresholdCount"].as_i64().unwrap_or(3),
            });
            ga.groups.insert(arn, g.clone());
            Ok(json!({ "EndpointGroup": public(&g) }))
        }
        "UpdateEndpointGroup" => {
            let arn = required(req, "EndpointGroupArn")?.to_string();
            let eps = endpoints(req)?;
            let d = dial(req)?;
            let g = ga.groups.get_mut(&arn).ok_or_else(|| {
                ApiError::new(
                    "EndpointGroupNotFoundException",
                    format!("endpoint group {arn} not found"),
                )
            })?;
            if let Some(eps) = eps {
                g["EndpointDescriptions"] = Value::Array(eps);
            }
            if let Some(d) = d {
                g["TrafficDialPercentage"] = json!(d);
            }
            Ok(json!({ "EndpointGroup": public(g) }))
        }
        "DescribeEndpointGroup" => {
            let arn = required(req, "EndpointGroupArn")?;
            ga.groups
                .get(arn)
                .map(|g| json!({ "EndpointGroup": public(g) }))
                .ok_or_else(|| {
                    ApiError::new(
                        "EndpointGroupNotFoundException",
                        format!("endpoint group {arn} not found"),
                    )
                })
        }
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("{other} is not emulated"),
        )),
    }
}

/// The group without the emulator's own bookkeeping.
fn public(g: &Value) -> Value {
    let mut g = g.clone();
    if let Some(m) = g.as_object_mut() {
        m.remove("ListenerArn");
    }
    g
}

/// `POST /` for Global Accelerator.
pub async fn handle(
    AxumState(state): AxumState<Arc<State>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let result = target(&headers, PREFIX).and_then(|op| {
        if state.throttled() {
            return Err(ApiError::new("ThrottlingException", "Rate exceeded"));
        }
        let req: Value = serde_json::from_str(if body.is_empty() { "{}" } else { &body })
            .map_err(|_| ApiError::new("SerializationException", "the body is not JSON"))?;
        let mut ga = state
            .ga
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        call(&mut ga, op, &req)
    });
    match result {
        Ok(v) => ([("content-type", CONTENT_TYPE)], v.to_string()).into_response(),
        Err(e) => error_response(&e, CONTENT_TYPE),
    }
}
