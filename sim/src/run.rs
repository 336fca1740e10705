//! Running seeds: one, many (on several threads), and shrinking a failure.
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::strategy::ValueTree;

use crate::invariants::{Invariant, Violation};
use crate::scenario::{self, FaultProfile, Scenario};
use crate::trace::TraceMode;
use crate::world::World;

/// How many trace lines a failure report shows.
pub const TRACE_TAIL_LINES: usize = 60;

/// What to simulate and how much to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// The most operations (workload and faults) in one seed's scenario.
    pub ops_max: usize,
    /// The most workers, and the most clients, in one seed's cluster.
    pub workers_max: u8,
    pub clients_max: u8,
    pub faults: FaultProfile,
    pub trace: TraceMode,
    /// Round-trip every message through the CBOR wire codec (slower).
    pub codec: bool,
    /// Once faults stop, every held future must resolve within this long.
    pub liveness_ms: u64,
    /// Once clients let go, the scheduler must forget every task within this long.
    pub quiescence_ms: u64,
    /// Threads [`run_seeds`] spreads seeds over (each run is one thread).
    pub jobs: usize,
    /// Also draw one-way stalls (a peer's messages to the scheduler stall,
    /// the scheduler's still reach it). On by default.
    pub one_way_stalls: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            ops_max: 40,
            workers_max: 4,
            clients_max: 3,
            faults: FaultProfile::Swarm,
            trace: TraceMode::Off,
            codec: true,
            liveness_ms: 180_000,
            quiescence_ms: 60_000,
            jobs: 1,
            one_way_stalls: true,
        }
    }
}

impl SimOptions {
    pub fn with_trace(mut self, trace: TraceMode) -> Self {
        self.trace = trace;
        self
    }
}

/// Counters of one run (or, summed, of many).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub ops: u64,
    /// Events dispatched by the world.
    pub steps: u64,
    /// Events the scheduler logged, in how many commits, and snapshots.
    pub events: u64,
    pub commits: u64,
    pub snapshots: u64,
    /// Task runs started on workers.
    pub executions: u64,
    pub scheduler_crashes: u64,
    pub worker_crashes: u64,
    pub clients_lost: u64,
    /// `Error` replies clients heard from the scheduler.
    pub scheduler_errors: u64,
    /// Lock and semaphore leases granted, and expired.
    pub leases_granted: u64,
    pub leases_expired: u64,
    /// Answers to primitive requests clients heard, plain queue items they
    /// got, and event waits answered `true`.
    pub primitive_answers: u64,
    pub items_delivered: u64,
    pub event_wakeups: u64,
    /// Simulated time at the end, and when every future had resolved.
    pub sim_ms: u64,
    pub resolved_ms: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.ops += o.ops;
        self.steps += o.steps;
        self.events += o.events;
        self.commits += o.commits;
        self.snapshots += o.snapshots;
        self.executions += o.executions;
        self.scheduler_crashes += o.scheduler_crashes;
        self.worker_crashes += o.worker_crashes;
        self.clients_lost += o.clients_lost;
        self.scheduler_errors += o.scheduler_errors;
        self.leases_granted += o.leases_granted;
        self.leases_expired += o.leases_expired;
        self.primitive_answers += o.primitive_answers;
        self.items_delivered += o.items_delivered;
        self.event_wakeups += o.event_wakeups;
        self.sim_ms += o.sim_ms;
        self.resolved_ms += o.resolved_ms;
    }
}

/// One seed's run.
#[derive(Clone, Debug)]
pub struct SeedOutcome {
    pub seed: u64,
    pub scenario: Scenario,
    pub result: Result<Stats, Violation>,
    /// The trace lines kept ([`SimOptions::trace`]).
    pub trace: Vec<String>,
    /// A hash of every trace line (stable only with tracing on).
    pub trace_hash: u64,
    pub trace_lines: u64,
}

impl SeedOutcome {
    /// The failure report: seed, invariant, message, how to replay, and the
    /// trace lines kept. Empty for a passing run.
    pub fn report(&self) -> String {
        let Err(v) = &self.result else { return String::new() };
        let mut out = format!("seed {}: {v}\nreplay it with: reprise sim --seed {}\n", self.seed, self.seed);
        if !self.trace.is_empty() {
            out.push_str(&format!("last {} of {} trace lines:\n", self.trace.len(), self.trace_lines));
            for line in &self.trace {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Run one scenario; a panic in any core is reported as a violation.
pub fn run_scenario(scenario: &Scenario, opts: &SimOptions) -> (Result<Stats, Violation>, Vec<String>, u64, u64) {
    let mut world = World::new(scenario, opts);
    let result = catch_unwind(AssertUnwindSafe(|| world.run())).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let (time_ms, step) = world.position();
        Err(Violation { invariant: Invariant::Crash, message: format!("panic: {message}"), time_ms, step })
    });
    let (trace, hash, n) = world.trace_finish();
    (result, trace, hash, n)
}

/// Run the scenario of `seed`. The same seed and options give the same
/// run, step for step, and the same trace.
pub fn run_seed(seed: u64, opts: &SimOptions) -> SeedOutcome {
    let scenario = scenario::generate(seed, opts);
    let (result, trace, trace_hash, trace_lines) = run_scenario(&scenario, opts);
    SeedOutcome { seed, scenario, result, trace, trace_hash, trace_lines }
}

/// A seed that violated an invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub seed: u64,
    pub violation: Violation,
}

/// The outcome of many seeds.
#[derive(Clone, Debug)]
pub struct Summary {
    pub first: u64,
    pub n_seeds: u64,
    /// Failing seeds, lowest first.
    pub failures: Vec<Failure>,
    /// Counters summed over the passing seeds.
    pub totals: Stats,
    pub elapsed: Duration,
}

impl Summary {
    pub fn seeds_per_sec(&self) -> f64 {
        self.n_seeds as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seeds ({}..{}) in {:.2} s: {:.0} seeds/s, {} failed",
            self.n_seeds,
            self.first,
            self.first + self.n_seeds,
            self.elapsed.as_secs_f64(),
            self.seeds_per_sec(),
            self.failures.len()
        )
    }
}

/// Run seeds `first..first + n` (over `opts.jobs` threads) without
/// tracing; `progress(done, failed)` is called after each seed. Re-run a
/// failure with [`explain`] for its trace.
pub fn run_seeds(first: u64, n: u64, opts: &SimOptions, mut progress: impl FnMut(u64, u64)) -> Summary {
    let started = Instant::now();
    let opts = opts.clone().with_trace(TraceMode::Off);
    let next = AtomicU64::new(first);
    let end = first.saturating_add(n);
    let (tx, rx) = mpsc::channel::<(u64, Result<Stats, Violation>)>();
    let mut failures = Vec::new();
    let mut totals = Stats::default();
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1) {
            let tx = tx.clone();
            let (next, opts) = (&next, &opts);
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    return;
                }
                let outcome = run_seed(seed, opts);
                if tx.send((seed, outcome.result)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for (seed, result) in rx {
            done += 1;
            match result {
                Ok(stats) => totals.add(&stats),
                Err(violation) => failures.push(Failure { seed, violation }),
            }
            progress(done, failures.len() as u64);
        }
    });
    failures.sort_by_key(|f| f.seed);
    Summary { first, n_seeds: n, failures, totals, elapsed: started.elapsed() }
}

/// Re-run `seed` keeping the last [`TRACE_TAIL_LINES`] trace lines, for
/// its failure report.
pub fn explain(seed: u64, opts: &SimOptions) -> SeedOutcome {
    run_seed(seed, &opts.clone().with_trace(TraceMode::Tail(TRACE_TAIL_LINES)))
}

/// A failing scenario and the smallest one proptest's shrinking found that
/// still violates the same invariant.
#[derive(Clone, Debug)]
pub struct Shrunk {
    pub original: Scenario,
    pub minimal: Scenario,
    pub violation: Violation,
    /// Scenarios run while shrinking.
    pub runs: usize,
}

/// Shrink `seed`'s scenario with proptest (dropping and simplifying
/// operations, cluster and timing) while it keeps violating the same
/// invariant; `None` if the seed passes. At most `runs_max` runs.
pub fn shrink(seed: u64, opts: &SimOptions, runs_max: usize) -> Option<Shrunk> {
    let opts = opts.clone().with_trace(TraceMode::Off);
    let mut tree = scenario::scenario_tree(seed, &opts);
    let original = tree.current();
    let mut violation = run_scenario(&original, &opts).0.err()?;
    let invariant = violation.invariant;
    let mut minimal = original.clone();
    let mut runs = 1;
    // Proptest's own loop: simplify while it fails, complicate when it
    // passes. Simplifying the drawn cluster and mix draws fresh operations,
    // which may fail with more of them: keep the smallest failure seen.
    if tree.simplify() {
        while runs < runs_max {
            let candidate = tree.current();
            runs += 1;
            match run_scenario(&candidate, &opts).0 {
                Err(v) if v.invariant == invariant => {
                    if candidate.ops.len() <= minimal.ops.len() {
                        violation = v;
                        minimal = candidate;
                    }
                    if !tree.simplify() {
                        break;
                    }
                }
                _ => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
    }
    Some(Shrunk { original, minimal, violation, runs })
}
