//! Client addresses as the daemon counts them, and how many connections one may hold.
//! An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address, and an IPv6
//! address counts by its /64 (one host holds a whole /64), so that lockouts, failure
//! counts and connection caps cannot be dodged by changing the low bits. A [`Slots`]
//! table hands out one [`Slot`] per open connection and refuses past a per-address cap;
//! its map holds only addresses with a connection open, so it is bounded by them. A
//! [`Place`] holds a share of a total and a client's slot together, until released.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The unit a client is counted by: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Client(IpAddr);

impl Client {
    /// The unit `ip` belongs to.
    pub fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Client(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
        }
    }

    /// The unit an operator names (`clear lockout 2001:db8::5`, `::ffff:192.0.2.1`, or
    /// the `2001:db8::/64` that `show sessions` lists).
    pub fn parse(text: &str) -> Option<Client> {
        let bare = text.strip_suffix("/64").unwrap_or(text);
        let bare = bare.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(bare);
        bare.parse::<IpAddr>().ok().map(Client::of)
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Open connections per client, capped.
#[derive(Debug)]
pub struct Slots {
    /// Connections each client holds now (only clients holding one are kept).
    open: Mutex<HashMap<Client, u32>>,
    /// The most one client may hold.
    per_client: u32,
}

/// One open connection's place; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    table: Arc<Slots>,
    client: Client,
}

impl Slots {
    pub fn new(per_client: u32) -> Arc<Slots> {
        Arc::new(Slots { open: Mutex::new(HashMap::new()), per_client })
    }

    /// A place for one more connection of `ip`'s client, unless it holds the most
    /// already.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let client = Client::of(ip);
        let mut open = self.open.lock().ok()?;
        let held = open.entry(client).or_insert(0);
        if *held >= self.per_client {
            return None;
        }
        *held += 1;
        Some(Slot { table: self.clone(), client })
    }

    /// Connections `ip`'s client holds now.
    pub fn held(&self, ip: IpAddr) -> u32 {
        self.open.lock().ok().and_then(|o| o.get(&Client::of(ip)).copied()).unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.table.open.lock()
            && let Some(held) = open.get_mut(&self.client)
        {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// A connection's place among those counted until something happens (an SSH client
/// logging in): its share of a total and its slot of its client, given back together.
#[derive(Debug, Default)]
pub struct Place(Mutex<Option<(tokio::sync::OwnedSemaphorePermit, Slot)>>);

impl Place {
    /// Holds `permit` (of the total) and `slot` (of the client).
    pub fn new(permit: tokio::sync::OwnedSemaphorePermit, slot: Slot) -> Place {
        Place(Mutex::new(Some((permit, slot))))
    }

    /// Gives the place back (at once; dropping does too).
    pub fn release(&self) {
        if let Ok(mut held) = self.0.lock() {
            held.take();
        }
    }

    /// Whether the place is still held.
    pub fn held(&self) -> bool {
        self.0.lock().map(|h| h.is_some()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_ipv4_and_ipv6_counts_by_its_64() {
        let c = |s: &str| Client::of(s.parse().unwrap()).to_string();
        assert_eq!(c("192.0.2.1"), "192.0.2.1");
        assert_eq!(c("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(c("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(c("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_ne!(c("2001:db8:1:3::1"), c("2001:db8:1:2::1"));
        assert_eq!(Client::parse("2001:db8:1:2::/64").map(|c| c.to_string()).as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(Client::parse("[::ffff:10.0.0.1]").map(|c| c.to_string()).as_deref(), Some("10.0.0.1"));
        assert_eq!(Client::parse("core-a"), None);
    }

    #[test]
    fn slots_are_capped_per_client_and_given_back() {
        let table = Slots::new(2);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let same: IpAddr = "2001:db8::2".parse().unwrap();
        let (one, two) = (table.take(ip).unwrap(), table.take(same).unwrap());
        assert!(table.take(ip).is_none(), "a third from the same /64");
        assert!(table.take("192.0.2.1".parse().unwrap()).is_some(), "another client");
        drop(one);
        assert!(table.take(ip).is_some());
        assert_eq!(table.held(ip), 1);
        drop(two);
        assert_eq!(table.held(ip), 0, "dropped slots leave nothing behind");
        assert!(table.open.lock().unwrap().is_empty());
    }
}
