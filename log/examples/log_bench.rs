//! Measure the log: `cargo run --release -p reprise-log --example log_bench -- [N_EVENTS] [DIR]`.
//!
//! Appends N_EVENTS (default 1,000,000) small events in batches of 1,000 with
//! one flush per batch, in both durability modes, then reopens and replays.
//! DIR defaults to a temporary directory (removed afterwards); pass one on
//! the disk you want to measure.
use std::path::PathBuf;

use reprise_log::bench::{self, BenchReport};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n_events: u64 = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("N_EVENTS must be a number: {e}"))?,
        None => 1_000_000,
    };
    let temp = tempfile::tempdir()?;
    let dir = args.next().map_or_else(|| temp.path().to_path_buf(), PathBuf::from);
    let report = bench::run(&dir, n_events)?;
    print_report(&report);
    Ok(())
}

fn print_report(r: &BenchReport) {
    println!(
        "{} events in batches of {} (mean {:.1} bytes of CBOR per event), one flush per batch",
        r.n_events, r.batch_events, r.mean_event_bytes
    );
    println!(
        "{:<8} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10}",
        "mode", "append ev/s", "flush p50", "flush p99", "flush max", "reopen", "replay", "replay ev/s", "disk"
    );
    for m in &r.modes {
        println!(
            "{:<8} {:>12.0} {:>8}µs {:>8}µs {:>8}µs {:>9.3}s {:>9.3}s {:>12.0} {:>7.1}MiB",
            format!("{:?}", m.durability),
            m.append_events_per_sec,
            m.flush_p50_us,
            m.flush_p99_us,
            m.flush_max_us,
            m.reopen_secs,
            m.replay_secs,
            m.replay_events_per_sec,
            m.dir_bytes as f64 / f64::from(1 << 20)
        );
    }
}
