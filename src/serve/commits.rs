//! What follows each commit of the daemon's Core data writer: the streams to this
//! node's followers are woken (they send the new entries at once), and the batch's
//! answers go through the synchronous gate (at once, unless a synchronous standby must
//! have the change first; refused when it never confirmed and the gate may not degrade). The gate's changes of state are written here: a line of the
//! HA log, the state `show failover` reports, and a mail when it degrades.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::coredb::writer::{AfterCommit, Answers};
use crate::notify::{Event, raise_or_log};
use crate::replication::gate::{Gate, GateEvent, Permit};
use crate::store::{GateRecord, Store, now_text};

/// The writer's [`AfterCommit`]: wake the feeds, hold the answers at the gate.
pub struct Commits {
    pub wake: Arc<watch::Sender<u64>>,
    pub gate: Gate,
}

impl AfterCommit for Commits {
    fn committed(&self, seq: Option<i64>, answers: Answers) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
        match seq {
            Some(seq) => self.gate.hold(seq, answers),
            None => answers(Ok(())),
        }
    }
}

/// Starts the gate of the node in `data_dir` (id `node_id`), which degrades only when
/// `permit` lets it; its events are written there in the order they happen, by a thread
/// of their own (they come from the writer, the gate's timer and the feeds, none of which
/// may wait for a database).
pub fn gate(data_dir: PathBuf, node_id: String, permit: Permit) -> std::io::Result<Gate> {
    // A gate starts waiting for nobody, whatever an earlier run of the daemon recorded.
    if let Ok(mut store) = Store::open(&data_dir)
        && store.gate().ok().flatten().is_some_and(|g| g.state != "off")
    {
        let off = GateRecord {
            state: "off".into(),
            standby: None,
            reason: Some("the daemon started again: writes wait once the synchronous standby's stream is back".into()),
            updated_at: now_text(),
        };
        let _ = store.put_gate(&off);
    }
    let (tell, told) = std::sync::mpsc::channel::<GateEvent>();
    std::thread::Builder::new().name("sync-gate-events".into()).spawn(move || {
        for event in told {
            record(&data_dir, &node_id, event);
        }
    })?;
    let tell = std::sync::Mutex::new(tell);
    let events = Arc::new(move |event: GateEvent| {
        if let Ok(tell) = tell.lock() {
            let _ = tell.send(event);
        }
    });
    Gate::start(events, permit)
}

fn record(data_dir: &std::path::Path, node_id: &str, event: GateEvent) {
    let (state, standby, reason, line, level) = match &event {
        GateEvent::Synchronous { standby } => (
            "synchronous",
            Some(standby.clone()),
            None,
            format!("synchronous replication: writes are answered once {standby} has them"),
            "info",
        ),
        GateEvent::Degraded { standby, reason } => (
            "degraded",
            Some(standby.clone()),
            Some(reason.clone()),
            format!("SYNCHRONOUS REPLICATION DEGRADED: {reason}"),
            "warning",
        ),
        GateEvent::Unconfirmed { standby, reason } => (
            "synchronous",
            Some(standby.clone()),
            Some(reason.clone()),
            format!("WRITES NOT CONFIRMED: {reason}; they were answered 503, not acknowledged"),
            "error",
        ),
        GateEvent::Off => {
            ("off", None, None, "synchronous replication off: no standby asks for it".to_string(), "info")
        }
    };
    tracing::info!(subsystem = "replication", "{line}");
    let mut store = match Store::open(data_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subsystem = "replication", error = %e, "cannot record the synchronous gate");
            return;
        }
    };
    let _ = store.ha_log(level, &line);
    let record = GateRecord { state: state.into(), standby, reason, updated_at: now_text() };
    if let Err(e) = store.put_gate(&record) {
        tracing::error!(subsystem = "replication", error = %e, "cannot record the synchronous gate");
    }
    if let GateEvent::Degraded { standby, reason } = event {
        raise_or_log(&mut store, node_id, &Event::Degraded { standby, reason });
    }
}
