//! Peer addresses as operators type them: a host name, an IPv4 address or a bracketed
//! IPv6 address, each with an optional `:PORT`; and the URL of a peer's status page
//! (`http[s]://HOST[:PORT][/PATH]`). Anything that could be taken for an option or reach
//! a shell (leading `-`, spaces, metacharacters) is refused.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A validated host with an optional port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostPort {
    /// Host name, IPv4 address or IPv6 address (without brackets).
    pub host: String,
    /// Port, when one was given.
    pub port: Option<u16>,
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix('[') {
            let (addr, tail) = rest.split_once(']').ok_or("missing ']' after the IPv6 address")?;
            addr.parse::<Ipv6Addr>().map_err(|_| format!("'{addr}' is not an IPv6 address"))?;
            let port = match tail {
                "" => None,
                t => Some(parse_port(t.strip_prefix(':').ok_or("expected :PORT after ']'")?)?),
            };
            return Ok(HostPort { host: addr.to_string(), port });
        }
        if s.matches(':').count() > 1 {
            s.parse::<Ipv6Addr>().map_err(|_| format!("'{s}' is not an IPv6 address (use [ADDR]:PORT for a port)"))?;
            return Ok(HostPort { host: s.to_string(), port: None });
        }
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(parse_port(p)?)),
            None => (s, None),
        };
        if host.parse::<Ipv4Addr>().is_err() {
            check_dns_name(host)?;
        }
        Ok(HostPort { host: host.to_ascii_lowercase(), port })
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("'{p}' is not a port (1-65535)")),
    }
}

/// Checks a DNS host name: dot-separated labels of letters, digits and inner hyphens.
pub fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    let all_numeric = name.split('.').all(|l| l.chars().all(|c| c.is_ascii_digit()));
    if all_numeric {
        return Err(format!("'{name}' is not an IPv4 address"));
    }
    for label in name.trim_end_matches('.').split('.') {
        let ok_chars = label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if label.is_empty() || label.len() > 63 || !ok_chars || label.starts_with('-') || label.ends_with('-') {
            return Err(format!("'{name}' is not a valid host name"));
        }
    }
    Ok(())
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host.contains(':'), self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

/// The URL of a node's status page (`/status.json`), as `heartbeat status-url` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUrl {
    /// HTTPS rather than HTTP.
    pub tls: bool,
    /// Host and port (the scheme's port when none was given).
    pub host: String,
    pub port: u16,
    /// The path, `/status.json` when the URL gave none.
    pub path: String,
}

/// The path of coresh's JSON status page.
pub const STATUS_PATH: &str = "/status.json";

impl FromStr for StatusUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("a status URL starts with http:// or https://".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let ok_path = path.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~%".contains(c));
        if !ok_path || path.len() > 256 {
            return Err(format!("'{path}' is not a plain URL path"));
        }
        let host: HostPort = authority.parse()?;
        let port = host.port.unwrap_or(if tls { 443 } else { 80 });
        let path = if path.is_empty() || path == "/" { STATUS_PATH.to_string() } else { path.to_string() };
        Ok(StatusUrl { tls, host: host.host, port, path })
    }
}

impl StatusUrl {
    /// The status page of a node reached at `host`, serving on `port`.
    pub fn at(host: &str, port: u16, tls: bool) -> StatusUrl {
        StatusUrl { tls, host: host.to_string(), port, path: STATUS_PATH.to_string() }
    }

    /// `HOST:PORT` as the `Host` header and a TCP connect want it.
    pub fn authority(&self) -> String {
        HostPort { host: self.host.clone(), port: Some(self.port) }.to_string()
    }
}

impl fmt::Display for StatusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", if self.tls { "https" } else { "http" }, self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_urls_are_plain_and_complete() {
        let url = |s: &str| s.parse::<StatusUrl>().map(|u| u.to_string());
        assert_eq!(url("https://Core-A.example.com").unwrap(), "https://core-a.example.com:443/status.json");
        assert_eq!(url("http://10.0.2.1:8080/").unwrap(), "http://10.0.2.1:8080/status.json");
        assert_eq!(url("http://[fe80::1]:8080/x/status.json").unwrap(), "http://[fe80::1]:8080/x/status.json");
        for bad in ["ftp://a", "core-a", "http://", "http://a b", "http://a/x?y=1", "https://a:0", "http://-x/"] {
            assert!(bad.parse::<StatusUrl>().is_err(), "{bad} accepted");
        }
    }

    fn ok(s: &str) -> String {
        s.parse::<HostPort>().unwrap().to_string()
    }

    #[test]
    fn accepts_names_and_addresses_with_ports() {
        assert_eq!(ok("Core-B.example.com"), "core-b.example.com");
        assert_eq!(ok("core-b:2222"), "core-b:2222");
        assert_eq!(ok("10.0.0.2"), "10.0.0.2");
        assert_eq!(ok("10.0.0.2:22"), "10.0.0.2:22");
        assert_eq!(ok("[fe80::1]:22"), "[fe80::1]:22");
        assert_eq!(ok("::1"), "::1");
    }

    #[test]
    fn refuses_hostile_hosts() {
        for bad in [
            "-oProxyCommand=sh",
            "a;rm -rf /",
            "a b",
            "host:0",
            "host:70000",
            "[::1",
            "[nope]:1",
            "999.1.1.1",
            "a..b",
            "-a",
            "a-",
            "x$(id)",
            "a/b",
            "",
            "[::1]22",
            "1:2:3",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad} accepted");
        }
    }
}
