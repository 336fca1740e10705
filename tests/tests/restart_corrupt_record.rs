//! A log record damaged on disk (not a torn tail) stops the scheduler's
//! start-up with an error that names the record's sequence number, and
//! nothing in the data dir is deleted or changed: the operator decides.
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};
use reprise::Future;
use reprise_log::layout;
use reprise_tests::{connect, reprise_bin, start_scheduler_async, start_workers_async, within, Proc, START_TIMEOUT};

/// sled itself on the data dir, to read and damage records. sled's I/O
/// threads may hold its lock for a moment after a `SledLog` was dropped.
fn open_sled(data_dir: &Path) -> anyhow::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::open(data_dir.join(layout::SLED_DIR)) {
            Ok(db) => return Ok(db),
            Err(_) if started.elapsed() < std::time::Duration::from_secs(5) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Every record of the log's current generation: (first seq, bytes).
fn records(data_dir: &Path) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    let db = open_sled(data_dir)?;
    let generation = match db.open_tree(layout::META_TREE)?.get(layout::META_GENERATION)? {
        Some(v) => u64::from_be_bytes(v.as_ref().try_into().context("generation is not 8 bytes")?),
        None => 0,
    };
    let log = db.open_tree(layout::log_tree_name(generation))?;
    log.iter()
        .map(|item| {
            let (key, value) = item?;
            let seq = u64::from_be_bytes(key.as_ref().try_into().context("a key is not 8 bytes")?);
            Ok((seq, value.to_vec()))
        })
        .collect()
}

/// Flip one payload byte of a record in the middle of the log, through
/// sled (so that sled's own checks pass and the log's must catch it).
/// Returns the damaged record's seq.
fn damage_a_middle_record(data_dir: &Path) -> anyhow::Result<u64> {
    // The newest records may be only in the tail file after a kill -9; an
    // open moves them into sled (and a clean close flushes it).
    drop(reprise_log::SledLog::open(data_dir, reprise_log::LogOptions::default())?);
    let recs = records(data_dir)?;
    ensure!(recs.len() >= 3, "the log holds only {} records", recs.len());
    let (seq, mut value) = recs[recs.len() / 2].clone();
    let last = value.len() - 1;
    value[last] ^= 0x5a;
    let db = open_sled(data_dir)?;
    let generation = match db.open_tree(layout::META_TREE)?.get(layout::META_GENERATION)? {
        Some(v) => u64::from_be_bytes(v.as_ref().try_into().context("generation is not 8 bytes")?),
        None => 0,
    };
    db.open_tree(layout::log_tree_name(generation))?.insert(seq.to_be_bytes(), value)?;
    db.flush()?;
    Ok(seq)
}

/// The data dir's files (relative paths), sorted; sled's own `snap.*`
/// files are left out, since sled rewrites them whenever it opens a
/// database (they index its pages and hold no data of ours).
fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("snap.")) {
                continue;
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_stops_start_up_naming_its_seq_and_deletes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("reprise-restart-e-").tempdir()?;
    let data_dir = dir.path().join("scheduler");
    let scheduler = start_scheduler_async(&data_dir, "tcp://127.0.0.1:0", &[]).await?;
    let worker_bin = PathBuf::from(env!("CARGO_BIN_EXE_test-worker"));
    let workers = start_workers_async(&worker_bin, &scheduler.address, &["re-w0"], 1).await?;
    let client = connect(&scheduler.address, None).await?;
    // One at a time, so that the log holds many commit batches (records).
    for i in 0..20i64 {
        let fut: Future<i64> = client.submit("inc", (i,))?;
        ensure!(within("inc", fut.result()).await?? == i + 1);
    }
    scheduler.proc.kill();
    drop((client, workers));

    let damaged_dir = data_dir.clone();
    let seq = tokio::task::spawn_blocking(move || damage_a_middle_record(&damaged_dir)).await??;
    let records_before = records(&data_dir)?;

    for attempt in 1..=2 {
        let files_before = files(&data_dir);
        let dir_arg = data_dir.to_str().context("data dir is not UTF-8")?.to_owned();
        let status_and_stderr = tokio::task::spawn_blocking(move || {
            let args = ["scheduler", "--listen", "tcp://127.0.0.1:0", "--data-dir", &dir_arg];
            let proc = Proc::spawn("scheduler", &reprise_bin()?, &args)?;
            let status = proc.wait_exit(START_TIMEOUT)?;
            anyhow::Ok((status, proc.stderr(), proc.stdout()))
        })
        .await??;
        let (status, stderr, stdout) = status_and_stderr;
        ensure!(!status.success(), "start-up {attempt} succeeded on a corrupt log: {stdout}");
        ensure!(!stdout.contains("listening on"), "start-up {attempt} served on a corrupt log: {stdout}");
        ensure!(
            stderr.contains(&format!("log record at seq {seq} is corrupt")) && stderr.contains("nothing was deleted"),
            "start-up {attempt} did not name seq {seq}: {stderr}"
        );
        ensure!(files(&data_dir) == files_before, "start-up {attempt} added or removed files in the data dir");
        ensure!(records(&data_dir)? == records_before, "start-up {attempt} changed or deleted log records");
    }
    Ok(())
}
