//! Who may open a console, and what happens when they may not: operators log in as a
//! local user (Core data) with its password (argon2) or one of its keys; a peer's key
//! never opens a console. Failed logins are held back (`login delay`), counted per
//! client (an IPv4 address, an IPv6 /64), and past `login block-for`'s limit the client
//! is locked out. A password attempt counts from the moment it starts: with as many
//! under way as the limit allows, the next is refused before its Argon2 verification,
//! and verifications run a few at a time (`secret::verify_bounded`). At most
//! [`MAX_TRACKED`] clients' failures are remembered. Every login, logout and failure goes
//! to the audit log with the client's address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use russh::keys::PublicKey;
use tokio::sync::watch;

use crate::clients::Client;
use crate::coredb::CoreDb;
use crate::node::view::NodeView;
use crate::store::{AuditEntry, Outcome, Store, StoreError, now_text};

/// The audit log's mode column for what the SSH server records.
const AUDIT_MODE: &str = "ssh";

/// Clients whose failed logins are remembered at most (the oldest go first).
pub const MAX_TRACKED: usize = 10_000;

/// Decides logins for every connection of the daemon.
pub struct Gate {
    data_dir: PathBuf,
    view: watch::Receiver<Arc<NodeView>>,
    /// Recent failed logins per client, and its password checks under way.
    failures: Mutex<HashMap<Client, Tally>>,
}

/// One client's recent failures and password checks under way.
#[derive(Default)]
struct Tally {
    recent: VecDeque<Instant>,
    under_way: u32,
}

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    UnknownUser,
    NoPassword,
    WrongPassword,
}

impl Refusal {
    fn text(self) -> &'static str {
        match self {
            Refusal::UnknownUser => "unknown user",
            Refusal::NoPassword => "the user has no password",
            Refusal::WrongPassword => "wrong password",
        }
    }
}

/// An argon2 hash to verify against when the user is unknown, so that an unknown user
/// takes as long to refuse as a wrong password.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| crate::secret::hash("coresh-decoy-password").unwrap_or_default())
}

impl Gate {
    pub fn new(data_dir: PathBuf, view: watch::Receiver<Arc<NodeView>>) -> Gate {
        Gate { data_dir, view, failures: Mutex::new(HashMap::new()) }
    }

    /// Runs `f` on the system database off the async threads; errors are logged.
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Option<T> {
        let dir = self.data_dir.clone();
        blocking("system database", move || Store::open(&dir).and_then(|s| f(&s))).await
    }

    /// Runs `f` on the Core data (the local users) off the async threads; errors are logged.
    async fn with_core<T: Send + 'static>(
        &self,
        f: impl FnOnce(&CoreDb) -> Result<T, StoreError> + Send + 'static,
    ) -> Option<T> {
        let dir = self.data_dir.clone();
        blocking("local users", move || CoreDb::open(&dir).and_then(|c| f(&c))).await
    }

    /// Holds a refused login back for `login delay`.
    async fn hold_back(&self) {
        let delay = self.view.borrow().policy.delay_s;
        tokio::time::sleep(Duration::from_secs(delay)).await;
    }

    /// Writes one line to the audit log.
    pub async fn audit(&self, user: &str, address: IpAddr, what: String, outcome: Outcome) {
        let entry = AuditEntry {
            at: now_text(),
            user: user.to_string(),
            source: address.to_string(),
            mode: AUDIT_MODE.into(),
            command: what,
            outcome: outcome.as_str().into(),
        };
        tracing::info!(subsystem = "ssh", user, %address, outcome = %entry.outcome, "{}", entry.command);
        self.with_store(move |s| s.audit_append(&entry)).await;
    }

    /// Records a console session that starts now; returns its id.
    pub async fn session_opened(&self, user: &str, address: IpAddr, kind: &str, terminal: &str) -> Option<i64> {
        let (user, kind, terminal) = (user.to_string(), kind.to_string(), terminal.to_string());
        self.with_store(move |s| s.session_open(&user, &address.to_string(), &kind, &terminal)).await
    }

    /// Forgets a console session that ended.
    pub async fn session_closed(&self, id: Option<i64>) {
        if let Some(id) = id {
            self.with_store(move |s| s.session_close(id)).await;
        }
    }

    /// Whether `address`'s client is locked out now; audits the refusal when it is.
    pub async fn locked_out(&self, user: &str, address: IpAddr) -> bool {
        let now = unix_ms();
        let key = Client::of(address).to_string();
        let until = self.with_store(move |s| s.locked_until(&key, now)).await.flatten();
        if let Some(until) = until {
            let left = (until - now).max(0) / 1000 + 1;
            self.audit(
                user,
                address,
                format!("login refused: address locked out for {left} more seconds"),
                Outcome::Denied,
            )
            .await;
        }
        until.is_some()
    }

    /// Starts a password check of `address`'s client, unless its recent failures and
    /// the checks under way already reach the lockout limit.
    fn begin(&self, address: IpAddr) -> bool {
        let Some(block) = self.view.borrow().policy.block else { return true };
        let (client, now) = (Client::of(address), Instant::now());
        let Ok(mut map) = self.failures.lock() else { return false };
        if map.len() >= MAX_TRACKED && !map.contains_key(&client) {
            forget_oldest(&mut map);
        }
        let tally = map.entry(client).or_default();
        let window = Duration::from_secs(block.within_s);
        while tally.recent.front().is_some_and(|t| now.duration_since(*t) > window) {
            tally.recent.pop_front();
        }
        if tally.recent.len() + tally.under_way as usize >= block.attempts as usize {
            return false;
        }
        tally.under_way += 1;
        true
    }

    /// A password check begun with [`Gate::begin`] has ended.
    fn end(&self, address: IpAddr) {
        if let Ok(mut map) = self.failures.lock()
            && let Some(tally) = map.get_mut(&Client::of(address))
        {
            tally.under_way = tally.under_way.saturating_sub(1);
        }
    }

    /// Checks a password login; audits it, and holds back and counts a failure.
    pub async fn password(&self, user: &str, password: &str, address: IpAddr) -> bool {
        if self.locked_out(user, address).await {
            self.hold_back().await;
            return false;
        }
        if !self.begin(address) {
            let what = "login refused: as many logins of this address are under way as the lockout allows";
            self.audit(user, address, what.into(), Outcome::Denied).await;
            self.hold_back().await;
            return false;
        }
        let name = user.to_string();
        // An unknown user, or one without a password, is checked against a decoy hash
        // (made on the blocking thread the first time), so it takes as long to refuse.
        let against = self
            .with_core(move |core| {
                Ok(match core.local_user(&name)?.map(|u| u.password_hash) {
                    Some(Some(hash)) => (hash, Refusal::WrongPassword),
                    Some(None) => (decoy().to_string(), Refusal::NoPassword),
                    None => (decoy().to_string(), Refusal::UnknownUser),
                })
            })
            .await;
        let Some((against, refusal)) = against else {
            self.end(address);
            return false;
        };
        let genuine = refusal == Refusal::WrongPassword;
        let matched = crate::secret::verify_bounded(against, password.to_string()).await == Some(true);
        self.end(address);
        if genuine && matched {
            self.audit(user, address, "login (password)".into(), Outcome::Ok).await;
            return true;
        }
        self.failed(user, address, format!("login failed (password): {}", refusal.text())).await;
        false
    }

    /// Whether `key` is one of `user`'s keys and no peer's (a peer key opens only the
    /// replication channel).
    pub async fn user_key(&self, user: &str, key: &PublicKey) -> bool {
        if self.view.borrow().trusted_keys.iter().any(|k| k.key_data() == key.key_data()) {
            return false;
        }
        let name = user.to_string();
        let keys =
            self.with_core(move |c| c.local_user(&name)).await.flatten().map(|u| u.public_keys).unwrap_or_default();
        keys.iter()
            .filter_map(|line| crate::node::keys::parse_public(line).ok())
            .any(|k| k.key_data() == key.key_data())
    }

    /// A failed login: audited, counted against the address (locking it out past the
    /// limit), then held back for `login delay`.
    pub async fn failed(&self, user: &str, address: IpAddr, what: String) {
        self.audit(user, address, what, Outcome::Denied).await;
        let policy = self.view.borrow().policy;
        if let Some(block) = policy.block {
            let now = Instant::now();
            let client = Client::of(address);
            let count = match self.failures.lock() {
                Ok(mut map) => {
                    if map.len() >= MAX_TRACKED && !map.contains_key(&client) {
                        forget_oldest(&mut map);
                    }
                    let recent = &mut map.entry(client).or_default().recent;
                    recent.push_back(now);
                    let window = Duration::from_secs(block.within_s);
                    while recent.front().is_some_and(|t| now.duration_since(*t) > window) {
                        recent.pop_front();
                    }
                    let count = recent.len();
                    if count >= block.attempts as usize {
                        recent.clear();
                    }
                    count
                }
                Err(_) => 0,
            };
            if count >= block.attempts as usize {
                let until = unix_ms() + i64::try_from(block.for_s * 1000).unwrap_or(i64::MAX / 2);
                let (key, failures) = (client.to_string(), u32::try_from(count).unwrap_or(u32::MAX));
                self.with_store(move |s| s.lock_out(&key, until, failures)).await;
                let what = format!(
                    "address locked out for {} seconds after {count} failed logins within {} seconds",
                    block.for_s, block.within_s
                );
                self.audit(user, address, what, Outcome::Denied).await;
            }
        }
        self.hold_back().await;
    }
}

/// Forgets the client whose last failure is oldest and that has no check under way.
fn forget_oldest(map: &mut HashMap<Client, Tally>) {
    let oldest =
        map.iter().filter(|(_, t)| t.under_way == 0).min_by_key(|(_, t)| t.recent.back().copied()).map(|(c, _)| *c);
    if let Some(c) = oldest {
        map.remove(&c);
    }
}

/// Runs `f` on a blocking thread; logs and swallows its error (a login is then refused).
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::error!(subsystem = "ssh", error = %e, "{what}");
            None
        }
        Err(e) => {
            tracing::error!(subsystem = "ssh", error = %e, "{what}: task failed");
            None
        }
    }
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_client_is_forgotten_first() {
        let mut map = HashMap::new();
        let now = Instant::now();
        let client = |n: u8| Client::of(IpAddr::from([192, 0, 2, n]));
        map.insert(client(1), Tally { recent: VecDeque::from([now]), under_way: 0 });
        map.insert(client(2), Tally { recent: VecDeque::from([now - Duration::from_secs(9)]), under_way: 1 });
        map.insert(client(3), Tally { recent: VecDeque::from([now - Duration::from_secs(5)]), under_way: 0 });
        forget_oldest(&mut map);
        assert!(!map.contains_key(&client(3)), "the oldest without a check under way");
        assert!(map.contains_key(&client(2)), "a client with a check under way stays");
        assert_eq!(map.len(), 2);
    }
}
