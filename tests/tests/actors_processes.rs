//! Actors over real processes: calls go to the actor's worker and run one
//! at a time; the parameter-server example of Dask's docs; and an actor
//! whose worker dies, which fails clearly and is not recreated. The workers
//! are the tests' own binary (`src/bin/test-worker.rs`).
use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context};
use reprise::{ActorHandle, Error, Future};
use reprise_tests::{eventually, within, Cluster, ClusterSpec, SharedCluster};

static CLUSTER: SharedCluster = SharedCluster::new();

fn spec() -> ClusterSpec {
    ClusterSpec::new(2, 2).worker_program(env!("CARGO_BIN_EXE_test-worker"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_incremented_1000_times_from_4_concurrent_tasks_ends_at_1000() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let counter = within("creating the Counter", client.submit_actor("Counter", ())).await??;
    assert!(cluster.worker_names().iter().any(|w| w == counter.worker().as_str()), "{counter:?}");
    let callers = (0..4).map(|_| {
        let counter = counter.clone();
        tokio::spawn(async move {
            let mut seen = Vec::with_capacity(250);
            for _ in 0..250 {
                seen.push(counter.call::<u64>("increment", ()).await?);
            }
            Ok::<_, reprise::Error>(seen)
        })
    });
    let mut all = Vec::new();
    for caller in callers {
        all.extend(within("250 increments", caller).await???);
    }
    // Calls ran one at a time: every count from 1 to 1000 was returned once.
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct, (1..=1000).collect::<BTreeSet<u64>>());
    assert_eq!(within("value", counter.call::<u64>("value", ())).await??, 1000);
    Ok(())
}

/// Dask's docs, "Actors": a parameter server holds the parameters; each of
/// 20 iterations runs `train` on a worker, which gets them from the actor,
/// takes a gradient step toward the data (ones) and puts them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_server_trained_20_times_drives_the_mean_toward_one() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let ps: ActorHandle = within("creating the ParameterServer", client.submit_actor("ParameterServer", ())).await??;
    within("put", ps.call::<()>("put", ("parameters", vec![0.0f64; 1000]))).await??;
    let lr = 0.1;
    let mut means = Vec::new();
    for _ in 0..20 {
        let step: Future<f64> = client.task("ps_train").args((&ps, lr)).pure(false).submit()?;
        means.push(within("a training step", step.result()).await??);
    }
    // Each step moves every parameter 2·lr of the way to 1: mean_k = 1 - 0.8^k.
    for (k, mean) in means.iter().enumerate() {
        let expected = 1.0 - 0.8f64.powi(k as i32 + 1);
        assert!((mean - expected).abs() < 1e-9, "step {k}: mean {mean}, expected {expected}");
    }
    assert!(means.windows(2).all(|w| w[1] > w[0]), "{means:?}");
    assert!(means[19] > 0.98, "{means:?}");
    let params: Vec<f64> = within("get", ps.call("get", ("parameters",))).await??;
    assert_eq!(params.len(), 1000);
    assert!((params.iter().sum::<f64>() / 1000.0 - means[19]).abs() < 1e-12);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_actor_type_and_method_fail_with_what_to_do() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    match within("an unknown actor type", client.submit_actor("Nope", ())).await? {
        Err(Error::Actor { actor, message }) => {
            assert_eq!(actor, "Nope");
            assert!(message.contains(".actor::<T>(\"Nope\")"), "{message}");
        }
        other => bail!("expected Error::Actor, got {other:?}"),
    }
    let counter = within("creating a Counter", client.submit_actor("Counter", ())).await??;
    match within("an unknown method", counter.call::<u64>("nope", ())).await? {
        Err(Error::Task(e)) => assert!(e.message().contains("`nope`") && e.message().contains("increment"), "{e}"),
        other => bail!("expected a task error, got {other:?}"),
    }
    assert_eq!(within("increment", counter.call::<u64>("increment", ())).await??, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_clearly_once_the_actors_worker_dies_and_it_is_not_recreated() -> anyhow::Result<()> {
    // A cluster of its own: a worker is killed.
    let cluster = Cluster::start_async(spec()).await?;
    let client = cluster.client().await?;
    let counter = within("creating a Counter", client.submit_actor("Counter", ())).await??;
    assert_eq!(within("increment", counter.call::<u64>("increment", ())).await??, 1);
    let home = counter.worker().to_string();
    let index = cluster.worker_names().iter().position(|w| *w == home).context("the actor's worker")?;
    cluster.workers()[index].kill();

    let lost = within_secs(15, "a call after the worker died", counter.call::<u64>("increment", ())).await?;
    match lost {
        Err(e @ Error::ActorLost { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&home) && text.contains("not resilient"), "{text}");
        }
        other => bail!("expected Error::ActorLost, got {other:?}"),
    }
    // Once the scheduler notices, the actor errs; it is never placed on
    // the surviving worker.
    eventually("the scheduler reports the actor lost", || async {
        match counter.call::<u64>("increment", ()).await {
            Err(Error::ActorLost { reason, .. }) => Ok(reason.contains("scheduler")),
            Err(_) => Ok(false),
            Ok(n) => bail!("a call was answered ({n}) after the actor's worker died"),
        }
    })
    .await?;
    let held = within("has_what", client.has_what()).await??;
    assert!(held.values().flatten().all(|k| k != counter.key()), "the actor came back: {held:?}");
    Ok(())
}

async fn within_secs<F: std::future::IntoFuture>(secs: u64, what: &str, fut: F) -> anyhow::Result<F::Output> {
    reprise_tests::within_for(what, Duration::from_secs(secs), fut).await
}
