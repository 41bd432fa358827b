//! Optional TLS for the HTTP endpoints with the node's server certificate (PEM files),
//! on rustls with the ring provider: the project's one crypto stack. The certificate's
//! SHA-256 is what the node advertises to its peers, which pin it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS acceptor for the certificate chain in `cert` and the private key in `key`, and
/// the SHA-256 (hex) of the first certificate.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<(TlsAcceptor, String)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("no valid PEM certificate in {}", cert.display()))?;
    let Some(leaf) = chain.first() else { anyhow::bail!("no certificate in {}", cert.display()) };
    let fingerprint = super::client::cert_sha256(leaf.as_ref());
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("no valid PEM private key in {}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the private key do not fit together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), fingerprint))
}
