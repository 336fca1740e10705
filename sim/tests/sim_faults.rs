//! Hand-built scenarios that put each fault where it hurts, and show the
//! run survives it with every invariant checked.
mod common;

use common::*;
use reprise_sim::funcs::Fail;
use reprise_sim::scenario::{CrashPoint, Op, PeerRef, TailFate};

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
