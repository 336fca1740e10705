use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use reprise_scheduler::service::{self, SchedulerConfig};

use super::DurabilityArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to bind (port 0 picks a free one). Expose it only on a trusted network.
    #[arg(long, default_value = "tcp://127.0.0.1:8786")]
    listen: String,
    /// Directory of the event log; reused on restart.
    #[arg(long, default_value = "reprise-data")]
    data_dir: PathBuf,
    /// File holding the shared token clients and workers must present (else $REPRISE_AUTH_TOKEN).
    #[arg(long)]
    auth_token_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "power")]
    durability: DurabilityArg,
    /// Seconds of silence after which a client or worker is considered gone.
    #[arg(long, default_value_t = 10.0)]
    heartbeat_timeout: f64,
    /// Seconds a Lock or Semaphore lease outlives its holder's last heartbeat.
    #[arg(long, default_value_t = 30.0)]
    lease_timeout: f64,
    /// Seconds that workers and clients known from the log get to come back
    /// after a restart, before their tasks are rescheduled and their
    /// references released.
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
    /// Take a snapshot (and drop the events it covers) every this many events.
    #[arg(long, default_value_t = 100_000)]
    snapshot_every: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = SchedulerConfig::new(args.listen.clone(), args.data_dir.clone());
    config.log.durability = args.durability.into();
    // This process's runtime serves only the scheduler (see main.rs).
    config.core_placement = reprise_scheduler::service::CorePlacement::Inline;
    config.core.auth_token = super::read_token(&args.auth_token_file)?;
    anyhow::ensure!(
        args.heartbeat_timeout.is_finite() && args.heartbeat_timeout > 0.0,
        "--heartbeat-timeout must be a positive number of seconds (got {})",
        args.heartbeat_timeout
    );
    config.core.heartbeat_timeout_ms = Duration::from_secs_f64(args.heartbeat_timeout).as_millis() as u64;
    anyhow::ensure!(
        args.lease_timeout.is_finite() && args.lease_timeout > 0.0,
        "--lease-timeout must be a positive number of seconds (got {})",
        args.lease_timeout
    );
    config.core.lease_timeout_ms = Duration::from_secs_f64(args.lease_timeout).as_millis() as u64;
    anyhow::ensure!(
        args.grace.is_finite() && args.grace >= 0.0,
        "--grace must be a number of seconds, 0 or more (got {})",
        args.grace
    );
    config.core.reconnect_grace_ms = Duration::from_secs_f64(args.grace).as_millis() as u64;
    config.snapshot_every_events = args.snapshot_every.max(1);
    let mut handle = service::start(config)
        .await
        .with_context(|| format!("starting the scheduler on {} with data dir {}", args.listen, args.data_dir.display()))?;
    let recovery = handle.recovery();
    if recovery.last_seq > 0 {
        let snapshot = recovery.snapshot_seq.map_or("no snapshot".to_owned(), |s| format!("the snapshot at seq {s}"));
        println!(
            "recovered the log up to seq {} from {snapshot} and {} events after it in {:.3} s",
            recovery.last_seq,
            recovery.n_replayed,
            recovery.took.as_secs_f64()
        );
    }
    println!("reprise scheduler (data dir {}) listening on {}", args.data_dir.display(), handle.address());
    tokio::select! {
        _ = super::shutdown_signal() => {
            println!("stopping");
            handle.stop().await?;
        }
        _ = handle.stopped() => {
            // The core thread ends with Ok only when a client asked for a
            // shutdown; a fatal error (the log) comes back as Err here.
            handle.stop().await.context("the scheduler stopped on its own")?;
            println!("shut down at a client's request");
        }
    }
    Ok(())
}
