//! Hand-built scenarios that put each fault where it hurts, and show the
//! run survives it with every invariant checked.
mod common;

use common::*;
use reprise_sim::funcs::Fail;
use reprise_sim::scenario::{CrashPoint, DatasetAct, EventAct, Op, PeerRef, QueueAct, TailFate, ValueSrc, VariableAct};

fn crash(at: CrashPoint, tail: TailFate) -> Op {
    Op::CrashScheduler { at, tail, down_ms: 300 }
}

/// A chain of tasks, a crash armed for the next commit, and more work.
fn crash_in_the_next_commit(at: CrashPoint, tail: TailFate) -> (reprise_sim::Stats, Vec<String>) {
    let s = scenario(
        params(),
        vec![
            (0, submit(vec![task(40, &[]), task(40, &[0])])),
            (10, crash(at, tail)),
            (0, submit(vec![task(30, &[0]), task(30, &[1])])),
            (200, Op::Release { client: 0, pick: 1 }),
        ],
    );
    let (result, trace) = run(&s);
    let stats = result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert_eq!(stats.scheduler_crashes, 1);
    (stats, trace)
}

#[test]
fn a_crash_between_append_and_flush_loses_only_what_nobody_heard_of() {
    let (_, trace) = crash_in_the_next_commit(CrashPoint::BeforeFlush, TailFate::Lost);
    assert!(traced(&trace, "after the append, before the flush (unflushed tail Lost)"));
}

#[test]
fn a_torn_unflushed_record_is_cut_at_recovery() {
    let (_, trace) = crash_in_the_next_commit(CrashPoint::BeforeFlush, TailFate::Torn);
    assert!(traced(&trace, "(unflushed tail Torn)"));
}

#[test]
fn an_unflushed_record_that_reached_the_disk_is_recovered() {
    let (_, trace) = crash_in_the_next_commit(CrashPoint::BeforeFlush, TailFate::Kept);
    assert!(traced(&trace, "(unflushed tail Kept)"));
}

#[test]
fn a_crash_after_the_flush_before_sending_loses_only_messages() {
    let (_, trace) = crash_in_the_next_commit(CrashPoint::BeforeSend, TailFate::Lost);
    assert!(traced(&trace, "after the flush, before sending"));
}

#[test]
fn recovery_from_a_snapshot_and_its_tail() {
    let mut p = params();
    p.snapshot_every = 5;
    let s = scenario(
        p,
        vec![
            (0, submit(vec![task(20, &[]), task(20, &[0]), task(20, &[1])])),
            (300, submit(vec![task(20, &[0])])),
            (0, crash(CrashPoint::Now, TailFate::Lost)),
        ],
    );
    let (result, trace) = run(&s);
    let stats = result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(stats.snapshots >= 2, "{stats:?}");
    assert!(traced(&trace, "restarted from the log"));
}

#[test]
fn a_result_finished_while_its_worker_was_cut_off_is_kept() {
    // The worker finishes while its link is broken unbeknownst to it: the
    // report is lost, and it registers again holding the result.
    let mut p = params();
    p.workers = vec![1];
    p.notify_per_mille = 0;
    let s = scenario(
        p,
        vec![(300, submit(vec![task(100, &[])])), (30, Op::DropLink { peer: PeerRef::Worker(0), notify: false })],
    );
    let (result, trace) = run(&s);
    result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(traced(&trace, "w0 -> s  Register held[t0] running[]"), "{}", trace.join("\n"));
}

#[test]
fn lost_results_are_computed_again_after_a_worker_crash() {
    let mut p = params();
    p.inline_bytes_max = 0;
    p.workers = vec![1, 1];
    let s = scenario(
        p,
        vec![
            (0, submit(vec![task(10, &[]), task(10, &[]), task(10, &[])])),
            (200, Op::CrashWorker { worker: 0, down_ms: 100 }),
            (0, Op::CrashWorker { worker: 1, down_ms: 100 }),
            (300, submit(vec![task(10, &[0, 1, 2])])),
        ],
    );
    let (result, trace) = run(&s);
    let stats = result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(stats.executions >= 6, "{stats:?}");
}

#[test]
fn retries_cancels_and_fire_and_forget_resolve() {
    let mut failing = task(10, &[]);
    failing.fail = Fail::First(1);
    failing.retries = 1;
    let mut doomed = task(10, &[]);
    doomed.fail = Fail::Always;
    let s = scenario(
        params(),
        vec![
            (0, submit(vec![failing, doomed, task(500, &[])])),
            (50, Op::Cancel { client: 0, pick: 0 }),
            (100, Op::Retry { client: 0, pick: 1 }),
            (0, submit(vec![task(300, &[])])),
            (0, Op::FireAndForget { client: 0, pick: 0, drop: true }),
            (0, Op::Vanish { client: 0 }),
        ],
    );
    let (result, trace) = run(&s);
    let stats = result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert_eq!(stats.clients_lost, 1);
    assert!(traced(&trace, "ClientRemoved c0.1"), "the vanished client is timed out");
}

#[test]
fn a_long_partition_makes_both_sides_give_up_and_recover() {
    let s = scenario(
        params(),
        vec![
            (300, submit(vec![task(50, &[])])),
            (0, Op::Partition { peer: PeerRef::Client(0), ms: 12_000 }),
            (0, Op::Partition { peer: PeerRef::Worker(1), ms: 12_000 }),
            (100, submit(vec![task(50, &[0])])),
            (11_000, Op::Info { client: 0, what: 3 }),
        ],
    );
    let (result, trace) = run(&s);
    result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(traced(&trace, "c0 hears nothing: connection lost"));
    assert!(traced(&trace, "WorkerRemoved w1"), "the scheduler gave up on the silent worker");
}

#[test]
fn locks_pass_from_holder_to_holder_and_an_expired_lease_frees_its_lock() {
    let mut p = params();
    p.n_clients = 2;
    let s = scenario(
        p,
        vec![
            (300, lock(0, 400)),
            (0, Op::Lock { client: 1, name: 0, hold_ms: 100, timeout_ms: None }),
            (0, Op::Semaphore { client: 1, name: 1, hold_ms: 100, timeout_ms: Some(50) }),
            // Client 0 takes the lock again and falls silent for longer
            // than the lease timeout (2 s): its lease expires.
            (1_000, lock(0, 3_000)),
            (50, Op::Partition { peer: PeerRef::Client(0), ms: 4_000 }),
            (0, Op::Lock { client: 1, name: 0, hold_ms: 100, timeout_ms: None }),
            // Faults stop (and partitions heal) after the last operation.
            (3_000, Op::Info { client: 1, what: 3 }),
        ],
    );
    let (result, trace) = run(&s);
    let stats = result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(stats.leases_granted >= 4, "{stats:?}");
    assert!(stats.leases_expired >= 1, "{stats:?}");
    assert!(traced(&trace, "LeaseExpired"), "{}", trace.join("\n"));
}

#[test]
fn a_client_removed_while_its_link_stayed_up_says_hello_again_and_its_futures_resolve() {
    // The client's messages stall (one way) past the scheduler's heartbeat
    // timeout while updates still reach it: the scheduler removes it and
    // answers its next messages "say Hello first"; the session says Hello
    // again on the same connection and resends what is pending.
    let mut p = params();
    p.workers = vec![1];
    let chain = (0..6).map(|i| task(1_800, if i == 0 { &[] } else { &[0] })).collect();
    let s = scenario(
        p,
        vec![
            (300, submit(chain)),
            (10, Op::Stall { peer: PeerRef::Client(0), ms: 10_500 }),
            (12_000, Op::Info { client: 0, what: 3 }),
        ],
    );
    let (result, trace) = run(&s);
    result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(traced(&trace, "ClientRemoved c0.1"), "{}", trace.join("\n"));
    assert!(traced(&trace, "say Hello before anything else"), "{}", trace.join("\n"));
    let hellos = trace.iter().filter(|l| l.contains("c0 -> s  Hello")).count();
    assert!(hellos >= 2, "the session said Hello again ({hellos} times)");
}

#[test]
fn a_scatter_registered_after_its_worker_left_resolves_as_lost() {
    // The client scatters to a worker, then is cut off; by the time its
    // `Scattered` arrives the worker was removed: the scheduler answers the
    // key `Lost` and acknowledges the registration, so the session stops
    // resending it and lets go of the fire-and-forget key.
    let s = scenario(
        params(),
        vec![
            (300, Op::Partition { peer: PeerRef::Client(0), ms: 12_000 }),
            (0, Op::Partition { peer: PeerRef::Worker(0), ms: 15_000 }),
            (0, Op::Scatter { client: 0, worker: 0, big: false }),
            (0, Op::FireAndForget { client: 0, pick: 0, drop: true }),
            (16_000, Op::Info { client: 0, what: 3 }),
        ],
    );
    let (result, trace) = run(&s);
    result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(traced(&trace, "WorkerRemoved w0"), "{}", trace.join("\n"));
    assert!(traced(&trace, "Update s0 lost"), "{}", trace.join("\n"));
}

fn queue(client: u8, act: QueueAct) -> Op {
    Op::Queue { client, name: 0, act }
}

fn put(client: u8, value: ValueSrc, maxsize: u8) -> Op {
    queue(client, QueueAct::Put { value, maxsize, timeout_ms: None })
}

fn get(client: u8) -> Op {
    queue(client, QueueAct::Get { timeout_ms: None })
}

#[test]
fn queue_items_put_before_a_crash_are_each_handed_out_once_after_it() {
    let mut p = params();
    p.n_clients = 2;
    let s = scenario(
        p,
        vec![
            (300, put(0, ValueSrc::Inline, 0)),
            (0, put(0, ValueSrc::Inline, 0)),
            (0, put(0, ValueSrc::Inline, 0)),
            (0, get(1)),
            (0, crash(CrashPoint::BeforeSend, TailFate::Lost)),
            (500, get(1)),
            (0, get(1)),
            (0, crash(CrashPoint::BeforeFlush, TailFate::Torn)),
            (0, queue(1, QueueAct::GetBatch { n: 4 })),
            (500, queue(0, QueueAct::Size)),
        ],
    );
    let (result, trace) = run(&s);
    let stats = result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert_eq!(stats.scheduler_crashes, 2);
    // Client 1 got the three items (v0, v1, v2), and nothing else did.
    for item in ["[118, 48]", "[118, 49]", "[118, 50]"] {
        let got: Vec<&String> = trace.iter().filter(|l| l.contains("answered Values") && l.contains(item)).collect();
        assert!(matches!(got[..], [line] if line.contains("c1.1 request")), "{item}: {got:?}");
    }
}

#[test]
fn a_blocking_put_waits_for_room_and_queued_futures_stay_held() {
    let mut p = params();
    p.n_clients = 2;
    let s = scenario(
        p,
        vec![
            (0, submit(vec![task(400, &[]), task(50, &[])])),
            (50, put(0, ValueSrc::Future(0), 1)),
            (0, put(0, ValueSrc::Future(1), 1)),
            // Both handles go: only the queue keeps the futures alive.
            (0, Op::Release { client: 0, pick: 0 }),
            (0, Op::Release { client: 0, pick: 0 }),
            (300, crash(CrashPoint::Now, TailFate::Kept)),
            (500, get(1)),
            (0, get(1)),
        ],
    );
    let (result, trace) = run(&s);
    result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(traced(&trace, "HolderAdded Queue(\"q0\") t0"), "{}", trace.join("\n"));
    assert!(traced(&trace, "HolderAdded Queue(\"q0\") t1"), "the blocked put went in once there was room");
    assert!(traced(&trace, "ClientWants c1.1 t1"), "the getter wants what it took");
}

#[test]
fn setting_an_event_wakes_every_waiter_of_every_client() {
    let mut p = params();
    p.n_clients = 3;
    let wait = |client, timeout_ms| Op::Event { client, name: 0, act: EventAct::Wait { timeout_ms } };
    let s = scenario(
        p,
        vec![
            (300, wait(0, None)),
            (0, wait(1, None)),
            (0, wait(1, None)),
            (0, wait(2, Some(100))),
            (0, Op::Partition { peer: PeerRef::Client(2), ms: 2_000 }),
            (0, wait(2, None)),
            (300, Op::Event { client: 0, name: 0, act: EventAct::Set }),
            (0, Op::Event { client: 1, name: 0, act: EventAct::Clear }),
            (0, wait(0, Some(200))),
            (2_500, Op::Event { client: 2, name: 0, act: EventAct::IsSet }),
        ],
    );
    let (result, trace) = run(&s);
    let stats = result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(stats.event_wakeups >= 4, "{stats:?}");
}

#[test]
fn a_read_after_an_acknowledged_change_sees_it_across_crashes() {
    let mut p = params();
    p.n_clients = 2;
    let var = |client, act| Op::Variable { client, name: 0, act };
    let ds = |client, act| Op::Dataset { client, name: 0, act };
    let s = scenario(
        p,
        vec![
            (0, submit(vec![task(100, &[])])),
            (10, var(1, VariableAct::Get { timeout_ms: None })),
            (0, var(0, VariableAct::Set(ValueSrc::Future(0)))),
            (0, ds(0, DatasetAct::Publish { pick: 0 })),
            (0, Op::Release { client: 0, pick: 0 }),
            (200, crash(CrashPoint::BeforeSend, TailFate::Kept)),
            (500, var(1, VariableAct::Get { timeout_ms: Some(10) })),
            (0, var(0, VariableAct::Set(ValueSrc::Inline))),
            (0, ds(1, DatasetAct::Get)),
            (0, ds(1, DatasetAct::List)),
            (300, var(1, VariableAct::Get { timeout_ms: Some(10) })),
            (0, ds(0, DatasetAct::Unpublish)),
            (0, var(0, VariableAct::Delete)),
            (300, var(1, VariableAct::Get { timeout_ms: Some(10) })),
            (0, ds(1, DatasetAct::Get)),
        ],
    );
    let (result, trace) = run(&s);
    let stats = result.unwrap_or_else(|v| panic!("{v}\n{}", trace.join("\n")));
    assert!(traced(&trace, "HolderAdded Dataset(\"ds0\") t0"), "{}", trace.join("\n"));
    assert!(traced(&trace, "answered Timeout"), "the get after the delete times out");
    assert!(stats.primitive_answers >= 12, "{stats:?}");
}
