//! A client that does not come back after the scheduler restarted has its
//! references released once the grace period is over: its results leave
//! the workers (`has_what` empties), while a client that did come back
//! keeps its own.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::ensure;
use reprise::{Client, Future};
use reprise_tests::{eventually, start_scheduler_async, start_workers_async, within};

const GRACE_S: u64 = 8;

async fn n_keys_held(client: &Client) -> anyhow::Result<usize> {
    Ok(within("has_what", client.has_what()).await??.values().map(Vec::len).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_comes_back_has_its_references_released_after_the_grace_period() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("reprise-restart-d-").tempdir()?;
    let data_dir = dir.path().join("scheduler");
    let grace = GRACE_S.to_string();
    let flags = ["--grace", grace.as_str()];
    let scheduler = start_scheduler_async(&data_dir, "tcp://127.0.0.1:0", &flags).await?;
    let address = scheduler.address.clone();
    let worker_bin = PathBuf::from(env!("CARGO_BIN_EXE_test-worker"));
    let workers = start_workers_async(&worker_bin, &address, &["rd-w0"], 2).await?;
    let connect = |name: &str| Client::builder().address(address.clone()).name(name).timeout(Duration::from_secs(20)).connect();

    let gone = within("connecting the client that will not return", connect("gone")).await??;
    let small: Vec<Future<i64>> = gone.map("inc", 0..20i64)?;
    let big: Future<serde_bytes::ByteBuf> = gone.submit("bytes", (100_000u64,))?;
    within("the results", gone.gather(&small)).await??;
    within("the large result", big.result()).await??;
    let observer = within("connecting the observer", connect("observer")).await??;
    ensure!(n_keys_held(&observer).await? == 21, "the worker should hold the 21 results");

    scheduler.proc.kill();
    // The session ends while the scheduler is down: no goodbye reaches it.
    drop((small, big, gone));
    let scheduler = start_scheduler_async(&data_dir, &address, &flags).await?;
    let restarted = Instant::now();

    eventually("the worker is back with its data", || async { Ok(n_keys_held(&observer).await? == 21) }).await?;
    let back_after = restarted.elapsed();
    ensure!(
        back_after < Duration::from_secs(GRACE_S),
        "checking within the grace period took {back_after:?}: the results were not kept while the client could still return"
    );
    eventually("the results of the client that did not return are released", || async {
        Ok(n_keys_held(&observer).await? == 0)
    })
    .await?;
    let released_after = restarted.elapsed();
    eprintln!("worker back after {back_after:?}; references released {released_after:?} after the restart");
    // The grace period starts when the core does, a moment before the
    // scheduler prints its address: allow for that moment.
    let grace_seen = Duration::from_secs(GRACE_S) - Duration::from_millis(500);
    ensure!(released_after >= grace_seen, "released after {released_after:?}, before the grace period ended");
    let info = within("scheduler_info", observer.scheduler_info()).await??;
    ensure!(info.n_clients == 1, "{} clients known; only the observer came back", info.n_clients);
    ensure!(info.tasks_by_state.values().sum::<u64>() == 0, "tasks left: {:?}", info.tasks_by_state);

    within("closing the observer", observer.close()).await??;
    drop((workers, scheduler));
    Ok(())
}
