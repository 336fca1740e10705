//! SledLog: one writer per data dir; read-only inspection changes nothing.
mod common;

use std::process::Command;

use common::{dir_contents, events, fast, numbered, replayed, rewrite_record};
use reprise_log::{LogError, LogStore, Seq, SledLog};

const CHILD_DIR_ENV: &str = "REPRISE_LOG_TEST_CHILD_DIR";

#[test]
fn second_open_in_the_same_process_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path(), fast()).unwrap();
    let err = SledLog::open(dir.path(), fast()).unwrap_err();
    assert!(matches!(&err, LogError::InUse { dir: d } if d == dir.path()), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains("already in use by another scheduler process") && msg.contains("--data-dir"), "{msg}");
    drop(log);
    SledLog::open(dir.path(), fast()).expect("the lock is released on drop");
}

#[test]
fn open_in_another_process_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _log = SledLog::open(dir.path(), fast()).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_helper_opens_the_dir_from_the_env", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("child saw InUse twice"), "{stdout}");
}

/// Not a test on its own: `open_in_another_process_is_in_use` runs this test
/// binary again with only this function selected and the data dir in
/// `REPRISE_LOG_TEST_CHILD_DIR`; without that variable it returns at once.
#[test]
fn child_process_helper_opens_the_dir_from_the_env() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let err = SledLog::open(&dir, fast()).unwrap_err();
    assert!(matches!(err, LogError::InUse { .. }), "{err:?}");
    let err = SledLog::open_read_only(&dir).unwrap_err();
    assert!(matches!(err, LogError::InUse { .. }), "{err:?}");
    println!("child saw InUse twice");
}

#[test]
fn read_only_open_sees_everything_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledLog::open(dir.path(), fast()).unwrap();
        log.append(&events(0, 10)).unwrap();
        log.flush().unwrap();
        log.write_snapshot(Seq(10), b"ten").unwrap();
        log.append(&events(10, 5)).unwrap();
        log.flush().unwrap();
    }
    let before = dir_contents(dir.path());
    {
        let mut ro = SledLog::open_read_only(dir.path()).unwrap();
        assert!(ro.is_read_only());
        assert_eq!(ro.snapshot().unwrap(), Some((Seq(10), b"ten".to_vec())));
        assert_eq!(ro.last_seq(), Seq(15));
        assert_eq!(replayed(&ro, Seq(10)), numbered(11, events(10, 5)));
        assert!(matches!(ro.append(&events(0, 1)), Err(LogError::ReadOnly { .. })));
        assert!(matches!(ro.flush(), Err(LogError::ReadOnly { .. })));
        assert!(matches!(ro.write_snapshot(Seq(15), b"x"), Err(LogError::ReadOnly { .. })));
        // Readers do not exclude each other.
        let second = SledLog::open_read_only(dir.path()).unwrap();
        assert_eq!(second.last_seq(), Seq(15));
    }
    assert_eq!(dir_contents(dir.path()), before, "read-only open must not touch the data dir");
    SledLog::open(dir.path(), fast()).expect("a writer can open after the inspection");
}

#[test]
fn read_only_open_leaves_a_torn_tail_out_without_cutting_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SledLog::open(dir.path(), fast()).unwrap();
        log.append(&events(0, 3)).unwrap();
        log.append(&events(3, 3)).unwrap();
        log.flush().unwrap();
    }
    rewrite_record(dir.path(), 0, 4, |v| v.truncate(10));
    let before = dir_contents(dir.path());
    let ro = SledLog::open_read_only(dir.path()).unwrap();
    assert_eq!(replayed(&ro, Seq(0)), numbered(1, events(0, 3)));
    drop(ro);
    assert_eq!(dir_contents(dir.path()), before);
}

#[test]
fn read_only_open_is_refused_while_a_writer_runs() {
    let dir = tempfile::tempdir().unwrap();
    let _log = SledLog::open(dir.path(), fast()).unwrap();
    assert!(matches!(SledLog::open_read_only(dir.path()), Err(LogError::InUse { .. })));
}

#[test]
fn read_only_open_of_a_dir_without_a_log_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = SledLog::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, LogError::NotALog { .. }), "{err:?}");
    assert!(err.to_string().contains("--data-dir"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was created");
}
