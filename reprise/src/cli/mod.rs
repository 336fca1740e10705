//! Command-line parsing and one module per subcommand.
mod bench;
mod bench_actors;
mod bench_coordination;
mod bench_dask;
mod bench_recovery;
mod bench_tasks;
mod demo;
mod local;
mod log;
mod scheduler;
mod sim;
mod status;
mod worker;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "reprise", version, about = "A durable, event-sourced distributed task scheduler with Dask's futures model")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// The async worker threads the command's runtime gets (None: tokio's
    /// default, one per core). The scheduler's decisions and log writes run
    /// on its own core thread; its async side only moves frames between
    /// sockets and that thread, which one thread does without the wake-ups
    /// a second one adds to every round trip.
    pub fn async_worker_threads(&self) -> Option<usize> {
        match &self.command {
            Command::Scheduler(_) => Some(1),
            Command::Bench(args) => args.async_worker_threads(),
            _ => None,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the scheduler service.
    Scheduler(scheduler::Args),
    /// Run a stock worker (noop, inc, add, sum, sleep, slowinc, fail, echo, bytes).
    Worker(worker::Args),
    /// Run a scheduler and stock workers in this process until Ctrl-C.
    Local(local::Args),
    /// Run the futures walkthrough on an embedded cluster.
    Demo(demo::Args),
    /// Show a running scheduler's workers and tasks.
    Status(status::Args),
    /// Run the deterministic simulator over many seeds, or replay one.
    Sim(sim::Args),
    /// Read a scheduler's log while the scheduler is stopped.
    #[command(subcommand)]
    Log(log::Command),
    /// Measure (e.g. `reprise bench coordination --dask-python /tmp/daskenv/bin/python`).
    Bench(bench::Args),
}

/// How durable each commit batch is.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DurabilityArg {
    /// Survives power loss: sled's flush, then sync_data on its files.
    Power,
    /// Survives `kill -9` of the scheduler, not a power cut; lower latency.
    Process,
}

impl From<DurabilityArg> for reprise_log::Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Power => reprise_log::Durability::Power,
            DurabilityArg::Process => reprise_log::Durability::Process,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Scheduler(args) => scheduler::run(args).await,
        Command::Worker(args) => worker::run(args).await,
        Command::Local(args) => local::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Log(command) => log::run(command).await,
        Command::Sim(args) => sim::run(args).await,
    }
}

/// Read a token file, trimming the trailing newline editors add.
fn read_token(path: &Option<PathBuf>) -> anyhow::Result<Option<String>> {
    use anyhow::Context;
    match path {
        None => Ok(std::env::var("REPRISE_AUTH_TOKEN").ok().filter(|t| !t.is_empty())),
        Some(p) => {
            let token = std::fs::read_to_string(p).with_context(|| format!("cannot read the auth token file {}", p.display()))?;
            let token = token.trim().to_owned();
            anyhow::ensure!(!token.is_empty(), "the auth token file {} is empty", p.display());
            Ok(Some(token))
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
