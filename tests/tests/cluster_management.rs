//! Cluster management over real processes: `run` on every worker,
//! `replicate` and `rebalance` (seen in `who_has` / `has_what`), `ncores`,
//! `restart` (workers drop everything, futures report lost) and
//! `shutdown` (every process stops). The workers are the tests' own binary.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure};
use reprise::{Error, Future, FutureStatus};
use reprise_tests::{eventually, within, within_for, Cluster, ClusterSpec, SharedCluster};

/// Three one-thread workers, shared by the tests that change nothing for the others.
static CLUSTER: SharedCluster = SharedCluster::new();

fn spec() -> ClusterSpec {
    ClusterSpec::new(3, 1).worker_program(env!("CARGO_BIN_EXE_test-worker"))
}

/// Result sizes above the inline limit, so that data lives only on workers.
const BIG: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returns_one_value_per_worker_and_ncores_lists_every_worker() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let names: BTreeMap<reprise::WorkerId, Option<String>> = within("run", client.run("worker_name", ())).await??;
    assert_eq!(names.len(), 3, "{names:?}");
    for (worker, name) in &names {
        assert_eq!(name.as_deref(), Some(worker.as_str()));
    }
    let incs: BTreeMap<reprise::WorkerId, i64> = within("run inc", client.run("inc", (41,))).await??;
    assert!(incs.values().all(|v| *v == 42) && incs.len() == 3, "{incs:?}");
    match within("run of an unknown function", client.run::<i64, _>("nope", ())).await? {
        Err(Error::UnknownFunction(f)) => assert_eq!(f, "nope"),
        other => bail!("expected UnknownFunction, got {other:?}"),
    }
    let ncores = within("ncores", client.ncores()).await??;
    assert_eq!(ncores.values().copied().collect::<Vec<_>>(), vec![1, 1, 1]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_to_two_workers_shows_two_holders_in_who_has() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let fut: Future<serde_bytes::ByteBuf> = client.task("bytes").args((BIG,)).pure(false).submit()?;
    within("replicate", client.replicate(std::slice::from_ref(&fut), 2)).await??;
    // replicate answers once the copies are recorded (and logged): no
    // polling. The rebalance test runs beside this one on the same cluster;
    // a move of this key on its way must not count as a copy.
    let who = within("who_has", client.who_has([fut.key()])).await??;
    let holders = &who[fut.key()];
    assert_eq!(holders.len(), 2, "{who:?}");
    let held = within("has_what", client.has_what()).await??;
    let n_listing = held.values().filter(|keys| keys.iter().any(|k| k == fut.key())).count();
    assert_eq!(n_listing, 2, "{held:?}");
    // More copies than workers means one on each.
    within("replicate to all", client.replicate(std::slice::from_ref(&fut), 10)).await??;
    let who = within("who_has", client.who_has([fut.key()])).await??;
    assert_eq!(who[fut.key()].len(), 3, "{who:?}");
    assert_eq!(within("the value", fut.result()).await??.len() as u64, BIG);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_spreads_data_held_by_one_worker() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let first = cluster.worker_names()[0].clone();
    let futs: Vec<Future<serde_bytes::ByteBuf>> = (0..6)
        .map(|_| client.task("bytes").args((BIG,)).pure(false).workers([first.as_str()]).submit())
        .collect::<reprise::Result<_>>()?;
    within("the blobs", client.gather(&futs)).await??;
    let keys: Vec<&str> = futs.iter().map(Future::key).collect();
    let on = |who: &BTreeMap<String, Vec<reprise::WorkerId>>, w: &str| {
        who.values().filter(|hs| hs.iter().any(|h| h.as_str() == w)).count()
    };
    let before = within("who_has", client.who_has(&keys)).await??;
    assert_eq!(on(&before, &first), 6);
    within("rebalance", client.rebalance()).await??;
    let after = within("who_has", client.who_has(&keys)).await??;
    assert!(after.values().all(|hs| hs.len() == 1), "moved, not copied: {after:?}");
    for w in cluster.worker_names() {
        let n = on(&after, w);
        ensure!((1..=3).contains(&n), "{w} holds {n} of the 6 blobs after rebalancing: {after:?}");
    }
    let values = within("the blobs again", client.gather(&futs)).await??;
    assert!(values.iter().all(|v| v.len() as u64 == BIG));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_empties_has_what_and_affected_futures_report_lost() -> anyhow::Result<()> {
    // A cluster of its own: a restart affects every client.
    let cluster = Cluster::start_async(spec()).await?;
    let client = cluster.client().await?;
    let small: Future<i64> = client.submit("inc", (1,))?;
    let big: Future<serde_bytes::ByteBuf> = client.task("bytes").args((BIG,)).pure(false).submit()?;
    within("inc(1)", small.result()).await??;
    within("the blob", big.result()).await??;
    let running: Future<()> = client.submit("sleep", (30.0,))?;
    let held = within("has_what", client.has_what()).await??;
    ensure!(held.values().flatten().count() >= 2, "{held:?}");

    within("restart", client.restart()).await??;
    let held = within("has_what", client.has_what()).await??;
    assert_eq!(held.len(), 3, "every worker is still listed: {held:?}");
    assert!(held.values().all(Vec::is_empty), "{held:?}");
    for status in [small.status(), big.status(), running.status()] {
        assert_eq!(status, FutureStatus::Lost);
    }
    match within("a lost result", small.result()).await? {
        Err(Error::Lost { key }) => assert_eq!(key, small.key()),
        other => bail!("expected Error::Lost, got {other:?}"),
    }
    // The cluster keeps working at once: the abandoned 30 s sleep holds no
    // slot (its thread runs on until it ends), so fresh tasks start now.
    let fresh: Vec<Future<i64>> = client.map("inc", 10..16)?;
    let limit = Duration::from_secs(15);
    assert_eq!(
        within_for("six incs after the restart", limit, client.gather(&fresh)).await??,
        (11..17).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_worker_and_the_scheduler() -> anyhow::Result<()> {
    let cluster = Arc::new(Cluster::start_async(spec()).await?);
    let client = cluster.client().await?;
    assert_eq!(within("inc", client.submit::<i64, _>("inc", (1,))?.result()).await??, 2);
    within("shutdown", client.shutdown()).await??;
    let waiting = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for worker in waiting.workers() {
            let status = worker.wait_exit(Duration::from_secs(30))?;
            ensure!(status.success(), "{} exited with {status}", worker.name);
        }
        waiting.scheduler().wait_exit(Duration::from_secs(30))?;
        Ok(())
    })
    .await??;
    assert!(matches!(client.ncores().await, Err(Error::Closed)), "the client is closed");
    eventually("nothing runs any more", || async { Ok(!cluster.scheduler().is_running()) }).await
}
