//! SledLog: append, flush, replay, reopen, snapshots, footprint.
mod common;

use common::{events, fast, numbered, replayed};
use reprise_log::{dir_size_bytes, Durability, LogError, LogOptions, LogStore, Seq, SledLog, RECORD_EVENTS_MAX};

#[test]
fn appended_events_replay_in_order_with_contiguous_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!((log.last_seq(), log.durable_seq(), log.snapshot_seq()), (Seq(0), Seq(0), Seq(0)));
    assert_eq!(log.append(&events(0, 3)).unwrap(), Seq(3));
    assert_eq!(log.durable_seq(), Seq(0), "append alone is not durable");
    assert_eq!(log.append(&[]).unwrap(), Seq(3), "an empty append changes nothing");
    assert_eq!(log.append(&events(3, 1)).unwrap(), Seq(4));
    log.flush().unwrap();
    assert_eq!(log.durable_seq(), Seq(4));
    assert_eq!(replayed(&log, Seq(0)), numbered(1, events(0, 4)));
    assert_eq!(log.snapshot().unwrap(), None);
}

#[test]
fn replay_can_start_inside_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    log.append(&events(0, 5)).unwrap();
    log.append(&events(5, 5)).unwrap();
    log.flush().unwrap();
    assert_eq!(log.n_records(), 2);
    for after in 0..=10u64 {
        assert_eq!(replayed(&log, Seq(after)), numbered(after + 1, events(after, 10 - after)), "after {after}");
    }
}

#[test]
fn events_replay_after_reopen_and_seqs_continue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledLog::open(dir.path(), fast()).unwrap();
        log.append(&events(0, 10)).unwrap();
        log.flush().unwrap();
    }
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!((log.last_seq(), log.durable_seq()), (Seq(10), Seq(10)));
    assert_eq!(replayed(&log, Seq(0)), numbered(1, events(0, 10)));
    assert_eq!(log.append(&events(10, 2)).unwrap(), Seq(12));
    log.flush().unwrap();
    drop(log);
    let log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!(replayed(&log, Seq(0)), numbered(1, events(0, 12)));
}

#[test]
fn closing_without_flush_still_keeps_appended_events() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledLog::open(dir.path(), LogOptions::default()).unwrap();
        log.append(&events(0, 7)).unwrap();
    }
    let log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!(replayed(&log, Seq(0)), numbered(1, events(0, 7)));
}

#[test]
fn appends_larger_than_a_record_split_and_replay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let n = (RECORD_EVENTS_MAX * 3 + 1) as u64;
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!(log.append(&events(0, n)).unwrap(), Seq(n));
    log.flush().unwrap();
    assert_eq!(log.n_records(), 4);
    drop(log);
    let log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!(replayed(&log, Seq(0)), numbered(1, events(0, n)));
}

#[test]
fn power_durability_flushes_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SledLog::open(dir.path(), LogOptions::default()).unwrap();
    for round in 0..20 {
        log.append(&events(round * 100, 100)).unwrap();
        log.flush().unwrap();
    }
    // A large value makes sled write blob files, which are synced too.
    log.write_snapshot(Seq(2000), &vec![9u8; 1 << 20]).unwrap();
    let blobs = std::fs::read_dir(common::sled_dir(dir.path()).join("blobs")).unwrap().count();
    assert!(blobs > 0, "a 1 MiB snapshot is stored as a sled blob file");
    log.append(&events(2000, 5)).unwrap();
    log.flush().unwrap();
    drop(log);
    let log = SledLog::open(dir.path(), LogOptions { durability: Durability::Power, ..LogOptions::default() }).unwrap();
    assert_eq!(log.snapshot().unwrap(), Some((Seq(2000), vec![9u8; 1 << 20])));
    assert_eq!(replayed(&log, Seq(2000)), numbered(2001, events(2000, 5)));
}

#[test]
fn snapshot_then_reopen_gives_the_snapshot_and_only_later_events() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledLog::open(dir.path(), fast()).unwrap();
        log.append(&events(0, 100)).unwrap();
        log.flush().unwrap();
        log.write_snapshot(Seq(100), b"state at 100").unwrap();
        assert_eq!(log.generation(), 1);
        log.append(&events(100, 5)).unwrap();
        log.flush().unwrap();
    }
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!(log.snapshot().unwrap(), Some((Seq(100), b"state at 100".to_vec())));
    assert_eq!(log.snapshot_seq(), Seq(100));
    assert_eq!(log.last_seq(), Seq(105));
    assert_eq!(replayed(&log, Seq(100)), numbered(101, events(100, 5)));
    assert!(matches!(
        log.replay(Seq(50), &mut |_, _| Ok(())),
        Err(LogError::Compacted { after: Seq(50), snapshot_seq: Seq(100) })
    ));
    // Seqs stay contiguous across snapshots and reopens.
    assert_eq!(log.append(&events(105, 1)).unwrap(), Seq(106));
    log.flush().unwrap();
    log.write_snapshot(Seq(106), b"state at 106").unwrap();
    drop(log);
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!((log.last_seq(), log.snapshot_seq(), log.generation()), (Seq(106), Seq(106), 2));
    assert_eq!(replayed(&log, Seq(106)), vec![]);
    assert_eq!(log.append(&events(106, 1)).unwrap(), Seq(107));
}

#[test]
fn snapshot_must_be_taken_at_the_durable_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    log.append(&events(0, 3)).unwrap();
    let err = log.write_snapshot(Seq(3), b"s").unwrap_err();
    assert!(matches!(err, LogError::SnapshotNotDurable { seq: Seq(3), durable: Seq(0) }), "{err}");
    assert!(err.to_string().contains("flush() first"));
    log.flush().unwrap();
    log.write_snapshot(Seq(3), b"s").unwrap();
}

#[test]
fn unflushed_events_after_the_snapshot_seq_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    log.append(&events(0, 4)).unwrap();
    log.flush().unwrap();
    log.append(&events(4, 3)).unwrap();
    log.write_snapshot(Seq(4), b"s4").unwrap();
    assert_eq!(log.durable_seq(), Seq(7));
    assert_eq!(replayed(&log, Seq(4)), numbered(5, events(4, 3)));
    drop(log);
    let log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!(replayed(&log, Seq(4)), numbered(5, events(4, 3)));
}

/// Writes 50 rounds of 2,000 events (20 batches of 100, each flushed), with
/// or without a snapshot after each round; returns the data dir's size after
/// each round.
fn footprint(with_snapshots: bool) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    let state = vec![5u8; 64 << 10];
    let mut sizes = Vec::new();
    for round in 0..50u64 {
        for batch in 0..20u64 {
            log.append(&events(round * 2000 + batch * 100, 100)).unwrap();
            log.flush().unwrap();
        }
        if with_snapshots {
            log.write_snapshot(log.durable_seq(), &state).unwrap();
        }
        sizes.push(dir_size_bytes(dir.path()));
    }
    drop(log);
    let log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!(log.last_seq(), Seq(100_000));
    assert_eq!(log.n_records(), if with_snapshots { 0 } else { 1000 });
    sizes
}

#[test]
fn disk_footprint_stays_bounded_with_snapshots() {
    let with = footprint(true);
    let without = footprint(false);
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    for (name, sizes) in [("with snapshots", &with), ("without snapshots", &without)] {
        let at: Vec<String> = [1, 10, 20, 30, 40, 50].iter().map(|r| format!("{:.2}", mib(sizes[r - 1]))).collect();
        println!(
            "data dir MiB after rounds 1,10,20,30,40,50 {name}: {}; max {:.2}",
            at.join(" "),
            mib(*sizes.iter().max().unwrap())
        );
    }
    // The later rounds need no more room than the first ten did, and far
    // less than the history takes without snapshots.
    let early_max = *with[..10].iter().max().unwrap();
    let late_max = *with[40..].iter().max().unwrap();
    assert!(late_max <= early_max * 2, "grew from {early_max} to {late_max} bytes: {with:?}");
    assert!(late_max * 2 < without[49], "snapshots saved too little: {with:?} vs {without:?}");
}
