//! A throughput measurement of `SledLog` for `reprise bench` and
//! `examples/log_bench.rs`: append with one flush per batch in both
//! durability modes, then reopen and replay everything. Prints nothing.
use std::path::Path;
use std::time::{Duration, Instant};

use reprise_proto::{Attempt, Event, Key, Seq, TaskSpec, WorkerId};

use crate::{dir_size_bytes, Durability, LogError, LogOptions, LogStore, SledLog};

/// Events appended per batch, each batch followed by one flush (group commit).
pub const BENCH_BATCH_EVENTS: usize = 1000;

/// The results of [`run`].
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub n_events: u64,
    pub batch_events: usize,
    /// Mean CBOR size of one event in the benchmark's mix.
    pub mean_event_bytes: f64,
    /// One entry per durability mode: `Power`, then `Process`.
    pub modes: Vec<ModeReport>,
}

/// The results for one durability mode.
#[derive(Clone, Debug)]
pub struct ModeReport {
    pub durability: Durability,
    /// Wall time spent in `append` + `flush`.
    pub append_secs: f64,
    pub append_events_per_sec: f64,
    pub flush_p50_us: u64,
    pub flush_p99_us: u64,
    pub flush_max_us: u64,
    /// `SledLog::open` of the full log (it checks every record's checksum).
    pub reopen_secs: f64,
    /// `replay(Seq(0), ..)` of every event, decoding each one.
    pub replay_secs: f64,
    pub replay_events_per_sec: f64,
    /// The data dir's size after the run.
    pub dir_bytes: u64,
}

/// Write `n_events` small events in batches of [`BENCH_BATCH_EVENTS`] with a
/// flush after each batch, once per durability mode, each into a fresh
/// subdirectory of `dir` (`power/`, `process/`, replaced if present); then
/// reopen each log and replay it.
pub fn run(dir: &Path, n_events: u64) -> Result<BenchReport, LogError> {
    let mut modes = Vec::new();
    for (durability, name) in [(Durability::Power, "power"), (Durability::Process, "process")] {
        let sub = dir.join(name);
        if sub.exists() {
            std::fs::remove_dir_all(&sub).map_err(|e| LogError::io(&sub, e))?;
        }
        modes.push(run_mode(&sub, n_events, durability)?);
    }
    let sample: Vec<Event> = (0..1000).map(bench_event).collect();
    let mean_event_bytes = reprise_proto::encode(&sample)?.len() as f64 / sample.len() as f64;
    Ok(BenchReport { n_events, batch_events: BENCH_BATCH_EVENTS, mean_event_bytes, modes })
}

fn run_mode(dir: &Path, n_events: u64, durability: Durability) -> Result<ModeReport, LogError> {
    let options = LogOptions { durability, ..LogOptions::default() };
    let mut flushes = Vec::with_capacity((n_events as usize).div_ceil(BENCH_BATCH_EVENTS));
    let mut append_time = Duration::ZERO;
    {
        let mut log = SledLog::open(dir, options.clone())?;
        let mut next = 0u64;
        while next < n_events {
            let end = (next + BENCH_BATCH_EVENTS as u64).min(n_events);
            let batch: Vec<Event> = (next..end).map(bench_event).collect();
            let started = Instant::now();
            log.append(&batch)?;
            let flush_started = Instant::now();
            log.flush()?;
            flushes.push(flush_started.elapsed());
            append_time += started.elapsed();
            next = end;
        }
    }
    let reopen_started = Instant::now();
    let log = SledLog::open(dir, options)?;
    let reopen_time = reopen_started.elapsed();
    let replay_started = Instant::now();
    let mut n_replayed = 0u64;
    log.replay(Seq(0), &mut |_seq, _event| {
        n_replayed += 1;
        Ok(())
    })?;
    let replay_time = replay_started.elapsed();
    if n_replayed != n_events {
        return Err(LogError::Corrupt {
            seq: Seq(n_replayed),
            reason: format!("the benchmark wrote {n_events} events but replayed {n_replayed}"),
        });
    }
    drop(log);
    flushes.sort();
    Ok(ModeReport {
        durability,
        append_secs: append_time.as_secs_f64(),
        append_events_per_sec: per_sec(n_events, append_time),
        flush_p50_us: percentile_us(&flushes, 50),
        flush_p99_us: percentile_us(&flushes, 99),
        flush_max_us: flushes.last().map_or(0, |d| d.as_micros() as u64),
        reopen_secs: reopen_time.as_secs_f64(),
        replay_secs: replay_time.as_secs_f64(),
        replay_events_per_sec: per_sec(n_events, replay_time),
        dir_bytes: dir_size_bytes(dir),
    })
}

/// A small event of a task's life (submitted, assigned, finished with an
/// 8-byte inline result, forgotten), deterministic in `i`.
pub fn bench_event(i: u64) -> Event {
    let task = i / 4;
    let key = Key(format!("inc-{task:016x}"));
    let worker = WorkerId(format!("worker-{}", task % 8));
    match i % 4 {
        0 => Event::TaskSubmitted { spec: TaskSpec::new(key, "inc", vec![0x81, 0x18, (task % 200) as u8], Vec::new()) },
        1 => Event::TaskAssigned { key, worker, attempt: Attempt(1) },
        2 => Event::TaskFinished {
            key,
            worker,
            attempt: Attempt(1),
            nbytes: 8,
            inline: Some(task.to_le_bytes().to_vec()),
        },
        _ => Event::TaskForgotten { key },
    }
}

fn per_sec(n: u64, time: Duration) -> f64 {
    n as f64 / time.as_secs_f64().max(1e-9)
}

fn percentile_us(sorted: &[Duration], pct: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) * pct).div_ceil(100);
    sorted[idx.min(sorted.len() - 1)].as_micros() as u64
}
