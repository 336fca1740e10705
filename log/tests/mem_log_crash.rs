//! MemLog: crashes lose exactly the unflushed tail; injected damage is found.
mod common;

use common::{events, numbered, replayed};
use reprise_log::{LogError, LogStore, MemLog, Seq};

#[test]
fn crash_drops_the_unflushed_tail_and_the_flushed_prefix_replays() {
    let mut log = MemLog::new();
    log.append(&events(0, 4)).unwrap();
    log.append(&events(4, 2)).unwrap();
    log.flush().unwrap();
    log.append(&events(6, 3)).unwrap();
    log.append(&events(9, 1)).unwrap();
    assert_eq!((log.last_seq(), log.durable_seq()), (Seq(10), Seq(6)));
    log.crash();
    assert_eq!((log.last_seq(), log.durable_seq()), (Seq(6), Seq(6)));
    log.reopen().unwrap();
    assert_eq!(replayed(&log, Seq(0)), numbered(1, events(0, 6)));
    // The lost seqs are handed out again.
    assert_eq!(log.append(&events(50, 1)).unwrap(), Seq(7));
}

#[test]
fn crash_keeping_survives_a_prefix_of_the_unflushed_records() {
    let mut log = MemLog::new();
    log.append(&events(0, 2)).unwrap();
    log.flush().unwrap();
    log.append(&events(2, 3)).unwrap();
    log.append(&events(5, 3)).unwrap();
    log.append(&events(8, 3)).unwrap();
    log.crash_keeping(1);
    assert_eq!((log.last_seq(), log.durable_seq()), (Seq(5), Seq(5)));
    assert_eq!(replayed(&log, Seq(0)), numbered(1, events(0, 5)));
}

#[test]
fn clones_share_one_log_and_forks_do_not() {
    let mut scheduler_side = MemLog::new();
    let sim_side = scheduler_side.clone();
    scheduler_side.append(&events(0, 3)).unwrap();
    scheduler_side.flush().unwrap();
    let fork = sim_side.fork();
    scheduler_side.append(&events(3, 1)).unwrap();
    drop(scheduler_side);
    let mut sim_side = sim_side;
    sim_side.crash();
    let restarted = sim_side.clone();
    assert_eq!(replayed(&restarted, Seq(0)), numbered(1, events(0, 3)));
    assert_eq!(fork.last_seq(), Seq(3));
}

#[test]
fn replay_callback_may_read_the_log_and_its_error_stops_replay() {
    let mut log = MemLog::new();
    log.append(&events(0, 3)).unwrap();
    log.append(&events(3, 3)).unwrap();
    let reader = log.clone();
    let mut seen = 0;
    let res = log.replay(Seq(0), &mut |seq, _| {
        assert_eq!(reader.last_seq(), Seq(6), "the log is not locked during the callback");
        seen += 1;
        if seq == Seq(4) {
            return Err(LogError::Replay("stop here".into()));
        }
        Ok(())
    });
    assert!(matches!(res, Err(LogError::Replay(e)) if e.to_string() == "stop here"));
    assert_eq!(seen, 4);
}

#[test]
fn torn_last_record_is_cut_at_reopen() {
    let mut log = MemLog::new();
    log.append(&events(0, 3)).unwrap();
    log.append(&events(3, 3)).unwrap();
    log.flush().unwrap();
    assert!(log.tamper_record(Seq(5), |v| v.truncate(v.len() / 2)));
    log.reopen().unwrap();
    assert_eq!((log.last_seq(), log.n_records()), (Seq(3), 1));
    assert_eq!(replayed(&log, Seq(0)), numbered(1, events(0, 3)));
}

#[test]
fn damaged_middle_record_fails_reopen_and_replay_naming_its_seq() {
    let mut log = MemLog::new();
    for b in 0..3 {
        log.append(&events(b * 3, 3)).unwrap();
    }
    log.flush().unwrap();
    assert!(log.tamper_record(Seq(4), |v| v[20] ^= 0x10));
    let res = log.replay(Seq(0), &mut |_, _| Ok(()));
    assert!(matches!(res, Err(LogError::Corrupt { seq: Seq(4), .. })), "{res:?}");
    assert!(matches!(log.reopen(), Err(LogError::Corrupt { seq: Seq(4), .. })));
    assert_eq!(log.n_records(), 3, "nothing was removed");
}

#[test]
fn damaged_snapshot_is_reported_with_its_seq() {
    let mut log = MemLog::new();
    log.append(&events(0, 3)).unwrap();
    log.flush().unwrap();
    log.write_snapshot(Seq(3), b"state").unwrap();
    assert_eq!(log.n_records(), 0);
    assert!(log.tamper_snapshot(|v| v[0] ^= 1));
    assert!(matches!(log.snapshot(), Err(LogError::BadSnapshot { seq: Seq(3), .. })));
    assert!(matches!(log.reopen(), Err(LogError::BadSnapshot { seq: Seq(3), .. })));
}

#[test]
fn snapshot_requires_the_durable_seq_and_compacts_older_events() {
    let mut log = MemLog::new();
    log.append(&events(0, 3)).unwrap();
    assert!(matches!(log.write_snapshot(Seq(3), b"s"), Err(LogError::SnapshotNotDurable { .. })));
    log.flush().unwrap();
    log.write_snapshot(Seq(3), b"s").unwrap();
    assert!(matches!(log.replay(Seq(2), &mut |_, _| Ok(())), Err(LogError::Compacted { .. })));
    assert_eq!(log.snapshot().unwrap(), Some((Seq(3), b"s".to_vec())));
}
