//! The deployment file `fixctl deploy --file deploy.yaml`: which stacks, in which order,
//! from which templates and with which parameters, and the engines' configuration to
//! write to SSM.
//!
//! ```yaml
//! region: us-east-1
//! stacks:
//!   - name: fix-network
//!     template: infra/network.yaml
//!   - name: fix-config
//!     template: infra/config.yaml
//!     parameters: {ConfigParameterPrefix: /fix/engines}
//! engineConfig:
//!   prefix: /fix/engines
//!   files: {engine-a: engines/a.toml, engine-b: engines/b.toml}
//! supervisorConfig:                    # infra/supervisor.yaml's ConfigParameter
//!   parameter: /fix/supervisor
//!   file: supervisor.toml
//! ```
//!
//! An output of an earlier stack whose key is a parameter of a later template is passed
//! on, unless the file sets that parameter itself.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The deployment file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not describe a deployment.
    #[error("{path} is not a valid deployment file: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (with line and column).
        message: String,
    },
    /// A value is not allowed.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// One stack to create or update.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StackPlan {
    /// The stack's name.
    pub name: String,
    /// The template, relative to the deployment file.
    pub template: PathBuf,
    /// Parameter values.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Region of this stack (default: the file's), e.g. us-west-2 for the global stacks.
    #[serde(default)]
    pub region: Option<String>,
}

/// The engines' TOML files, written to SSM as `PREFIX/NAME`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EngineConfigPlan {
    /// The SSM path prefix (the engines stack's `ConfigParameterPrefix`).
    pub prefix: String,
    /// Engine name → its TOML file (relative to the deployment file).
    pub files: BTreeMap<String, PathBuf>,
}

/// The ECS supervisor's TOML (fixctl's format), written to SSM as `parameter`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfigPlan {
    /// The SSM parameter (the supervisor stack's `ConfigParameter`).
    pub parameter: String,
    /// Its TOML file (relative to the deployment file).
    pub file: PathBuf,
}

/// The whole deployment.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeployPlan {
    /// The default region.
    pub region: String,
    /// The AWS endpoint to call instead of AWS's (an emulator such as moto; fixed test
    /// credentials are used with it).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// The stacks, in dependency order.
    pub stacks: Vec<StackPlan>,
    /// The engines' configuration.
    #[serde(default)]
    pub engine_config: Option<EngineConfigPlan>,
    /// The ECS supervisor's configuration.
    #[serde(default)]
    pub supervisor_config: Option<SupervisorConfigPlan>,
    /// The rolling upgrade of the engines stack when its image changes.
    #[serde(default)]
    pub rollout: Option<super::rollout::RolloutPlan>,
    /// Where the file is (templates and TOML files are relative to it).
    #[serde(skip)]
    pub base: PathBuf,
}

impl DeployPlan {
    /// Reads and checks a deployment file.
    pub fn from_file(path: &Path) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut plan: Self = serde_yaml::from_str(&text).map_err(|e| PlanError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        plan.base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        plan.check(&path.display().to_string())?;
        Ok(plan)
    }

    fn check(&self, path: &str) -> Result<(), PlanError> {
        let bad = |message: String| PlanError::Invalid {
            path: path.to_string(),
            message,
        };
        if self.stacks.is_empty() {
            return Err(bad(
                "stacks is empty: list the stacks to deploy, in order".into()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.stacks {
            let valid = !s.name.is_empty()
                && s.name.len() <= 128
                && s.name.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !valid {
                return Err(bad(format!(
                    "stack name {:?}: use letters, digits and '-', starting with a letter",
                    s.name
                )));
            }
            if !seen.insert((s.region.clone(), s.name.clone())) {
                return Err(bad(format!("stack {} is listed twice", s.name)));
            }
            if !self.base.join(&s.template).is_file() {
                return Err(bad(format!(
                    "stack {}: template {} does not exist (paths are relative to the deployment file)",
                    s.name,
                    s.template.display()
                )));
            }
        }
        if let Some(r) = &self.rollout {
            self.check_rollout(r).map_err(bad)?;
        }
        if let Some(s) = &self.supervisor_config {
            if !s.parameter.starts_with('/') {
                return Err(bad(format!(
                    "supervisorConfig.parameter {:?} must start with '/'",
                    s.parameter
                )));
            }
        }
        if let Some(e) = &self.engine_config {
            if !e.prefix.starts_with('/') {
                return Err(bad(format!(
                    "engineConfig.prefix {:?} must start with '/'",
                    e.prefix
                )));
            }
        }
        Ok(())
    }

    fn check_rollout(&self, r: &super::rollout::RolloutPlan) -> Result<(), String> {
        let stack = self
            .stacks
            .iter()
            .find(|s| s.name == r.stack)
            .ok_or_else(|| format!("rollout.stack {} is not one of the stacks", r.stack))?;
        if r.engines.len() < 2 {
            return Err("rollout.engines: list every engine of the group (at least two: the leader and a standby)".into());
        }
        let template = self.template(stack).map_err(|e| e.to_string())?;
        let declared = template_parameters(&template);
        for p in
            std::iter::once(&r.image_parameter).chain(r.engines.iter().map(|e| &e.image_parameter))
        {
            if !declared.contains(p) {
                return Err(format!(
                    "rollout: {p} is not a parameter of {} (each engine needs a parameter that pins its image; see infra/engines.yaml)",
                    stack.template.display()
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for e in &r.engines {
            if !names.insert(&e.name) {
                return Err(format!("rollout.engines: {} is listed twice", e.name));
            }
        }
        Ok(())
    }

    /// A template's text.
    pub fn template(&self, stack: &StackPlan) -> Result<String, PlanError> {
        read(&self.base.join(&stack.template))
    }

    /// The engines' `(SSM name, TOML)`, each TOML checked by the engine's parser.
    pub fn engine_parameters(&self) -> Result<Vec<(String, String)>, PlanError> {
        let Some(e) = &self.engine_config else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, file) in &e.files {
            let path = self.base.join(file);
            let text = read(&path)?;
            check_toml(&text, &path)?;
            out.push((format!("{}/{name}", e.prefix.trim_end_matches('/')), text));
        }
        Ok(out)
    }
}

impl DeployPlan {
    /// The ECS supervisor's `(SSM name, TOML)`, checked by fixctl's parser.
    pub fn supervisor_parameter(&self) -> Result<Option<(String, String)>, PlanError> {
        let Some(s) = &self.supervisor_config else {
            return Ok(None);
        };
        let path = self.base.join(&s.file);
        let text = read(&path)?;
        crate::config::FixctlConfig::from_toml(&text, &path.display().to_string()).map_err(
            |e| PlanError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            },
        )?;
        Ok(Some((s.parameter.clone(), text)))
    }
}

fn read(path: &Path) -> Result<String, PlanError> {
    std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The engine reads it as TOML with its own types (environment-variable lease URLs are
/// resolved on the engine's host, not here).
fn check_toml(text: &str, path: &Path) -> Result<(), PlanError> {
    let config: fix_engine::config::EngineConfig =
        toml::from_str(text).map_err(|e| PlanError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    config.plans().map_err(|e| PlanError::Invalid {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(())
}

/// The parameter names a template declares (its `Parameters` section).
pub fn template_parameters(template: &str) -> Vec<String> {
    // Only the top-level `Parameters:` block is read: two-space-indented keys under it.
    let mut out = Vec::new();
    let mut inside = false;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            inside = line.trim_end() == "Parameters:";
            continue;
        }
        if inside {
            if let Some(key) = line
                .strip_prefix("  ")
                .filter(|l| !l.starts_with(' '))
                .and_then(|l| l.strip_suffix(':'))
            {
                out.push(key.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::template_parameters;

    #[test]
    fn a_templates_parameters_are_its_top_level_parameter_keys() {
        let t = "AWSTemplateFormatVersion: \"2010-09-09\"\nParameters:\n  Name:\n    Type: String\n  Port:\n    Type: Number\nResources:\n  Vpc:\n    Type: AWS::EC2::VPC\n";
        assert_eq!(template_parameters(t), vec!["Name", "Port"]);
    }
}
