//! Hand-built scenarios for the tests.
#![allow(dead_code)]

use reprise_sim::funcs::Fail;
use reprise_sim::scenario::{FuncKind, Mix, Op, Params, Scenario, TaskDef, TimedOp};
use reprise_sim::{run_scenario, SimOptions, Stats, TraceMode, Violation};

/// A small cluster with quick, fixed timing: two workers, one client.
pub fn params() -> Params {
    Params {
        workers: vec![2, 2],
        n_clients: 1,
        delay_ms_max: 5,
        flush_ms_max: 2,
        inline_bytes_max: reprise_proto::INLINE_BYTES_MAX,
        allowed_failures: 3,
        prefetch: 1,
        snapshot_every: 10,
        notify_per_mille: 500,
        lease_timeout_ms: 2_000,
    }
}

pub fn scenario(params: Params, ops: Vec<(u16, Op)>) -> Scenario {
    let ops = ops.into_iter().map(|(gap_ms, op)| TimedOp { gap_ms, op }).collect();
    Scenario { rng_seed: 1, params, mix: Mix::default(), ops }
}

/// A task taking `dur_ms`, over the keys the client holds at positions `deps`.
pub fn task(dur_ms: u16, deps: &[u16]) -> TaskDef {
    TaskDef {
        deps: deps.to_vec(),
        dur_ms,
        fail: Fail::Never,
        retries: 0,
        priority: 0,
        restrict: None,
        gpu: false,
        func: FuncKind::Common,
        big: false,
    }
}

pub fn submit(tasks: Vec<TaskDef>) -> Op {
    Op::Submit { client: 0, tasks }
}

/// Run with the full trace; the result and the trace lines.
pub fn run(s: &Scenario) -> (Result<Stats, Violation>, Vec<String>) {
    let opts = SimOptions::default().with_trace(TraceMode::Full);
    let (result, trace, _, _) = run_scenario(s, &opts);
    // `SIM_TRACE=1 cargo test … -- --nocapture` shows what happened.
    if std::env::var_os("SIM_TRACE").is_some() {
        println!("{}", trace.join("\n"));
    }
    (result, trace)
}

/// Client 0 takes Lock `lock{name}` for `hold_ms`.
pub fn lock(name: u8, hold_ms: u16) -> Op {
    Op::Lock { client: 0, name, hold_ms, timeout_ms: None }
}

/// Whether some trace line contains `needle`.
pub fn traced(trace: &[String], needle: &str) -> bool {
    trace.iter().any(|l| l.contains(needle))
}
