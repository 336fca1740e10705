//! `reprise bench tasks`: the task workloads of ../shared/bench/dask_bench.py
//! on an embedded cluster of the same shape (2 workers × 1 thread), one line
//! per workload in the Dask script's format so the two compare line by line.
use std::time::{Duration, Instant};

use anyhow::Context;
use reprise::{Client, Future, LocalCluster};

/// Every workload's run is bounded: a regression shows as an error, not a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[arg(long, value_enum, default_value = "power")]
    durability: super::DurabilityArg,
    /// Runs per workload; the median is printed.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Smaller sizes, for a smoke test.
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (map_noop, chain, tree_reduce, fanout_gather_bytes, submit_latency).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

struct Sizes {
    map: usize,
    map_large: usize,
    chain: usize,
    tree_leaves: usize,
    fanout: usize,
    latency: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let sizes = if args.quick {
        Sizes { map: 1_000, map_large: 5_000, chain: 200, tree_leaves: 1_024, fanout: 100, latency: 100 }
    } else {
        Sizes { map: 10_000, map_large: 50_000, chain: 2_000, tree_leaves: 8_192, fanout: 1_000, latency: 1_000 }
    };
    let cluster = LocalCluster::builder()
        .workers(2)
        .threads_per_worker(1)
        .durability(args.durability.into())
        .start()
        .await
        .context("starting the embedded cluster")?;
    let client = cluster.client().await?;
    println!("# reprise bench tasks: 2 workers x 1 thread, durability {:?}, median of {}", args.durability, args.repeats);
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    if wanted("map_noop") {
        for n in [sizes.map, sizes.map_large] {
            let t = median(args.repeats, || map_noop(&client, n)).await?;
            report("map_noop", n, t, n, "");
        }
    }
    if wanted("chain") {
        let t = median(args.repeats, || chain(&client, sizes.chain)).await?;
        report("chain", sizes.chain, t, sizes.chain, "");
    }
    if wanted("tree_reduce") {
        let n_tasks = 2 * sizes.tree_leaves - 1;
        let t = median(args.repeats, || tree_reduce(&client, sizes.tree_leaves)).await?;
        report("tree_reduce", sizes.tree_leaves, t, n_tasks, &format!("tasks={n_tasks}"));
    }
    if wanted("fanout_gather_bytes") {
        let n = sizes.fanout;
        let t = median(args.repeats, || fanout_gather_bytes(&client, n)).await?;
        let mb_s = (n as f64 * 100_000.0) / t.as_secs_f64() / 1e6;
        report("fanout_gather_bytes", n, t, n, &format!("MB_per_s={mb_s:.1}"));
    }
    if wanted("submit_latency") {
        let n = sizes.latency;
        let mut latencies = Vec::new();
        for _ in 0..args.repeats {
            latencies = submit_latency(&client, n).await?;
        }
        latencies.sort();
        let total: Duration = latencies.iter().sum();
        let p50 = latencies[latencies.len() / 2];
        let p99 = latencies[latencies.len() * 99 / 100];
        report("submit_latency", n, total, n, &format!("p50_ms={:.3} p99_ms={:.3}", ms(p50), ms(p99)));
    }
    client.close().await?;
    cluster.close().await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(name: &str, n: usize, t: Duration, n_tasks: usize, extra: &str) {
    let rate = n_tasks as f64 / t.as_secs_f64();
    println!("workload={name} n={n} median_s={:.4} tasks_per_s={rate:.0} {extra}", t.as_secs_f64());
}

async fn median<F, Fut>(repeats: usize, mut run: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        times.push(tokio::time::timeout(RUN_TIMEOUT, run()).await.context("a benchmark run timed out")??);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

async fn map_noop(client: &Client, n: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let futs: Vec<Future<i64>> = (0..n as i64).map(|i| client.task("inc").args((i,)).pure(false).submit()).collect::<reprise::Result<_>>()?;
    let xs = client.gather(&futs).await?;
    anyhow::ensure!(xs.len() == n && xs[n - 1] == n as i64, "wrong results");
    Ok(t.elapsed())
}

async fn chain(client: &Client, n: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut f: Future<i64> = client.task("inc").args((0,)).pure(false).submit()?;
    for _ in 1..n {
        f = client.task("inc").args((&f,)).pure(false).submit()?;
    }
    anyhow::ensure!(f.result().await? == n as i64, "wrong chain result");
    Ok(t.elapsed())
}

async fn tree_reduce(client: &Client, leaves: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut level: Vec<Future<i64>> =
        (0..leaves as i64).map(|i| client.task("inc").args((i,)).pure(false).submit()).collect::<reprise::Result<_>>()?;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => client.task("add").args((a, b)).pure(false).submit(),
                [a] => Ok(a.clone()),
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect::<reprise::Result<_>>()?;
    }
    let want: i64 = (1..=leaves as i64).sum();
    anyhow::ensure!(level[0].result().await? == want, "wrong reduction");
    Ok(t.elapsed())
}

async fn fanout_gather_bytes(client: &Client, n: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let futs: Vec<Future<serde_bytes::ByteBuf>> =
        (0..n).map(|_| client.task("bytes").args((100_000u64,)).pure(false).submit()).collect::<reprise::Result<_>>()?;
    let blobs = client.gather(&futs).await?;
    anyhow::ensure!(blobs.iter().all(|b| b.len() == 100_000), "wrong payload sizes");
    Ok(t.elapsed())
}

async fn submit_latency(client: &Client, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n as i64 {
        let t = Instant::now();
        let f: Future<i64> = client.task("inc").args((i,)).pure(false).submit()?;
        anyhow::ensure!(f.result().await? == i + 1, "wrong result");
        out.push(t.elapsed());
    }
    Ok(out)
}
