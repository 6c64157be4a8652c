//! Reading a runbook file: YAML, parameters substituted, then checked.

use super::spec::{parse_duration, Action, Runbook};
use super::RunbookError;
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Reads the runbook at `path` with `given` parameters (defaults fill the rest). Returns
/// it with every `{{name}}` replaced, and the parameters it ran with.
pub fn load(
    path: &Path,
    given: &BTreeMap<String, String>,
) -> Result<(Runbook, BTreeMap<String, String>), RunbookError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunbookError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string(), given)
}

/// Like [`load`], from text; `origin` names it in errors.
pub fn parse(
    text: &str,
    origin: &str,
    given: &BTreeMap<String, String>,
) -> Result<(Runbook, BTreeMap<String, String>), RunbookError> {
    let invalid = |message: String| RunbookError::Invalid {
        path: origin.to_string(),
        message,
    };
    // Read once as written, for the parameter list and to catch format errors early.
    let raw: Runbook = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    for name in given.keys() {
        if !raw.parameters.contains_key(name) {
            let known: Vec<&str> = raw.parameters.keys().map(String::as_str).collect();
            return Err(invalid(format!(
                "unknown parameter {name} (this runbook takes: {})",
                known.join(", ")
            )));
        }
    }
    let mut values = BTreeMap::new();
    for (name, p) in &raw.parameters {
        let v = given
            .get(name)
            .cloned()
            .or_else(|| p.default.clone())
            .ok_or_else(|| {
                invalid(format!(
                    "parameter {name} is required ({}): pass --param {name}=VALUE",
                    p.description
                ))
            })?;
        values.insert(name.clone(), v);
    }
    let mut doc: Value = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    substitute(&mut doc, &values).map_err(invalid)?;
    let runbook: Runbook = serde_yaml::from_value(doc).map_err(|e| invalid(e.to_string()))?;
    check(&runbook).map_err(invalid)?;
    Ok((runbook, values))
}

/// Replaces `{{name}}` (spaces allowed inside the braces) in every string of `v`.
fn substitute(v: &mut Value, values: &BTreeMap<String, String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find("}}")
                    .ok_or_else(|| format!("unclosed {{{{ in \"{s}\""))?;
                let name = after[..end].trim();
                let value = values.get(name).ok_or_else(|| {
                    format!("\"{s}\" uses {{{{{name}}}}}, which is not a declared parameter")
                })?;
                out.push_str(value);
                rest = &after[end + 2..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Sequence(items) => {
            for i in items {
                substitute(i, values)?;
            }
        }
        Value::Mapping(m) => {
            for (_, i) in m.iter_mut() {
                substitute(i, values)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// What the schema cannot say: unique step ids, durations that parse.
fn check(r: &Runbook) -> Result<(), String> {
    if r.steps.is_empty() {
        return Err("it has no steps".into());
    }
    let mut ids = BTreeSet::new();
    for s in &r.steps {
        if !ids.insert(s.id.as_str()) {
            return Err(format!("step id {} is used twice", s.id));
        }
        if parse_duration(&s.timeout).is_none() {
            return Err(format!(
                "step {}: timeout \"{}\" is not a duration (write 30s, 500ms or 2m)",
                s.id, s.timeout
            ));
        }
        for a in s.action.iter().chain(s.rollback.iter()) {
            if let Action::MoveLease { pause, .. } = a {
                if parse_duration(pause).is_none() {
                    return Err(format!(
                        "step {}: pause \"{pause}\" is not a duration (write 30s, 500ms or 2m)",
                        s.id
                    ));
                }
            }
        }
    }
    Ok(())
}
