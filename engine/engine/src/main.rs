//! `fix-engine`: runs FIX sessions from a configuration file, or with embedded defaults.

use clap::Parser;
use fix_engine::EngineConfig;
use std::path::PathBuf;

/// A FIX engine that journals every message before it is sent or delivered.
///
/// Without --config it runs the embedded default: one FIX.4.4 acceptor on 127.0.0.1:9878
/// (SenderCompID EXEC, TargetCompID CLIENT) with the `exec` exchange simulator, journaling
/// to ./fix-data. Stop it with Ctrl-C or SIGTERM: sessions are logged out first.
#[derive(Debug, Parser)]
#[command(name = "fix-engine", version)]
struct Cli {
    /// Engine configuration (TOML). See engine/engine/README.md for the keys.
    #[arg(short, long, value_name = "FILE", conflicts_with_all = ["quickfix_settings", "config_env"])]
    config: Option<PathBuf>,
    /// Take the configuration (TOML) from this environment variable instead of a file:
    /// on ECS the task definition fills it from an SSM parameter (the image has no shell
    /// to write it to a file first).
    #[arg(long, value_name = "VAR", conflicts_with = "quickfix_settings")]
    config_env: Option<String>,
    /// Run from a QuickFIX / QuickFIX/J settings file ([DEFAULT]/[SESSION] sections)
    /// instead; unknown keys are reported as warnings.
    #[arg(long, value_name = "FILE")]
    quickfix_settings: Option<PathBuf>,
    /// Data directory for the embedded default configuration.
    #[arg(long, value_name = "DIR", default_value = "fix-data")]
    data_dir: PathBuf,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let config = match (&cli.config, &cli.quickfix_settings) {
        (Some(path), _) => EngineConfig::from_file(path)?,
        (None, _) if cli.config_env.is_some() => {
            let var = cli.config_env.as_deref().unwrap_or_default();
            let text = std::env::var(var).ok().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                anyhow::anyhow!("--config-env {var}: the environment variable {var} is not set or empty: set it to the engine's TOML (on ECS, a secret from the SSM parameter fixctl deploy writes)")
            })?;
            EngineConfig::from_toml(&text, &format!("${var}"))?
        }
        (None, Some(path)) => {
            let imported = fix_engine::quickfix_settings::import_file(path)?;
            for w in &imported.warnings {
                tracing::warn!("{w}");
            }
            imported.config
        }
        (None, None) => EngineConfig::embedded_default(cli.data_dir.clone()),
    };
    let plans = config.plans()?;
    if cli.check {
        for p in &plans {
            println!("ok: {} ({:?})", p.config.id, p.config.role);
        }
        return Ok(());
    }
    Ok(fix_engine::runtime::run(config)?)
}
