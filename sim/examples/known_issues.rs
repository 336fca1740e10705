//! Reproduce the open problems the simulator found (see README.md, "What
//! the simulator found"): `cargo run -p reprise-sim --example known_issues`.
//! Each scenario prints the invariant it violates today; once the problem is
//! fixed it passes, and it belongs in `tests/sim_faults.rs`.
use reprise_sim::funcs::Fail;
use reprise_sim::scenario::{FuncKind, Mix, Op, Params, PeerRef, Scenario, TaskDef, TimedOp};
use reprise_sim::{run_scenario, SimOptions, TraceMode};

fn scenario(workers: Vec<u8>, ops: Vec<(u16, Op)>) -> Scenario {
    let params = Params {
        workers,
        n_clients: 1,
        delay_ms_max: 5,
        flush_ms_max: 2,
        inline_bytes_max: reprise_proto::INLINE_BYTES_MAX,
        allowed_failures: 3,
        prefetch: 1,
        snapshot_every: 10,
        notify_per_mille: 500,
        lease_timeout_ms: 2_000,
    };
    let ops = ops.into_iter().map(|(gap_ms, op)| TimedOp { gap_ms, op }).collect();
    Scenario { rng_seed: 1, params, mix: Mix::default(), ops }
}

fn task(dur_ms: u16, deps: &[u16]) -> TaskDef {
    let (fail, retries, priority, restrict, gpu, big) = (Fail::Never, 0, 0, None, false, false);
    TaskDef { deps: deps.to_vec(), dur_ms, fail, retries, priority, restrict, gpu, func: FuncKind::Common, big }
}

fn main() {
    // The client's messages stall (one way) past the scheduler's heartbeat
    // timeout while updates still reach it: the scheduler removes it, then
    // answers each of its messages "say Hello before anything else"; the
    // session keeps hearing the scheduler, never says Hello again, and its
    // last future never resolves.
    let chain = (0..6).map(|i| task(1_800, if i == 0 { &[] } else { &[0] })).collect();
    let stranded = scenario(
        vec![1],
        vec![
            (300, Op::Submit { client: 0, tasks: chain }),
            (10, Op::Stall { peer: PeerRef::Client(0), ms: 10_500 }),
            (12_000, Op::Info { client: 0, what: 3 }),
        ],
    );
    // The client scatters to a worker, then is cut off; by the time its
    // `Scattered` arrives the worker was removed: the scheduler answers with
    // a bare `Error`, the scatter is never acknowledged, the worker frees the
    // data when it returns, and the fire-and-forget key stays in the session.
    let unacked_scatter = scenario(
        vec![1, 1],
        vec![
            (300, Op::Partition { peer: PeerRef::Client(0), ms: 12_000 }),
            (0, Op::Partition { peer: PeerRef::Worker(0), ms: 15_000 }),
            (0, Op::Scatter { client: 0, worker: 0, big: false }),
            (0, Op::FireAndForget { client: 0, pick: 0, drop: true }),
            (16_000, Op::Info { client: 0, what: 3 }),
        ],
    );
    let opts = SimOptions::default().with_trace(TraceMode::Tail(30));
    for (name, s) in
        [("a removed client whose link stayed up", stranded), ("a scatter to a removed worker", unacked_scatter)]
    {
        let (result, trace, _, _) = run_scenario(&s, &opts);
        match result {
            Ok(_) => println!("{name}: passes now (move it to tests/sim_faults.rs)"),
            Err(v) => println!("{name}: {v}\n  {}", trace.join("\n  ")),
        }
        println!();
    }
}
