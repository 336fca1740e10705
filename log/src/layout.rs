//! Where a `SledLog` keeps what inside its data dir.
//!
//! ```text
//! <data dir>/reprise.lock     the writer's flock (see LOCK_FILE_NAME)
//! <data dir>/tail.wal        records not yet flushed to sled (process
//!                            durability; see the `tail` module)
//! <data dir>/sled/           the sled 0.34 database: db, conf, snap.*, blobs/
//!   tree "meta"              layout (u16 BE), generation (u64 BE),
//!                            snapshot_seq (u64 BE), snapshot (see below)
//!   tree "log.<generation>"  key = first seq of the record (u64 BE),
//!                            value = record (header + CBOR events)
//! ```
//!
//! The byte formats of records and of the snapshot value are described in
//! the crate docs. A snapshot switches the log to the next generation tree
//! and drops the old one; `drop_tree` is about 25× faster than deleting keys
//! one by one, and deletes would grow sled's file.

/// The sled database's directory inside the data dir.
pub const SLED_DIR: &str = "sled";

/// The tree of metadata.
pub const META_TREE: &[u8] = b"meta";

/// Meta key: the layout version (u16 BE) of the data dir.
pub const META_LAYOUT: &[u8] = b"layout";

/// Meta key: the current generation (u64 BE), 0 until the first snapshot.
pub const META_GENERATION: &[u8] = b"generation";

/// Meta key: the seq of the newest snapshot (u64 BE); absent without one.
pub const META_SNAPSHOT_SEQ: &[u8] = b"snapshot_seq";

/// Meta key: the newest snapshot (header + state).
pub const META_SNAPSHOT: &[u8] = b"snapshot";

/// Bump when the tree names, meta keys or files change meaning. 2: the tail
/// file, which an older Reprise would ignore.
pub const LAYOUT_VERSION: u16 = 2;

/// The prefix of every generation tree's name.
pub const LOG_TREE_PREFIX: &str = "log.";

/// The name of the tree holding generation `generation`'s records.
pub fn log_tree_name(generation: u64) -> String {
    format!("{LOG_TREE_PREFIX}{generation}")
}

/// The sled key of the record whose first event has seq `seq`.
pub fn record_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}
