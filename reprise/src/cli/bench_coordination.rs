//! `reprise bench coordination`: sequential (or concurrent) round trips on
//! each primitive against an embedded scheduler with a real log, at either
//! durability, with what the log's flushes cost during each run.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::ValueEnum;
use reprise::{Client, Event, Lock, Queue, Semaphore, Variable};
use reprise_scheduler::service::{self, Metrics, SchedulerConfig, SchedulerHandle};

use super::bench_dask::DaskRun;
use super::DurabilityArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How durable each commit is: `power` (the default: synced to the disk)
    /// or `process` (survives kill -9, not a power cut).
    #[arg(long, value_enum, default_value = "power")]
    durability: DurabilityArg,
    /// Concurrent clients, each on primitives of its own (1: sequential).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Iterations per client and primitive (an iteration is a pair such as
    /// acquire + release; the event's is set + wait + clear).
    #[arg(long, default_value_t = 1000)]
    ops: u64,
    /// How Lock and Semaphore guards are given back: `awaited`
    /// (`guard.release().await`, a round trip like Dask's `release()`) or
    /// `drop` (the guard's drop sends the release without waiting; it rides
    /// with the next request).
    #[arg(long, value_enum, default_value = "awaited")]
    release: ReleaseStyle,
    /// Runs per primitive; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Only these primitives (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Primitive>,
    /// The scheduler's data dir (default: a fresh temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Then run Dask's coordination benchmark with this Python (one with
    /// dask and distributed installed) and print both side by side.
    #[arg(long)]
    dask_python: Option<PathBuf>,
    /// Dask's benchmark script.
    #[arg(long, default_value = "../shared/bench/dask_bench.py")]
    dask_script: PathBuf,
}

impl Args {
    /// The Dask run asked for, if any.
    pub fn dask(&self) -> Option<DaskRun> {
        let python = self.dask_python.clone()?;
        Some(DaskRun { python, script: self.dask_script.clone(), n: self.ops, repeats: self.repeats })
    }
}

/// How a benchmark gives a lease back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReleaseStyle {
    Awaited,
    Drop,
}

/// The primitives measured, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Primitive {
    Lock,
    Semaphore,
    Variable,
    Queue,
    Event,
}

impl Primitive {
    const ALL: [Primitive; 5] = [Primitive::Lock, Primitive::Semaphore, Primitive::Variable, Primitive::Queue, Primitive::Event];

    pub fn name(self) -> &'static str {
        match self {
            Primitive::Lock => "lock",
            Primitive::Semaphore => "semaphore",
            Primitive::Variable => "variable",
            Primitive::Queue => "queue",
            Primitive::Event => "event",
        }
    }

    /// Requests per iteration.
    fn ops_per_iteration(self) -> u64 {
        match self {
            Primitive::Event => 3,
            _ => 2,
        }
    }
}

/// One primitive's measurement.
#[derive(Clone, Debug)]
pub struct Measured {
    pub primitive: Primitive,
    pub iterations: u64,
    pub median_s: f64,
    pub ops_per_s: f64,
    pub iterations_per_s: f64,
    /// Log commits (group-commit batches) during the median run.
    pub commits: u64,
    pub events_per_commit: f64,
    /// Mean time of one append + flush (+ sync) during the median run.
    pub flush_us_mean: f64,
}

pub async fn run(args: Args) -> anyhow::Result<Vec<Measured>> {
    ensure!(args.clients >= 1 && args.ops >= 1 && args.repeats >= 1, "--clients, --ops and --repeats must be at least 1");
    let temp = tempfile::Builder::new().prefix("reprise-bench-").tempdir()?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let mut config = SchedulerConfig::new("tcp://127.0.0.1:0", &data_dir);
    config.log.durability = args.durability.into();
    // As `reprise scheduler` runs it: the core loop on the runtime's one
    // thread, which the clients share here, as Dask's benchmark runs its
    // client and scheduler on one event loop.
    config.core_placement = service::CorePlacement::Inline;
    let scheduler = service::start(config).await.context("starting the embedded scheduler")?;
    let clients = connect_all(scheduler.address(), args.clients).await?;
    eprintln!(
        "coordination: {} client(s), {} iteration(s) each, durability {:?}, log in {}",
        args.clients,
        args.ops,
        args.durability,
        data_dir.display()
    );
    let only = if args.only.is_empty() { Primitive::ALL.to_vec() } else { args.only.clone() };
    let mut results = Vec::new();
    for primitive in only {
        // One short warm-up, so that the first run does not pay for connections and caches.
        run_clients(&clients, primitive, 10, args.release).await?;
        let mut runs = Vec::new();
        for _ in 0..args.repeats {
            runs.push(measure(&scheduler, &clients, primitive, args.ops, args.release).await?);
        }
        runs.sort_by(|a, b| a.median_s.total_cmp(&b.median_s));
        let median = runs.swap_remove(runs.len() / 2);
        println!(
            "primitive={} durability={:?} clients={} release={:?} iterations={} median_s={:.4} iterations_per_s={:.0} ops_per_s={:.0} commits={} events_per_commit={:.2} flush_us_mean={:.0}",
            primitive.name(),
            args.durability,
            args.clients,
            args.release,
            median.iterations,
            median.median_s,
            median.iterations_per_s,
            median.ops_per_s,
            median.commits,
            median.events_per_commit,
            median.flush_us_mean,
        );
        results.push(median);
    }
    for client in &clients {
        client.close().await?;
    }
    scheduler.stop().await?;
    Ok(results)
}

async fn connect_all(address: &str, n: usize) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let client = Client::builder().address(address).name(format!("bench-{i}")).connect().await?;
        clients.push(client);
    }
    Ok(clients)
}

/// One timed run, with the log's work during it.
async fn measure(
    scheduler: &SchedulerHandle,
    clients: &[Client],
    primitive: Primitive,
    ops: u64,
    release: ReleaseStyle,
) -> anyhow::Result<Measured> {
    let metrics: &Arc<Metrics> = scheduler.metrics();
    let before = (Metrics::get(&metrics.commits), Metrics::get(&metrics.flush_us_total), Metrics::get(&metrics.events_logged));
    let took = run_clients(clients, primitive, ops, release).await?;
    let commits = Metrics::get(&metrics.commits) - before.0;
    let flush_us = Metrics::get(&metrics.flush_us_total) - before.1;
    let events = Metrics::get(&metrics.events_logged) - before.2;
    let iterations = ops * clients.len() as u64;
    let secs = took.as_secs_f64();
    Ok(Measured {
        primitive,
        iterations,
        median_s: secs,
        ops_per_s: (iterations * primitive.ops_per_iteration()) as f64 / secs,
        iterations_per_s: iterations as f64 / secs,
        commits,
        events_per_commit: if commits == 0 { 0.0 } else { events as f64 / commits as f64 },
        flush_us_mean: if commits == 0 { 0.0 } else { flush_us as f64 / commits as f64 },
    })
}

/// Every client runs `ops` iterations on fresh primitives of its own, all
/// starting together; the wall time until the last one is done.
async fn run_clients(clients: &[Client], primitive: Primitive, ops: u64, release: ReleaseStyle) -> anyhow::Result<Duration> {
    let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .map(|client| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                iterations(&client, primitive, ops, release).await
            })
        })
        .collect();
    let started = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// `ops` iterations of one primitive, each a pair of round trips (the
/// event's: set, wait, clear), every answer checked.
async fn iterations(client: &Client, primitive: Primitive, ops: u64, release: ReleaseStyle) -> anyhow::Result<()> {
    match primitive {
        Primitive::Lock => {
            let lock = Lock::new_unique(client);
            for _ in 0..ops {
                let guard = lock.acquire().await?;
                match release {
                    ReleaseStyle::Awaited => guard.release().await?,
                    ReleaseStyle::Drop => drop(guard),
                }
            }
        }
        Primitive::Semaphore => {
            let sem = Semaphore::new_unique(client, 2);
            for _ in 0..ops {
                let guard = sem.acquire().await?;
                match release {
                    ReleaseStyle::Awaited => guard.release().await?,
                    ReleaseStyle::Drop => drop(guard),
                }
            }
        }
        Primitive::Variable => {
            let var = Variable::new_unique(client);
            for i in 0..ops {
                var.set(&i).await?;
                ensure!(var.get::<u64>(None).await? == i, "the variable did not hold what was set");
            }
            var.delete().await?;
        }
        Primitive::Queue => {
            let queue = Queue::new_unique(client);
            for i in 0..ops {
                queue.put(&i).await?;
                ensure!(queue.get::<u64>(None).await? == i, "the queue did not give back what was put");
            }
        }
        Primitive::Event => {
            let event = Event::new_unique(client);
            for _ in 0..ops {
                event.set().await?;
                ensure!(event.wait(None).await?, "a set event did not wake its waiter");
                event.clear().await?;
            }
        }
    }
    Ok(())
}
