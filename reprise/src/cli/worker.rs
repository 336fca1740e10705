use std::path::PathBuf;

use anyhow::Context;
use reprise_worker::{stock, Worker};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The scheduler's address.
    #[arg(long, default_value = "tcp://127.0.0.1:8786")]
    scheduler: String,
    /// Task slots (default: the number of cores).
    #[arg(long)]
    nthreads: Option<usize>,
    /// A unique name (default: generated).
    #[arg(long)]
    name: Option<String>,
    /// The peer socket's bind address (port 0 picks a free one).
    #[arg(long, default_value = "tcp://127.0.0.1:0")]
    listen: String,
    /// File holding the shared auth token (else $REPRISE_AUTH_TOKEN).
    #[arg(long)]
    auth_token_file: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut builder = stock::register(Worker::builder()).scheduler(args.scheduler.clone()).listen(args.listen);
    if let Some(n) = args.nthreads {
        builder = builder.nthreads(n);
    }
    if let Some(name) = args.name {
        builder = builder.name(name);
    }
    if let Some(token) = super::read_token(&args.auth_token_file)? {
        builder = builder.auth_token(token);
    }
    let mut handle = builder.build().context("building the worker")?.spawn();
    let peer = handle.ready().await.context("starting the worker")?;
    handle.registered().await.context("registering with the scheduler")?;
    println!("reprise worker {} (peer socket {peer}) registered with {}", handle.name(), args.scheduler);
    tokio::select! {
        _ = super::shutdown_signal() => {
            handle.shutdown().await?;
        }
        result = handle.join() => {
            result.context("the worker stopped")?;
        }
    }
    Ok(())
}
