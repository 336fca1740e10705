//! The futures walkthrough of Dask's "Futures" documentation, translated to
//! Rust, on an embedded cluster; each step prints what it returned.
use std::time::{Duration, Instant};

use anyhow::Context;
use reprise::{as_completed, fire_and_forget, wait, Client, Future, LocalCluster};
use tokio_stream::StreamExt;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Stock workers in the embedded cluster.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Task slots per worker.
    #[arg(long, default_value_t = 2)]
    threads_per_worker: usize,
}

/// Every wait of the demo is bounded, so a bug shows as an error, not a hang.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("Reprise demo: Dask's futures walkthrough on an embedded cluster\n");
    let cluster = LocalCluster::builder()
        .workers(args.workers)
        .threads_per_worker(args.threads_per_worker)
        .start()
        .await
        .context("starting the embedded cluster")?;
    println!(
        "started a scheduler on {} (log in {}) and workers {:?}",
        cluster.scheduler_address(),
        cluster.data_dir().display(),
        cluster.worker_names()
    );
    let client = cluster.client().await?;
    tokio::time::timeout(STEP_TIMEOUT * 5, walkthrough(&client))
        .await
        .context("the walkthrough did not finish in time")??;
    client.close().await?;
    cluster.close().await?;
    println!("\ndone in {:.2?}", started.elapsed());
    Ok(())
}

async fn walkthrough(client: &Client) -> anyhow::Result<()> {
    step("submit and result: inc(10), inc(20), add(a, b)");
    let a: Future<i64> = client.submit("inc", (10,))?;
    let b: Future<i64> = client.submit("inc", (20,))?;
    let c: Future<i64> = client.submit("add", (&a, &b))?;
    println!("  a = inc(10)  -> {}  (key {})", a.result().await?, a.key());
    println!("  b = inc(20)  -> {}", b.result().await?);
    println!("  c = add(a, b) -> {}  status {:?}", c.result().await?, c.status());

    step("map inc over 0..1000, then gather");
    let t = Instant::now();
    let futs: Vec<Future<i64>> = client.map("inc", 0..1000i64)?;
    let xs: Vec<i64> = client.gather(&futs).await?;
    println!("  gathered {} results in {:.2?}; first {:?}, sum {}", xs.len(), t.elapsed(), &xs[..5], xs.iter().sum::<i64>());
    drop(futs);

    step("scatter data to the workers, then compute on it");
    let data: Future<Vec<i64>> = client.scatter((1..=100).collect::<Vec<i64>>()).await?;
    let total: Future<i64> = client.submit("sum", (&data,))?;
    println!("  scattered 100 numbers as {}; sum(data) -> {}", data.key(), total.result().await?);
    let many: Vec<Future<i64>> = client.scatter_many(vec![1, 2, 3]).await?;
    let who = client.who_has(many.iter().map(|f| f.key().to_owned())).await?;
    println!("  scatter_many([1, 2, 3]) placed them on {:?}", who.values().collect::<Vec<_>>());

    step("an error, and a dependent that inherits it");
    let bad: Future<i64> = client.submit("fail", ("something went wrong",))?;
    let dependent: Future<i64> = client.submit("inc", (&bad,))?;
    match dependent.result().await {
        Err(e) => println!("  inc(fail(..)) -> Err: {e}"),
        Ok(v) => anyhow::bail!("a task depending on a failed task returned {v}"),
    }
    if let Some(err) = bad.exception().await? {
        println!("  fail(..).exception() -> message {:?}, failed first: {}", err.message(), err.key());
    }

    step("cancel a long-running task");
    let slow: Future<i64> = client.submit("slowinc", (1, 30.0))?;
    slow.cancel().await?;
    println!("  slowinc(1, 30 s) after cancel: status {:?}, cancelled() = {}", slow.status(), slow.cancelled());

    step("wait with a timeout, then as_completed");
    let sleepy: Vec<Future<i64>> =
        [0.3, 0.05, 0.2, 0.1].iter().enumerate().map(|(i, d)| client.submit("slowinc", (i as i64, *d))).collect::<reprise::Result<_>>()?;
    let early = wait(&sleepy).timeout(Duration::from_millis(1)).await?;
    println!("  wait(timeout 1 ms): {} done, {} not done", early.done.len(), early.not_done.len());
    let mut order = Vec::new();
    let mut completed = as_completed(sleepy.clone()).with_results();
    while let Some((fut, result)) = tokio::time::timeout(STEP_TIMEOUT, completed.next()).await? {
        order.push((fut.key().to_owned(), result?));
    }
    println!("  as_completed yielded values in finishing order: {:?}", order.iter().map(|(_, v)| *v).collect::<Vec<_>>());

    step("fire_and_forget: the work runs after every reference is dropped");
    let baseline = live_tasks(client).await?;
    let x: Future<i64> = client.submit("slowinc", (41, 0.2))?;
    let y: Future<i64> = client.submit("inc", (&x,))?;
    fire_and_forget(&y).await?;
    let key = y.key().to_owned();
    drop((x, y));
    println!("  submitted slowinc(41, 0.2 s) -> inc(..) as {key}, fired and forgot, dropped both futures");
    println!("  live tasks right after: {} (before: {baseline})", live_tasks(client).await?);
    let deadline = Instant::now() + STEP_TIMEOUT;
    while live_tasks(client).await? > baseline {
        anyhow::ensure!(Instant::now() < deadline, "the fire-and-forget chain did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("  the chain ran to its end, then the scheduler released it: live tasks back to {baseline}");

    step("who holds what");
    for (worker, keys) in client.has_what().await? {
        println!("  {worker}: {} keys", keys.len());
    }
    drop((a, b, c, data, total, many, bad, dependent, slow, sleepy));
    Ok(())
}

/// Tasks the scheduler holds in any state.
async fn live_tasks(client: &Client) -> anyhow::Result<u64> {
    Ok(client.scheduler_info().await?.tasks_by_state.values().sum())
}

fn step(title: &str) {
    println!("\n== {title}");
}
