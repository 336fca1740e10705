//! `reprise bench`: measurements to set beside Dask's on the same machine.
//! One subcommand per area; each prints one `key=value` line per
//! measurement, so that runs can be compared (and parsed) line by line.
use clap::Subcommand;

use super::{bench_actors, bench_coordination, bench_dask, bench_recovery, bench_tasks};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Lock, Semaphore, Variable, Queue and Event round trips (optionally beside Dask's).
    Coordination(bench_coordination::Args),
    /// The task workloads of Dask's benchmark (map, chain, tree reduce, …).
    Tasks(bench_tasks::Args),
    /// Start-up time on a long log (with and without a snapshot) and the
    /// data dir's size under a steady stream of short-lived tasks.
    Recovery(bench_recovery::Args),
    /// An actor call's round trip and throughput beside a submit → result round trip.
    Actors(bench_actors::Args),
}

impl Args {
    /// The async worker threads this measurement runs with (None: tokio's
    /// default). The coordination round trips hop between the client's and
    /// the scheduler's async tasks on every request; on one thread those
    /// hops cost no futex wake-up and context switch (measured: 72,000
    /// voluntary context switches for 10,000 Variable and Lock pairs on
    /// two threads, 21,000 on one, and 1.6× the ops/s). Dask's benchmark
    /// likewise runs its client and scheduler on one event loop; the
    /// scheduler's core loop runs on that thread too (`CorePlacement::Inline`).
    pub fn async_worker_threads(&self) -> Option<usize> {
        match self.what {
            What::Coordination(_) => Some(1),
            _ => None,
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Coordination(args) => {
            let dask = args.dask();
            let ours = bench_coordination::run(args).await?;
            if let Some(dask) = dask {
                let theirs = bench_dask::run_coordination(&dask)?;
                bench_dask::print_comparison(&ours, &theirs);
            }
            Ok(())
        }
        What::Tasks(args) => bench_tasks::run(args).await,
        What::Recovery(args) => bench_recovery::run(args).await,
        What::Actors(args) => bench_actors::run(args).await,
    }
}
