//! Switchovers in the system database: the handovers this node took part in, each as
//! both nodes signed it (`handovers`), and the switchovers a shell asked this node's
//! daemon to run, with the report the daemon wrote back (`switchover_requests`). A
//! shell and its daemon share nothing but the files: the shell adds a request, the
//! daemon takes it, runs it and writes the report, the shell reads it.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, now_text};

/// One handover of the primary role from one node to another, at one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Handover {
    /// Chosen by the node handing over.
    pub id: String,
    pub at: String,
    /// The last change of the old primary; the new one starts after it.
    pub seq: i64,
    /// The content checksum both nodes hold at `seq`.
    pub checksum: String,
    pub from_node: String,
    pub from_host: String,
    pub from_epoch: u64,
    pub to_node: String,
    pub to_host: String,
    pub to_epoch: u64,
    /// Each node's signature (OpenSSH `SSHSIG`, PEM) of [`Handover::statement`].
    pub from_signature: String,
    pub to_signature: String,
}

/// The namespace both nodes sign handovers in (`ssh-keygen -Y verify -n`).
pub const SIGNATURE_NAMESPACE: &str = "coresh-handover";

impl Handover {
    /// What each node signs: every fact of the handover, in one line.
    pub fn statement(&self) -> String {
        statement(
            &self.id,
            self.seq,
            &self.checksum,
            (&self.from_node, self.from_epoch),
            (&self.to_node, self.to_epoch),
        )
    }
}

/// [`Handover::statement`] before the signatures exist.
pub fn statement(id: &str, seq: i64, checksum: &str, from: (&str, u64), to: (&str, u64)) -> String {
    format!(
        "coresh handover {id}: at change {seq} with content checksum {checksum}, node {} (epoch {}) hands the primary role to node {} (epoch {})",
        from.0, from.1, to.0, to.1
    )
}

/// A switchover a shell asked this node's daemon for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchoverRequest {
    pub id: String,
    pub asked_at: String,
    pub asked_by: String,
    pub dry_run: bool,
    /// The standby asked for, as this node trusts it (`HOST[:PORT]`).
    pub to_host: Option<String>,
    /// When the daemon took it.
    pub taken_at: Option<String>,
    /// The daemon's report (JSON), once it finished.
    pub report: Option<String>,
}

/// Requests older than this when a daemon first sees them are not run: nobody waits
/// for them any more.
pub const REQUEST_FRESH_SECONDS: i64 = 5;

/// Records `h` inside `tx` (the same transaction that changes the node's role).
pub fn record(tx: &rusqlite::Transaction, h: &Handover) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO handovers (id, at, seq, checksum, from_node, from_host, from_epoch, to_node, to_host,
             to_epoch, from_signature, to_signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            h.id,
            h.at,
            h.seq,
            h.checksum,
            h.from_node,
            h.from_host,
            i64::try_from(h.from_epoch).unwrap_or(i64::MAX),
            h.to_node,
            h.to_host,
            i64::try_from(h.to_epoch).unwrap_or(i64::MAX),
            h.from_signature,
            h.to_signature
        ],
    )?;
    Ok(())
}

fn handover(r: &rusqlite::Row) -> rusqlite::Result<Handover> {
    Ok(Handover {
        id: r.get(0)?,
        at: r.get(1)?,
        seq: r.get(2)?,
        checksum: r.get(3)?,
        from_node: r.get(4)?,
        from_host: r.get(5)?,
        from_epoch: r.get::<_, i64>(6)?.max(0).unsigned_abs(),
        to_node: r.get(7)?,
        to_host: r.get(8)?,
        to_epoch: r.get::<_, i64>(9)?.max(0).unsigned_abs(),
        from_signature: r.get(10)?,
        to_signature: r.get(11)?,
    })
}

const COLUMNS: &str = "id, at, seq, checksum, from_node, from_host, from_epoch, to_node, to_host, to_epoch,
     from_signature, to_signature";

impl Store {
    /// The handovers this node took part in, oldest first.
    pub fn handovers(&self) -> Result<Vec<Handover>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!("SELECT {COLUMNS} FROM handovers ORDER BY at, id"))?;
        let rows = stmt.query_map([], handover)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The handover `id`, when this node recorded it.
    pub fn handover(&self, id: &str) -> Result<Option<Handover>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM handovers WHERE id = ?1");
        Ok(self.conn().prepare_cached(&sql)?.query_row([id], handover).optional()?)
    }

    /// Asks this node's daemon for a switchover.
    pub fn ask_switchover(
        &mut self,
        id: &str,
        asked_by: &str,
        dry_run: bool,
        to_host: Option<&str>,
    ) -> Result<(), StoreError> {
        self.durably(|tx| {
            tx.execute(
                "INSERT INTO switchover_requests (id, asked_at, asked_by, dry_run, to_host) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, now_text(), asked_by, dry_run, to_host],
            )?;
            Ok(())
        })
    }

    /// The request `id` as it stands.
    pub fn switchover_request(&self, id: &str) -> Result<Option<SwitchoverRequest>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, asked_at, asked_by, dry_run, to_host, taken_at, report FROM switchover_requests WHERE id = ?1",
            )?
            .query_row([id], request)
            .optional()?)
    }

    /// Takes the oldest request no daemon took yet. Requests asked longer than
    /// [`REQUEST_FRESH_SECONDS`] ago are closed unrun, with `stale` as their report.
    pub fn take_switchover(&mut self, stale: &str) -> Result<Option<SwitchoverRequest>, StoreError> {
        // The daemon asks at every change of the system database: a read first, and a
        // durable transaction only when there is a request to take.
        let waiting: bool = self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM switchover_requests WHERE taken_at IS NULL)",
            [],
            |r| r.get(0),
        )?;
        if !waiting {
            return Ok(None);
        }
        let cutoff = (chrono::Utc::now() - chrono::Duration::seconds(REQUEST_FRESH_SECONDS))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.durably(|tx| {
            let now = now_text();
            tx.execute(
                "UPDATE switchover_requests SET taken_at = ?1, report = ?2, finished_at = ?1
                  WHERE taken_at IS NULL AND asked_at < ?3",
                params![now, stale, cutoff],
            )?;
            let next = tx
                .query_row(
                    "SELECT id, asked_at, asked_by, dry_run, to_host, taken_at, report FROM switchover_requests
                      WHERE taken_at IS NULL ORDER BY asked_at LIMIT 1",
                    [],
                    request,
                )
                .optional()?;
            if let Some(r) = &next {
                tx.execute("UPDATE switchover_requests SET taken_at = ?1 WHERE id = ?2", params![now, r.id])?;
            }
            Ok(next)
        })
    }

    /// Writes the daemon's report of request `id`; requests finished a day ago go.
    pub fn finish_switchover(&mut self, id: &str, report: &str) -> Result<(), StoreError> {
        let cutoff =
            (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.durably(|tx| {
            tx.execute(
                "UPDATE switchover_requests SET report = ?1, finished_at = ?2 WHERE id = ?3",
                params![report, now_text(), id],
            )?;
            tx.execute("DELETE FROM switchover_requests WHERE finished_at < ?1", [cutoff])?;
            Ok(())
        })
    }

    /// Withdraws a request no daemon took (none is running); false when one took it.
    pub fn withdraw_switchover(&mut self, id: &str) -> Result<bool, StoreError> {
        self.durably(|tx| {
            Ok(tx.execute("DELETE FROM switchover_requests WHERE id = ?1 AND taken_at IS NULL", [id])? == 1)
        })
    }
}

fn request(r: &rusqlite::Row) -> rusqlite::Result<SwitchoverRequest> {
    Ok(SwitchoverRequest {
        id: r.get(0)?,
        asked_at: r.get(1)?,
        asked_by: r.get(2)?,
        dry_run: r.get(3)?,
        to_host: r.get(4)?,
        taken_at: r.get(5)?,
        report: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_taken_once_and_answered() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.ask_switchover("r1", "admin@console", true, None).unwrap();
        let taken = store.take_switchover("stale").unwrap().unwrap();
        assert_eq!((taken.id.as_str(), taken.dry_run), ("r1", true));
        assert_eq!(store.take_switchover("stale").unwrap(), None, "taken once");
        assert!(!store.withdraw_switchover("r1").unwrap(), "a taken request stays");
        store.finish_switchover("r1", "{}").unwrap();
        assert_eq!(store.switchover_request("r1").unwrap().unwrap().report.as_deref(), Some("{}"));
    }

    #[test]
    fn an_old_request_is_closed_unrun() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.ask_switchover("old", "admin@console", false, Some("core-b")).unwrap();
        store.conn().execute("UPDATE switchover_requests SET asked_at = '2020-01-01T00:00:00.000Z'", []).unwrap();
        assert_eq!(store.take_switchover("nobody waited").unwrap(), None);
        assert_eq!(store.switchover_request("old").unwrap().unwrap().report.as_deref(), Some("nobody waited"));
    }

    #[test]
    fn a_handover_is_kept_with_its_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let h = Handover {
            id: "h1".into(),
            at: now_text(),
            seq: 42,
            checksum: "ab".into(),
            from_node: "n1".into(),
            from_host: "core-a".into(),
            from_epoch: 3,
            to_node: "n2".into(),
            to_host: "core-b".into(),
            to_epoch: 4,
            from_signature: "sig-a".into(),
            to_signature: "sig-b".into(),
        };
        store.durably(|tx| record(tx, &h)).unwrap();
        assert_eq!(store.handover("h1").unwrap().as_ref(), Some(&h));
        assert_eq!(store.handovers().unwrap(), vec![h.clone()]);
        assert!(h.statement().contains("at change 42"), "{}", h.statement());
    }
}
