//! The futures walkthrough of Dask's "Futures" documentation, translated to
//! Rust, on a local cluster; each step prints what it returned. Midway, the
//! scheduler is killed with `SIGKILL` while work is in flight and started
//! again on the same port and data dir, and every result still arrives.
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
    /// Run the scheduler inside this process (killed by dropping its socket
    /// and core at once) instead of as a child process killed with SIGKILL.
    #[arg(long)]
    embedded_scheduler: bool,
}

/// Every wait of the demo is bounded, so a bug shows as an error, not a hang.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("Reprise demo: Dask's futures walkthrough on a local cluster, with a scheduler crash midway\n");
    let mut builder = LocalCluster::builder().workers(args.workers).threads_per_worker(args.threads_per_worker);
    if !args.embedded_scheduler {
        let exe = std::env::current_exe().context("finding the reprise binary to run the scheduler")?;
        builder = builder.scheduler_process(exe);
    }
    let mut cluster = builder.start().await.context("starting the local cluster")?;
    let scheduler = match cluster.scheduler_pid() {
        Some(pid) => format!("a scheduler process (pid {pid})"),
        None => "an embedded scheduler".to_owned(),
    };
    println!(
        "started {scheduler} on {} (log in {}) and in-process workers {:?}",
        cluster.scheduler_address(),
        cluster.data_dir().display(),
        cluster.worker_names()
    );
    let client = cluster.client().await?;
    tokio::time::timeout(STEP_TIMEOUT * 5, walkthrough(&client, &mut cluster))
        .await
        .context("the walkthrough did not finish in time")??;
    client.close().await?;
    cluster.close().await?;
    println!("\ndone in {:.2?}", started.elapsed());
    Ok(())
}

async fn walkthrough(client: &Client, cluster: &mut LocalCluster) -> anyhow::Result<()> {
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

    crash_and_restart(client, cluster, &c).await?;

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

/// Kill the scheduler with work in flight and a submission pending, start
/// it again on the same port and data dir, and show that everything arrives.
async fn crash_and_restart(client: &Client, cluster: &mut LocalCluster, earlier: &Future<i64>) -> anyhow::Result<()> {
    step("kill -9 the scheduler mid-flight, then start it again on the same port and data dir");
    let n: i64 = 200;
    let slow: Vec<Future<i64>> = (0..n).map(|i| client.submit("slowinc", (i, 0.01))).collect::<reprise::Result<_>>()?;
    let total: Future<i64> = client.submit("sum", (&slow,))?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while slow.iter().filter(|f| f.done()).count() < slow.len() / 3 {
        anyhow::ensure!(Instant::now() < deadline, "the slow tasks made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = slow.iter().filter(|f| f.done()).count();
    println!("  submitted slowinc(i, 10 ms) for i in 0..{n} and sum(..) of them: {done} done, the rest in flight");
    let victim = match cluster.scheduler_pid() {
        Some(pid) => format!("killed the scheduler process (pid {pid}) with SIGKILL"),
        None => "killed the embedded scheduler: socket dropped, core stopped, nothing flushed on the way out".to_owned(),
    };
    cluster.kill_scheduler().await?;
    println!("  {victim}");
    let late: Future<i64> = client.submit("inc", (1000,))?;
    println!("  submitted inc(1000) while the scheduler was down: the client keeps it until it is acknowledged");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = cluster.restart_scheduler().await?;
    let pid = cluster.scheduler_pid().map_or(String::new(), |p| format!(" (pid {p})"));
    println!("  started it again{pid} on {} in {took:.2?}", cluster.scheduler_address());
    if let Some(recovery) = cluster.scheduler_recovery() {
        println!("  it {recovery}");
    }
    let restarted = Instant::now();
    let sum = tokio::time::timeout(STEP_TIMEOUT, total.result()).await??;
    let xs = tokio::time::timeout(STEP_TIMEOUT, client.gather(&slow)).await??;
    let late = tokio::time::timeout(STEP_TIMEOUT, late.result()).await??;
    let expected: i64 = (1..=n).sum();
    anyhow::ensure!(xs == (1..=n).collect::<Vec<i64>>(), "the slow tasks' results are wrong after the restart");
    anyhow::ensure!(sum == expected && late == 1001, "wrong results after the restart: sum {sum}, inc(1000) {late}");
    println!(
        "  every result arrived {:.2?} after the restart: all {n} slowinc results correct, sum(..) = {sum}, inc(1000) = {late}",
        restarted.elapsed()
    );
    println!("  a future from before the crash still resolves: c = {}", earlier.result().await?);
    let info = client.scheduler_info().await?;
    println!("  workers back: {:?}; the log is at seq {}", info.workers.iter().map(|w| w.id.to_string()).collect::<Vec<_>>(), info.last_seq);
    Ok(())
}

/// Tasks the scheduler holds in any state.
async fn live_tasks(client: &Client) -> anyhow::Result<u64> {
    Ok(client.scheduler_info().await?.tasks_by_state.values().sum())
}

fn step(title: &str) {
    println!("\n== {title}");
}
