//! The coordination primitives in the core: every behaviour users rely on,
//! driven message by message with the harness (which also checks, after
//! every step, that replaying the emitted events rebuilds the state).
mod harness;

use harness::*;
use reprise_proto::{
    ClientId, Event, EventKind, Holder, Key, KeyState, LeaseOn, OpId, PrimitiveOp, PrimitiveResult, ReplyValue,
    RequestId, StoredValue,
};
use reprise_scheduler::core::{Config, Scheduler};

use PrimitiveOp as Op;
use PrimitiveResult as R;

fn op(c: &str, req: u64) -> OpId {
    OpId { client: ClientId::from(c), req: RequestId(req) }
}

fn acquire(name: &str, timeout_ms: Option<u64>) -> Op {
    Op::LockAcquire { name: name.into(), timeout_ms }
}

fn release(name: &str, lease: u64) -> Op {
    Op::LockRelease { name: name.into(), lease: RequestId(lease) }
}

fn sem_acquire(name: &str, max_leases: u64, timeout_ms: Option<u64>) -> Op {
    Op::SemaphoreAcquire { name: name.into(), max_leases, timeout_ms }
}

fn inline(v: u8) -> StoredValue {
    StoredValue::Inline(vec![v])
}

fn put(name: &str, value: StoredValue, maxsize: u64, timeout_ms: Option<u64>) -> Op {
    Op::QueuePut { name: name.into(), value, maxsize, timeout_ms }
}

fn get(name: &str, timeout_ms: Option<u64>) -> Op {
    Op::QueueGet { name: name.into(), timeout_ms }
}

/// A harness with clients a, b and c connected.
fn three_clients(config: Config) -> Harness {
    let mut h = Harness::with_config(config);
    for c in ["a", "b", "c"] {
        h.client(c);
    }
    h
}

fn values(bytes: &[u8]) -> PrimitiveResult {
    R::Values(bytes.iter().map(|b| ReplyValue::Inline(vec![*b])).collect())
}

#[test]
fn a_lock_has_one_holder_and_passes_to_the_next_in_line_on_release() {
    let mut h = three_clients(Config::default());
    let d = h.prim("a", 1, acquire("L", None));
    assert_eq!(d.prim_reply("a", 1), Some(R::Granted));
    assert!(d.has_event(&Event::LockAcquired { lock: "L".into(), lease: op("a", 1) }));
    assert_eq!(h.prim("b", 1, acquire("L", None)).prim_reply("b", 1), None, "b waits");
    assert_eq!(h.prim("c", 7, acquire("L", None)).prim_reply("c", 7), None, "c waits behind b");
    assert_eq!(h.prim("c", 8, Op::LockLocked { name: "L".into() }).prim_reply("c", 8), Some(R::Bool(true)));
    let d = h.prim("a", 2, release("L", 1));
    assert_eq!(d.prim_reply("a", 2), Some(R::Done));
    assert_eq!(d.prim_reply("b", 1), Some(R::Granted), "first in line gets it");
    assert_eq!(d.kinds(), vec![EventKind::LockReleased, EventKind::LockAcquired]);
    assert_eq!(h.sched.state().lock_holder("L"), Some(&op("b", 1)));
    let d = h.prim("b", 2, release("L", 1));
    assert_eq!(d.prim_reply("c", 7), Some(R::Granted));
    h.prim("c", 9, release("L", 7));
    assert_eq!(h.prim("a", 3, Op::LockLocked { name: "L".into() }).prim_reply("a", 3), Some(R::Bool(false)));
}

#[test]
fn releasing_a_lease_one_does_not_hold_changes_nothing() {
    let mut h = three_clients(Config::default());
    h.prim("a", 1, acquire("L", None));
    let d = h.prim("b", 5, release("L", 1));
    assert_eq!(d.prim_reply("b", 5), Some(R::Done));
    assert!(d.events.is_empty(), "b's request 1 is not a's lease: {:?}", d.events);
    assert_eq!(h.sched.state().lock_holder("L"), Some(&op("a", 1)));
}

#[test]
fn a_lock_wait_with_a_timeout_answers_timeout_at_its_deadline() {
    let mut h = three_clients(Config::default());
    h.prim("a", 1, acquire("L", None));
    assert_eq!(h.prim("b", 1, acquire("L", Some(0))).prim_reply("b", 1), Some(R::Timeout), "zero means try once");
    assert_eq!(h.prim("b", 2, acquire("L", Some(500))).prim_reply("b", 2), None);
    assert_eq!(h.sched.next_deadline(), Some(500));
    h.advance_ms(499);
    assert_eq!(h.tick().prim_reply("b", 2), None);
    h.advance_ms(1);
    let d = h.tick();
    assert_eq!(d.prim_reply("b", 2), Some(R::Timeout));
    assert!(d.events.is_empty());
    assert_eq!(h.sched.n_waiters(), 0);
    // A later release finds nobody in line.
    assert!(!h.prim("a", 2, release("L", 1)).kinds().contains(&EventKind::LockAcquired));
}

#[test]
fn a_resent_acquire_is_granted_again_not_twice_and_keeps_its_place_in_line() {
    let mut h = three_clients(Config::default());
    h.prim("a", 1, acquire("L", None));
    let d = h.prim("a", 1, acquire("L", None));
    assert_eq!(d.prim_reply("a", 1), Some(R::Granted));
    assert!(d.events.is_empty(), "a resend acts once: {:?}", d.events);
    h.prim("b", 1, acquire("L", None));
    h.prim("c", 1, acquire("L", None));
    assert!(h.prim("b", 1, acquire("L", None)).effects.is_empty(), "still waiting, still first");
    assert_eq!(h.sched.n_waiters(), 2);
    assert_eq!(h.prim("a", 2, release("L", 1)).prim_reply("b", 1), Some(R::Granted));
}

#[test]
fn a_lease_of_a_silent_client_expires_and_goes_to_the_next_in_line() {
    let config = Config { lease_timeout_ms: 1_000, ..Config::default() };
    let mut h = three_clients(config);
    h.prim("a", 1, acquire("L", None));
    h.prim("a", 2, sem_acquire("S", 1, None));
    h.advance_ms(600);
    h.prim("b", 1, acquire("L", None));
    h.prim("b", 2, sem_acquire("S", 1, None));
    h.advance_ms(300);
    h.client_msg("a", reprise_proto::ClientMsg::Heartbeat); // a heartbeat refreshes a's leases
    h.advance_ms(1_000);
    assert!(h.tick().events.is_empty(), "refreshed 1000 ms ago: not yet");
    h.client_msg("b", reprise_proto::ClientMsg::Heartbeat);
    h.advance_ms(1);
    let d = h.tick();
    assert!(d.has_event(&Event::LeaseExpired { on: LeaseOn::Lock("L".into()), lease: op("a", 1) }));
    assert!(d.has_event(&Event::LeaseExpired { on: LeaseOn::Semaphore("S".into()), lease: op("a", 2) }));
    assert_eq!(d.prim_reply("b", 1), Some(R::Granted));
    assert_eq!(d.prim_reply("b", 2), Some(R::Granted));
    assert_eq!(h.sched.state().lock_holder("L"), Some(&op("b", 1)));
    // a comes back and releases what it no longer holds: nothing happens.
    let d = h.prim("a", 3, release("L", 1));
    assert_eq!(d.prim_reply("a", 3), Some(R::Done));
    assert!(d.events.is_empty());
}

#[test]
fn after_a_restart_every_lease_counts_as_refreshed_at_the_restart() {
    let config = Config { lease_timeout_ms: 1_000, heartbeat_timeout_ms: 60_000, ..Config::default() };
    let mut h = three_clients(config.clone());
    h.prim("a", 1, acquire("L", None));
    h.advance_ms(5_000);
    h.sched = Scheduler::from_state(config, h.sched.state().clone(), h.now);
    assert_eq!(h.sched.next_deadline(), Some(h.now + 1_001));
    h.advance_ms(1_000);
    assert!(h.tick().events.is_empty());
    h.advance_ms(1);
    assert!(h.tick().kinds().contains(&EventKind::LeaseExpired));
}

#[test]
fn a_leaving_client_releases_its_leases_at_once_and_its_waiters_go() {
    let mut h = three_clients(Config::default());
    h.prim("a", 1, acquire("L", None));
    h.prim("a", 2, sem_acquire("S", 1, None));
    h.prim("b", 1, acquire("L", None));
    h.prim("c", 1, acquire("L", None));
    h.prim("c", 2, Op::EventWait { name: "E".into(), timeout_ms: None });
    h.prim("c", 3, get("Q", Some(10_000)));
    let d = h.client_msg("c", reprise_proto::ClientMsg::Goodbye);
    assert!(d.prim_replies("c").is_empty(), "a departed client gets no answers");
    assert_eq!(h.sched.n_waiters(), 1, "only b still waits");
    let d = h.client_msg("a", reprise_proto::ClientMsg::Goodbye);
    assert!(d.has_event(&Event::LockReleased { lock: "L".into(), lease: op("a", 1) }));
    assert!(d.has_event(&Event::LeaseReleased { semaphore: "S".into(), lease: op("a", 2) }));
    assert_eq!(d.prim_reply("b", 1), Some(R::Granted));
    let pos = |k: EventKind| d.kinds().iter().position(|x| *x == k);
    assert!(pos(EventKind::LockReleased) < pos(EventKind::ClientRemoved));
}

#[test]
fn abandoning_a_request_withdraws_its_wait_or_gives_back_its_lease() {
    let mut h = three_clients(Config::default());
    h.prim("a", 1, acquire("L", None));
    h.prim("b", 1, acquire("L", None));
    h.prim("c", 1, acquire("L", None));
    let d = h.prim("b", 2, Op::Abandon { req: RequestId(1) });
    assert_eq!(d.prim_reply("b", 2), Some(R::Done));
    assert_eq!(d.prim_reply("b", 1), None);
    // a abandons the acquire it was granted (its caller went away).
    let d = h.prim("a", 2, Op::Abandon { req: RequestId(1) });
    assert!(d.has_event(&Event::LockReleased { lock: "L".into(), lease: op("a", 1) }));
    assert_eq!(d.prim_reply("c", 1), Some(R::Granted), "b left the line, so c is next");
}

#[test]
fn a_semaphore_never_grants_more_than_max_leases() {
    let mut h = three_clients(Config::default());
    let d = h.prim("a", 1, sem_acquire("S", 2, None));
    assert_eq!(d.kinds(), vec![EventKind::SemaphoreCreated, EventKind::LeaseGranted]);
    assert_eq!(h.prim("b", 1, sem_acquire("S", 2, None)).prim_reply("b", 1), Some(R::Granted));
    assert_eq!(h.prim("c", 1, sem_acquire("S", 2, None)).prim_reply("c", 1), None);
    assert_eq!(h.prim("a", 9, sem_acquire("S", 2, Some(0))).prim_reply("a", 9), Some(R::Timeout));
    let value = Op::SemaphoreValue { name: "S".into(), max_leases: 2 };
    assert_eq!(h.prim("c", 2, value.clone()).prim_reply("c", 2), Some(R::Count(2)));
    let s = h.sched.state().semaphore("S").expect("in use");
    assert_eq!((s.max_leases(), s.leases().len()), (2, 2));
    let d = h.prim("a", 2, Op::SemaphoreRelease { name: "S".into(), lease: RequestId(1) });
    assert_eq!(d.prim_reply("c", 1), Some(R::Granted));
    assert_eq!(h.prim("c", 3, value).prim_reply("c", 3), Some(R::Count(2)));
}

#[test]
fn a_semaphore_asked_with_another_bound_is_refused() {
    let mut h = three_clients(Config::default());
    h.prim("a", 1, sem_acquire("S", 2, None));
    assert!(matches!(h.prim("b", 1, sem_acquire("S", 3, None)).prim_reply("b", 1), Some(R::Invalid { .. })));
    assert!(matches!(h.prim("b", 2, sem_acquire("T", 0, None)).prim_reply("b", 2), Some(R::Invalid { .. })));
}

#[test]
fn closing_a_semaphore_releases_its_leases_and_refuses_its_waiters_and_later_acquires() {
    let mut h = three_clients(Config::default());
    h.prim("a", 1, sem_acquire("S", 1, None));
    h.prim("b", 1, sem_acquire("S", 1, None));
    let d = h.prim("c", 1, Op::SemaphoreClose { name: "S".into(), max_leases: 1 });
    assert!(d.has_event(&Event::SemaphoreClosed { semaphore: "S".into() }));
    assert_eq!(d.prim_reply("b", 1), Some(R::Closed), "the waiter hears the close");
    assert_eq!(d.prim_reply("c", 1), Some(R::Done));
    assert!(h.sched.state().semaphore("S").expect("tombstone").leases().is_empty());
    assert_eq!(h.prim("b", 2, sem_acquire("S", 1, None)).prim_reply("b", 2), Some(R::Closed));
    // The holder's late release is harmless.
    assert!(h.prim("a", 2, Op::SemaphoreRelease { name: "S".into(), lease: RequestId(1) }).events.is_empty());
    // A semaphore closed before any use stays closed too.
    h.prim("c", 2, Op::SemaphoreClose { name: "fresh".into(), max_leases: 3 });
    assert_eq!(h.prim("a", 3, sem_acquire("fresh", 3, None)).prim_reply("a", 3), Some(R::Closed));
}

#[test]
fn one_event_set_wakes_every_waiter_and_set_clear_wait_repeat() {
    let mut h = three_clients(Config::default());
    let wait = |t| Op::EventWait { name: "E".into(), timeout_ms: t };
    for (c, req) in [("a", 1), ("b", 1), ("c", 1)] {
        assert_eq!(h.prim(c, req, wait(None)).prim_reply(c, req), None);
    }
    let d = h.prim("a", 2, Op::EventSet { name: "E".into() });
    for c in ["b", "c"] {
        assert_eq!(d.prim_reply(c, 1), Some(R::Bool(true)));
    }
    assert_eq!(d.prim_reply("a", 1), Some(R::Bool(true)));
    assert_eq!(d.kinds(), vec![EventKind::EventSet]);
    assert!(h.prim("a", 3, Op::EventSet { name: "E".into() }).events.is_empty(), "already set");
    assert_eq!(h.prim("b", 2, wait(Some(0))).prim_reply("b", 2), Some(R::Bool(true)));
    assert_eq!(h.prim("b", 3, Op::EventClear { name: "E".into() }).kinds(), vec![EventKind::EventCleared]);
    assert_eq!(h.prim("b", 4, Op::EventIsSet { name: "E".into() }).prim_reply("b", 4), Some(R::Bool(false)));
    assert_eq!(h.prim("c", 2, wait(Some(100))).prim_reply("c", 2), None);
    h.advance_ms(100);
    assert_eq!(h.tick().prim_reply("c", 2), Some(R::Bool(false)), "a wait that times out is false");
    h.prim("a", 4, wait(None));
    assert_eq!(h.prim("c", 3, Op::EventSet { name: "E".into() }).prim_reply("a", 4), Some(R::Bool(true)));
}

#[test]
fn a_variable_get_waits_for_the_first_set_or_times_out() {
    let mut h = three_clients(Config::default());
    let vget = |t| Op::VariableGet { name: "V".into(), timeout_ms: t };
    assert_eq!(h.prim("a", 1, vget(Some(0))).prim_reply("a", 1), Some(R::Timeout));
    h.prim("a", 2, vget(None));
    h.prim("b", 1, vget(Some(50)));
    h.advance_ms(50);
    assert_eq!(h.tick().prim_reply("b", 1), Some(R::Timeout));
    let d = h.prim("c", 1, Op::VariableSet { name: "V".into(), value: inline(7) });
    assert_eq!(d.prim_reply("a", 2), Some(values(&[7])));
    assert_eq!(d.prim_reply("c", 1), Some(R::Done));
    assert_eq!(h.prim("b", 2, vget(None)).prim_reply("b", 2), Some(values(&[7])));
    h.prim("c", 2, Op::VariableSet { name: "V".into(), value: inline(8) });
    assert_eq!(h.prim("b", 3, vget(None)).prim_reply("b", 3), Some(values(&[8])), "last writer wins");
    assert_eq!(h.prim("c", 3, Op::VariableDelete { name: "V".into() }).kinds(), vec![EventKind::VariableDeleted]);
    assert_eq!(h.prim("b", 4, vget(Some(0))).prim_reply("b", 4), Some(R::Timeout));
}

/// A finished task `k` wanted by client a (worker w1 registers first).
fn with_finished_key(h: &mut Harness, k: &str) {
    if h.sched.state().worker(&wid("w1")).is_none() {
        h.worker("w1", 1, FUNCS);
    }
    h.submit("a", vec![spec(k, "inc", &[])]);
    h.finish(k);
}

#[test]
fn a_future_in_a_variable_stays_alive_until_overwritten_or_deleted() {
    let mut h = three_clients(Config::default());
    with_finished_key(&mut h, "k1");
    with_finished_key(&mut h, "k2");
    let fut = |k: &str| StoredValue::Future(key(k));
    let d = h.prim("a", 1, Op::VariableSet { name: "V".into(), value: fut("k1") });
    assert!(d.has_event(&Event::HolderAdded { holder: Holder::Variable("V".into()), key: key("k1") }));
    h.release("a", &["k1"]);
    assert_eq!(h.state_of("k1"), "memory", "the variable keeps it");
    // b reads it: b now wants it, with its final state at hand.
    let d = h.prim("b", 1, Op::VariableGet { name: "V".into(), timeout_ms: None });
    assert!(d.has_event(&Event::ClientWants { client: cid("b"), key: key("k1") }));
    assert!(matches!(
        d.prim_reply("b", 1),
        Some(R::Values(v)) if matches!(&v[..], [ReplyValue::Future { state: Some(KeyState::Finished { .. }), .. }])
    ));
    h.release("b", &["k1"]);
    assert_eq!(h.state_of("k1"), "memory");
    let d = h.prim("a", 2, Op::VariableSet { name: "V".into(), value: fut("k2") });
    assert!(d.has_event(&Event::HolderRemoved { holder: Holder::Variable("V".into()), key: key("k1") }));
    assert_eq!(h.state_of("k1"), "forgotten", "overwritten, nobody holds it");
    h.release("a", &["k2"]);
    h.prim("a", 3, Op::VariableDelete { name: "V".into() });
    assert_eq!(h.state_of("k2"), "forgotten", "deleted");
}

#[test]
fn storing_an_unknown_or_cancelled_future_is_refused_at_once() {
    let mut h = three_clients(Config::default());
    let ghost = StoredValue::Future(key("ghost"));
    let cancelled = R::Cancelled { key: key("ghost") };
    assert_eq!(h.prim("a", 1, put("Q", ghost.clone(), 0, None)).prim_reply("a", 1), Some(cancelled.clone()));
    let d = h.prim("a", 2, Op::VariableSet { name: "V".into(), value: ghost });
    assert_eq!(d.prim_reply("a", 2), Some(cancelled));
    assert!(d.events.is_empty());
    let d = h.prim("a", 3, Op::DatasetPublish { name: "D".into(), key: key("ghost") });
    assert_eq!(d.prim_reply("a", 3), Some(R::Cancelled { key: key("ghost") }));
}

#[test]
fn a_queue_is_fifo_and_a_get_waits_for_an_item() {
    let mut h = three_clients(Config::default());
    assert_eq!(h.prim("b", 1, get("Q", None)).prim_reply("b", 1), None);
    let d = h.prim("a", 1, put("Q", inline(1), 0, None));
    assert_eq!(d.prim_reply("b", 1), Some(values(&[1])), "the waiting getter takes it at once");
    assert_eq!(d.kinds(), vec![EventKind::QueuePut, EventKind::QueueTaken]);
    for (req, v) in [(2, 2), (3, 3), (4, 4)] {
        h.prim("a", req, put("Q", inline(v), 0, None));
    }
    assert_eq!(h.prim("b", 2, Op::QueueSize { name: "Q".into() }).prim_reply("b", 2), Some(R::Count(3)));
    assert_eq!(h.prim("b", 3, get("Q", None)).prim_reply("b", 3), Some(values(&[2])));
    let batch = Op::QueueGetBatch { name: "Q".into(), n: 5 };
    assert_eq!(h.prim("b", 4, batch.clone()).prim_reply("b", 4), Some(values(&[3, 4])), "up to n, without waiting");
    let d = h.prim("b", 5, batch);
    assert_eq!(d.prim_reply("b", 5), Some(values(&[])));
    assert!(d.events.is_empty());
    assert_eq!(h.prim("b", 6, get("Q", Some(0))).prim_reply("b", 6), Some(R::Timeout));
}

#[test]
fn a_put_on_a_full_queue_waits_until_a_get_makes_room_or_times_out() {
    let mut h = three_clients(Config::default());
    h.prim("a", 1, put("Q", inline(1), 2, None));
    h.prim("a", 2, put("Q", inline(2), 2, None));
    assert_eq!(h.prim("a", 3, put("Q", inline(3), 2, None)).prim_reply("a", 3), None, "full");
    assert_eq!(h.prim("c", 1, put("Q", inline(9), 2, Some(100))).prim_reply("c", 1), None);
    let d = h.prim("b", 1, get("Q", None));
    assert_eq!(d.prim_reply("b", 1), Some(values(&[1])));
    assert_eq!(d.prim_reply("a", 3), Some(R::Done), "the first blocked put goes in");
    assert_eq!(h.sched.state().queue("Q").map(|q| q.len()), Some(2));
    h.advance_ms(100);
    assert_eq!(h.tick().prim_reply("c", 1), Some(R::Timeout));
    let d = h.prim("b", 2, Op::QueueGetBatch { name: "Q".into(), n: 10 });
    assert_eq!(d.prim_reply("b", 2), Some(values(&[2, 3])));
}

#[test]
fn a_future_in_a_queue_outlives_its_putter_and_is_wanted_by_the_taker_before_the_queue_lets_go() {
    let mut h = three_clients(Config::default());
    h.worker("w1", 1, FUNCS);
    h.submit("a", vec![spec("k1", "inc", &[])]);
    let item = StoredValue::Future(key("k1"));
    h.prim("a", 1, put("Q", item.clone(), 0, None));
    h.prim("a", 2, put("Q", item, 0, None));
    h.client_msg("a", reprise_proto::ClientMsg::Goodbye);
    assert_eq!(h.state_of("k1"), "processing", "the queue keeps it");
    h.finish("k1");
    let d = h.prim("b", 1, get("Q", None));
    assert_eq!(d.kinds(), vec![EventKind::QueueTaken, EventKind::ClientWants], "still in the queue once more");
    h.release("b", &["k1"]);
    assert_eq!(h.state_of("k1"), "memory");
    let d = h.prim("c", 1, get("Q", None));
    assert_eq!(d.kinds(), vec![EventKind::QueueTaken, EventKind::ClientWants, EventKind::HolderRemoved]);
    h.release("c", &["k1"]);
    assert_eq!(h.state_of("k1"), "forgotten");
}

#[test]
fn a_resent_take_gets_the_same_items_instead_of_new_ones() {
    let mut h = three_clients(Config::default());
    for (req, v) in [(1, 1), (2, 2)] {
        h.prim("a", req, put("Q", inline(v), 0, None));
    }
    assert_eq!(h.prim("b", 1, get("Q", None)).prim_reply("b", 1), Some(values(&[1])));
    let d = h.prim("b", 1, get("Q", None));
    assert_eq!(d.prim_reply("b", 1), Some(values(&[1])));
    assert!(d.events.is_empty());
    let d = h.prim("a", 2, put("Q", inline(2), 0, None));
    assert!(d.events.is_empty(), "a resent put is not put twice");
    assert_eq!(h.sched.state().queue("Q").map(|q| q.len()), Some(1));
}

#[test]
fn datasets_publish_get_list_and_unpublish() {
    let mut h = three_clients(Config::default());
    with_finished_key(&mut h, "k1");
    with_finished_key(&mut h, "k2");
    let publish = |k: &str| Op::DatasetPublish { name: "D".into(), key: key(k) };
    assert_eq!(h.prim("a", 1, publish("k1")).prim_reply("a", 1), Some(R::Done));
    assert_eq!(h.prim("a", 2, publish("k1")).prim_reply("a", 2), Some(R::Done), "the same key again is harmless");
    assert!(matches!(h.prim("a", 3, publish("k2")).prim_reply("a", 3), Some(R::Invalid { .. })));
    h.release("a", &["k1", "k2"]);
    assert_eq!((h.state_of("k1"), h.state_of("k2")), ("memory", "forgotten"));
    assert_eq!(h.prim("b", 1, Op::DatasetList).prim_reply("b", 1), Some(R::Names(vec!["D".into()])));
    let d = h.prim("b", 2, Op::DatasetGet { name: "D".into() });
    assert!(d.has_event(&Event::ClientWants { client: cid("b"), key: key("k1") }));
    let d = h.prim("c", 1, Op::DatasetUnpublish { name: "D".into() });
    assert_eq!(d.kinds(), vec![EventKind::DatasetUnpublished, EventKind::HolderRemoved]);
    assert_eq!(h.state_of("k1"), "memory", "b still wants it");
    assert!(matches!(h.prim("c", 2, Op::DatasetGet { name: "D".into() }).prim_reply("c", 2), Some(R::NotFound { .. })));
    assert!(matches!(h.prim("c", 3, Op::DatasetUnpublish { name: "D".into() }).prim_reply("c", 3), Some(R::NotFound { .. })));
}

#[test]
fn a_forced_cancel_takes_the_future_out_of_every_primitive() {
    let mut h = three_clients(Config::default());
    h.submit("a", vec![spec("k1", "inc", &[])]);
    let fut = StoredValue::Future(key("k1"));
    h.prim("a", 1, Op::VariableSet { name: "V".into(), value: fut.clone() });
    h.prim("a", 2, put("Q", inline(1), 2, None));
    h.prim("a", 3, put("Q", fut.clone(), 2, None));
    h.prim("a", 4, put("Q", inline(3), 2, None)); // blocked: full
    h.prim("a", 5, Op::DatasetPublish { name: "D".into(), key: key("k1") });
    let d = h.cancel("b", &["k1"], true);
    for kind in [EventKind::VariableDeleted, EventKind::QueueTaken, EventKind::DatasetUnpublished, EventKind::TaskForgotten] {
        assert!(d.kinds().contains(&kind), "{kind:?} missing from {:?}", d.kinds());
    }
    assert_eq!(d.prim_reply("a", 4), Some(R::Done), "the dropped item made room");
    assert_eq!(h.sched.state().variable("V"), None);
    assert_eq!(h.sched.state().dataset("D"), None);
    assert_eq!(h.sched.state().queue("Q").map(|q| q.items().cloned().collect::<Vec<_>>()), Some(vec![inline(1), inline(3)]));
}

#[test]
fn bad_names_and_oversized_values_are_refused_with_a_reason() {
    let mut h = three_clients(Config::default());
    for (req, name) in [(1, String::new()), (2, "a\u{0}b".to_owned()), (3, "x".repeat(300))] {
        let d = h.prim("a", req, acquire(&name, None));
        assert!(matches!(d.prim_reply("a", req), Some(R::Invalid { .. })), "{name:?}");
        assert!(d.events.is_empty());
    }
    let big = StoredValue::Inline(vec![0; reprise_proto::PRIMITIVE_VALUE_BYTES_MAX + 1]);
    let d = h.prim("a", 4, Op::VariableSet { name: "V".into(), value: big });
    assert!(matches!(d.prim_reply("a", 4), Some(R::Invalid { message }) if message.contains("scatter")));
}

#[test]
fn primitives_survive_a_restart_exactly_and_blocked_requests_are_resent() {
    let config = Config::default();
    let mut h = three_clients(config.clone());
    h.prim("a", 1, acquire("L", None));
    h.prim("a", 2, sem_acquire("S", 2, None));
    h.prim("a", 3, put("Q", inline(5), 0, None));
    h.prim("a", 4, Op::VariableSet { name: "V".into(), value: inline(6) });
    h.prim("a", 5, Op::EventSet { name: "E".into() });
    h.prim("b", 1, acquire("L", None));
    let mut replayed = reprise_scheduler::core::State::default();
    for ev in &h.log {
        replayed.apply(ev);
    }
    assert_eq!(&replayed, h.sched.state());
    h.sched = Scheduler::from_state(config, replayed, h.now);
    assert_eq!(h.sched.n_waiters(), 0, "waiters are not durable");
    // b's client resends its acquire after reconnecting; it waits again.
    assert_eq!(h.prim("b", 1, acquire("L", None)).prim_reply("b", 1), None);
    assert_eq!(h.prim("a", 6, release("L", 1)).prim_reply("b", 1), Some(R::Granted));
    assert_eq!(h.sched.state().lock_holder("L"), Some(&op("b", 1)));
    assert_eq!(h.sched.state().variable("V"), Some(&inline(6)));
    assert!(h.sched.state().event_is_set("E"));
}

#[test]
fn a_primitive_key_is_never_confused_with_a_task_key() {
    // Names live in their own namespace per kind.
    let mut h = three_clients(Config::default());
    h.prim("a", 1, acquire("x", None));
    h.prim("a", 2, Op::EventSet { name: "x".into() });
    h.prim("a", 3, put("x", inline(1), 0, None));
    assert_eq!(h.prim("b", 1, sem_acquire("x", 1, Some(0))).prim_reply("b", 1), Some(R::Granted));
    assert_eq!(h.sched.state().task(&Key::from("x")), None);
}

#[test]
fn when_a_blocked_put_leaves_the_line_the_next_one_goes_in_if_its_bound_allows() {
    let mut h = three_clients(Config::default());
    h.prim("a", 1, put("Q", inline(1), 1, None));
    assert_eq!(h.prim("b", 1, put("Q", inline(2), 1, Some(100))).prim_reply("b", 1), None, "full for a bound of 1");
    assert_eq!(h.prim("c", 1, put("Q", inline(3), 5, None)).prim_reply("c", 1), None, "in line behind b");
    h.advance_ms(100);
    let d = h.tick();
    assert_eq!(d.prim_reply("b", 1), Some(R::Timeout));
    assert_eq!(d.prim_reply("c", 1), Some(R::Done), "a bound of 5 has room");
    h.prim("a", 2, put("Q", inline(4), 1, None));
    h.prim("b", 2, put("Q", inline(5), 5, None));
    let d = h.prim("a", 3, Op::Abandon { req: RequestId(2) });
    assert_eq!(d.prim_reply("b", 2), Some(R::Done), "the abandoned put no longer blocks the line");
}
