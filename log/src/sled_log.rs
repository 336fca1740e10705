//! The production log: sled 0.34.7 in `<data dir>/sled`.
use std::path::{Path, PathBuf};

use reprise_proto::{Event, Seq};
use sled::{Batch, Db, IVec, Tree};

use crate::layout;
use crate::lock::DirLock;
use crate::power::PowerSync;
use crate::record::{be_u64, decode_snapshot, encode_records, encode_snapshot};
use crate::recovery::{self, Scanned};
use crate::tail::{self, Tail, TailRecord};
use crate::{Durability, LogError, LogOptions, LogStore};

/// The event log on sled. See the crate docs for the format and the
/// guarantees; [`crate::layout`] for what lives where.
pub struct SledLog {
    // Field order is drop order: the trees and the database close (sled
    // flushes on close) before the lock is released or the copy deleted.
    log: Tree,
    meta: Tree,
    db: Db,
    generation: u64,
    last_seq: Seq,
    durable_seq: Seq,
    /// The newest snapshot's seq; a snapshot of the empty log has Seq(0).
    snapshot_at: Option<Seq>,
    power: Option<PowerSync>,
    /// Where each flush writes its records (None only while opening and
    /// for a read-only handle).
    tail: Option<Tail>,
    dir: PathBuf,
    access: Access,
}

/// How this handle may use the data dir.
enum Access {
    /// The writer, holding the data dir's lock.
    Writer { _lock: DirLock },
    /// An inspector working on a private copy, deleted on drop.
    ReadOnly { _copy: tempfile::TempDir },
}

impl SledLog {
    /// Open (or create) the log in `dir` for writing, taking the data dir's
    /// lock. Verifies the snapshot and every record, cuts a torn last record
    /// (with a warning), and drops generation trees left over by a crash
    /// during a snapshot. Fails with [`LogError::InUse`] while another
    /// `SledLog` has `dir` open, in this process or another.
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<SledLog, LogError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io(&dir, e))?;
        let lock = DirLock::exclusive(&dir)?;
        let sled_dir = dir.join(layout::SLED_DIR);
        let db = open_db(&dir, &sled_dir, options.cache_capacity_bytes)?;
        let power = match options.durability {
            Durability::Power => Some(PowerSync::open(&sled_dir)?),
            Durability::Process => None,
        };
        let (mut tail, tail_records) = Tail::open(&dir, options.durability)?;
        let mut log = SledLog::load(db, dir, power, tail_records, Access::Writer { _lock: lock })?;
        // sled now holds what the tail file held: make that durable before
        // emptying the file.
        log.flush_storage()?;
        tail.clear()?;
        log.tail = Some(tail);
        Ok(log)
    }

    /// Open the log in `dir` for reading only, for `reprise log inspect`.
    ///
    /// sled 0.34 has no read-only mode: opening a database in place may zero
    /// a torn tail of its file, truncate it, and write or delete its `snap.*`
    /// files. So this copies `<dir>/sled` to a private temporary directory
    /// (under `$TMPDIR`) while holding a shared lock on the data dir's lock
    /// file and on sled's `db` file, then opens the copy; the copy is deleted
    /// when the `SledLog` is dropped. Nothing in `dir` is created, written or
    /// deleted. Fails with [`LogError::InUse`] while a scheduler has `dir`
    /// open (its copy would not be consistent), and with
    /// [`LogError::NotALog`] when `dir` holds no log. A torn last record is
    /// left out of the view (with a warning), as `open` would cut it.
    /// Writing through the returned handle fails with [`LogError::ReadOnly`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<SledLog, LogError> {
        let dir = dir.as_ref().to_path_buf();
        let sled_dir = dir.join(layout::SLED_DIR);
        let db_path = sled_dir.join("db");
        if !db_path.is_file() {
            return Err(LogError::NotALog { dir, missing: db_path });
        }
        let copy = tempfile::Builder::new()
            .prefix("reprise-log-inspect-")
            .tempdir()
            .map_err(|e| LogError::io(std::env::temp_dir(), e))?;
        let copy_sled = copy.path().join(layout::SLED_DIR);
        let tail_records = {
            let _dir_lock = DirLock::shared_if_exists(&dir, &dir.join(crate::lock::LOCK_FILE_NAME))?;
            let _db_lock = DirLock::shared_if_exists(&dir, &db_path)?;
            copy_tree(&sled_dir, &copy_sled)?;
            tail::read(&dir)?
        };
        let db = open_db(&dir, &copy_sled, LogOptions::default().cache_capacity_bytes)?;
        SledLog::load(db, dir, None, tail_records, Access::ReadOnly { _copy: copy })
    }

    /// The data dir this log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current generation: how many snapshots replaced older events.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this handle came from [`SledLog::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        matches!(self.access, Access::ReadOnly { .. })
    }

    /// The number of sled records in the current generation (a record holds
    /// one appended batch, or up to [`crate::RECORD_EVENTS_MAX`] events of it).
    /// sled counts by scanning the tree.
    pub fn n_records(&self) -> usize {
        self.log.len()
    }

    fn load(
        db: Db,
        dir: PathBuf,
        power: Option<PowerSync>,
        tail_records: Vec<TailRecord>,
        access: Access,
    ) -> Result<SledLog, LogError> {
        let meta = db.open_tree(layout::META_TREE)?;
        check_layout(&meta, &dir)?;
        let generation = meta_u64(&meta, layout::META_GENERATION)?.unwrap_or(0);
        let snapshot_at = meta_u64(&meta, layout::META_SNAPSHOT_SEQ)?.map(Seq);
        if let Some(seq) = snapshot_at {
            read_snapshot(&meta, seq)?;
        }
        let log = db.open_tree(layout::log_tree_name(generation))?;
        let snapshot_seq = snapshot_at.unwrap_or(Seq(0));
        let Scanned { last_seq, torn_tail } = recovery::scan(records(&log, None), snapshot_seq)?;
        if let Some(tail) = torn_tail {
            tracing::warn!(
                dir = %dir.display(),
                seq = tail.key,
                reason = %tail.reason,
                "cutting the torn last log record at seq {} (a write interrupted by a crash): {}",
                tail.key,
                tail.reason
            );
            log.remove(layout::record_key(tail.key))?;
        }
        let last_seq = restore_from_tail(&log, last_seq, tail_records)?;
        drop_stale_generations(&db, generation)?;
        Ok(SledLog {
            log,
            meta,
            db,
            generation,
            last_seq,
            durable_seq: last_seq,
            snapshot_at,
            power,
            tail: None,
            dir,
            access,
        })
    }

    fn check_writable(&self) -> Result<(), LogError> {
        match self.access {
            Access::Writer { .. } => Ok(()),
            Access::ReadOnly { .. } => Err(LogError::ReadOnly { dir: self.dir.clone() }),
        }
    }

    /// sled's flush, then (with [`Durability::Power`]) `sync_data`; sled
    /// then durably holds everything and the tail file starts over.
    fn flush_storage(&mut self) -> Result<(), LogError> {
        self.db.flush()?;
        if let Some(power) = &mut self.power {
            power.sync()?;
        }
        if let Some(tail) = &mut self.tail {
            tail.clear()?;
        }
        Ok(())
    }
}

impl LogStore for SledLog {
    fn append(&mut self, events: &[Event]) -> Result<Seq, LogError> {
        self.check_writable()?;
        if events.is_empty() {
            return Ok(self.last_seq);
        }
        let first = next_seq(self.last_seq)?;
        let recs = encode_records(first, events)?;
        if let Some(tail) = &mut self.tail {
            for (key, value) in &recs {
                tail.push(*key, value);
            }
        }
        if let [(key, value)] = recs.as_slice() {
            self.log.insert(layout::record_key(*key), value.as_slice())?;
        } else {
            // All or none of a split batch becomes visible.
            let mut batch = Batch::default();
            for (key, value) in recs {
                batch.insert(&layout::record_key(key), value);
            }
            self.log.apply_batch(batch)?;
        }
        self.last_seq = Seq(self.last_seq.0 + events.len() as u64);
        Ok(self.last_seq)
    }

    fn flush(&mut self) -> Result<(), LogError> {
        self.check_writable()?;
        if self.durable_seq == self.last_seq {
            return Ok(());
        }
        match &mut self.tail {
            Some(tail) if tail.fits() => tail.write()?,
            // The file is full (or the batch is larger than it): sled takes
            // everything, and the file starts over.
            _ => self.flush_storage()?,
        }
        self.durable_seq = self.last_seq;
        Ok(())
    }

    fn last_seq(&self) -> Seq {
        self.last_seq
    }

    fn durable_seq(&self) -> Seq {
        self.durable_seq
    }

    fn snapshot_seq(&self) -> Seq {
        self.snapshot_at.unwrap_or(Seq(0))
    }

    fn replay(&self, after: Seq, f: &mut dyn FnMut(Seq, Event) -> Result<(), LogError>) -> Result<(), LogError> {
        if after < self.snapshot_seq() {
            return Err(LogError::Compacted { after, snapshot_seq: self.snapshot_seq() });
        }
        if after >= self.last_seq {
            return Ok(());
        }
        // The record holding after+1 is the one with the greatest key <= after+1.
        let target = layout::record_key(after.0 + 1);
        let start = match self.log.range(..=target).next_back() {
            Some(item) => item?.0,
            None => IVec::from(&target),
        };
        recovery::replay(records(&self.log, Some(start)), after, self.last_seq, f)
    }

    fn write_snapshot(&mut self, seq: Seq, state: &[u8]) -> Result<(), LogError> {
        self.check_writable()?;
        if seq != self.durable_seq {
            return Err(LogError::SnapshotNotDurable { seq, durable: self.durable_seq });
        }
        let next_generation = self.generation + 1;
        let next_log = self.db.open_tree(layout::log_tree_name(next_generation))?;
        if !next_log.is_empty() {
            // Only possible if a stale tree survived; it holds nothing durable.
            next_log.clear()?;
        }
        // Records appended after `seq` but not yet flushed move along.
        for item in self.log.range(layout::record_key(seq.0 + 1)..) {
            let (key, value) = item?;
            next_log.insert(key, value)?;
        }
        let mut batch = Batch::default();
        batch.insert(layout::META_GENERATION, &next_generation.to_be_bytes());
        batch.insert(layout::META_SNAPSHOT_SEQ, &seq.0.to_be_bytes());
        batch.insert(layout::META_SNAPSHOT, encode_snapshot(seq, state));
        self.meta.apply_batch(batch)?;
        // sled recovers a prefix of its operations, so once this flush is
        // durable the new generation's records are too.
        self.flush_storage()?;
        let old_name = layout::log_tree_name(self.generation);
        let old_log = std::mem::replace(&mut self.log, next_log);
        self.generation = next_generation;
        self.snapshot_at = Some(seq);
        self.durable_seq = self.last_seq;
        // Not flushed here: if a crash loses the drop, the next open drops
        // the stale tree again.
        drop_generation(&self.db, &old_log, &old_name)?;
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<(Seq, Vec<u8>)>, LogError> {
        match self.snapshot_at {
            Some(seq) => Ok(Some((seq, read_snapshot(&self.meta, seq)?))),
            None => Ok(None),
        }
    }
}

impl Drop for SledLog {
    /// A clean close makes appended events durable at the configured level
    /// (sled alone would only flush at the process level) and empties the
    /// tail file.
    fn drop(&mut self) {
        if !matches!(self.access, Access::Writer { .. }) {
            return;
        }
        if self.durable_seq != self.last_seq {
            if let Err(e) = self.flush() {
                tracing::error!(dir = %self.dir.display(), "flushing the log on close failed: {e}");
            }
        }
        // A clean close leaves everything in sled and the tail file empty.
        if self.tail.as_ref().is_some_and(|t| t.len() > 0) {
            if let Err(e) = self.flush_storage() {
                tracing::error!(dir = %self.dir.display(), "flushing the log on close failed: {e}");
            }
        }
    }
}

impl std::fmt::Debug for SledLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLog")
            .field("dir", &self.dir)
            .field("generation", &self.generation)
            .field("snapshot_at", &self.snapshot_at)
            .field("durable_seq", &self.durable_seq)
            .field("last_seq", &self.last_seq)
            .field("read_only", &self.is_read_only())
            .finish()
    }
}

fn next_seq(last: Seq) -> Result<Seq, LogError> {
    last.0.checked_add(1).map(Seq).ok_or(LogError::SeqExhausted { last })
}

/// How long an open waits for sled's own lock on `db` (see [`open_db`]).
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Open sled in `sled_dir`. sled's I/O threads can hold its flock on `db`
/// for a moment after the last handle of a database was dropped; since the
/// caller holds the data dir's lock (or a private copy), no other log can
/// have it open, so a conflict is waited out for up to [`SLED_LOCK_WAIT`].
/// After that it is reported as [`LogError::InUse`]: a process that does not
/// take our lock file has sled open.
fn open_db(data_dir: &Path, sled_dir: &Path, cache_capacity_bytes: u64) -> Result<Db, LogError> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new().path(sled_dir).cache_capacity(cache_capacity_bytes).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io)) if is_sled_lock_conflict(&io) => {
                if started.elapsed() > SLED_LOCK_WAIT {
                    return Err(LogError::InUse { dir: data_dir.to_path_buf() });
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(other) => return Err(LogError::Sled(other)),
        }
    }
}

fn is_sled_lock_conflict(io: &std::io::Error) -> bool {
    io.to_string().contains("could not acquire lock")
}

/// The records of `log` from `start` on, keys decoded.
fn records(log: &Tree, start: Option<IVec>) -> impl Iterator<Item = Result<(u64, IVec), LogError>> {
    let iter = match start {
        Some(key) => log.range(key..),
        None => log.iter(),
    };
    iter.map(|item| {
        let (key, value) = item?;
        if key.len() != 8 {
            return Err(LogError::Corrupt {
                seq: Seq(0),
                reason: format!("the log tree holds a {} byte key {:?}; keys are 8 byte seqs", key.len(), key),
            });
        }
        Ok((be_u64(&key), value))
    })
}

/// Insert the records of the tail file that sled lost (those after
/// `last_seq`) into `log`; returns the new last seq.
fn restore_from_tail(log: &Tree, mut last_seq: Seq, records: Vec<TailRecord>) -> Result<Seq, LogError> {
    let mut restored = 0usize;
    for record in records {
        if record.last <= last_seq.0 {
            continue;
        }
        if record.key != last_seq.0 + 1 {
            return Err(LogError::NonContiguous { expected: Seq(last_seq.0 + 1), found: Seq(record.key) });
        }
        log.insert(layout::record_key(record.key), record.value)?;
        last_seq = Seq(record.last);
        restored += 1;
    }
    if restored > 0 {
        tracing::info!("restored {restored} log records up to seq {last_seq} from the tail file");
    }
    Ok(last_seq)
}

fn check_layout(meta: &Tree, dir: &Path) -> Result<(), LogError> {
    match meta.get(layout::META_LAYOUT)? {
        None => {
            meta.insert(layout::META_LAYOUT, &layout::LAYOUT_VERSION.to_be_bytes())?;
            Ok(())
        }
        Some(v) if v.len() == 2 => {
            let found = u16::from_be_bytes([v[0], v[1]]);
            if found > layout::LAYOUT_VERSION {
                return Err(LogError::NewerLayout { dir: dir.to_path_buf(), found, supported: layout::LAYOUT_VERSION });
            }
            if found < layout::LAYOUT_VERSION {
                // An older Reprise must not open a dir whose tail file it would ignore.
                meta.insert(layout::META_LAYOUT, &layout::LAYOUT_VERSION.to_be_bytes())?;
            }
            Ok(())
        }
        Some(v) => Err(bad_meta(layout::META_LAYOUT, v.len())),
    }
}

fn meta_u64(meta: &Tree, key: &'static [u8]) -> Result<Option<u64>, LogError> {
    match meta.get(key)? {
        None => Ok(None),
        Some(v) if v.len() == 8 => Ok(Some(be_u64(&v))),
        Some(v) => Err(bad_meta(key, v.len())),
    }
}

fn bad_meta(key: &[u8], len: usize) -> LogError {
    LogError::BadMeta { key: String::from_utf8_lossy(key).into_owned(), reason: format!("value of {len} bytes has the wrong length") }
}

fn read_snapshot(meta: &Tree, seq: Seq) -> Result<Vec<u8>, LogError> {
    match meta.get(layout::META_SNAPSHOT)? {
        Some(value) => decode_snapshot(seq, &value),
        None => Err(LogError::BadSnapshot { seq, reason: "the snapshot is missing".to_owned() }),
    }
}

/// Drop every generation tree but the current one: the previous generation
/// after a snapshot whose drop a crash lost, or the next one of a snapshot
/// that a crash interrupted (it only holds copies of records still present
/// in the current generation).
fn drop_stale_generations(db: &Db, current: u64) -> Result<(), LogError> {
    let current_name = layout::log_tree_name(current);
    for name in db.tree_names() {
        if name.starts_with(layout::LOG_TREE_PREFIX.as_bytes()) && name != current_name.as_bytes() {
            tracing::info!(tree = %String::from_utf8_lossy(&name), "dropping a stale log generation");
            drop_generation(db, &db.open_tree(&name)?, &name)?;
        }
    }
    Ok(())
}

/// Drop a generation tree, removing its records first. sled 0.34 keeps a
/// large page (a leaf of records over about 128 KiB, which a few records of
/// a big commit batch make) in a blob file of its own, and `drop_tree`
/// leaves the blob files of the pages it frees behind: measured with the
/// scheduler's `reprise bench recovery`, the data dir grew with the history
/// (47 MiB after 100,000 short-lived tasks, 398 MiB after 1,000,000) though
/// every generation was dropped. Removing the records first rewrites the
/// pages, which deletes their blobs. It costs a few microseconds per record,
/// and a record holds at least one commit batch, whose flush costs far more.
fn drop_generation(db: &Db, tree: &Tree, name: impl AsRef<[u8]>) -> Result<(), LogError> {
    tree.clear()?;
    db.drop_tree(name)?;
    Ok(())
}

/// Copy the directory tree `from` to `to` (regular files and directories).
fn copy_tree(from: &Path, to: &Path) -> Result<(), LogError> {
    std::fs::create_dir_all(to).map_err(|e| LogError::io(to, e))?;
    let entries = std::fs::read_dir(from).map_err(|e| LogError::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(from, e))?;
        let kind = entry.file_type().map_err(|e| LogError::io(entry.path(), e))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(|e| LogError::io(entry.path(), e))?;
        }
    }
    Ok(())
}
