use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many stock workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Task slots per worker.
    #[arg(long, default_value_t = 1)]
    threads_per_worker: usize,
    /// Keep the log here (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "tcp://127.0.0.1:8786")]
    listen: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut builder = reprise::LocalCluster::builder()
        .workers(args.workers)
        .threads_per_worker(args.threads_per_worker)
        .listen(args.listen);
    if let Some(dir) = args.data_dir {
        builder = builder.data_dir(dir);
    }
    let cluster = builder.start().await?;
    println!(
        "reprise local: scheduler listening on {} with workers {:?} (data dir {}); Ctrl-C stops",
        cluster.scheduler_address(),
        cluster.worker_names(),
        cluster.data_dir().display()
    );
    super::shutdown_signal().await;
    println!("stopping");
    cluster.close().await?;
    Ok(())
}
