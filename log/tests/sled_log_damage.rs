//! SledLog: torn tails are cut, any other damage fails loudly and deletes nothing.
mod common;

use common::{encode_record, events, fast, numbered, open_sled, raw_records, replayed, rewrite_record};
use reprise_log::{layout, LogError, LogStore, Seq, SledLog};
use reprise_proto::EVENT_SCHEMA_VERSION;

/// A log with records at seqs 1 (3 events), 4 (3 events) and 7 (3 events).
fn three_records(dir: &std::path::Path) {
    let mut log = SledLog::open(dir, fast()).unwrap();
    for batch in 0..3 {
        log.append(&events(batch * 3, 3)).unwrap();
        log.flush().unwrap();
    }
}

#[test]
fn corrupt_middle_record_fails_open_naming_its_seq_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path());
    rewrite_record(dir.path(), 0, 4, |v| {
        let mid = v.len() / 2;
        v[mid] ^= 0xff;
    });
    let before = raw_records(dir.path(), 0);
    let err = SledLog::open(dir.path(), fast()).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { seq: Seq(4), .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("seq 4") && msg.contains("nothing was deleted"), "{msg}");
    assert_eq!(raw_records(dir.path(), 0), before, "open must not delete or change records");
    // It keeps failing: nothing was cut on the first attempt.
    assert!(matches!(SledLog::open(dir.path(), fast()), Err(LogError::Corrupt { seq: Seq(4), .. })));
}

#[test]
fn torn_last_record_is_cut_and_earlier_records_replay() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path());
    rewrite_record(dir.path(), 0, 7, |v| v.truncate(v.len() - 5));
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!((log.last_seq(), log.durable_seq()), (Seq(6), Seq(6)));
    assert_eq!(replayed(&log, Seq(0)), numbered(1, events(0, 6)));
    // The cut seqs are reused, and the log stays contiguous.
    assert_eq!(log.append(&events(100, 2)).unwrap(), Seq(8));
    log.flush().unwrap();
    drop(log);
    let log = SledLog::open(dir.path(), fast()).unwrap();
    let mut expected = numbered(1, events(0, 6));
    expected.extend(numbered(7, events(100, 2)));
    assert_eq!(replayed(&log, Seq(0)), expected);
}

#[test]
fn last_record_with_a_bad_checksum_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path());
    rewrite_record(dir.path(), 0, 7, |v| v[3] ^= 1);
    let log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!(log.last_seq(), Seq(6));
    drop(log);
    assert_eq!(raw_records(dir.path(), 0).iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 4]);
}

#[test]
fn newer_schema_version_fails_open_clearly_even_in_the_last_record() {
    for key in [4u64, 7] {
        let dir = tempfile::tempdir().unwrap();
        three_records(dir.path());
        let newer = encode_record(EVENT_SCHEMA_VERSION + 1, key, &events(0, 3));
        rewrite_record(dir.path(), 0, key, |v| *v = newer);
        let before = raw_records(dir.path(), 0);
        let err = SledLog::open(dir.path(), fast()).unwrap_err();
        assert!(
            matches!(err, LogError::NewerSchema { seq, found, supported }
                if seq == Seq(key) && found == EVENT_SCHEMA_VERSION + 1 && supported == EVENT_SCHEMA_VERSION),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer reprise"), "{err}");
        assert_eq!(raw_records(dir.path(), 0), before);
    }
}

#[test]
fn missing_record_fails_open_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path());
    {
        let db = open_sled(dir.path());
        db.open_tree(layout::log_tree_name(0)).unwrap().remove(4u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = SledLog::open(dir.path(), fast()).unwrap_err();
    assert!(matches!(err, LogError::NonContiguous { expected: Seq(4), found: Seq(7) }), "{err:?}");
}

#[test]
fn corrupt_snapshot_fails_open_naming_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledLog::open(dir.path(), fast()).unwrap();
        log.append(&events(0, 5)).unwrap();
        log.flush().unwrap();
        log.write_snapshot(Seq(5), b"the state").unwrap();
    }
    {
        let db = open_sled(dir.path());
        let meta = db.open_tree(layout::META_TREE).unwrap();
        let mut snap = meta.get(layout::META_SNAPSHOT).unwrap().unwrap().to_vec();
        let last = snap.len() - 1;
        snap[last] ^= 1;
        meta.insert(layout::META_SNAPSHOT, snap).unwrap();
        db.flush().unwrap();
    }
    let err = SledLog::open(dir.path(), fast()).unwrap_err();
    assert!(matches!(err, LogError::BadSnapshot { seq: Seq(5), .. }), "{err:?}");
    assert!(err.to_string().contains("snapshot at seq 5"), "{err}");
}

#[test]
fn stale_generation_left_by_a_crash_is_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path());
    {
        // As if a crash hit a snapshot after it filled log.1 but before the
        // meta batch that switches to it became durable.
        let db = open_sled(dir.path());
        let next = db.open_tree(layout::log_tree_name(1)).unwrap();
        next.insert(10u64.to_be_bytes(), encode_record(EVENT_SCHEMA_VERSION, 10, &events(9, 1))).unwrap();
        db.flush().unwrap();
    }
    let mut log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!((log.generation(), log.last_seq()), (0, Seq(9)));
    log.write_snapshot(Seq(9), b"s").unwrap();
    log.append(&events(9, 1)).unwrap();
    log.flush().unwrap();
    drop(log);
    let log = SledLog::open(dir.path(), fast()).unwrap();
    assert_eq!(replayed(&log, Seq(9)), numbered(10, events(9, 1)));
    drop(log);
    let db = open_sled(dir.path());
    let names: Vec<_> = db.tree_names().into_iter().filter(|n| n.starts_with(b"log.")).collect();
    assert_eq!(names, vec![sled::IVec::from(b"log.1")]);
}
