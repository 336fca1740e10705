//! The headline property, over real processes: the scheduler process is
//! killed with `kill -9` while work is in flight and started again on the
//! same address and data dir; the client's futures, the workers' data and
//! the pending work all carry on.
use std::time::Duration;

use reprise::{Client, Future};
use reprise_tests::{eventually, start_scheduler, start_worker, within, SchedulerProc};

async fn scheduler_at(data_dir: std::path::PathBuf, listen: String) -> anyhow::Result<SchedulerProc> {
    tokio::task::spawn_blocking(move || start_scheduler(&data_dir, &listen, &["--durability", "process"])).await?
}

async fn n_workers(client: &Client) -> anyhow::Result<usize> {
    Ok(within("ncores", client.ncores()).await??.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_scheduler_restarts_from_its_log_and_every_result_arrives() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("reprise-restart-").tempdir()?;
    let data_dir = dir.path().join("scheduler");
    let scheduler = scheduler_at(data_dir.clone(), "tcp://127.0.0.1:0".into()).await?;
    let address = scheduler.address.clone();
    let worker_bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_test-worker"));
    let workers = {
        let (bin, address) = (worker_bin.clone(), address.clone());
        tokio::task::spawn_blocking(move || {
            anyhow::Ok([start_worker(&bin, &address, "e2e-r0", 2, &[])?, start_worker(&bin, &address, "e2e-r1", 2, &[])?])
        })
        .await??
    };
    let client = Client::builder()
        .address(address.clone())
        .name("e2e-restart")
        .timeout(Duration::from_secs(20))
        .heartbeat(Duration::from_millis(200), Duration::from_secs(1))
        .connect();
    let client = within("connecting", client).await??;

    // Done before the crash: a result held on a worker, and a large one.
    let done: Future<i64> = client.submit("inc", (1,))?;
    assert_eq!(within("inc(1)", done.result()).await??, 2);
    let big: Future<serde_bytes::ByteBuf> = client.submit("bytes", (100_000u64,))?;
    within("bytes(100000)", big.result()).await??;
    // In flight at the crash: slow tasks, and a chain behind them.
    let slow: Vec<Future<i64>> =
        (0..4).map(|i| client.task("slowinc").args((i, 1.0)).pure(false).submit()).collect::<reprise::Result<_>>()?;
    let total: Future<i64> = client.submit("sum", (&slow,))?;
    let many: Vec<Future<i64>> = client.map("inc", 10_000..10_200i64)?;

    eventually("the slow tasks are running", || async {
        let info = within("scheduler_info", client.scheduler_info()).await??;
        Ok(info.tasks_by_state.get("processing").copied().unwrap_or(0) >= 4)
    })
    .await?;
    drop(scheduler); // kill -9
    let restarted = scheduler_at(data_dir, address.clone()).await?;
    assert_eq!(restarted.address, address);

    assert_eq!(within("the slow chain after the restart", total.result()).await??, 1 + 2 + 3 + 4);
    assert_eq!(within("gather after the restart", client.gather(&many)).await??, (10_001..=10_200).collect::<Vec<i64>>());
    assert_eq!(within("a result from before the crash", done.result()).await??, 2);
    assert_eq!(within("a large result from before the crash", big.result()).await??.len(), 100_000);
    eventually("both workers are back", || async { Ok(n_workers(&client).await? == 2) }).await?;
    let after: Future<i64> = client.submit("add", (&done, &total))?;
    assert_eq!(within("new work after the restart", after.result()).await??, 12);

    within("closing the client", client.close()).await??;
    drop((workers, restarted));
    Ok(())
}
