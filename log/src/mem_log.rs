//! The in-memory log for the simulator and for tests.
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use reprise_proto::{Event, Seq};

use crate::record::{decode_snapshot, encode_records, encode_snapshot};
use crate::recovery::{self, Scanned};
use crate::{LogError, LogStore};

/// An in-memory [`LogStore`] that stores the same bytes as [`crate::SledLog`]
/// and runs the same checks, so the simulator exercises torn tails and
/// corruption through production code.
///
/// Clones are handles to one shared log: the simulator keeps a clone while
/// the scheduler it crashes owns another, then calls [`MemLog::crash`] and
/// hands a clone to the restarted scheduler. [`MemLog::fork`] makes an
/// independent copy. Nothing here reads a clock or spawns a thread; the mutex
/// only makes handles `Send`.
#[derive(Clone, Default)]
pub struct MemLog {
    shared: Arc<Mutex<MemStore>>,
}

#[derive(Clone, Debug, Default)]
struct MemStore {
    /// Records keyed by the seq of their first event, as in sled.
    records: BTreeMap<u64, Vec<u8>>,
    last_seq: Seq,
    durable_seq: Seq,
    /// The newest snapshot: its seq and its encoded bytes.
    snapshot: Option<(Seq, Vec<u8>)>,
}

impl MemLog {
    /// An empty log.
    pub fn new() -> MemLog {
        MemLog::default()
    }

    /// An independent copy of the log as it is now.
    pub fn fork(&self) -> MemLog {
        MemLog { shared: Arc::new(Mutex::new(self.store().clone())) }
    }

    /// A crash: whatever was appended but not flushed is lost, so
    /// `last_seq()` goes back to `durable_seq()`.
    pub fn crash(&mut self) {
        self.crash_keeping(0);
    }

    /// A crash after which the first `n_records` unflushed records survive
    /// (sled flushes in the background every 500 ms, so a crash may keep part
    /// of the unflushed tail); the rest is lost. Survivors count as durable.
    pub fn crash_keeping(&mut self, n_records: usize) {
        let mut store = self.store();
        let durable = store.durable_seq.0;
        let pending: Vec<u64> = store.records.range(durable + 1..).map(|(k, _)| *k).collect();
        for key in pending.iter().skip(n_records) {
            store.records.remove(key);
        }
        let last = match pending.get(..n_records.min(pending.len())).and_then(|kept| kept.last()) {
            Some(&key) => match store.records.get(&key).map(|v| crate::record::check_record(key, v)) {
                Some(Ok(header)) => Seq(header.last()),
                // A survivor damaged by tamper_record: reopen() cuts it.
                _ => Seq(key - 1),
            },
            None => store.durable_seq,
        };
        store.last_seq = last;
        store.durable_seq = last;
    }

    /// A restart after a clean close or a crash: everything stored counts as
    /// durable, then the records are checked as `SledLog::open` checks them.
    /// A damaged last record is cut with a warning; other damage is an error
    /// naming its seq, and nothing is removed.
    pub fn reopen(&mut self) -> Result<(), LogError> {
        let mut store = self.store();
        let snapshot_seq = match &store.snapshot {
            Some((seq, value)) => {
                decode_snapshot(*seq, value)?;
                *seq
            }
            None => Seq(0),
        };
        let records = store.records.iter().map(|(k, v)| Ok((*k, v.as_slice())));
        let Scanned { last_seq, torn_tail } = recovery::scan(records, snapshot_seq)?;
        if let Some(tail) = torn_tail {
            tracing::warn!(seq = tail.key, reason = %tail.reason, "cutting the torn last log record at seq {}", tail.key);
            store.records.remove(&tail.key);
        }
        store.last_seq = last_seq;
        store.durable_seq = last_seq;
        Ok(())
    }

    /// Fault injection: let `f` change the stored bytes of the record that
    /// holds `seq` (flip a byte, truncate it to tear it). Returns whether
    /// such a record exists. The damage shows at the next replay or reopen.
    pub fn tamper_record(&mut self, seq: Seq, f: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut store = self.store();
        match store.records.range_mut(..=seq.0).next_back() {
            Some((_, value)) => {
                f(value);
                true
            }
            None => false,
        }
    }

    /// Fault injection: let `f` change the stored snapshot's bytes. Returns
    /// whether there is a snapshot.
    pub fn tamper_snapshot(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> bool {
        match &mut self.store().snapshot {
            Some((_, value)) => {
                f(value);
                true
            }
            None => false,
        }
    }

    /// The number of stored records.
    pub fn n_records(&self) -> usize {
        self.store().records.len()
    }

    fn store(&self) -> MutexGuard<'_, MemStore> {
        // A panic while holding the lock leaves consistent data behind (every
        // mutation is a few map operations), so poisoning is ignored.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first record with a key in `bound..`, copied out so that the
    /// consumer of a replay may use the log itself.
    fn record_from(&self, bound: Bound<u64>) -> Option<(u64, Vec<u8>)> {
        self.store().records.range((bound, Bound::Unbounded)).next().map(|(k, v)| (*k, v.clone()))
    }
}

impl LogStore for MemLog {
    fn append(&mut self, events: &[Event]) -> Result<Seq, LogError> {
        let mut store = self.store();
        if events.is_empty() {
            return Ok(store.last_seq);
        }
        let first = store.last_seq.0.checked_add(1).ok_or(LogError::SeqExhausted { last: store.last_seq })?;
        for (key, value) in encode_records(Seq(first), events)? {
            store.records.insert(key, value);
        }
        store.last_seq = Seq(store.last_seq.0 + events.len() as u64);
        Ok(store.last_seq)
    }

    fn flush(&mut self) -> Result<(), LogError> {
        let mut store = self.store();
        store.durable_seq = store.last_seq;
        Ok(())
    }

    fn last_seq(&self) -> Seq {
        self.store().last_seq
    }

    fn durable_seq(&self) -> Seq {
        self.store().durable_seq
    }

    fn snapshot_seq(&self) -> Seq {
        self.store().snapshot.as_ref().map_or(Seq(0), |(seq, _)| *seq)
    }

    fn replay(&self, after: Seq, f: &mut dyn FnMut(Seq, Event) -> Result<(), LogError>) -> Result<(), LogError> {
        let (snapshot_seq, last_seq, start) = {
            let store = self.store();
            let snapshot_seq = store.snapshot.as_ref().map_or(Seq(0), |(seq, _)| *seq);
            let start = store.records.range(..=after.0.saturating_add(1)).next_back().map(|(k, _)| *k);
            (snapshot_seq, store.last_seq, start)
        };
        if after < snapshot_seq {
            return Err(LogError::Compacted { after, snapshot_seq });
        }
        if after >= last_seq {
            return Ok(());
        }
        let mut next = start.map_or(Bound::Included(after.0 + 1), Bound::Included);
        let records = std::iter::from_fn(|| {
            let (key, value) = self.record_from(next)?;
            next = Bound::Excluded(key);
            Some(Ok((key, value)))
        });
        recovery::replay(records, after, last_seq, f)
    }

    fn write_snapshot(&mut self, seq: Seq, state: &[u8]) -> Result<(), LogError> {
        let mut store = self.store();
        if seq != store.durable_seq {
            return Err(LogError::SnapshotNotDurable { seq, durable: store.durable_seq });
        }
        store.records = store.records.split_off(&(seq.0 + 1));
        store.snapshot = Some((seq, encode_snapshot(seq, state)));
        // As with SledLog, the snapshot's flush makes every append durable.
        store.durable_seq = store.last_seq;
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<(Seq, Vec<u8>)>, LogError> {
        match &self.store().snapshot {
            Some((seq, value)) => Ok(Some((*seq, decode_snapshot(*seq, value)?))),
            None => Ok(None),
        }
    }
}

impl std::fmt::Debug for MemLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = self.store();
        f.debug_struct("MemLog")
            .field("n_records", &store.records.len())
            .field("snapshot_seq", &store.snapshot.as_ref().map(|(s, _)| *s))
            .field("durable_seq", &store.durable_seq)
            .field("last_seq", &store.last_seq)
            .finish()
    }
}
