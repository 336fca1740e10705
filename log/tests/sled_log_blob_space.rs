//! Large records (sled keeps pages over about 128 KiB in blob files of their
//! own) do not pile up: a snapshot's dropped generation takes its blob files
//! with it, so the data dir follows the live log, not the history.
mod common;

use common::fast;
use reprise_log::{dir_size_bytes, Event, LogStore, SledLog};
use reprise_proto::{Holder, Key};

/// One event of about `bytes` bytes.
fn big_event(i: u64, bytes: usize) -> Event {
    Event::HolderAdded { holder: Holder::Variable("x".repeat(bytes)), key: Key(format!("k{i}")) }
}

#[test]
fn dropped_generations_take_their_blob_files_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    let mut sizes = Vec::new();
    let mut i = 0;
    for _generation in 0..30 {
        // Ten records of about 100 KB each: their leaf pages become blobs.
        for _ in 0..10 {
            log.append(&[big_event(i, 100_000)]).unwrap();
            log.flush().unwrap();
            i += 1;
        }
        log.write_snapshot(log.durable_seq(), b"state").unwrap();
        sizes.push(dir_size_bytes(dir.path()));
    }
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!("data dir MiB per generation: {:?}", sizes.iter().map(|s| format!("{:.1}", mib(*s))).collect::<Vec<_>>());
    // 30 generations wrote 30 MB of records; only the last few may remain.
    let early = *sizes[..5].iter().max().unwrap();
    let late = *sizes[25..].iter().max().unwrap();
    assert!(late <= early * 2, "the data dir grew with the history: {:.1} MiB then {:.1} MiB", mib(early), mib(late));
}
