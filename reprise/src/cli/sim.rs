//! `reprise sim`: the deterministic simulator (see sim/README.md).
use reprise_sim::cli;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replay exactly this seed, printing its whole trace.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds and print the rate (default 1,000).
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of a run of seeds.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Threads to spread seeds over (each run is still one thread); default: the number of cores.
    #[arg(long)]
    jobs: Option<usize>,
    /// With --seed: shrink a failing scenario to the smallest that still fails.
    #[arg(long)]
    shrink: bool,
    /// Fault profile: none, light, swarm or heavy.
    #[arg(long, default_value = "swarm")]
    faults: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let opts = reprise_sim::SimOptions {
        faults: args.faults.parse().map_err(|e| anyhow::anyhow!("--faults {}: {e:?}", args.faults))?,
        jobs: args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        ..Default::default()
    };
    let sim_args = cli::Args { seed: args.seed, seeds: args.seeds, first: args.first, shrink: args.shrink, opts };
    let passed = tokio::task::spawn_blocking(move || {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        cli::run(&sim_args, &mut out)
    })
    .await??;
    anyhow::ensure!(passed, "the simulator found a violation (see above)");
    Ok(())
}
