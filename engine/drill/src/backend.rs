//! The lease stores a drill runs against, each prepared fresh, with a way to take it away
//! (an outage) and bring it back.
//!
//! PostgreSQL, MariaDB and DynamoDB (moto) are reached through a [`Proxy`] that can be
//! cut; SQLite is made unavailable by another connection holding an exclusive lock.

use crate::proxy::Proxy;
use sqlx::Connection;
use std::net::SocketAddr;
use std::path::Path;

/// A lease backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// A SQLite file (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB (Aurora MySQL's stand-in).
    Mysql,
    /// DynamoDB (moto here).
    Dynamodb,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 4] = [
        Backend::Sqlite,
        Backend::Postgres,
        Backend::Mysql,
        Backend::Dynamodb,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Dynamodb => "dynamodb",
        }
    }
}

/// Where the servers are (admin connections used to create fresh databases).
#[derive(Debug, Clone)]
pub struct Servers {
    /// PostgreSQL admin URL.
    pub postgres: String,
    /// MySQL/MariaDB admin URL.
    pub mysql: String,
    /// moto's endpoint, e.g. `http://127.0.0.1:5000`.
    pub moto: Option<String>,
}

impl Servers {
    /// From `FIX_TEST_POSTGRES_URL`, `FIX_TEST_MYSQL_URL` and `FIX_TEST_MOTO_URL`, with
    /// this machine's defaults for the first two.
    pub fn from_env() -> Self {
        Self {
            postgres: std::env::var("FIX_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            mysql: std::env::var("FIX_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
            moto: std::env::var("FIX_TEST_MOTO_URL").ok(),
        }
    }
}

/// Preparing a lease store failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The server could not be reached or refused.
    #[error(
        "{backend}: {detail} (is it running? scripts/test.sh starts PostgreSQL, MariaDB and moto)"
    )]
    Unreachable {
        /// Which backend.
        backend: &'static str,
        /// What happened.
        detail: String,
    },
    /// No moto endpoint was given.
    #[error("dynamodb: set FIX_TEST_MOTO_URL (or --moto-url) to a running moto server")]
    NoMoto,
}

enum Outage {
    /// The networked stores: a shared proxy (`url`) and one per engine.
    Proxies {
        /// The URL with `HOSTPORT` where a proxy's address goes.
        template: String,
        target: SocketAddr,
        shared: Proxy,
        per_node: Vec<(usize, Proxy)>,
    },
    SqliteLock {
        url: String,
        held: Option<sqlx::SqliteConnection>,
    },
}

/// A fresh lease store for one drill or test.
pub struct LeaseDb {
    /// The URL engines use (through the proxy where there is one).
    pub url: String,
    backend: Backend,
    outage: Outage,
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Databases of earlier drills to drop: created more than an hour ago (the name carries
/// its creation time), so a drill or test running now keeps its own.
fn leftovers(names: Vec<String>) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hour = 3_600_000_000_000u128;
    names
        .into_iter()
        .filter(|n| {
            n.starts_with("fixdrill_")
                && n.rsplit('_')
                    .next()
                    .and_then(|t| t.parse::<u128>().ok())
                    .is_some_and(|t| t + hour < now)
        })
        .collect()
}

/// Drops old drill databases (see [`leftovers`]) and creates a new one on connection
/// `$c`; evaluates to its name or the error text.
macro_rules! fresh_database {
    ($c:ident, $list:literal, $drop_suffix:literal) => {
        async {
            let old: Vec<String> = sqlx::query_scalar($list)
                .fetch_all(&mut $c)
                .await
                .unwrap_or_default();
            for db in leftovers(old) {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} {}", $drop_suffix))
                    .execute(&mut $c)
                    .await;
            }
            let name = unique("fixdrill");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut $c)
                .await
                .map(|_| name)
                .map_err(|e| e.to_string())
        }
        .await
    };
}

fn host_port(url: &str) -> Option<(String, String, String)> {
    // scheme://[user@]host:port/rest
    let (scheme, rest) = url.split_once("://")?;
    let (auth, after) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hostport) = match auth.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), auth),
    };
    Some((
        format!("{scheme}://{user}"),
        hostport.to_string(),
        after.to_string(),
    ))
}

async fn resolve(hostport: &str) -> Option<SocketAddr> {
    tokio::net::lookup_host(hostport).await.ok()?.next()
}

impl LeaseDb {
    /// Creates a fresh database (or table, or file) for `backend`.
    pub async fn prepare(
        backend: Backend,
        servers: &Servers,
        dir: &Path,
    ) -> Result<Self, BackendError> {
        let err = |detail: String| BackendError::Unreachable {
            backend: backend.name(),
            detail,
        };
        let (url, target) = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.join("lease.db").display());
                return Ok(Self {
                    url: url.clone(),
                    backend,
                    outage: Outage::SqliteLock { url, held: None },
                });
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&servers.postgres)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                let name = fresh_database!(
                    c,
                    "SELECT datname FROM pg_database WHERE datname LIKE 'fixdrill_%'",
                    "WITH (FORCE)"
                )
                .map_err(err)?;
                let (head, hostport, _) =
                    host_port(&servers.postgres).ok_or_else(|| err("bad URL".into()))?;
                (format!("{head}HOSTPORT/{name}"), hostport)
            }
            Backend::Mysql => {
                let mut c = sqlx::MySqlConnection::connect(&servers.mysql)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                let name = fresh_database!(
                    c,
                    "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE 'fixdrill\\_%'",
                    ""
                )
                .map_err(err)?;
                let (head, hostport, _) =
                    host_port(&servers.mysql).ok_or_else(|| err("bad URL".into()))?;
                (format!("{head}HOSTPORT/{name}"), hostport)
            }
            Backend::Dynamodb => {
                let moto = servers.moto.as_deref().ok_or(BackendError::NoMoto)?;
                let hostport = moto
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string();
                let table = unique("fixdrill");
                (
                    format!("dynamodb://{table}?region=us-east-1&endpoint=http://HOSTPORT"),
                    hostport,
                )
            }
        };
        let target = resolve(&target)
            .await
            .ok_or_else(|| err(format!("cannot resolve {target}")))?;
        let proxy = Proxy::start(target)
            .await
            .map_err(|e| err(format!("starting the outage proxy: {e}")))?;
        let template = url;
        let url = template.replace("HOSTPORT", &proxy.addr().to_string());
        if backend == Backend::Dynamodb {
            // Create the table now, once, rather than racing two engines to it.
            fix_lease::connect(&url)
                .await
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(Self {
            url,
            backend,
            outage: Outage::Proxies {
                template,
                target,
                shared: proxy,
                per_node: Vec::new(),
            },
        })
    }

    /// The URL engine `node` uses: through a proxy of its own where the store is
    /// networked, so that one engine alone can be cut off ([`LeaseDb::cut_node`]).
    pub async fn node_url(&mut self, node: usize) -> Result<String, BackendError> {
        let backend = self.backend.name();
        match &mut self.outage {
            Outage::SqliteLock { .. } => Ok(self.url.clone()),
            Outage::Proxies {
                template,
                target,
                per_node,
                ..
            } => {
                let proxy = Proxy::start(*target)
                    .await
                    .map_err(|e| BackendError::Unreachable {
                        backend,
                        detail: format!("starting a proxy: {e}"),
                    })?;
                let url = template.replace("HOSTPORT", &proxy.addr().to_string());
                per_node.push((node, proxy));
                Ok(url)
            }
        }
    }

    /// Cuts engine `node` alone off the lease store (a network cut); false for SQLite,
    /// which has no network to cut.
    pub fn cut_node(&self, node: usize) -> bool {
        self.node_proxies(node, Proxy::cut)
    }

    /// Reconnects engine `node`.
    pub fn restore_node(&self, node: usize) -> bool {
        self.node_proxies(node, Proxy::restore)
    }

    fn node_proxies(&self, node: usize, f: fn(&Proxy)) -> bool {
        match &self.outage {
            Outage::Proxies { per_node, .. } => {
                per_node
                    .iter()
                    .filter(|(n, _)| *n == node)
                    .for_each(|(_, p)| f(p));
                true
            }
            Outage::SqliteLock { .. } => false,
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Takes the lease store away: every engine's lease call fails or hangs.
    pub async fn cut(&mut self) -> Result<(), BackendError> {
        match &mut self.outage {
            Outage::Proxies {
                shared, per_node, ..
            } => {
                shared.cut();
                per_node.iter().for_each(|(_, p)| p.cut());
            }
            Outage::SqliteLock { url, held } => {
                let mut c = sqlx::SqliteConnection::connect(url).await.map_err(|e| {
                    BackendError::Unreachable {
                        backend: "sqlite",
                        detail: e.to_string(),
                    }
                })?;
                sqlx::query("BEGIN EXCLUSIVE")
                    .execute(&mut c)
                    .await
                    .map_err(|e| BackendError::Unreachable {
                        backend: "sqlite",
                        detail: format!("taking an exclusive lock: {e}"),
                    })?;
                *held = Some(c);
            }
        }
        Ok(())
    }

    /// Brings it back.
    pub async fn restore(&mut self) {
        match &mut self.outage {
            Outage::Proxies {
                shared, per_node, ..
            } => {
                shared.restore();
                per_node.iter().for_each(|(_, p)| p.restore());
            }
            Outage::SqliteLock { held, .. } => {
                if let Some(mut c) = held.take() {
                    let _ = sqlx::query("ROLLBACK").execute(&mut c).await;
                    let _ = c.close().await;
                }
            }
        }
    }
}
