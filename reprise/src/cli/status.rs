use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "tcp://127.0.0.1:8786")]
    scheduler: String,
    /// Seconds to wait for the scheduler.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = reprise::Client::builder()
        .address(args.scheduler.clone())
        .name("status")
        .timeout(Duration::from_secs_f64(args.timeout))
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the scheduler at {}: {e}", args.scheduler))?;
    let info = client.scheduler_info().await?;
    println!("scheduler {}  (log at seq {}, {} clients)", args.scheduler, info.last_seq, info.n_clients);
    println!("{:<20} {:>8} {:>11} {:>7}  address", "worker", "nthreads", "processing", "keys");
    for w in &info.workers {
        println!("{:<20} {:>8} {:>11} {:>7}  {}", w.id, w.nthreads, w.n_processing, w.n_keys, w.address);
    }
    if info.workers.is_empty() {
        println!("(no workers connected)");
    }
    let tasks: Vec<String> = info.tasks_by_state.iter().map(|(s, n)| format!("{s}={n}")).collect();
    println!("tasks: {}", if tasks.is_empty() { "none".into() } else { tasks.join(" ") });
    client.close().await?;
    Ok(())
}
