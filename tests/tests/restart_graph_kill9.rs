//! The headline property over real processes: a graph of 2,000 dependent
//! tasks is in flight when the scheduler process is killed with `kill -9`
//! at a random point; it is started again on the same data dir and port,
//! the client's gather returns every correct result, and no task ran twice
//! (the workers write one line per execution).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reprise::Client;
use reprise_tests::{
    count_lines, eventually, read_executions, start_scheduler_async, start_workers_async, submit_counted_graph, within,
    TestRng,
};

/// Leaves; as many pairs depend on them, two leaves each.
const LEAVES: usize = 1_000;
const TASK_SLEEP_MS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_in_flight_survives_kill_9_of_the_scheduler_and_no_task_runs_twice() -> anyhow::Result<()> {
    let (mut rng, seed) = TestRng::from_env_or_clock();
    eprintln!("REPRISE_TEST_SEED={seed}");
    let dir = tempfile::Builder::new().prefix("reprise-restart-a-").tempdir()?;
    let data_dir = dir.path().join("scheduler");
    let runs_log = dir.path().join("executions");
    let flags = ["--grace", "30"];
    let scheduler = start_scheduler_async(&data_dir, "tcp://127.0.0.1:0", &flags).await?;
    let address = scheduler.address.clone();
    let worker_bin = PathBuf::from(env!("CARGO_BIN_EXE_test-worker"));
    let workers = start_workers_async(&worker_bin, &address, &["ra-w0", "ra-w1"], 2).await?;
    let client = within("connecting", Client::builder().address(address.clone()).timeout(Duration::from_secs(20)).connect()).await??;

    let (futures, expected) = submit_counted_graph(&client, &runs_log, LEAVES, TASK_SLEEP_MS, "")?;
    // A `result().await` in flight across the restart just returns.
    let last = futures.last().cloned().context("an empty graph")?;
    let in_flight = tokio::spawn(async move { last.result().await });
    let kill_after = rng.range(200, 1_800) as usize;
    eventually(&format!("{kill_after} tasks ran"), || async { Ok(count_lines(&runs_log) >= kill_after) }).await?;
    scheduler.proc.kill();
    ensure!(!in_flight.is_finished(), "the last task finished before the kill");
    let ran_before = count_lines(&runs_log);
    let down = Duration::from_millis(rng.range(0, 500));
    eprintln!("killed the scheduler after {ran_before} of {} executions; down for {down:?}", futures.len());
    tokio::time::sleep(down).await;
    let restarted_at = Instant::now();
    let scheduler = start_scheduler_async(&data_dir, &address, &flags).await?;
    ensure!(scheduler.address == address, "restarted on {} instead of {address}", scheduler.address);

    let last_value = within("the result awaited across the restart", in_flight).await???;
    ensure!(Some(&last_value) == expected.last(), "the awaited result is {last_value}");
    let got = within("gather after the restart", client.gather(&futures)).await??;
    eprintln!("every result arrived {:.2?} after the restart", restarted_at.elapsed());
    ensure!(got == expected, "wrong results after the restart");
    ensure!(ran_before < futures.len(), "the kill came after the graph was done: nothing was in flight");

    let runs = read_executions(&runs_log)?;
    ensure!(runs.len() == futures.len(), "{} of {} tasks recorded an execution", runs.len(), futures.len());
    let twice: Vec<_> = runs.iter().filter(|(_, workers)| workers.len() > 1).collect();
    ensure!(twice.is_empty(), "tasks ran more than once: {twice:?}");

    eventually("both workers are registered again", || async {
        Ok(within("ncores", client.ncores()).await??.len() == 2)
    })
    .await?;
    within("closing the client", client.close()).await??;
    drop((workers, scheduler));
    Ok(())
}
