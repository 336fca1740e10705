//! A flushed batch survives the process dying at once (no destructor, no
//! sled flush), through the tail file, at both durability levels.
mod common;

use std::process::Command;

use common::{events, fast, numbered, replayed};
use reprise_log::{Durability, LogOptions, LogStore, Seq, SledLog, TAIL_FILE_NAME};

const CHILD_DIR_ENV: &str = "REPRISE_LOG_TEST_ABORT_DIR";
const BATCHES: u64 = 300;

const CHILD_POWER_ENV: &str = "REPRISE_LOG_TEST_ABORT_POWER";

fn options(power: bool) -> LogOptions {
    if power {
        LogOptions { durability: Durability::Power, ..LogOptions::default() }
    } else {
        fast()
    }
}

#[test]
fn flushed_batches_survive_an_abort_without_a_sled_flush() {
    abort_and_reopen(false);
}

#[test]
fn power_durable_batches_survive_an_abort_without_a_sled_flush() {
    abort_and_reopen(true);
}

fn abort_and_reopen(power: bool) {
    let dir = tempfile::tempdir().unwrap();
    {
        // A snapshot first, so that the tail file's records follow one.
        let mut log = SledLog::open(dir.path(), options(power)).unwrap();
        log.append(&events(0, 5)).unwrap();
        log.flush().unwrap();
        log.write_snapshot(Seq(5), b"five").unwrap();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_appends_flushes_and_aborts", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir.path())
        .env(CHILD_POWER_ENV, if power { "1" } else { "0" })
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child was meant to abort: {stdout}");
    assert!(stdout.contains(&format!("flushed {BATCHES} batches")), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!tail_is_empty(dir.path()), "the child's batches should be in the tail file");

    let expected = numbered(6, (0..BATCHES).flat_map(|b| events(100 + b * 3, 3)).collect());
    let flushed = Seq(5 + 3 * BATCHES);
    // sled's own background flush may have saved the unflushed last append.
    let unflushed_too = Seq(flushed.0 + 2);
    let inspected = SledLog::open_read_only(dir.path()).unwrap();
    let last = inspected.last_seq();
    assert!(last == flushed || last == unflushed_too, "{last:?}");
    assert_eq!(replayed(&inspected, Seq(5))[..expected.len()], expected[..]);
    drop(inspected);

    let mut log = SledLog::open(dir.path(), options(power)).unwrap();
    assert_eq!(log.last_seq(), last);
    assert_eq!(replayed(&log, Seq(5))[..expected.len()], expected[..]);
    assert!(tail_is_empty(dir.path()), "open moves the tail into sled");
    log.append(&events(9_000, 1)).unwrap();
    log.flush().unwrap();
    drop(log);
    let log = SledLog::open(dir.path(), options(power)).unwrap();
    assert_eq!(log.last_seq(), Seq(last.0 + 1));
    assert_eq!(log.snapshot().unwrap().map(|(s, _)| s), Some(Seq(5)));
}

/// Whether the tail file starts with its end mark (a zero frame header).
fn tail_is_empty(dir: &std::path::Path) -> bool {
    let bytes = std::fs::read(dir.join(TAIL_FILE_NAME)).unwrap();
    bytes[..12].iter().all(|&b| b == 0)
}

/// Not a test on its own: the test above runs this binary again with only
/// this function selected; without the variable it returns at once.
#[test]
fn child_appends_flushes_and_aborts() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let power = std::env::var(CHILD_POWER_ENV).is_ok_and(|v| v == "1");
    let mut log = SledLog::open(&dir, options(power)).unwrap();
    for b in 0..BATCHES {
        log.append(&events(100 + b * 3, 3)).unwrap();
        log.flush().unwrap();
    }
    // Appended but never flushed: may or may not survive.
    log.append(&events(50_000, 2)).unwrap();
    println!("flushed {BATCHES} batches");
    std::process::abort();
}
