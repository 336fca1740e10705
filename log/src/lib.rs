//! Reprise's durable event log: the scheduler appends each commit batch of
//! [`Event`]s, flushes once (group commit), and only then releases the
//! batch's effects; after a crash it loads the newest snapshot and replays
//! the events after it.
//!
//! Two implementations of [`LogStore`]:
//!
//! - [`SledLog`]: sled 0.34.7 in `<data dir>/sled` (see [`layout`]).
//! - [`MemLog`]: in memory, same record bytes and checks, with
//!   [`MemLog::crash`] for the simulator.
//!
//! # Records
//!
//! The sled key is the seq of the record's first event as a big-endian u64,
//! and keys are contiguous: the next key is the previous key plus its number
//! of events. A record holds one appended batch (split above
//! [`RECORD_EVENTS_MAX`] events or [`RECORD_PAYLOAD_BYTES_MAX`] bytes). Its
//! value is an 18-byte header — event schema version (u16,
//! [`reprise_proto::EVENT_SCHEMA_VERSION`]), first seq (u64), number of
//! events (u32), crc32 (u32) over the header's first 14 bytes and the
//! payload — followed by the events as one CBOR array
//! ([`reprise_proto::encode`]). All integers are big-endian.
//!
//! # Checks at open and replay
//!
//! Opening checks every record's key contiguity, checksum, version and seq,
//! and decodes the last record. A damaged (bad checksum, short, undecodable)
//! **last** record is a write torn by a crash: it is cut with a
//! `tracing::warn!` and the log goes on from the record before. Any other
//! damage, a gap in the seqs, and a newer schema version anywhere (last
//! record included) fail with an error that names the seq; nothing is
//! deleted or skipped. Replay decodes and checks every record again.
//!
//! # Durability
//!
//! Each flush writes the batch's records to the tail file `tail.wal` with
//! one `pwrite(2)` of whole blocks (see the `tail` module): with
//! [`Durability::Power`] (default) through `O_DIRECT | O_DSYNC`, so that the
//! device holds them when the write returns; with [`Durability::Process`]
//! into the page cache, which `kill -9` cannot lose. sled itself is flushed
//! only when the tail file ([`TAIL_BYTES_MAX`]) is full, at snapshots, on
//! open and on close; with `Power` that flush is followed by `sync_data` on
//! sled's `db` file and on blob files written since the last one, because
//! sled 0.34's flush ends in `sync_file_range`, which survives `kill -9` but
//! not a power cut (sled #1452, #1351).
//!
//! Measured with `examples/log_bench.rs` ([`bench::run`]) on the development
//! VM (2 vCPU, ext4 on virtio with a volatile cache), release build, five
//! runs: 1,000,000 small events (76 bytes of CBOR on average) appended in
//! batches of 1,000 with one flush per batch:
//!
//! | | append, events/s | flush p50 | flush p99 |
//! |---|---|---|---|
//! | `Power`, sled flush + `sync_data` per batch (before the tail file) | 242k–311k | 2.7–3.6 ms | 15–20 ms |
//! | `Process`, sled flush per batch (before the tail file) | 0.97M–3.3M | 144–185 µs | 0.4–5.6 ms |
//! | `Power`, tail file | 327k | 3.1 ms | 40 ms |
//! | `Process`, tail file | 4.0M | 7 µs | 0.46 ms |
//!
//! A 76 KB batch costs the disk about 3 ms however it is synced. Small
//! batches (one event, as a coordination round trip commits) cost 77 µs per
//! append + flush with `Power` and 5 µs with `Process` through the tail
//! file, against about 270 µs and 80–190 µs through sled's flush. Reopening
//! the million-event log (checking every record's checksum) took 0.03–0.4 s,
//! replaying it (decoding every event) 0.53–0.75 s, i.e. 1.3M–1.9M events/s;
//! the data dir held about 100 MiB.
//!
//! # Snapshots
//!
//! [`LogStore::write_snapshot`] stores an opaque state (with schema version
//! and crc32) taken at the durable seq, atomically with a switch of the log
//! to the next generation tree `log.<g+1>`; once that is flushed, the old
//! tree is dropped with `drop_tree` (deleting keys one by one is slow and
//! grows sled's file). A crash between the two leaves a stale tree that the
//! next open drops. So the disk footprint follows live state, not history.
//!
//! # Locking
//!
//! A writer holds an `flock` on `<data dir>/reprise.lock` (see the `lock`
//! module docs) for its lifetime: a second open, in another process or in
//! the same one, fails with [`LogError::InUse`].
//! [`SledLog::open_read_only`] inspects a private copy and never writes to
//! the data dir.
//!
//! # Example
//!
//! ```
//! use reprise_log::{Event, LogStore, MemLog, Seq};
//! use reprise_proto::Key;
//!
//! let mut log = MemLog::new();
//! let last = log.append(&[Event::TaskQueued { key: Key::from("inc-1") }, Event::TaskForgotten { key: Key::from("inc-1") }])?;
//! assert_eq!(last, Seq(2));
//! log.flush()?; // one flush per commit batch; effects go out after it
//! log.write_snapshot(Seq(2), b"state after seq 2")?;
//! log.append(&[Event::TaskQueued { key: Key::from("inc-2") }])?;
//! log.flush()?;
//!
//! // Recovery: the newest snapshot, then the events after it.
//! let (snap_seq, state) = log.snapshot()?.unwrap_or((Seq(0), Vec::new()));
//! assert_eq!(state, b"state after seq 2");
//! let mut tail = Vec::new();
//! log.replay(snap_seq, &mut |seq, event| {
//!     tail.push((seq, event));
//!     Ok(())
//! })?;
//! assert_eq!(tail, vec![(Seq(3), Event::TaskQueued { key: Key::from("inc-2") })]);
//! # Ok::<(), reprise_log::LogError>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bench;
mod error;
pub mod layout;
mod lock;
mod mem_log;
mod power;
mod record;
mod recovery;
mod sled_log;
mod tail;

use std::path::Path;

pub use error::LogError;
pub use lock::LOCK_FILE_NAME;
pub use mem_log::MemLog;
pub use record::{RECORD_EVENTS_MAX, RECORD_PAYLOAD_BYTES_MAX};
pub use reprise_proto::{Event, Seq};
pub use sled_log::SledLog;
pub use tail::{TAIL_BYTES_MAX, TAIL_FILE_NAME};

/// How much a flushed batch survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Each batch written to the tail file with `O_DIRECT | O_DSYNC`, and
    /// sled synced whenever it is flushed: survives a power cut (as far as
    /// the disk honours cache flushes).
    #[default]
    Power,
    /// One `write(2)` of the batch to the tail file: survives `kill -9` of
    /// the process, not a power cut; a few microseconds per flush.
    Process,
}

/// The default sled page cache size: 64 MiB.
pub const CACHE_CAPACITY_BYTES_DEFAULT: u64 = 64 << 20;

/// Options for [`SledLog::open`].
#[derive(Clone, Debug)]
pub struct LogOptions {
    pub durability: Durability,
    /// sled's page cache size. sled's resident memory has been reported at
    /// several times this (sled #1309), so keep it modest.
    pub cache_capacity_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { durability: Durability::Power, cache_capacity_bytes: CACHE_CAPACITY_BYTES_DEFAULT }
    }
}

/// A durable, append-only log of events with snapshots.
pub trait LogStore: Send {
    /// Buffer `events` at the next seqs (the first event of a fresh log is
    /// `Seq(1)`) and return the seq of the last one (`last_seq()` when
    /// `events` is empty). Not durable until [`LogStore::flush`].
    fn append(&mut self, events: &[Event]) -> Result<Seq, LogError>;

    /// Make everything appended so far durable at the configured level. Call
    /// it once per commit batch (group commit).
    fn flush(&mut self) -> Result<(), LogError>;

    /// The seq of the last appended event; `Seq(0)` when there is none.
    fn last_seq(&self) -> Seq;

    /// The seq of the last flushed event.
    fn durable_seq(&self) -> Seq;

    /// The seq of the newest snapshot; `Seq(0)` without one.
    fn snapshot_seq(&self) -> Seq;

    /// Call `f` with every event after `after` (up to `last_seq()`), in
    /// order, one record in memory at a time. `after` must be at least
    /// `snapshot_seq()` ([`LogError::Compacted`] otherwise). An error from
    /// `f` stops the replay and is returned; wrap foreign errors in
    /// [`LogError::Replay`].
    fn replay(&self, after: Seq, f: &mut dyn FnMut(Seq, Event) -> Result<(), LogError>) -> Result<(), LogError>;

    /// Durably store `state`, a snapshot taken at `seq`, which must equal
    /// `durable_seq()` (flush first); then discard the events up to `seq`.
    /// Anything appended after `seq` is kept, and is durable afterwards.
    fn write_snapshot(&mut self, seq: Seq, state: &[u8]) -> Result<(), LogError>;

    /// The newest snapshot and its seq, checked against its checksum.
    fn snapshot(&self) -> Result<Option<(Seq, Vec<u8>)>, LogError>;
}

/// The total size in bytes of the regular files under `dir` (0 for what
/// cannot be read: files may vanish while sled runs). For benchmarks.
pub fn dir_size_bytes(dir: impl AsRef<Path>) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir.as_ref()) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_size_bytes(entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
