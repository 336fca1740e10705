//! The futures workflow over real processes: a `reprise scheduler` process,
//! two `reprise worker` processes, and a client in the test driving them
//! through chains, map and gather, scatter, errors, `wait` and
//! `as_completed`. The tests of this file share one cluster; each uses its
//! own client and its own keys where sharing one could matter.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reprise::{as_completed, wait, Error, Future, FutureStatus};
use reprise_tests::{within, ClusterSpec, SharedCluster};
use tokio_stream::StreamExt;

static CLUSTER: SharedCluster = SharedCluster::new();

/// Two stock worker processes with four task threads each, so that the
/// slow tasks of one test leave room for the others.
fn spec() -> ClusterSpec {
    ClusterSpec::new(2, 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inc_add_chain_passes_futures_as_arguments() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;

    let a: Future<i64> = client.submit("inc", (10,))?;
    let b: Future<i64> = client.submit("inc", (20,))?;
    let c: Future<i64> = client.submit("add", (&a, &b))?;
    assert_eq!(within("add(inc(10), inc(20))", c.result()).await??, 32);
    assert_eq!(c.status(), FutureStatus::Finished);
    assert!(a.done() && b.done());

    // Each step's input is the previous step's future.
    let mut x: Future<i64> = client.submit("inc", (1000,))?;
    for _ in 0..20 {
        x = client.submit("inc", (&x,))?;
    }
    assert_eq!(within("a chain of 21 incs", x.result()).await??, 1021);

    // Futures nested in a Vec argument are replaced by their values too.
    let total: Future<i64> = client.submit("sum", (vec![&a, &b, &c],))?;
    assert_eq!(within("sum([a, b, c])", total.result()).await??, 11 + 21 + 32);

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_of_a_thousand_then_gather_returns_every_result_in_order() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;

    let started = Instant::now();
    let futs: Vec<Future<i64>> = client.map("inc", 0..1000i64)?;
    assert_eq!(futs.len(), 1000);
    let xs: Vec<i64> = within("gathering 1,000 results", client.gather(&futs)).await??;
    eprintln!("map of 1,000 and gather: {:.2?}", started.elapsed());
    assert_eq!(xs, (1..=1000).collect::<Vec<i64>>());
    assert!(futs.iter().all(|f| f.status() == FutureStatus::Finished));

    // The work was spread over both worker processes.
    let who = within("who_has", client.who_has(futs.iter().map(Future::key))).await??;
    assert_eq!(who.len(), 1000);
    let holders: BTreeSet<String> = who.values().flatten().map(ToString::to_string).collect();
    let workers: BTreeSet<String> = cluster.worker_names().iter().cloned().collect();
    assert_eq!(holders, workers, "results should live on both worker processes");

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scatter_then_submit_computes_on_the_scattered_data() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;

    let small: Vec<i64> = (1..=100).collect();
    let data: Future<Vec<i64>> = within("scatter", client.scatter(small)).await??;
    let total: Future<i64> = client.submit("sum", (&data,))?;
    assert_eq!(within("sum(scattered)", total.result()).await??, 5050);

    // Over 64 KiB: not inline anywhere, so the worker running `sum` fetches
    // it from the worker process holding it, and the client fetches it back.
    let big: Vec<i64> = (0..30_000).map(|i| i * 1_000_003).collect();
    let big_sum: i64 = big.iter().sum();
    let big_fut: Future<Vec<i64>> = within("scatter of a large value", client.scatter(big.clone())).await??;
    let big_total: Future<i64> = client.submit("sum", (&big_fut,))?;
    assert_eq!(within("sum(large scattered)", big_total.result()).await??, big_sum);
    assert_eq!(within("fetching the large value back", big_fut.result()).await??, big);

    // scatter_many places values round-robin over the worker processes.
    let many: Vec<Future<i64>> = within("scatter_many", client.scatter_many(vec![7001i64, 7002, 7003, 7004])).await??;
    let pair: Future<i64> = client.submit("add", (&many[0], &many[1]))?;
    assert_eq!(within("add of two scattered values", pair.result()).await??, 14003);
    let who = within("who_has", client.who_has(many.iter().map(Future::key))).await??;
    assert!(who.values().all(|holders| holders.len() == 1), "each scattered value is on one worker: {who:?}");
    let holders: BTreeSet<String> = who.values().flatten().map(ToString::to_string).collect();
    assert_eq!(holders.len(), 2, "scatter_many should use both workers: {who:?}");

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erring_task_fails_its_dependents_with_the_same_error() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let message = "boom from the end-to-end test";

    let bad: Future<()> = client.submit("fail", (message,))?;
    let dependent: Future<i64> = client.submit("inc", (&bad,))?;
    let second: Future<i64> = client.submit("add", (&dependent, 1))?;

    for (what, result) in [
        ("fail(..)", within("fail(..)", bad.result()).await?.map(|()| 0)),
        ("inc(fail(..))", within("inc(fail(..))", dependent.result()).await?),
        ("add(inc(fail(..)), 1)", within("add(inc(fail(..)), 1)", second.result()).await?),
    ] {
        match result {
            Err(Error::Task(e)) => {
                assert_eq!(e.message(), message, "{what}");
                assert_eq!(e.key(), bad.key(), "{what}: the error should name the task that failed first");
                assert!(e.to_string().contains(message), "{what}: {e}");
            }
            other => bail!("{what}: expected the task's error, got {other:?}"),
        }
    }
    for f in [&dependent, &second] {
        assert_eq!(f.status(), FutureStatus::Error);
    }
    assert_eq!(bad.status(), FutureStatus::Error);

    let exception = within("exception()", bad.exception()).await??.context("fail(..) has no exception")?;
    assert_eq!(exception.message(), message);
    assert_eq!(exception.key(), bad.key());
    let inherited = within("exception() of a dependent", dependent.exception()).await??.context("no exception")?;
    assert_eq!(inherited.message(), message);
    assert_eq!(inherited.key(), bad.key());

    let fine: Future<i64> = client.submit("inc", (41,))?;
    assert!(within("exception() of a finished task", fine.exception()).await??.is_none());

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_with_timeout_returns_the_unfinished_futures_in_not_done() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;

    let fast: Future<i64> = client.task("inc").args((1,)).pure(false).submit()?;
    within("inc(1)", fast.result()).await??;
    let slow: Future<i64> = client.task("slowinc").args((1, 1.0)).pure(false).submit()?;

    let started = Instant::now();
    let waited = within("wait(..).timeout(300 ms)", wait([&fast, &slow]).timeout(Duration::from_millis(300))).await??;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "the wait gave up early, after {elapsed:?}");
    let keys = |fs: &[Future<i64>]| fs.iter().map(|f| f.key().to_owned()).collect::<Vec<_>>();
    assert_eq!(keys(&waited.done), vec![fast.key().to_owned()]);
    assert_eq!(keys(&waited.not_done), vec![slow.key().to_owned()]);
    assert_eq!(slow.status(), FutureStatus::Pending);

    // first_completed returns as soon as one is done.
    let slower: Future<i64> = client.task("slowinc").args((2, 1.5)).pure(false).submit()?;
    let quick: Future<i64> = client.task("inc").args((2,)).pure(false).submit()?;
    let first = within("wait(..).first_completed()", wait([&slower, &quick]).first_completed()).await??;
    assert_eq!(keys(&first.done), vec![quick.key().to_owned()]);
    assert_eq!(keys(&first.not_done), vec![slower.key().to_owned()]);

    // Without a timeout the wait ends once all are done.
    let all = within("wait(..)", wait([&fast, &slow, &slower])).await??;
    assert_eq!(all.done.len(), 3);
    assert!(all.not_done.is_empty());
    assert_eq!(within("slowinc result", slow.result()).await??, 2);

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_completed_yields_in_completion_order_and_takes_additions() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;

    // The quick one comes first, whatever the order given.
    let slow: Future<i64> = client.task("slowinc").args((10, 1.5)).pure(false).submit()?;
    let quick: Future<i64> = client.task("inc").args((20,)).pure(false).submit()?;
    let mut ac = as_completed(vec![slow.clone(), quick.clone()]);
    let first = within("the first completed", ac.next()).await?.context("as_completed ended early")?;
    assert_eq!(first.key(), quick.key());
    assert!(first.done());

    // Add while iterating: each result (up to 5) adds its successor.
    let start: Future<i64> = client.task("inc").args((0,)).pure(false).submit()?;
    ac.add(start);
    let mut values = Vec::new();
    let mut yielded_slow = false;
    while let Some(f) = within("the next completed", ac.next()).await? {
        assert!(f.done(), "as_completed yielded {} before it was done", f.key());
        if f.key() == slow.key() {
            yielded_slow = true;
            continue;
        }
        let v = within("a yielded result", f.result()).await??;
        values.push(v);
        if v < 5 {
            ac.add(client.submit("inc", (&f,))?);
        }
    }
    assert!(yielded_slow, "the slow future was never yielded");
    assert_eq!(values, vec![1, 2, 3, 4, 5]);

    // A future added twice is yielded twice.
    let twice: Vec<Future<i64>> = within("as_completed of one future twice", as_completed(vec![quick.clone(), quick.clone()]).collect()).await?;
    assert_eq!(twice.len(), 2);

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_completed_with_results_pairs_each_future_with_its_outcome() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;

    let mut futs: Vec<Future<i64>> = (0..5).map(|i| client.task("inc").args((i,)).pure(false).submit()).collect::<reprise::Result<_>>()?;
    let bad: Future<i64> = client.task("fail").args(("with_results error",)).pure(false).submit()?;
    futs.push(bad.clone());
    let expected: Vec<(String, Option<i64>)> =
        futs.iter().enumerate().map(|(i, f)| (f.key().to_owned(), (i < 5).then_some(i as i64 + 1))).collect();

    let mut stream = as_completed(futs).with_results();
    let mut seen = Vec::new();
    while let Some((f, result)) = within("the next result", stream.next()).await? {
        let value = match result {
            Ok(v) => Some(v),
            Err(Error::Task(e)) if f.key() == bad.key() => {
                assert_eq!(e.message(), "with_results error");
                None
            }
            Err(e) => bail!("{}: unexpected error {e}", f.key()),
        };
        seen.push((f.key().to_owned(), value));
    }
    seen.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(seen, expected);

    within("closing the client", client.close()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_completed_batches_group_what_finished_since_the_last_poll() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;

    let done: Vec<Future<i64>> = client.map("inc", 5000..5010i64)?;
    within("wait for ten", wait(&done)).await??;
    let slow: Future<i64> = client.task("slowinc").args((1, 1.0)).pure(false).submit()?;

    let mut batches = as_completed(done.iter().cloned().chain([slow.clone()])).batches();
    let first = within("the first batch", batches.next()).await?.context("no batch")?;
    let mut first_keys: Vec<&str> = first.iter().map(Future::key).collect();
    first_keys.sort_unstable();
    let mut done_keys: Vec<&str> = done.iter().map(Future::key).collect();
    done_keys.sort_unstable();
    assert_eq!(first_keys, done_keys, "everything already done arrives as one batch");

    // Added while iterating: arrives with or after the slow one.
    let late: Future<i64> = client.task("slowinc").args((2, 0.2)).pure(false).submit()?;
    batches.add(late.clone());
    let mut rest = Vec::new();
    while let Some(batch) = within("the next batch", batches.next()).await? {
        assert!(!batch.is_empty(), "batches are never empty");
        rest.extend(batch.iter().map(|f| f.key().to_owned()));
    }
    rest.sort();
    let mut expected = vec![slow.key().to_owned(), late.key().to_owned()];
    expected.sort();
    assert_eq!(rest, expected);

    within("closing the client", client.close()).await??;
    Ok(())
}
