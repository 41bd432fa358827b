//! Asking another node's status page (`/status.json`): the heartbeat's second signal,
//! and a DR node's look at the primary further up its chain. Plain HTTP, or HTTPS on
//! the project's one crypto stack (rustls on ring): the certificate must be the one whose
//! SHA-256 the node advertised over the trusted SSH channel (like an SSH host key), or
//! one the public roots vouch for. Bounded in time and size. The
//! error says whether the page did not answer ([`PageError::Down`]) or a configuration
//! stands in the way ([`PageError::Misconfigured`]): only the first may count toward a
//! failover.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::host::StatusUrl;

/// Largest status page read.
const MAX_PAGE: usize = 64 * 1024;

/// What a node's status page says (the fields the heartbeat looks at).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RemoteStatus {
    pub healthy: bool,
    pub node_id: String,
    pub hostname: String,
    /// `primary` or `secondary`.
    pub mode: String,
    pub epoch: u64,
    /// Set on a stale primary.
    #[serde(default)]
    pub stale: Option<String>,
}

/// Why a status page gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// It did not answer (unreachable, refused, timed out, an HTTP 5xx).
    #[error("{0}")]
    Down(String),
    /// Something that is not a failure of the node keeps it from answering: a
    /// certificate that is not the one advertised, an address that is no coresh page.
    #[error("{0}")]
    Misconfigured(String),
}

/// Asks the status page at `url`, within `timeout`; `pin` is the SHA-256 (hex) of the
/// certificate the node advertised.
pub async fn status(url: &StatusUrl, pin: Option<&str>, timeout: Duration) -> Result<RemoteStatus, PageError> {
    match tokio::time::timeout(timeout, fetch(url, pin)).await {
        Ok(result) => result.map_err(|e| match e {
            PageError::Down(why) => PageError::Down(format!("{url}: {why}")),
            PageError::Misconfigured(why) => PageError::Misconfigured(format!("{url}: {why}")),
        }),
        Err(_) => Err(PageError::Down(format!("{url}: no answer within {} ms", timeout.as_millis()))),
    }
}

async fn fetch(url: &StatusUrl, pin: Option<&str>) -> Result<RemoteStatus, PageError> {
    let down = |e: std::io::Error| PageError::Down(e.to_string());
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).await.map_err(down)?;
    let _ = tcp.set_nodelay(true);
    let body = if url.tls {
        let name = ServerName::try_from(url.host.clone())
            .map_err(|_| PageError::Misconfigured(format!("'{}' is not a TLS server name", url.host)))?;
        let stream = TlsConnector::from(tls_config(pin)?).connect(name, tcp).await.map_err(tls_error)?;
        get(stream, url).await?
    } else {
        get(tcp, url).await?
    };
    serde_json::from_slice(&body).map_err(|e| PageError::Misconfigured(format!("not a coresh status page: {e}")))
}

/// One `GET` over an open connection; the body, at most [`MAX_PAGE`] bytes.
async fn get<S>(stream: S, url: &StatusUrl) -> Result<Bytes, PageError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let down = |e: hyper::Error| PageError::Down(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(down)?;
    let driver = tokio::spawn(conn);
    let request = Request::get(url.path.as_str())
        .header(hyper::header::HOST, url.authority())
        .body(Empty::<Bytes>::new())
        .map_err(|e| PageError::Misconfigured(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(down)?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_PAGE)
        .collect()
        .await
        .map_err(|e| PageError::Down(format!("reading the page: {e}")))?
        .to_bytes();
    driver.abort();
    match status {
        StatusCode::OK => Ok(body),
        s if s.is_server_error() => Err(PageError::Down(format!("HTTP {}", s.as_u16()))),
        s => Err(PageError::Misconfigured(format!("not a coresh status page: HTTP {}", s.as_u16()))),
    }
}

/// A failed handshake: a certificate problem is a configuration error, the rest is the
/// connection failing.
fn tls_error(e: std::io::Error) -> PageError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(why)) => {
            PageError::Misconfigured(format!("TLS certificate refused: {why:?}"))
        }
        Some(other) => PageError::Misconfigured(format!("TLS: {other}")),
        None => PageError::Down(format!("TLS: {e}")),
    }
}

fn tls_config(pin: Option<&str>) -> Result<Arc<ClientConfig>, PageError> {
    let misconfigured = |e: &dyn std::fmt::Display| PageError::Misconfigured(format!("TLS: {e}"));
    let provider = Arc::new(default_provider());
    let roots = Arc::new(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    let public =
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build().map_err(|e| misconfigured(&e))?;
    let verifier = Arc::new(Pinned { sha256: pin.map(str::to_ascii_lowercase), public });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| misconfigured(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// SHA-256 (hex) of a DER certificate, as a node advertises its status page's.
pub fn cert_sha256(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// Accepts the certificate the node advertised (whatever its name or dates: trust comes
/// from the SSH channel that carried the advertisement, as for the node's host key), or
/// else one the public roots vouch for under the URL's name. The handshake signature is
/// checked either way.
#[derive(Debug)]
struct Pinned {
    sha256: Option<String>,
    public: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.sha256.as_deref() == Some(cert_sha256(end_entity.as_ref()).as_str()) {
            return Ok(ServerCertVerified::assertion());
        }
        self.public.verify_server_cert(end_entity, intermediates, name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.public.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.public.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.public.supported_verify_schemes()
    }
}
