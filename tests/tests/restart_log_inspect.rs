//! `reprise log inspect DIR` on the data dir of a scheduler killed with
//! `kill -9`: the snapshot's sequence number, the events after it one per
//! line, then a summary with events by type, live tasks by state, and the
//! primitives with their holders. It reads a stopped scheduler's log without
//! changing it, and refuses while a scheduler has the log open.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context};
use reprise::{Client, Event, Future, Lock, Queue, Semaphore, Variable};
use reprise_tests::{reprise_bin, start_scheduler_async, start_workers_async, within, Proc, START_TIMEOUT};

/// Run `reprise log inspect <dir> [extra]`; its exit status and stdout, stderr.
async fn inspect(dir: &std::path::Path, extra: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let mut args = vec!["log".to_owned(), "inspect".to_owned(), dir.to_str().context("not UTF-8")?.to_owned()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let proc = Proc::spawn("inspect", &reprise_bin()?, &args)?;
        let status = proc.wait_exit(START_TIMEOUT)?;
        Ok((status.success(), proc.stdout(), proc.stderr()))
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_inspect_shows_a_killed_schedulers_events_tasks_and_primitive_holders() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("reprise-restart-inspect-").tempdir()?;
    let data_dir = dir.path().join("scheduler");
    // A snapshot every 50 events, so that the log has one and a tail after it.
    let scheduler = start_scheduler_async(&data_dir, "tcp://127.0.0.1:0", &["--snapshot-every", "50"]).await?;
    let worker_bin = PathBuf::from(env!("CARGO_BIN_EXE_test-worker"));
    let workers = start_workers_async(&worker_bin, &scheduler.address, &["ri-w0"], 1).await?;
    let client = within(
        "connecting",
        Client::builder().address(scheduler.address.clone()).name("inspector").timeout(Duration::from_secs(20)).connect(),
    )
    .await??;
    let results: Vec<Future<i64>> = client.map("inc", 0..30i64)?;
    within("gather", client.gather(&results)).await??;
    let _lock = within("lock", Lock::new(&client, "inspect-lock").acquire()).await??;
    let _lease = within("lease", Semaphore::new(&client, "inspect-sem", 3).acquire()).await??;
    within("event", Event::new(&client, "inspect-event").set()).await??;
    within("queue", Queue::new(&client, "inspect-queue").put(&7i64)).await??;
    within("variable", Variable::new(&client, "inspect-var").set_future(&results[0])).await??;
    within("dataset", client.publish_dataset("inspect-ds", &results[1])).await??;

    let (ok, _, stderr) = inspect(&data_dir, &[]).await?;
    ensure!(!ok && stderr.contains("in use"), "inspecting a running scheduler's log must be refused: {stderr}");

    scheduler.proc.kill();
    let (ok, out, stderr) = inspect(&data_dir, &[]).await?;
    ensure!(ok, "inspect failed: {stderr}");
    let first = out.lines().next().unwrap_or_default();
    ensure!(first.starts_with("snapshot: seq "), "the first line names the snapshot's seq: {first:?}");
    for needle in [
        "summary:",
        "events after the snapshot:",
        "live tasks: 30",
        "memory=30",
        "lock \"inspect-lock\": held by inspector-",
        "semaphore \"inspect-sem\": 1 of 3 leases held by inspector-",
        "event \"inspect-event\": set",
        "queue \"inspect-queue\": 1 items: a value",
        "variable \"inspect-var\": future inc-",
        "dataset \"inspect-ds\": future inc-",
    ] {
        ensure!(out.contains(needle), "inspect's output lacks {needle:?}:\n{out}");
    }
    // The events after the snapshot, one per line: `<seq>  <what happened>`.
    let n_lines = out.lines().filter(|l| l.trim_start().split_once("  ").is_some_and(|(n, _)| n.parse::<u64>().is_ok())).count();
    let n_events: usize = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("events after the snapshot: "))
        .context("no event count in the summary")?
        .parse()?;
    ensure!(n_lines == n_events, "{n_lines} event lines for {n_events} events:\n{out}");
    // Read-only: a second look sees exactly the same log.
    let (ok, again, _) = inspect(&data_dir, &[]).await?;
    ensure!(ok && again == out, "a second inspection saw a different log");
    let (ok, summary_only, _) = inspect(&data_dir, &["--summary"]).await?;
    ensure!(ok && !summary_only.contains("events after seq") && summary_only.contains("primitives: 6"), "{summary_only}");
    drop((client, workers));
    Ok(())
}
