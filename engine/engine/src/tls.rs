//! TLS for FIX connections (rustls): server configuration for acceptors (optionally
//! requiring client certificates), client configuration for initiators.

use crate::config::TlsSection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};

/// A connection, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A boxed connection.
pub(crate) type BoxIo = Box<dyn Io>;

/// Setting up TLS failed.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("TLS: cannot load {what} from {path}: {detail}")]
    Load {
        /// Certificate, key or CA.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// rustls refused the configuration (e.g. key does not match the certificate).
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
    /// A required setting is missing.
    #[error("TLS: {0}")]
    Missing(&'static str),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let load = |detail: String| TlsError::Load {
        what,
        path: path.display().to_string(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| load(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| load(e.to_string()))?;
    if certs.is_empty() {
        return Err(load("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Load {
        what: "the private key",
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs(path, "CA certificates")? {
        store.add(c)?;
    }
    Ok(store)
}

/// Acceptor side: our certificate and key; with `ca`, clients must present a certificate
/// signed by it (mutual TLS).
pub fn server_config(t: &TlsSection) -> Result<Arc<ServerConfig>, TlsError> {
    let cert = t.cert.as_deref().ok_or(TlsError::Missing(
        "an acceptor needs tls.cert (PEM certificate chain)",
    ))?;
    let key_path = t.key.as_deref().ok_or(TlsError::Missing(
        "an acceptor needs tls.key (PEM private key)",
    ))?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &t.ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Load {
                what: "CA certificates",
                path: ca.display().to_string(),
                detail: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_single_cert(
        certs(cert, "the certificate chain")?,
        key(key_path)?,
    )?))
}

/// Initiator side: trust `ca`; present `cert`/`key` when both are given.
pub fn client_config(t: &TlsSection) -> Result<Arc<ClientConfig>, TlsError> {
    let ca = t.ca.as_deref().ok_or(TlsError::Missing(
        "an initiator needs tls.ca (PEM certificates it trusts)",
    ))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca)?);
    let config = match (&t.cert, &t.key) {
        (Some(c), Some(k)) => {
            builder.with_client_auth_cert(certs(c, "the certificate chain")?, key(k)?)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name the initiator verifies: `tls.server_name`, else the connect address's IP.
pub fn server_name(
    t: &TlsSection,
    addr: std::net::SocketAddr,
) -> Result<ServerName<'static>, TlsError> {
    match &t.server_name {
        Some(n) => ServerName::try_from(n.clone()).map_err(|_| {
            TlsError::Missing("tls.server_name is not a valid DNS name or IP address")
        }),
        None => Ok(ServerName::IpAddress(addr.ip().into())),
    }
}

/// The replication channel's TLS: every instance presents a certificate signed by the
/// group's CA and checks the other end's (mutual TLS), as the leader serving its
/// journal and as a standby following.
#[derive(Clone)]
pub(crate) struct ReplicationTls {
    /// The leader side (client certificates required).
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    /// The standby side (presents its certificate).
    pub(crate) connector: tokio_rustls::TlsConnector,
    /// The name to verify in the leader's certificate, when set.
    server_name: Option<String>,
}

impl ReplicationTls {
    /// From `[engine.replication.tls]`: `cert`, `key` and `ca` are all required.
    pub(crate) fn new(t: &TlsSection) -> Result<Self, TlsError> {
        if t.cert.is_none() || t.key.is_none() || t.ca.is_none() {
            return Err(TlsError::Missing(
                "[engine.replication.tls] needs cert, key and ca: every instance presents a certificate signed by the group's CA and checks the other end's",
            ));
        }
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(server_config(t)?),
            connector: tokio_rustls::TlsConnector::from(client_config(t)?),
            server_name: t.server_name.clone(),
        })
    }

    /// The name to verify when following `peer` (`HOST:PORT`): `server_name`, else the
    /// host part (an IP address or a DNS name).
    pub(crate) fn name_for(&self, peer: &str) -> Result<ServerName<'static>, TlsError> {
        let host = match &self.server_name {
            Some(n) => n.clone(),
            None => {
                let host = peer.rsplit_once(':').map_or(peer, |(h, _)| h);
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string()
            }
        };
        ServerName::try_from(host).map_err(|_| {
            TlsError::Missing("the replication peer's host (or tls.server_name) is not a valid DNS name or IP address")
        })
    }
}
