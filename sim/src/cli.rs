//! What `reprise sim` does and prints. The binary maps its flags onto
//! [`Args`] and calls [`run`]:
//!
//! - `reprise sim --seeds N [--first F] [--jobs J]` runs seeds F..F+N and
//!   prints the rate; for a failure it prints the lowest failing seed, the
//!   violated invariant, the last trace lines and how to replay it.
//! - `reprise sim --seed S` replays seed S, printing its whole trace (two
//!   runs print byte-identical output); `--shrink` then shrinks its
//!   scenario and prints the smallest one that still fails.
use std::io::{self, Write};

use crate::scenario::Scenario;
use crate::{explain, run_seed, run_seeds, shrink, SimOptions, TraceMode};

/// Scenarios run at most while shrinking.
pub const SHRINK_RUNS_MAX: usize = 2_000;

/// `reprise sim`'s arguments.
#[derive(Clone, Debug, Default)]
pub struct Args {
    /// Replay this one seed with its full trace.
    pub seed: Option<u64>,
    /// Otherwise run this many seeds (1,000 when `None`)…
    pub seeds: Option<u64>,
    /// …starting from this one.
    pub first: u64,
    /// Shrink the failing scenario (with `seed`).
    pub shrink: bool,
    pub opts: SimOptions,
}

/// Run what `args` asks, printing to `out`. Returns whether every seed passed.
pub fn run(args: &Args, out: &mut dyn Write) -> io::Result<bool> {
    match args.seed {
        Some(seed) => replay(seed, args, out),
        None => sweep(args, out),
    }
}

fn replay(seed: u64, args: &Args, out: &mut dyn Write) -> io::Result<bool> {
    let outcome = run_seed(seed, &args.opts.clone().with_trace(TraceMode::Full));
    writeln!(out, "seed {seed}: {}", describe(&outcome.scenario))?;
    for line in &outcome.trace {
        writeln!(out, "{line}")?;
    }
    match &outcome.result {
        Ok(stats) => {
            writeln!(out, "seed {seed} passed: {stats:?}")?;
            writeln!(out, "trace hash {:016x} ({} lines)", outcome.trace_hash, outcome.trace_lines)?;
            Ok(true)
        }
        Err(v) => {
            writeln!(out, "seed {seed} FAILED: {v}")?;
            writeln!(out, "trace hash {:016x} ({} lines)", outcome.trace_hash, outcome.trace_lines)?;
            if args.shrink {
                if let Some(shrunk) = shrink(seed, &args.opts, SHRINK_RUNS_MAX) {
                    writeln!(out, "shrunk in {} runs to: {}", shrunk.runs, shrunk.violation)?;
                    writeln!(out, "{}", describe(&shrunk.minimal))?;
                }
            }
            Ok(false)
        }
    }
}

fn sweep(args: &Args, out: &mut dyn Write) -> io::Result<bool> {
    let n = args.seeds.unwrap_or(1_000);
    let step = (n / 10).max(1);
    let mut write_err = None;
    let summary = run_seeds(args.first, n, &args.opts, |done, failed| {
        if done % step == 0 || done == n {
            if let Err(e) = writeln!(out, "  {done}/{n} seeds, {failed} failed") {
                write_err.get_or_insert(e);
            }
        }
    });
    if let Some(e) = write_err {
        return Err(e);
    }
    writeln!(out, "{summary}")?;
    let t = &summary.totals;
    writeln!(
        out,
        "passing seeds in total: {} ops, {} steps, {} events in {} commits, {} snapshots, {} task runs, {} leases granted and {} expired, {} primitive answers ({} queue items, {} event wake-ups), {} scheduler and {} worker crashes, {} clients lost, {} s simulated",
        t.ops,
        t.steps,
        t.events,
        t.commits,
        t.snapshots,
        t.executions,
        t.leases_granted,
        t.leases_expired,
        t.primitive_answers,
        t.items_delivered,
        t.event_wakeups,
        t.scheduler_crashes,
        t.worker_crashes,
        t.clients_lost,
        t.sim_ms / 1000
    )?;
    let Some(first) = summary.failures.first() else { return Ok(true) };
    let seeds: Vec<String> = summary.failures.iter().take(20).map(|f| f.seed.to_string()).collect();
    writeln!(out, "failing seeds: {}{}", seeds.join(" "), if summary.failures.len() > 20 { " …" } else { "" })?;
    let outcome = explain(first.seed, &args.opts);
    write!(out, "{}", outcome.report())?;
    if outcome.result.as_ref().err() != Some(&first.violation) {
        writeln!(
            out,
            "warning: the re-run differs from the sweep ({}): the run is not deterministic",
            first.violation
        )?;
    }
    Ok(false)
}

/// A scenario on a few lines: the cluster, then one operation per line.
pub fn describe(scenario: &Scenario) -> String {
    let p = &scenario.params;
    let mut out = format!(
        "{} workers (threads {:?}), {} clients, delay<={}ms, flush<={}ms, inline<={}B, allowed_failures {}, prefetch {}, snapshot every {}, rng {:#x}",
        p.workers.len(),
        p.workers,
        p.n_clients,
        p.delay_ms_max,
        p.flush_ms_max,
        p.inline_bytes_max,
        p.allowed_failures,
        p.prefetch,
        p.snapshot_every,
        scenario.rng_seed
    );
    for (i, op) in scenario.ops.iter().enumerate() {
        out.push_str(&format!("\n  op {i} (+{}ms): {:?}", op.gap_ms, op.op));
    }
    out
}
