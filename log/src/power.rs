//! Power-loss durability on top of sled 0.34.
//!
//! sled's `flush()` ends in `sync_file_range` on Linux, which pushes pages to
//! the device but flushes neither its volatile cache nor file metadata: it
//! survives `kill -9`, not a power cut (sled issues #1452, #1351). So after
//! each flush we `sync_data` what sled writes:
//!
//! - `db`: the one log-structured data file that holds every page;
//! - `blobs/<lsn>`: pages too large for a segment slot (over ~128 KiB with
//!   the default 512 KiB segments). sled writes these with `write_all` and
//!   never syncs them, so new ones are synced here (before `db`, whose log
//!   points at them), and the `blobs` directory with them;
//! - `conf` and the directories themselves, once at open, so that a freshly
//!   created log survives a power cut too.
//!
//! sled's own `snap.*` files are an index that sled rebuilds from `db` when
//! missing; sled already `sync_all`s them.
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::LogError;

/// Syncs sled's files after each `flush()`.
#[derive(Debug)]
pub(crate) struct PowerSync {
    db_file: File,
    db_path: PathBuf,
    blobs_dir: PathBuf,
    /// Blob files already synced; the set follows sled's deletions.
    synced_blobs: BTreeSet<OsString>,
}

impl PowerSync {
    /// Sync everything sled has written so far in `sled_dir` (whose parent
    /// is the data dir) and remember the blobs that exist.
    pub(crate) fn open(sled_dir: &Path) -> Result<PowerSync, LogError> {
        let db_path = sled_dir.join("db");
        let db_file = File::open(&db_path).map_err(|e| LogError::io(&db_path, e))?;
        let mut sync = PowerSync {
            db_file,
            db_path,
            blobs_dir: sled_dir.join("blobs"),
            synced_blobs: BTreeSet::new(),
        };
        sync.sync()?;
        sync_file(&sled_dir.join("conf"))?;
        sync_file(sled_dir)?;
        if let Some(parent) = sled_dir.parent() {
            sync_file(parent)?;
        }
        Ok(sync)
    }

    /// Sync new blob files, then the data file.
    pub(crate) fn sync(&mut self) -> Result<(), LogError> {
        self.sync_new_blobs()?;
        self.db_file.sync_data().map_err(|e| LogError::io(&self.db_path, e))
    }

    fn sync_new_blobs(&mut self) -> Result<(), LogError> {
        let entries = std::fs::read_dir(&self.blobs_dir).map_err(|e| LogError::io(&self.blobs_dir, e))?;
        let mut present = BTreeSet::new();
        let mut any_new = false;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io(&self.blobs_dir, e))?;
            let name = entry.file_name();
            if !self.synced_blobs.contains(&name) {
                // sled may remove a blob it no longer needs at any time;
                // a vanished blob needs no syncing.
                match File::open(entry.path()) {
                    Ok(f) => f.sync_data().map_err(|e| LogError::io(entry.path(), e))?,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(LogError::io(entry.path(), e)),
                }
                any_new = true;
            }
            present.insert(name);
        }
        if any_new {
            sync_file(&self.blobs_dir)?;
        }
        self.synced_blobs = present;
        Ok(())
    }
}

/// `fsync` a file or a directory (which makes its entries durable).
fn sync_file(path: &Path) -> Result<(), LogError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| LogError::io(path, e))
}
