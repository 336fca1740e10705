//! Soak: one workload of 10,000 tasks during which the scheduler process is
//! killed with `kill -9` and started again 20 times (with snapshots taken
//! along the way); every result is correct at the end.
//!
//! The workload arrives in 20 waves of 500 dependent tasks; a wave's pairs
//! also depend on the previous wave's leaves, so dependencies cross the
//! restarts. Each kill comes when most of the work submitted so far has run
//! but a random 100 to 450 tasks have not, so the restarts are spread over
//! the whole run. Odd waves are submitted while the scheduler is down, so
//! their submissions are resent when the client reconnects.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reprise::{Client, Future};
use reprise_tests::{
    count_lines, eventually, read_executions, start_scheduler_async, start_workers_async, within, within_for, TestRng,
};

const RESTARTS: usize = 20;
const WAVE_LEAVES: usize = 250;
const TASK_SLEEP_MS: u64 = 1;

/// One wave: `WAVE_LEAVES` leaves and as many pairs, the pairs also adding
/// the previous wave's leaf (if any). Returns the futures and expected values.
fn submit_wave(
    client: &Client,
    log: &str,
    wave: usize,
    previous: Option<&[Future<i64>]>,
    previous_values: &[i64],
) -> anyhow::Result<(Vec<Future<i64>>, Vec<i64>)> {
    let mut futures: Vec<Future<i64>> = Vec::new();
    let mut expected = Vec::new();
    for i in 0..WAVE_LEAVES {
        let x = (wave * WAVE_LEAVES + i) as i64;
        futures.push(client.submit("counted", (log, format!("w{wave}-leaf-{i}"), vec![x], TASK_SLEEP_MS))?);
        expected.push(x + 1);
    }
    for i in 0..WAVE_LEAVES {
        let j = (i + 1) % WAVE_LEAVES;
        let mut inputs = vec![&futures[i], &futures[j]];
        let mut value = 1 + expected[i] + expected[j];
        if let Some(prev) = previous {
            inputs.push(&prev[i]);
            value += previous_values[i];
        }
        let pair: Future<i64> = client.submit("counted", (log, format!("w{wave}-pair-{i}"), inputs, TASK_SLEEP_MS))?;
        futures.push(pair);
        expected.push(value);
    }
    Ok((futures, expected))
}

/// Submit wave `wave`, chained to the previous wave's leaves.
fn submit_next(
    client: &Client,
    log: &str,
    wave: usize,
    last_leaves: &mut Option<(Vec<Future<i64>>, Vec<i64>)>,
    all: &mut Vec<Future<i64>>,
    all_expected: &mut Vec<i64>,
) -> anyhow::Result<()> {
    let previous = last_leaves.as_ref().map(|(f, _)| f.as_slice());
    let previous_values = last_leaves.as_ref().map_or(&[][..], |(_, v)| v.as_slice());
    let (futures, expected) = submit_wave(client, log, wave, previous, previous_values)?;
    *last_leaves = Some((futures[..WAVE_LEAVES].to_vec(), expected[..WAVE_LEAVES].to_vec()));
    all.extend(futures);
    all_expected.extend(expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_survive_twenty_kill_9_restarts_of_the_scheduler() -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut rng, seed) = TestRng::from_env_or_clock();
    eprintln!("REPRISE_TEST_SEED={seed}");
    let dir = tempfile::Builder::new().prefix("reprise-restart-soak-").tempdir()?;
    let data_dir = dir.path().join("scheduler");
    let runs_log = dir.path().join("executions");
    let log = runs_log.to_str().context("the temp dir path is not UTF-8")?.to_owned();
    let flags = ["--grace", "30", "--snapshot-every", "3000", "--durability", "process"];
    let mut scheduler = start_scheduler_async(&data_dir, "tcp://127.0.0.1:0", &flags).await?;
    let address = scheduler.address.clone();
    let worker_bin = PathBuf::from(env!("CARGO_BIN_EXE_test-worker"));
    let workers = start_workers_async(&worker_bin, &address, &["rs-w0", "rs-w1"], 2).await?;
    let client = within("connecting", Client::builder().address(address.clone()).timeout(Duration::from_secs(30)).connect()).await??;

    let mut all: Vec<Future<i64>> = Vec::new();
    let mut all_expected: Vec<i64> = Vec::new();
    let mut last_leaves: Option<(Vec<Future<i64>>, Vec<i64>)> = None;
    for wave in 0..RESTARTS {
        // Kill once most of what was submitted so far has run, leaving a
        // random 100 to 450 tasks still to run: every kill finds work in flight.
        let while_down = wave % 2 == 1;
        if !while_down {
            submit_next(&client, &log, wave, &mut last_leaves, &mut all, &mut all_expected)?;
        }
        let target = all.len().saturating_sub(rng.range(100, 450) as usize);
        eventually(&format!("{target} executions before kill {}", wave + 1), || async { Ok(count_lines(&runs_log) >= target) })
            .await?;
        scheduler.proc.kill();
        if while_down {
            submit_next(&client, &log, wave, &mut last_leaves, &mut all, &mut all_expected)?;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0, 300))).await;
        scheduler = start_scheduler_async(&data_dir, &address, &flags).await?;
        eprintln!("restart {} of {RESTARTS} done at {:.1?}, {} executions so far", wave + 1, started.elapsed(), count_lines(&runs_log));
    }
    ensure!(all.len() == 10_000, "the workload has {} tasks", all.len());
    let gathered = within_for("gathering all 10,000 results", Duration::from_secs(240), client.gather(&all)).await;
    if gathered.is_err() {
        // Say where the work stands, to tell a stall from slowness.
        let info = within("scheduler_info", client.scheduler_info()).await;
        eprintln!("the scheduler says: {info:?}");
        eprintln!("executions so far: {}", count_lines(&runs_log));
        eprintln!("data dir kept at {}", dir.keep().display());
    }
    let got = gathered??;
    ensure!(got == all_expected, "wrong results after {RESTARTS} restarts");

    let runs = read_executions(&runs_log)?;
    ensure!(runs.len() == all.len(), "{} of {} tasks recorded an execution", runs.len(), all.len());
    let twice = runs.values().filter(|ws| ws.len() > 1).count();
    eprintln!("all {} results correct after {RESTARTS} restarts in {:.1?}; {twice} tasks ran twice", all.len(), started.elapsed());
    within("closing the client", client.close()).await??;
    drop((workers, scheduler));
    Ok(())
}
