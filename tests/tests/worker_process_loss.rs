//! A worker process killed with `kill -9`: its running tasks run again on
//! the other worker, and a result that lived only on it is recomputed from
//! its lineage when asked for.
use std::path::PathBuf;

use anyhow::Context;
use reprise::Future;
use reprise_tests::{eventually, within, Cluster, ClusterSpec};
use serde_bytes::ByteBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_process_loses_nothing_that_can_be_recomputed() -> anyhow::Result<()> {
    let mut spec = ClusterSpec::new(2, 2).worker_program(env!("CARGO_BIN_EXE_test-worker"));
    // Notice the dead worker after 1.5 s of silence rather than 10.
    spec.scheduler_args = vec!["--heartbeat-timeout".into(), "1.5".into()];
    let cluster = Cluster::start_async(spec).await?;
    let client = cluster.client().await?;

    // Over 64 KiB, so it lives only on the worker that made it.
    let big: Future<ByteBuf> = client.task("bytes").args((100_000u64,)).pure(false).submit()?;
    within("bytes(100000)", big.result()).await??;
    let who = within("who_has", client.who_has([big.key()])).await??;
    let holder = who.get(big.key()).and_then(|ws| ws.first()).context("nobody holds the result")?.to_string();

    // Tasks running on both workers when one dies.
    let marks: Vec<PathBuf> = (0..4).map(|i| cluster.scratch_dir().join(format!("slow-{i}"))).collect();
    let mut slow: Vec<Future<()>> = Vec::new();
    for dir in &marks {
        std::fs::create_dir_all(dir)?;
        let dir_text = dir.to_str().context("scratch dir is not UTF-8")?.to_owned();
        slow.push(client.task("marked_sleep").args((dir_text, 1.0)).pure(false).submit()?);
    }
    eventually("all four slow tasks started", || async { Ok(marks.iter().all(|d| d.join("started").exists())) }).await?;

    let victim = cluster.workers().iter().find(|w| w.name == holder).context("no such worker process")?;
    victim.kill();

    within("the slow tasks, after the loss", client.gather(&slow)).await??;
    assert_eq!(within("the lost result, recomputed", big.result()).await??.len(), 100_000);
    eventually("the scheduler drops the dead worker", || async {
        let cores = within("ncores", client.ncores()).await??;
        Ok(cores.len() == 1 && !cores.keys().any(|w| w.to_string() == holder))
    })
    .await?;
    let who = within("who_has", client.who_has([big.key()])).await??;
    assert!(who.get(big.key()).is_some_and(|ws| !ws.is_empty() && ws.iter().all(|w| w.to_string() != holder)), "{who:?}");

    within("closing the client", client.close()).await??;
    Ok(())
}
