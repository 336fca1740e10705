//! As `restart_graph_kill9`, and one worker process is killed while the
//! scheduler is down: it does not come back within the grace period, so
//! its running tasks are rescheduled and its results that are still wanted
//! are recomputed from lineage; the surviving workers run nothing twice.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reprise::{Client, Future};
use reprise_tests::{
    count_lines, eventually, read_executions, start_scheduler_async, start_workers_async, submit_counted_graph, within,
    TestRng,
};

const LEAVES: usize = 1_000;
const TASK_SLEEP_MS: u64 = 3;
/// Results over the 64 KiB inline limit, so that only their worker holds them.
const BLOBS: usize = 30;
const BLOB_BYTES: u64 = 100_000;
const WORKERS: [&str; 3] = ["rb-w0", "rb-w1", "rb-w2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_the_scheduler_is_down_is_replaced_and_survivors_run_nothing_twice() -> anyhow::Result<()> {
    let (mut rng, seed) = TestRng::from_env_or_clock();
    eprintln!("REPRISE_TEST_SEED={seed}");
    let dir = tempfile::Builder::new().prefix("reprise-restart-b-").tempdir()?;
    let data_dir = dir.path().join("scheduler");
    let runs_log = dir.path().join("executions");
    let flags = ["--grace", "4"];
    let scheduler = start_scheduler_async(&data_dir, "tcp://127.0.0.1:0", &flags).await?;
    let address = scheduler.address.clone();
    let worker_bin = PathBuf::from(env!("CARGO_BIN_EXE_test-worker"));
    let workers = start_workers_async(&worker_bin, &address, &WORKERS, 2).await?;
    let victim = WORKERS[rng.range(0, WORKERS.len() as u64) as usize];
    let client = within("connecting", Client::builder().address(address.clone()).timeout(Duration::from_secs(20)).connect()).await??;

    let log_text = runs_log.to_str().context("temp path is not UTF-8")?;
    let blobs: Vec<Future<Vec<u8>>> = (0..BLOBS)
        .map(|i| client.submit("counted_blob", (log_text, format!("blob-{i}"), BLOB_BYTES)))
        .collect::<reprise::Result<_>>()?;
    within("the blobs", client.gather(&blobs)).await??;
    let who = within("who_has", client.who_has(blobs.iter().map(|b| b.key()))).await??;
    let on_victim: Vec<String> = blobs
        .iter()
        .enumerate()
        .filter(|(_, b)| who.get(b.key()).is_some_and(|ws| ws.iter().any(|w| w.to_string() == victim)))
        .map(|(i, _)| format!("blob-{i}"))
        .collect();
    ensure!(!on_victim.is_empty(), "placement put no blob on {victim}: {who:?}");

    let (futures, expected) = submit_counted_graph(&client, &runs_log, LEAVES, TASK_SLEEP_MS, "")?;
    let kill_after = BLOBS + rng.range(200, 1_800) as usize;
    eventually(&format!("{kill_after} tasks ran"), || async { Ok(count_lines(&runs_log) >= kill_after) }).await?;
    scheduler.proc.kill();
    let victim_proc = workers.iter().find(|w| w.name == victim).context("no victim process")?;
    victim_proc.kill();
    let ran_before = count_lines(&runs_log);
    let down = Duration::from_millis(rng.range(0, 500));
    eprintln!("killed the scheduler after {ran_before} executions, then worker {victim}; down for {down:?}");
    tokio::time::sleep(down).await;
    let restarted_at = Instant::now();
    let scheduler = start_scheduler_async(&data_dir, &address, &flags).await?;

    let got = within("gather after the restart", client.gather(&futures)).await??;
    eprintln!("every graph result arrived {:.2?} after the restart", restarted_at.elapsed());
    ensure!(got == expected, "wrong results after the restart");
    eventually("the dead worker is removed", || async {
        let cores = within("ncores", client.ncores()).await??;
        Ok(cores.len() == 2 && !cores.keys().any(|w| w.to_string() == victim))
    })
    .await?;
    eventually("the lost blobs are computed again", || async {
        let who = within("who_has", client.who_has(blobs.iter().map(|b| b.key()))).await??;
        Ok(blobs.iter().all(|b| who.get(b.key()).is_some_and(|ws| !ws.is_empty())))
    })
    .await?;
    let sizes: Vec<usize> = within("the blobs after the restart", client.gather(&blobs)).await??.iter().map(Vec::len).collect();
    ensure!(sizes.iter().all(|n| *n as u64 == BLOB_BYTES), "blob sizes {sizes:?}");

    let runs = read_executions(&runs_log)?;
    ensure!(runs.len() == futures.len() + BLOBS, "{} of {} tasks recorded an execution", runs.len(), futures.len() + BLOBS);
    let twice_on_survivors: Vec<_> =
        runs.iter().filter(|(_, ws)| ws.iter().filter(|w| w.as_str() != victim).count() > 1).collect();
    ensure!(twice_on_survivors.is_empty(), "surviving workers ran tasks twice: {twice_on_survivors:?}");
    for label in &on_victim {
        let ran_on = runs.get(label).context("a blob never ran")?;
        ensure!(ran_on.iter().any(|w| w != victim), "{label}, lost with {victim}, was not recomputed: {ran_on:?}");
    }
    within("closing the client", client.close()).await??;
    drop((workers, scheduler));
    Ok(())
}
