//! Reprise's deterministic simulator.
//!
//! It runs the real scheduler core (`reprise_scheduler::core`), the real
//! worker protocol core (`reprise_worker::core`) and the real client
//! session core (`reprise_client::session`) in one thread, with one seeded
//! RNG, a simulated clock, a simulated network (per-connection order,
//! random delay, connections that break and reconnect, partitions that
//! heal) and a simulated log (`reprise_log::MemLog`) whose unflushed tail a
//! scheduler crash loses. Scenarios mixing workload and faults are proptest
//! strategies, drawn from a seed and shrunk on failure. After every step
//! the [`Invariant`]s are checked; a failing seed prints its violation and
//! trace, and replays exactly.
//!
//! ```
//! use reprise_sim::{run_seed, SimOptions, TraceMode};
//! let opts = SimOptions::default().with_trace(TraceMode::Full);
//! let a = run_seed(7, &opts);
//! let b = run_seed(7, &opts);
//! assert!(a.result.is_ok(), "{}", a.report());
//! assert_eq!(a.trace, b.trace);
//! ```
//!
//! Module map: [`scenario`] (the run as data, and its strategies),
//! `world` (the event loop; `world/sched.rs` the scheduler node with its
//! log and commit discipline, `world/worker.rs`, `world/client.rs`,
//! `world/net.rs`, `world/model.rs` what the checks know, `world/ops.rs`,
//! `world/prims.rs` the coordination primitives' answers and end phases),
//! [`invariants`] (what is checked), [`funcs`] (the simulated task
//! functions), `trace`, `rng`, `run` (seeds, summaries, shrinking) and
//! [`cli`] (what `reprise sim` prints).
pub mod cli;
pub mod funcs;
pub mod invariants;
mod rng;
mod run;
pub mod scenario;
mod trace;
mod world;

pub use invariants::{Invariant, Violation};
pub use rng::Rng;
pub use run::{
    explain, run_scenario, run_seed, run_seeds, shrink, Failure, SeedOutcome, Shrunk, SimOptions, Stats, Summary,
    TRACE_TAIL_LINES,
};
pub use scenario::{FaultProfile, Scenario};
pub use trace::TraceMode;
