//! A stateful stand-in for the Kubernetes API server behind kube's `tower_test` mock
//! service: the real `kube::Client` (and kube-runtime's finalizer and event recorder)
//! talk to it over the real request paths, verbs, patch types and status codes.
//!
//! It keeps objects per collection path; GET, LIST (with label selectors), POST (409 if
//! the name exists), PATCH (server-side apply, JSON merge, strategic merge treated as
//! merge, and JSON Patch with `test` — a failed test is a 422 as the real server gives),
//! DELETE (with finalizers it only sets `deletionTimestamp`; the object goes when the
//! last finalizer is removed), the `/status` subresource (status only; the main resource
//! ignores status), `metadata.generation` bumped on spec changes, resourceVersion and
//! uid. Faults can be injected per verb and path, and every request is logged.

#![allow(dead_code)]

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One injected failure.
struct Fault {
    method: String,
    path_contains: String,
    code: u16,
    times: usize,
}

#[derive(Default)]
struct State {
    /// collection path → name → object.
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    version: u64,
    log: Vec<String>,
    faults: Vec<Fault>,
}

/// The fake API server.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `(collection, name, subresource)` of a request path.
fn split(path: &str) -> (String, Option<String>, Option<String>) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.iter().position(|p| *p == "namespaces") {
        Some(i) if parts.len() > i + 2 => (
            parts[..i + 3].join("/"),
            parts.get(i + 3).map(|s| s.to_string()),
            parts.get(i + 4).map(|s| s.to_string()),
        ),
        _ => (parts.join("/"), None, None),
    }
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

fn selector_matches(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        obj["metadata"]["labels"][k] == v
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%2F", "/")
        })
    })
}

impl FakeApi {
    /// A `kube::Client` served by this fake (default namespace `default`).
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let (parts, body) = req.into_parts();
                    let bytes = body.collect_bytes().await.unwrap_or_default();
                    let query = parts.uri.query().unwrap_or("").to_string();
                    let (code, payload) = if query.contains("watch=true") {
                        // A short watch: what changed since the given version, then the
                        // stream ends and the watcher comes back.
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        (200, me.watch(parts.uri.path(), &query))
                    } else {
                        let (code, value) = me.handle(
                            parts.method.as_str(),
                            parts.uri.path(),
                            &query,
                            parts
                                .headers
                                .get(http::header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or(""),
                            &bytes,
                        );
                        (code, serde_json::to_vec(&value).unwrap_or_default())
                    };
                    let resp = Response::builder()
                        .status(
                            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        )
                        .header("content-type", "application/json")
                        .body(Body::from(payload))
                        .expect("response");
                    send.send_response(resp);
                });
            }
        });
        Client::new(service, "default")
    }

    /// Watch events (newline-delimited JSON) for the objects of a collection changed
    /// after the `resourceVersion` of the query.
    fn watch(&self, path: &str, query: &str) -> Vec<u8> {
        let since: u64 = query_param(query, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (collection, _, _) = split(path);
        let mut s = lock(&self.state);
        s.log.push(format!("WATCH {path}?{query}"));
        let mut out = Vec::new();
        for obj in s
            .objects
            .get(&collection)
            .map(|c| c.values().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let rv: u64 = obj["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if rv > since {
                out.extend(
                    serde_json::to_vec(&json!({"type": "MODIFIED", "object": obj}))
                        .unwrap_or_default(),
                );
                out.push(b'\n');
            }
        }
        out
    }

    /// Makes the next `times` requests with `method` and a path containing `path` fail
    /// with `code`.
    pub fn fail(&self, method: &str, path: &str, code: u16, times: usize) {
        lock(&self.state).faults.push(Fault {
            method: method.into(),
            path_contains: path.into(),
            code,
            times,
        });
    }

    /// Every request so far as `METHOD path?query`.
    pub fn log(&self) -> Vec<String> {
        lock(&self.state).log.clone()
    }

    /// An object, if it exists: `collection` like `apis/apps/v1/namespaces/ns/statefulsets`.
    pub fn get(&self, collection: &str, name: &str) -> Option<Value> {
        lock(&self.state)
            .objects
            .get(collection)
            .and_then(|c| c.get(name))
            .cloned()
    }

    /// Every object of a collection.
    pub fn list(&self, collection: &str) -> Vec<Value> {
        lock(&self.state)
            .objects
            .get(collection)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores an object as a client's create would.
    pub fn put(&self, collection: &str, obj: Value) {
        let mut s = lock(&self.state);
        let obj = Self::created(&mut s, obj);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        s.objects
            .entry(collection.into())
            .or_default()
            .insert(name, obj);
    }

    /// The reasons of the events recorded in `namespace`.
    pub fn event_reasons(&self, namespace: &str) -> Vec<String> {
        self.list(&format!(
            "apis/events.k8s.io/v1/namespaces/{namespace}/events"
        ))
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
    }

    fn created(s: &mut State, mut obj: Value) -> Value {
        s.version += 1;
        let m = &mut obj["metadata"];
        m["resourceVersion"] = s.version.to_string().into();
        m["uid"] = format!("uid-{}", s.version).into();
        m["generation"] = 1.into();
        m["creationTimestamp"] = "2026-12-02T00:00:00Z".into();
        obj
    }

    fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        ctype: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let mut s = lock(&self.state);
        s.log.push(format!("{method} {path}?{query}"));
        if let Some(f) = s
            .faults
            .iter_mut()
            .find(|f| f.times > 0 && f.method == method && path.contains(&f.path_contains))
        {
            f.times -= 1;
            let code = f.code;
            let reason = match code {
                409 => "Conflict",
                404 => "NotFound",
                _ => "InternalError",
            };
            return status(
                code,
                reason,
                &format!("injected failure {code} for {method} {path}"),
            );
        }
        let (collection, name, sub) = split(path);
        let input: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", &format!("body is not JSON: {e}")),
            }
        };
        match (method, name) {
            ("GET", None) => {
                let selector = query_param(query, "labelSelector").unwrap_or_default();
                let items: Vec<Value> = s
                    .objects
                    .get(&collection)
                    .map(|c| {
                        c.values()
                            .filter(|o| selector_matches(o, &selector))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "List",
                              "metadata": {"resourceVersion": s.version.to_string()}, "items": items}),
                )
            }
            ("GET", Some(n)) => match s.objects.get(&collection).and_then(|c| c.get(&n)) {
                Some(o) => (200, o.clone()),
                None => status(404, "NotFound", &format!("{collection} {n} not found")),
            },
            ("POST", None) => {
                let n = input["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if s.objects
                    .get(&collection)
                    .is_some_and(|c| c.contains_key(&n))
                {
                    return status(
                        409,
                        "AlreadyExists",
                        &format!("{collection} {n} already exists"),
                    );
                }
                let obj = Self::created(&mut s, input);
                s.objects
                    .entry(collection)
                    .or_default()
                    .insert(n, obj.clone());
                (201, obj)
            }
            ("PATCH", Some(n)) => {
                Self::patch(&mut s, &collection, &n, sub.as_deref(), ctype, input)
            }
            ("DELETE", Some(n)) => {
                let Some(obj) = s.objects.get_mut(&collection).and_then(|c| c.get_mut(&n)) else {
                    return status(404, "NotFound", &format!("{collection} {n} not found"));
                };
                let has_finalizers = obj["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if has_finalizers {
                    obj["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:01Z".into();
                    (200, obj.clone())
                } else {
                    let gone = s.objects.get_mut(&collection).and_then(|c| c.remove(&n));
                    (200, gone.unwrap_or(Value::Null))
                }
            }
            _ => status(405, "MethodNotAllowed", &format!("{method} {path}")),
        }
    }

    fn patch(
        s: &mut State,
        collection: &str,
        name: &str,
        sub: Option<&str>,
        ctype: &str,
        input: Value,
    ) -> (u16, Value) {
        let existing = s.objects.get(collection).and_then(|c| c.get(name)).cloned();
        let is_new = existing.is_none();
        let apply = ctype.starts_with("application/apply-patch");
        let mut obj = match (existing, apply) {
            (Some(o), _) => o,
            (None, true) => Self::created(s, json!({"metadata": {"name": name}})),
            (None, false) => {
                return status(404, "NotFound", &format!("{collection} {name} not found"))
            }
        };
        let before_spec = obj["spec"].clone();
        let mut next = obj.clone();
        if ctype.starts_with("application/json-patch") {
            let ops: json_patch::Patch = match serde_json::from_value(input) {
                Ok(p) => p,
                Err(e) => return status(400, "BadRequest", &format!("not a JSON patch: {e}")),
            };
            // As the API server's JSON Patch does: `test` for null passes on a missing path.
            let ops = json_patch::Patch(
                ops.0
                    .into_iter()
                    .filter(|op| match op {
                        json_patch::PatchOperation::Test(t) => {
                            !(t.value.is_null() && next.pointer(t.path.as_str()).is_none())
                        }
                        _ => true,
                    })
                    .collect(),
            );
            if let Err(e) = json_patch::patch(&mut next, &ops) {
                return status(
                    422,
                    "Invalid",
                    &format!("the JSON patch does not apply: {e}"),
                );
            }
        } else {
            merge(&mut next, &input);
        }
        // The status subresource changes only the status; the main resource never does.
        if sub == Some("status") {
            obj["status"] = next["status"].clone();
        } else {
            next["status"] = obj["status"].clone();
            if next["status"].is_null() {
                if let Some(m) = next.as_object_mut() {
                    m.remove("status");
                }
            }
            obj = next;
        }
        s.version += 1;
        obj["metadata"]["resourceVersion"] = s.version.to_string().into();
        if obj["spec"] != before_spec && !is_new {
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(0);
            obj["metadata"]["generation"] = (g + 1).into();
        }
        let deleting = !obj["metadata"]["deletionTimestamp"].is_null();
        let finalizers_left = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let c = s.objects.entry(collection.into()).or_default();
        if deleting && !finalizers_left {
            c.remove(name);
        } else {
            c.insert(name.into(), obj.clone());
        }
        (200, obj)
    }
}
