//! TLS client settings shared by the sinks that open their own sockets (syslog over TLS, Kafka,
//! OTLP over gRPC), the one `ca_file` loader and the one mTLS client-identity loader
//! (`client_cert_file` + `client_key_file`; the HTTP client uses both too):
//! the system's roots plus an optional `ca_file`, verification always on. The crypto provider is
//! named explicitly (aws-lc-rs, as reqwest uses) because two providers are linked in (rskafka
//! brings ring), and rustls refuses to guess between them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificates of a PEM `ca_file` (at least one); the one loader for the HTTP client and
/// the sinks' own TLS sockets.
pub fn read_ca_file(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading ca_file {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing ca_file {} (PEM)", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "ca_file {} holds no certificate",
        path.display()
    );
    Ok(certs)
}

/// A client certificate chain and its private key, for mutual TLS.
pub struct ClientIdentity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Both files' PEM text back to back (what reqwest's `Identity::from_pem` reads).
    pub pem: Vec<u8>,
}

/// Reads `cert_file` (PEM chain, leaf first) and `key_file` (PEM PKCS#8, PKCS#1 or SEC1 key);
/// errors name the file, never its content.
pub fn read_identity(cert_file: &Path, key_file: &Path) -> anyhow::Result<ClientIdentity> {
    let cert_pem = std::fs::read(cert_file)
        .with_context(|| format!("reading client_cert_file {}", cert_file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing client_cert_file {} (PEM)", cert_file.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "client_cert_file {} holds no certificate",
        cert_file.display()
    );
    let key_pem = std::fs::read(key_file)
        .with_context(|| format!("reading client_key_file {}", key_file.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        anyhow::anyhow!(
            "client_key_file {} holds no PEM private key",
            key_file.display()
        )
    })?;
    let mut pem = cert_pem;
    pem.push(b'\n');
    pem.extend_from_slice(&key_pem);
    Ok(ClientIdentity { certs, key, pem })
}

/// A client config trusting the system roots and the certificates in `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    client_config_with(ca_file, None)
}

/// `client_config`, presenting `identity` when the server asks for a client certificate.
pub fn client_config_with(
    ca_file: Option<&Path>,
    identity: Option<ClientIdentity>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    // Missing or unreadable system roots are not fatal when a ca_file is given.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots
                .add(cert)
                .with_context(|| format!("adding a certificate of ca_file {}", path.display()))?;
        }
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "no trusted CA certificates: the system has none and no ca_file is set"
    );
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.certs, id.key)
            .context("client_cert_file and client_key_file do not form a usable identity")?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The host part of `host:port` (IPv6 in brackets allowed), for SNI and certificate checks.
pub fn server_name(address: &str) -> anyhow::Result<rustls_pki_types::ServerName<'static>> {
    let host = split_host_port(address)
        .map(|(h, _)| h)
        .with_context(|| format!("address {address:?} is not host:port"))?;
    rustls_pki_types::ServerName::try_from(host.to_string())
        .with_context(|| format!("{host:?} is not a valid TLS server name"))
}

/// Splits `host:port` / `[v6]:port`.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(':') && !address.starts_with('[') {
        return None;
    }
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_pairs_split() {
        assert_eq!(
            split_host_port("siem.example:6514"),
            Some(("siem.example", 6514))
        );
        assert_eq!(split_host_port("[::1]:514"), Some(("::1", 514)));
        assert_eq!(split_host_port("::1:514"), None);
        assert_eq!(split_host_port("host"), None);
        assert_eq!(split_host_port(":514"), None);
        assert_eq!(split_host_port("host:99999"), None);
    }
}
