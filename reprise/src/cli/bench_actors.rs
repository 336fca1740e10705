//! `reprise bench actors`: an actor call's round trip (client → the
//! actor's worker → client, no scheduler) beside a task's submit → result
//! round trip (client → scheduler, logged → worker → scheduler → client),
//! on an embedded scheduler and one in-process worker on loopback.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reprise::worker::stock::{self, Counter};
use reprise::worker::Worker;
use reprise::{Client, Future};
use reprise_scheduler::service::{self, SchedulerConfig};

use super::DurabilityArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Sequential actor calls measured.
    #[arg(long, default_value_t = 10_000)]
    calls: usize,
    /// Sequential submit → result round trips measured.
    #[arg(long, default_value_t = 1_000)]
    tasks: usize,
    /// Concurrent callers for the throughput line (each calls `calls / callers` times).
    #[arg(long, default_value_t = 8)]
    callers: usize,
    /// How durable the scheduler's commits are (`power` or `process`).
    #[arg(long, value_enum, default_value = "power")]
    durability: DurabilityArg,
    /// The scheduler's data dir (default: a fresh temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.calls >= 1 && args.tasks >= 1 && args.callers >= 1,
        "--calls, --tasks and --callers must be at least 1"
    );
    let temp = tempfile::Builder::new().prefix("reprise-bench-").tempdir()?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let mut config = SchedulerConfig::new("tcp://127.0.0.1:0", &data_dir);
    config.log.durability = args.durability.into();
    let scheduler = service::start(config).await.context("starting the embedded scheduler")?;
    let worker = stock::register(Worker::builder())
        .scheduler(scheduler.address())
        .name("bench-worker")
        .nthreads(1)
        .actor::<Counter>("Counter")
        .build()?
        .spawn();
    worker.registered().await.context("starting the bench worker")?;
    let client = Client::builder().address(scheduler.address()).name("bench").connect().await?;
    eprintln!(
        "actors: one worker (1 thread) and the scheduler in this process, loopback, durability {:?}",
        args.durability
    );

    let counter = client.submit_actor("Counter", ()).await?;
    for _ in 0..100 {
        counter.call::<u64>("increment", ()).await?; // warm-up: connections, caches
    }
    let mut latencies = Vec::with_capacity(args.calls);
    let started = Instant::now();
    for _ in 0..args.calls {
        let t = Instant::now();
        counter.call::<u64>("increment", ()).await?;
        latencies.push(t.elapsed());
    }
    let took = started.elapsed();
    println!(
        "actor_call n={} median_us={:.1} p99_us={:.1} calls_per_s={:.0}",
        args.calls,
        micros(percentile(&mut latencies, 0.5)),
        micros(percentile(&mut latencies, 0.99)),
        args.calls as f64 / took.as_secs_f64()
    );

    let per_caller = (args.calls / args.callers).max(1);
    let started = Instant::now();
    let callers: Vec<_> = (0..args.callers)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                for _ in 0..per_caller {
                    counter.call::<u64>("increment", ()).await?;
                }
                Ok::<_, reprise::Error>(())
            })
        })
        .collect();
    for caller in callers {
        caller.await??;
    }
    let took = started.elapsed();
    let n = per_caller * args.callers;
    println!("actor_call_concurrent callers={} n={n} calls_per_s={:.0}", args.callers, n as f64 / took.as_secs_f64());

    let mut latencies = Vec::with_capacity(args.tasks);
    let started = Instant::now();
    for i in 0..args.tasks {
        let t = Instant::now();
        let fut: Future<i64> = client.task("inc").args((i as i64,)).pure(false).submit()?;
        fut.result().await?;
        latencies.push(t.elapsed());
    }
    let took = started.elapsed();
    println!(
        "submit_result n={} median_us={:.1} p99_us={:.1} tasks_per_s={:.0}",
        args.tasks,
        micros(percentile(&mut latencies, 0.5)),
        micros(percentile(&mut latencies, 0.99)),
        args.tasks as f64 / took.as_secs_f64()
    );

    drop(counter);
    client.close().await?;
    worker.shutdown().await?;
    scheduler.stop().await?;
    Ok(())
}

/// The `q`-quantile of `samples` (sorted in place).
fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples.get(i).copied().unwrap_or_default()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
