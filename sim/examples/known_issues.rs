//! Reproduce the open problems the simulator found (see README.md, "What
//! the simulator found"): `cargo run -p reprise-sim --example known_issues`.
//! Each scenario prints the invariant it violates today; once the problem is
//! fixed it passes, and it belongs in `tests/sim_faults.rs`.
use reprise_sim::funcs::Fail;
use reprise_sim::scenario::{
    DatasetAct, FuncKind, Mix, Op, Params, PeerRef, QueueAct, Scenario, TaskDef, TimedOp, ValueSrc, VariableAct,
};
use reprise_sim::{run_scenario, SimOptions, TraceMode};

fn scenario(n_clients: u8, ops: Vec<(u16, Op)>) -> Scenario {
    let params = Params {
        workers: vec![1, 1],
        n_clients,
        delay_ms_max: 5,
        flush_ms_max: 2,
        inline_bytes_max: reprise_proto::INLINE_BYTES_MAX,
        allowed_failures: 3,
        prefetch: 1,
        snapshot_every: 10,
        notify_per_mille: 0,
        lease_timeout_ms: 2_000,
    };
    let ops = ops.into_iter().map(|(gap_ms, op)| TimedOp { gap_ms, op }).collect();
    Scenario { rng_seed: 1, params, mix: Mix::default(), ops }
}

fn task(dur_ms: u16) -> TaskDef {
    let (fail, retries, priority, restrict, gpu, big) = (Fail::Never, 0, 0, None, false, false);
    TaskDef { deps: Vec::new(), dur_ms, fail, retries, priority, restrict, gpu, func: FuncKind::Common, big }
}

fn main() {
    // A `Release` crosses an answer that hands the same future back: the
    // client publishes its future, asks for the dataset, and drops its
    // handle before the answer comes. The scheduler answers the get (the
    // client already wants the key, so nothing is logged), then applies the
    // release; the client adopts the future from the answer, but the
    // scheduler no longer counts it as a wanter, and the future never
    // resolves.
    let crossing_release = scenario(
        1,
        vec![
            (300, Op::Submit { client: 0, tasks: vec![task(2_000)] }),
            (100, Op::Dataset { client: 0, name: 0, act: DatasetAct::Publish { pick: 0 } }),
            (100, Op::Dataset { client: 0, name: 0, act: DatasetAct::Get }),
            (0, Op::Release { client: 0, pick: 0 }),
        ],
    );
    // A future handed out by a primitive (no spec on the client) cannot be
    // wanted again after the scheduler removed the client: client 1 takes
    // client 0's future from a queue, is cut off past the heartbeat
    // timeout and removed (its wants go, the key is forgotten), then comes
    // back; its future stays pending for ever.
    let adopted_after_removal = scenario(
        2,
        vec![
            (300, Op::Submit { client: 0, tasks: vec![task(3_000)] }),
            (
                100,
                Op::Queue {
                    client: 0,
                    name: 0,
                    act: QueueAct::Put { value: ValueSrc::Future(0), maxsize: 0, timeout_ms: None },
                },
            ),
            (0, Op::Release { client: 0, pick: 0 }),
            (100, Op::Queue { client: 1, name: 0, act: QueueAct::Get { timeout_ms: None } }),
            (200, Op::Partition { peer: PeerRef::Client(1), ms: 12_000 }),
            (12_500, Op::Info { client: 1, what: 3 }),
        ],
    );
    // A get answered with a future while the client's connection is dead
    // (it has not noticed yet): the answer is lost, but the scheduler logged
    // that the client wants the future. After the reconnect the resent get
    // sees a newer value, so the client never learns of the first one and
    // never releases it: the key is never forgotten.
    let lost_answer = scenario(
        2,
        vec![
            (300, Op::Submit { client: 0, tasks: vec![task(50)] }),
            (100, Op::Variable { client: 1, name: 0, act: VariableAct::Get { timeout_ms: None } }),
            (100, Op::DropLink { peer: PeerRef::Client(1), notify: false }),
            (0, Op::Variable { client: 0, name: 0, act: VariableAct::Set(ValueSrc::Future(0)) }),
            (100, Op::Variable { client: 0, name: 0, act: VariableAct::Set(ValueSrc::Inline) }),
            (0, Op::Release { client: 0, pick: 0 }),
        ],
    );
    let opts = SimOptions::default().with_trace(TraceMode::Tail(30));
    for (name, s) in [
        ("a release crossing an answer that hands the key back", crossing_release),
        ("a future adopted from a primitive, after the client's removal", adopted_after_removal),
        ("a get answered while the connection was dead", lost_answer),
    ] {
        let (result, trace, _, _) = run_scenario(&s, &opts);
        match result {
            Ok(_) => println!("{name}: passes now (move it to tests/sim_faults.rs)"),
            Err(v) => println!("{name}: {v}\n  {}", trace.join("\n  ")),
        }
        println!();
    }
}
