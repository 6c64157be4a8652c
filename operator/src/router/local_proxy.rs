//! The local proxy: one TCP listener that forwards each client connection to the current
//! leader, and closes the established connections to an endpoint once it is demoted. On
//! one machine it plays Global Accelerator's role.

use super::{RouteError, TrafficRouter};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy.
pub struct LocalProxy {
    addr: SocketAddr,
    endpoints: BTreeMap<String, SocketAddr>,
    target: watch::Sender<Option<String>>,
    task: JoinHandle<()>,
}

impl LocalProxy {
    /// Listens on `listen` (port 0 for any) in front of the named `endpoints`; routes
    /// nowhere until [`TrafficRouter::route_to`].
    pub async fn start(
        listen: SocketAddr,
        endpoints: BTreeMap<String, SocketAddr>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (target, watch) = watch::channel(None);
        let task = tokio::spawn(accept_loop(listener, endpoints.clone(), watch));
        Ok(Self {
            addr,
            endpoints,
            target,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LocalProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl TrafficRouter for LocalProxy {
    async fn route_to(&self, instance: &str) -> Result<(), RouteError> {
        if !self.endpoints.contains_key(instance) {
            let known: Vec<&str> = self.endpoints.keys().map(String::as_str).collect();
            return Err(RouteError::UnknownEndpoint(
                instance.to_string(),
                known.join(", "),
            ));
        }
        self.target.send_replace(Some(instance.to_string()));
        tracing::info!(to = instance, "local proxy: routing to the new leader");
        Ok(())
    }

    async fn drain(&self) -> Result<(), RouteError> {
        // Established connections close (their endpoint is no longer the target) and
        // new ones are refused.
        self.target.send_replace(None);
        tracing::info!("local proxy: drained");
        Ok(())
    }

    async fn current(&self) -> Result<Option<String>, RouteError> {
        Ok(self.target.borrow().clone())
    }

    fn name(&self) -> &'static str {
        "local-proxy"
    }
}

async fn accept_loop(
    listener: TcpListener,
    endpoints: BTreeMap<String, SocketAddr>,
    target: watch::Receiver<Option<String>>,
) {
    while let Ok((client, peer)) = listener.accept().await {
        let Some(name) = target.borrow().clone() else {
            tracing::debug!(%peer, "local proxy: no leader to route to; closing");
            continue;
        };
        let Some(addr) = endpoints.get(&name).copied() else {
            continue;
        };
        let mut watch = target.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(addr).await else {
                tracing::debug!(%peer, %addr, "local proxy: the leader refused the connection");
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut client, mut server) = (client, server);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = watch.wait_for(|t| t.as_deref() != Some(name.as_str())) => {
                    tracing::info!(%peer, from = %name, "local proxy: closing a connection to a demoted endpoint");
                }
            }
        });
    }
}
