//! Counts over the system database for `/metrics`, read at each scrape: the sync runs in the sync history by
//! result, the failover-history entries by event, the console sessions open now and the
//! mails waiting in the outbox.

use std::collections::BTreeMap;

use super::{Store, StoreError};

/// What the counts were when read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub syncs_by_result: BTreeMap<String, i64>,
    pub history_by_event: BTreeMap<String, i64>,
    pub console_sessions: i64,
    pub outbox_pending: i64,
}

impl Store {
    /// The counts now.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let grouped = |sql: &str| -> Result<BTreeMap<String, i64>, StoreError> {
            let mut stmt = self.conn().prepare_cached(sql)?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let one = |sql: &str| -> Result<i64, StoreError> { Ok(self.conn().query_row(sql, [], |r| r.get(0))?) };
        Ok(Counts {
            syncs_by_result: grouped("SELECT result, COUNT(*) FROM sync_history GROUP BY result")?,
            history_by_event: grouped("SELECT event, COUNT(*) FROM failover_history GROUP BY event")?,
            console_sessions: one("SELECT COUNT(*) FROM console_sessions")?,
            outbox_pending: one("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'held')")?,
        })
    }
}
