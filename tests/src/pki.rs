//! Certificates for TLS tests: a CA of its own per test and leaf certificates it signs,
//! written as PEM files.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use std::path::{Path, PathBuf};

/// A certificate authority: its certificate's PEM file and what signs leaves.
pub struct Ca {
    /// The CA certificate (PEM), what peers trust.
    pub pem: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write pem");
    p
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

impl Ca {
    /// A new CA, its certificate written to `dir/NAME.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = common_name(name);
        let cert = params.self_signed(&key).expect("ca cert");
        Self {
            pem: write(dir, &format!("{name}.pem"), &cert.pem()),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) signed by this CA:
    /// `(dir/NAME.pem, dir/NAME.key)`.
    pub fn leaf(&self, dir: &Path, name: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        // A subject of its own: OpenSSL takes a leaf whose subject is its issuer's for a
        // self-signed certificate.
        params.distinguished_name = common_name(name);
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        (
            write(dir, &format!("{name}.pem"), &cert.pem()),
            write(dir, &format!("{name}.key"), &key.serialize_pem()),
        )
    }
}
