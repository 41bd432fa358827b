//! SMTP settings (`smtp server`, `smtp from`, `smtp user`) and delivery with lettre over
//! rustls. The SMTP password is sealed with a key of this node (`smtp.key`, mode 0600,
//! ChaCha20-Poly1305), so that neither the database nor `show running-config` ever
//! holds it in clear, and the sealed form pasted back on this node works again.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::host::HostPort;

pub const SERVER: &str = "smtp.server";
pub const SECURITY: &str = "smtp.tls";
pub const FROM: &str = "smtp.from";
pub const USER: &str = "smtp.user";
pub const PASSWORD: &str = "smtp.password";

/// File (in the data directory) of the key that seals the SMTP password.
const KEY_FILE: &str = "smtp.key";
/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP.
    None,
    /// Plain, then STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl Security {
    pub fn as_str(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::Starttls => "starttls",
            Security::Tls => "tls",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Security::None => 25,
            Security::Starttls => 587,
            Security::Tls => 465,
        }
    }
}

impl FromStr for Security {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "none" => Ok(Security::None),
            "starttls" => Ok(Security::Starttls),
            "tls" => Ok(Security::Tls),
            _ => Err(()),
        }
    }
}

/// The SMTP settings of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub server: Option<HostPort>,
    pub security: Security,
    pub from: Option<String>,
    pub user: Option<String>,
    /// The sealed password (see [`seal`]).
    pub password: Option<String>,
}

impl Smtp {
    /// Reads the SMTP settings from the stored rows.
    pub fn from_map(map: &BTreeMap<String, String>) -> Smtp {
        Smtp {
            server: map.get(SERVER).and_then(|s| s.parse().ok()),
            security: map.get(SECURITY).and_then(|s| s.parse().ok()).unwrap_or(Security::Starttls),
            from: map.get(FROM).cloned(),
            user: map.get(USER).cloned(),
            password: map.get(PASSWORD).cloned(),
        }
    }

    /// The commands that set these settings (for `show running-config`); the password
    /// only in its sealed form.
    pub fn config_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match &self.server {
            Some(s) => lines.push(format!("smtp server {} tls {}", s, self.security.as_str())),
            None => lines.push("no smtp server".into()),
        }
        if let Some(from) = &self.from {
            lines.push(format!("smtp from {from}"));
        }
        match (&self.user, &self.password) {
            (Some(u), Some(p)) => lines.push(format!("smtp user {u} password sealed {p}")),
            (Some(u), None) => lines.push(format!("smtp user {u}")),
            _ => {}
        }
        lines
    }
}

/// Why a mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no SMTP server is configured: 'smtp server HOST' in configuration mode")]
    NoServer,
    #[error("no sender address is configured: 'smtp from ADDRESS' in configuration mode")]
    NoFrom,
    #[error("bad address {0:?}: {1}")]
    Address(String, String),
    #[error("the SMTP password cannot be unsealed: {0}")]
    Sealed(String),
    #[error("{0}")]
    Smtp(String),
}

/// Sends one mail now; returns the server's answer (code and text).
pub async fn send(
    smtp: &Smtp,
    data_dir: &Path,
    recipient: &str,
    subject: &str,
    body: &str,
) -> Result<String, SendError> {
    let server = smtp.server.as_ref().ok_or(SendError::NoServer)?;
    let from = smtp.from.as_deref().ok_or(SendError::NoFrom)?;
    let mailbox = |a: &str| a.parse::<Mailbox>().map_err(|e| SendError::Address(a.to_string(), e.to_string()));
    let message = Message::builder()
        .from(mailbox(from)?)
        .to(mailbox(recipient)?)
        .subject(subject)
        .body(body.to_string())
        .map_err(|e| SendError::Smtp(e.to_string()))?;
    let host = server.host.clone();
    let port = server.port.unwrap_or(smtp.security.default_port());
    let tls = || TlsParameters::new(host.clone()).map_err(|e| SendError::Smtp(e.to_string()));
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(port)
        .timeout(Some(TIMEOUT))
        .tls(match smtp.security {
            Security::None => Tls::None,
            Security::Starttls => Tls::Required(tls()?),
            Security::Tls => Tls::Wrapper(tls()?),
        });
    if let (Some(user), Some(sealed)) = (&smtp.user, &smtp.password) {
        let password = unseal(data_dir, sealed).map_err(SendError::Sealed)?;
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    let answer = builder.build().send(message).await.map_err(|e| SendError::Smtp(e.to_string()))?;
    Ok(format!("{} {}", answer.code(), answer.message().collect::<Vec<_>>().join(" ")))
}

fn key(data_dir: &Path) -> Result<LessSafeKey, String> {
    let path = data_dir.join(KEY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut fresh = [0u8; 32];
            getrandom::fill(&mut fresh).map_err(|e| e.to_string())?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file.write_all(&fresh).and_then(|()| file.sync_all()).map_err(|e| e.to_string())?;
            fresh.to_vec()
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let unbound = UnboundKey::new(&aead::CHACHA20_POLY1305, &bytes).map_err(|_| "bad key file".to_string())?;
    Ok(LessSafeKey::new(unbound))
}

/// Seals `secret` with this node's key: hex of nonce and ciphertext.
pub fn seal(data_dir: &Path, secret: &str) -> Result<String, String> {
    let key = key(data_dir)?;
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let mut data = secret.as_bytes().to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .map_err(|_| "sealing failed".to_string())?;
    let mut all = nonce.to_vec();
    all.extend(data);
    Ok(hex::encode(&all))
}

/// Opens what [`seal`] made on this node.
pub fn unseal(data_dir: &Path, sealed: &str) -> Result<String, String> {
    let bytes: Option<Vec<u8>> = (0..sealed.len())
        .step_by(2)
        .map(|i| sealed.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    let bytes = bytes.filter(|b| b.len() > 12 + 16).ok_or("not a sealed secret")?;
    let (nonce, data) = bytes.split_at(12);
    let mut nonce_bytes = [0u8; 12];
    nonce_bytes.copy_from_slice(nonce);
    let mut data = data.to_vec();
    let key = key(data_dir)?;
    let plain = key
        .open_in_place(Nonce::assume_unique_for_key(nonce_bytes), Aad::empty(), &mut data)
        .map_err(|_| "sealed on another node, or damaged".to_string())?;
    String::from_utf8(plain.to_vec()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_password_opens_only_on_its_node() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let sealed = seal(a.path(), "s3cret pass").unwrap();
        assert!(!sealed.contains("s3cret"));
        assert_eq!(unseal(a.path(), &sealed).unwrap(), "s3cret pass");
        assert!(unseal(b.path(), &sealed).is_err());
        assert!(unseal(a.path(), "zz").is_err());
        assert_ne!(seal(a.path(), "s3cret pass").unwrap(), sealed, "a fresh nonce each time");
    }
}
