//! The data dir's lock file.
//!
//! sled 0.34 does take an exclusive `flock` on its `db` file, but it reports a
//! conflict only as a generic `Io(Other, "could not acquire lock on …")`, and
//! it creates directories and writes its `conf` file *before* taking the lock.
//! So the log takes its own lock first: `<data dir>/reprise.lock`, held with
//! `File::try_lock` (an `flock` on Linux) for the `SledLog`'s lifetime. An
//! `flock` belongs to an open file description, so a second open in the same
//! process conflicts just as a second process does; the kernel releases it
//! when the process dies, so `kill -9` leaves no stale lock behind.
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::LogError;

/// The lock file's name inside the data dir.
pub const LOCK_FILE_NAME: &str = "reprise.lock";

/// A held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Take the exclusive lock of a writer, creating the lock file if needed.
    pub(crate) fn exclusive(data_dir: &Path) -> Result<DirLock, LogError> {
        let path = data_dir.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(e) => Err(lock_error(data_dir, &path, e)),
        }
    }

    /// Take a shared lock on an existing file without creating or writing
    /// anything: it conflicts with a writer's exclusive lock, not with other
    /// readers. `Ok(None)` when the file does not exist.
    pub(crate) fn shared_if_exists(data_dir: &Path, path: &Path) -> Result<Option<DirLock>, LogError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io(path, e)),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(DirLock { _file: file })),
            Err(e) => Err(lock_error(data_dir, path, e)),
        }
    }
}

fn lock_error(data_dir: &Path, path: &Path, e: TryLockError) -> LogError {
    match e {
        TryLockError::WouldBlock => LogError::InUse { dir: PathBuf::from(data_dir) },
        TryLockError::Error(e) => LogError::io(path, e),
    }
}
