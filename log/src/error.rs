use std::path::PathBuf;

use reprise_proto::{CodecError, Seq};

/// Everything that can go wrong with the log. Each message says what is
/// wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Another `SledLog` (in this or another process) has the data dir open.
    #[error(
        "data dir {} is already in use by another scheduler process (or another open in this process); \
         stop it or choose another --data-dir",
        dir.display()
    )]
    InUse { dir: PathBuf },

    /// A record that is not the last one, or that cannot be a torn write,
    /// failed its checks. Nothing was deleted.
    #[error(
        "log record at seq {seq} is corrupt: {reason}; nothing was deleted: restore the data dir from a backup, \
         or move it aside to start with an empty log"
    )]
    Corrupt { seq: Seq, reason: String },

    /// A record was written by a newer Reprise with a newer event schema.
    #[error(
        "log record at seq {seq} has event schema version {found}, but this build reads versions up to {supported}; \
         run a newer reprise on this data dir"
    )]
    NewerSchema { seq: Seq, found: u16, supported: u16 },

    /// The stored snapshot failed its checks. Nothing was deleted.
    #[error(
        "snapshot at seq {seq} is corrupt: {reason}; nothing was deleted: restore the data dir from a backup, \
         or move it aside to start with an empty log"
    )]
    BadSnapshot { seq: Seq, reason: String },

    /// The snapshot was written by a newer Reprise.
    #[error(
        "snapshot at seq {seq} has schema version {found}, but this build reads versions up to {supported}; \
         run a newer reprise on this data dir"
    )]
    NewerSnapshot { seq: Seq, found: u16, supported: u16 },

    /// The data dir's layout (tree names, meta keys) is newer than this build knows.
    #[error(
        "the log in {} has layout version {found}, but this build reads versions up to {supported}; \
         run a newer reprise on this data dir",
        dir.display()
    )]
    NewerLayout { dir: PathBuf, found: u16, supported: u16 },

    /// A metadata entry has a malformed value. Nothing was deleted.
    #[error(
        "the log's metadata entry {key:?} is damaged: {reason}; nothing was deleted: restore the data dir from a backup, \
         or move it aside to start with an empty log"
    )]
    BadMeta { key: String, reason: String },

    /// Sequence numbers have a hole: events are missing. Nothing was deleted.
    #[error(
        "log records are not contiguous: expected seq {expected} but found seq {found}, so events are missing; \
         nothing was deleted: restore the data dir from a backup, or move it aside to start with an empty log"
    )]
    NonContiguous { expected: Seq, found: Seq },

    /// `replay(after)` asked for events that a snapshot has replaced.
    #[error(
        "events up to seq {snapshot_seq} were compacted into a snapshot, so replay cannot start after seq {after}; \
         load the snapshot and replay after seq {snapshot_seq}"
    )]
    Compacted { after: Seq, snapshot_seq: Seq },

    /// `write_snapshot` was called at a seq other than the durable one.
    #[error("a snapshot must be taken at the durable seq {durable}, not at seq {seq}: flush() first and snapshot the state at that seq")]
    SnapshotNotDurable { seq: Seq, durable: Seq },

    /// A write was attempted on a log opened with `SledLog::open_read_only`.
    #[error("the log in {} was opened read-only for inspection; open it with SledLog::open to write", dir.display())]
    ReadOnly { dir: PathBuf },

    /// `open_read_only` found no log in the directory.
    #[error("no Reprise log in {} (missing {}); check the --data-dir path", dir.display(), missing.display())]
    NotALog { dir: PathBuf, missing: PathBuf },

    /// Sequence numbers ran out (more than u64::MAX events): cannot happen in practice.
    #[error("sequence numbers exhausted after seq {last}; start a new data dir")]
    SeqExhausted { last: Seq },

    /// A filesystem operation failed.
    #[error("I/O error on {}: {source}; check the disk, its free space and the permissions", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// sled reported an error.
    #[error("sled storage error: {0}; check the disk and its free space")]
    Sled(#[from] sled::Error),

    /// Events could not be encoded as CBOR.
    #[error("cannot encode events for the log: {0}")]
    Codec(#[from] CodecError),

    /// The consumer passed to `replay` returned an error of its own.
    #[error("replay stopped by its consumer: {0}")]
    Replay(Box<dyn std::error::Error + Send + Sync>),
}

impl LogError {
    /// An I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io { path: path.into(), source }
    }
}
