//! Helpers shared by the log's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reprise_log::{bench::bench_event, Durability, Event, LogOptions, LogStore, Seq};

/// `n` distinct small events, the first one numbered `from`.
pub fn events(from: u64, n: u64) -> Vec<Event> {
    (from..from + n).map(bench_event).collect()
}

/// Every event after `after`, with its seq.
pub fn replayed(log: &dyn LogStore, after: Seq) -> Vec<(Seq, Event)> {
    let mut out = Vec::new();
    log.replay(after, &mut |seq, event| {
        out.push((seq, event));
        Ok(())
    })
    .unwrap();
    out
}

/// `events` numbered from seq `first`.
pub fn numbered(first: u64, events: Vec<Event>) -> Vec<(Seq, Event)> {
    (first..).map(Seq).zip(events).collect()
}

/// Options for tests: process durability keeps them fast (power durability
/// has tests of its own).
pub fn fast() -> LogOptions {
    LogOptions { durability: Durability::Process, ..LogOptions::default() }
}

/// The sled directory inside a data dir.
pub fn sled_dir(dir: &Path) -> PathBuf {
    dir.join(reprise_log::layout::SLED_DIR)
}

/// Every file under `dir` with its bytes and modification time, to show
/// that nothing changed.
pub fn dir_contents(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                let meta = entry.metadata().unwrap();
                out.insert(path.clone(), (std::fs::read(&path).unwrap(), meta.modified().unwrap()));
            }
        }
    }
    out
}

/// The raw records of generation `generation`, read with sled directly.
pub fn raw_records(dir: &Path, generation: u64) -> Vec<(u64, Vec<u8>)> {
    let db = open_sled(dir);
    let tree = db.open_tree(reprise_log::layout::log_tree_name(generation)).unwrap();
    let out = tree
        .iter()
        .map(|item| {
            let (k, v) = item.unwrap();
            (u64::from_be_bytes(k.as_ref().try_into().unwrap()), v.to_vec())
        })
        .collect();
    drop(tree);
    drop(db);
    out
}

/// Let `f` rewrite the raw record stored at `key`, with sled directly.
pub fn rewrite_record(dir: &Path, generation: u64, key: u64, f: impl FnOnce(&mut Vec<u8>)) {
    let db = open_sled(dir);
    let tree = db.open_tree(reprise_log::layout::log_tree_name(generation)).unwrap();
    let mut value = tree.get(key.to_be_bytes()).unwrap().expect("record exists").to_vec();
    f(&mut value);
    tree.insert(key.to_be_bytes(), value).unwrap();
    db.flush().unwrap();
}

/// A record in the documented format, with any schema version.
pub fn encode_record(version: u16, first: u64, events: &[Event]) -> Vec<u8> {
    let payload = reprise_proto::encode(events).unwrap();
    let mut value = Vec::new();
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(&first.to_be_bytes());
    value.extend_from_slice(&(events.len() as u32).to_be_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&value);
    hasher.update(&payload);
    value.extend_from_slice(&hasher.finalize().to_be_bytes());
    value.extend_from_slice(&payload);
    value
}

/// sled itself on a data dir's log, to damage it. sled's I/O threads may
/// hold its lock for a moment after a `SledLog` was dropped: retry.
pub fn open_sled(dir: &Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(sled_dir(dir)) {
            Ok(db) => return db,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(5) => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("cannot open sled in {}: {e}", dir.display()),
        }
    }
}
