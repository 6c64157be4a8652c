//! Route 53 Application Recovery Controller: the control-config API (REST-JSON: clusters,
//! control panels, routing controls, assertion safety rules) and the cluster data plane
//! (JSON 1.0, `X-Amz-Target: ToggleCustomerAPI.<Operation>`: routing control states).
//! A state change that would break an assertion rule is refused with `ConflictException`
//! unless the rule is in `SafetyRulesToOverride`, as the service does.

use super::{error_response, target, ApiError, State};
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const CLUSTER_PREFIX: &str = "ToggleCustomerAPI";
const JSON10: &str = "application/x-amz-json-1.0";
const ACCOUNT: &str = "123456789012";

/// A routing control.
#[derive(Debug, Clone)]
struct Control {
    panel: String,
    name: String,
    on: bool,
}

/// An assertion rule.
#[derive(Debug, Clone)]
struct Rule {
    name: String,
    asserted: Vec<String>,
    kind: String,
    threshold: i64,
    inverted: bool,
    json: Value,
}

impl Rule {
    fn holds(&self, state: &BTreeMap<String, bool>) -> bool {
        let on = self
            .asserted
            .iter()
            .filter(|a| state.get(*a).copied().unwrap_or(false))
            .count() as i64;
        let result = match self.kind.as_str() {
            "AND" => on == self.asserted.len() as i64,
            "OR" => on >= 1,
            _ => on >= self.threshold,
        };
        result != self.inverted
    }
}

/// The service's state.
#[derive(Debug, Default)]
pub struct ArcService {
    clusters: BTreeMap<String, Value>,
    panels: BTreeMap<String, Value>,
    controls: BTreeMap<String, Control>,
    rules: BTreeMap<String, Rule>,
    next: u64,
    /// Cluster endpoints handed out by `CreateCluster` (the emulator's own URL, possibly
    /// behind dead ones to exercise failover between regional endpoints).
    pub endpoints: Vec<(String, String)>,
}

impl ArcService {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("{:016x}", self.next * 0x9e37_79b9)
    }

    /// Whether a routing control is On (for assertions).
    pub fn is_on(&self, arn: &str) -> Option<bool> {
        self.controls.get(arn).map(|c| c.on)
    }
}

/// A REST-JSON error: its HTTP status, `x-amzn-ErrorType` and `message`.
pub struct RestError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (
            self.status,
            [
                ("x-amzn-ErrorType", self.code),
                ("content-type", "application/json"),
            ],
            json!({ "message": self.message }).to_string(),
        )
            .into_response()
    }
}

fn invalid(message: impl Into<String>) -> RestError {
    RestError {
        status: StatusCode::BAD_REQUEST,
        code: "ValidationException",
        message: message.into(),
    }
}

fn missing(what: &str, arn: &str) -> RestError {
    RestError {
        status: StatusCode::NOT_FOUND,
        code: "ResourceNotFoundException",
        message: format!("{what} {arn} not found"),
    }
}

fn field<'a>(req: &'a Value, name: &str) -> Result<&'a str, RestError> {
    req[name]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(format!("{name} is required")))
}

fn parse(body: &str) -> Result<Value, RestError> {
    serde_json::from_str(if body.is_empty() { "{}" } else { body })
        .map_err(|_| invalid("the body is not JSON"))
}

fn lock(state: &State) -> std::sync::MutexGuard<'_, ArcService> {
    state
        .arc
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A 200 response with a JSON body.
pub struct Json200(Value);

impl IntoResponse for Json200 {
    fn into_response(self) -> Response {
        ([("content-type", "application/json")], self.0.to_string()).into_response()
    }
}

/// `POST /cluster`.
pub async fn create_cluster(
    AxumState(state): AxumState<Arc<State>>,
    body: String,
) -> Result<Json200, RestError> {
    let req = parse(&body)?;
    let name = field(&req, "ClusterName")?.to_string();
    let mut arc = lock(&state);
    let arn = format!(
        "arn:aws:route53-recovery-control::{ACCOUNT}:cluster/{}",
        arc.id()
    );
    let endpoints: Vec<Value> = arc
        .endpoints
        .iter()
        .map(|(url, region)| json!({ "Endpoint": url, "Region": region }))
        .collect();
    let cluster = json!({
        "ClusterArn": arn, "Name": name, "Status": "DEPLOYED", "Owner": ACCOUNT,
        "ClusterEndpoints": endpoints, "NetworkType": "IPV4",
    });
    arc.clusters.insert(arn, cluster.clone());
    Ok(Json200(json!({ "Cluster": cluster })))
}

/// `GET /cluster/{ClusterArn}`.
pub async fn describe_cluster(
    AxumState(state): AxumState<Arc<State>>,
    Path(arn): Path<String>,
) -> Result<Json200, RestError> {
    lock(&state)
        .clusters
        .get(&arn)
        .map(|c| Json200(json!({ "Cluster": c })))
        .ok_or_else(|| missing("cluster", &arn))
}

/// `POST /controlpanel`.
pub async fn create_control_panel(
    AxumState(state): AxumState<Arc<State>>,
    body: String,
) -> Result<Json200, RestError> {
    let req = parse(&body)?;
    let cluster = field(&req, "ClusterArn")?.to_string();
    let name = field(&req, "ControlPanelName")?.to_string();
    let mut arc = lock(&state);
    if !arc.clusters.contains_key(&cluster) {
        return Err(missing("cluster", &cluster));
    }
    let arn = format!(
        "arn:aws:route53-recovery-control::{ACCOUNT}:controlpanel/{}",
        arc.id()
    );
    let panel = json!({
        "ClusterArn": cluster, "ControlPanelArn": arn, "DefaultControlPanel": false,
        "Name": name, "RoutingControlCount": 0, "Status": "DEPLOYED", "Owner": ACCOUNT,
    });
    arc.panels.insert(arn, panel.clone());
    Ok(Json200(json!({ "ControlPanel": panel })))
}

/// `POST /routingcontrol`.
pub async fn create_routing_control(
    AxumState(state): AxumState<Arc<State>>,
    body: String,
) -> Result<Json200, RestError> {
    let req = parse(&body)?;
    let cluster = field(&req, "ClusterArn")?.to_string();
    let name = field(&req, "RoutingControlName")?.to_string();
    let mut arc = lock(&state);
    if !arc.clusters.contains_key(&cluster) {
        return Err(missing("cluster", &cluster));
    }
    let panel =
        match req["ControlPanelArn"].as_str() {
            Some(p) if arc.panels.contains_key(p) => p.to_string(),
            Some(p) => return Err(missing("control panel", p)),
            None => return Err(invalid(
                "ControlPanelArn is required by this emulator (the default panel is not emulated)",
            )),
        };
    let arn = format!("{panel}/routingcontrol/{}", arc.id());
    arc.controls.insert(
        arn.clone(),
        Control {
            panel: panel.clone(),
            name: name.clone(),
            on: false,
        },
    );
    if let Some(p) = arc.panels.get_mut(&panel) {
        p["RoutingControlCount"] = json!(p["RoutingControlCount"].as_i64().unwrap_or(0) + 1);
    }
    Ok(Json200(json!({ "RoutingControl": {
        "ControlPanelArn": panel, "Name": name, "RoutingControlArn": arn,
        "Status": "DEPLOYED", "Owner": ACCOUNT,
    }})))
}

/// `POST /safetyrule` (assertion rules).
pub async fn create_safety_rule(
    AxumState(state): AxumState<Arc<State>>,
    body: String,
) -> Result<Json200, RestError> {
    let req = parse(&body)?;
    let rule = req
        .get("AssertionRule")
        .ok_or_else(|| invalid("only AssertionRule is emulated"))?;
    let panel = field(rule, "ControlPanelArn")?.to_string();
    let name = field(rule, "Name")?.to_string();
    let asserted: Vec<String> = rule["AssertedControls"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let config = &rule["RuleConfig"];
    let kind = config["Type"].as_str().unwrap_or("ATLEAST").to_string();
    let mut arc = lock(&state);
    if !arc.panels.contains_key(&panel) {
        return Err(invalid(format!("control panel {panel} not found")));
    }
    if asserted.is_empty() || asserted.iter().any(|a| !arc.controls.contains_key(a)) {
        return Err(invalid(
            "AssertedControls must name existing routing controls",
        ));
    }
    let arn = format!("{panel}/safetyrule/{}", arc.id());
    let out = json!({
        "AssertedControls": asserted, "ControlPanelArn": panel, "Name": name,
        "RuleConfig": config, "SafetyRuleArn": arn, "Status": "DEPLOYED",
        "WaitPeriodMs": rule["WaitPeriodMs"].as_i64().unwrap_or(5000), "Owner": ACCOUNT,
    });
    arc.rules.insert(
        arn,
        Rule {
            name,
            asserted,
            kind,
            threshold: config["Threshold"].as_i64().unwrap_or(1),
            inverted: config["Inverted"].as_bool().unwrap_or(false),
            json: out.clone(),
        },
    );
    Ok(Json200(json!({ "AssertionRule": out })))
}

fn not_found(arn: &str) -> ApiError {
    ApiError::new(
        "ResourceNotFoundException",
        format!("routing control {arn} not found"),
    )
}

/// Applies `changes` if every assertion rule still holds afterwards (or is overridden).
fn update(
    arc: &mut ArcService,
    changes: &[(String, bool)],
    overrides: &[String],
) -> Result<(), ApiError> {
    let mut next: BTreeMap<String, bool> = arc
        .controls
        .iter()
        .map(|(k, c)| (k.clone(), c.on))
        .collect();
    for (arn, on) in changes {
        let slot = next.get_mut(arn).ok_or_else(|| not_found(arn))?;
        *slot = *on;
    }
    for (arn, rule) in &arc.rules {
        if !overrides.contains(arn) && !rule.holds(&next) {
            return Err(ApiError::new(
                "ConflictException",
                format!("Cannot update routing control state(s) due to failed rule evaluation for safety rule {} ({arn})", rule.name),
            ));
        }
    }
    for (arn, on) in next {
        if let Some(c) = arc.controls.get_mut(&arn) {
            c.on = on;
        }
    }
    Ok(())
}

fn state_of(v: &Value, field: &str) -> Result<bool, ApiError> {
    match v[field].as_str() {
        Some("On") => Ok(true),
        Some("Off") => Ok(false),
        _ => Err(ApiError::new(
            "ValidationException",
            format!("{field} must be On or Off"),
        )),
    }
}

fn arn_of(v: &Value) -> Result<&str, ApiError> {
    v["RoutingControlArn"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::new("ValidationException", "RoutingControlArn is required"))
}

fn overrides(req: &Value) -> Vec<String> {
    req["SafetyRulesToOverride"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn cluster_call(arc: &mut ArcService, op: &str, req: &Value) -> Result<Value, ApiError> {
    match op {
        "GetRoutingControlState" => {
            let arn = arn_of(req)?;
            let c = arc.controls.get(arn).ok_or_else(|| not_found(arn))?;
            Ok(json!({
                "RoutingControlArn": arn,
                "RoutingControlState": if c.on { "On" } else { "Off" },
                "RoutingControlName": c.name,
            }))
        }
        "UpdateRoutingControlState" => {
            let change = (
                arn_of(req)?.to_string(),
                state_of(req, "RoutingControlState")?,
            );
            update(arc, &[change], &overrides(req))?;
            Ok(json!({}))
        }
        "UpdateRoutingControlStates" => {
            let entries = req["UpdateRoutingControlStateEntries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let changes = entries
                .iter()
                .map(|e| Ok((arn_of(e)?.to_string(), state_of(e, "RoutingControlState")?)))
                .collect::<Result<Vec<_>, ApiError>>()?;
            update(arc, &changes, &overrides(req))?;
            Ok(json!({}))
        }
        "ListRoutingControls" => {
            let panel = req["ControlPanelArn"].as_str();
            let list: Vec<Value> = arc
                .controls
                .iter()
                .filter(|(_, c)| panel.is_none_or(|p| c.panel == p))
                .map(|(arn, c)| {
                    json!({
                        "ControlPanelArn": c.panel,
                        "RoutingControlArn": arn,
                        "RoutingControlName": c.name,
                        "RoutingControlState": if c.on { "On" } else { "Off" },
                        "Owner": ACCOUNT,
                    })
                })
                .collect();
            Ok(json!({ "RoutingControls": list }))
        }
        other => Err(ApiError::new(
            "ValidationException",
            format!("{other} is not emulated"),
        )),
    }
}

/// The cluster data plane's `POST /` (called by the shared JSON dispatcher).
pub fn handle_cluster(state: &State, headers: &HeaderMap, body: &str) -> Response {
    let result = target(headers, CLUSTER_PREFIX).and_then(|op| {
        if state.throttled() {
            return Err(ApiError::new("ThrottlingException", "Rate exceeded"));
        }
        let req: Value = serde_json::from_str(if body.is_empty() { "{}" } else { body })
            .map_err(|_| ApiError::new("ValidationException", "the body is not JSON"))?;
        cluster_call(&mut lock(state), op, &req)
    });
    match result {
        Ok(v) => ([("content-type", JSON10)], v.to_string()).into_response(),
        Err(e) => error_response(&e, JSON10),
    }
}

/// Whether a request is for the cluster data plane.
pub fn is_cluster_call(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(CLUSTER_PREFIX))
}

/// A rule's JSON as created (for assertions).
pub fn rule_json(arc: &ArcService, arn: &str) -> Option<Value> {
    arc.rules.get(arn).map(|r| r.json.clone())
}
