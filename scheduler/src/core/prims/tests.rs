//! Unit tests of what the simulator found about resends: a client removed
//! while cut off comes back under the same id and resends what it never
//! heard answered.
use reprise_proto::{
    ClientId, ClientMsg, Event, Key, PrimitiveOp, PrimitiveResult, ReplyValue, RequestId, StoredValue, TaskSpec,
    ToClient,
};

use crate::core::{Config, Decision, Effect, Input, Scheduler, REMOVED_CLIENTS_REMEMBERED};

fn send(s: &mut Scheduler, client: &ClientId, msg: ClientMsg, now: u64) -> Decision {
    let d = s.handle(Input::Client { client: client.clone(), msg }, now);
    assert_eq!(s.check_invariants(), Ok(()));
    d
}

fn hello(s: &mut Scheduler, client: &ClientId, now: u64) {
    send(s, client, ClientMsg::Hello { client: client.clone(), name: "test".into(), token: None }, now);
}

/// The client is silent past the heartbeat timeout: the scheduler removes it.
fn remove_by_silence(s: &mut Scheduler, client: &ClientId, now: u64) -> u64 {
    let later = now + s.config().heartbeat_timeout_ms + 1;
    s.handle(Input::Tick, later);
    assert!(!s.state().has_client(client));
    later
}

fn prim(req: u64, op: PrimitiveOp) -> ClientMsg {
    ClientMsg::Primitive { req: RequestId(req), op }
}

fn answers(d: &Decision) -> Vec<(u64, PrimitiveResult)> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::ToClient { msg: ToClient::PrimitiveReply { req, result }, .. } => Some((req.0, result.clone())),
            _ => None,
        })
        .collect()
}

fn put(req: u64, value: StoredValue) -> ClientMsg {
    prim(req, PrimitiveOp::QueuePut { name: "q".into(), value, maxsize: 0, timeout_ms: None })
}

#[test]
fn a_put_resent_after_the_client_was_removed_and_came_back_is_not_put_twice() {
    let mut s = Scheduler::new(Config::default());
    let c = ClientId::from("c");
    hello(&mut s, &c, 0);
    let d = send(&mut s, &c, put(1, StoredValue::Inline(vec![7])), 1);
    assert_eq!(answers(&d), [(1, PrimitiveResult::Done)]);
    // The answer was lost; the client, cut off, is removed, then comes back.
    let now = remove_by_silence(&mut s, &c, 1);
    hello(&mut s, &c, now + 1);
    let d = send(&mut s, &c, put(1, StoredValue::Inline(vec![7])), now + 2);
    assert_eq!(answers(&d), [(1, PrimitiveResult::Done)], "the first answer again");
    assert!(d.events.is_empty(), "nothing put again: {:?}", d.events);
    assert_eq!(s.state().queue("q").map(|q| q.len()), Some(1));
}

#[test]
fn a_take_resent_after_the_client_was_removed_hands_the_same_future_out_and_wants_it_again() {
    let mut s = Scheduler::new(Config::default());
    let (a, b) = (ClientId::from("a"), ClientId::from("b"));
    let k = Key::from("k");
    hello(&mut s, &a, 0);
    hello(&mut s, &b, 0);
    send(&mut s, &a, ClientMsg::Submit { tasks: vec![TaskSpec::new(k.clone(), "inc", vec![0x80], vec![])] }, 1);
    send(&mut s, &a, put(1, StoredValue::Future(k.clone())), 2);
    let d = send(&mut s, &b, prim(1, PrimitiveOp::QueueGet { name: "q".into(), timeout_ms: None }), 3);
    let first = answers(&d);
    let handed_k = |v: &[ReplyValue]| matches!(v, [ReplyValue::Future { key, .. }] if *key == k);
    assert!(matches!(&first[..], [(1, PrimitiveResult::Values(v))] if handed_k(v)), "{first:?}");
    // b never hears the answer, is removed (its want of k goes), comes back
    // and asks again; a, still heard from, keeps k alive meanwhile.
    let timeout = s.config().heartbeat_timeout_ms;
    send(&mut s, &a, ClientMsg::Heartbeat, 3 + timeout);
    let now = remove_by_silence(&mut s, &b, 3);
    assert!(s.state().has_client(&a));
    assert!(!s.state().task(&k).is_some_and(|t| t.wanted_by().contains(&b)));
    hello(&mut s, &b, now + 1);
    let d = send(&mut s, &b, prim(1, PrimitiveOp::QueueGet { name: "q".into(), timeout_ms: None }), now + 2);
    assert_eq!(answers(&d), first, "the same item, not another take");
    assert!(d.events.contains(&Event::ClientWants { client: b.clone(), key: k.clone() }), "{:?}", d.events);
    assert!(s.state().task(&k).is_some_and(|t| t.wanted_by().contains(&b)));
}

#[test]
fn only_the_last_removed_clients_requests_are_remembered() {
    let mut s = Scheduler::new(Config::default());
    let clients: Vec<ClientId> = (0..=REMOVED_CLIENTS_REMEMBERED).map(|i| ClientId(format!("c{i}"))).collect();
    for (i, c) in clients.iter().enumerate() {
        hello(&mut s, c, i as u64);
        send(&mut s, c, put(1, StoredValue::Inline(vec![1])), i as u64);
        send(&mut s, c, ClientMsg::Goodbye, i as u64);
    }
    let (first, last) = (&clients[0], &clients[REMOVED_CLIENTS_REMEMBERED]);
    hello(&mut s, first, 10_000);
    hello(&mut s, last, 10_000);
    let d = send(&mut s, first, put(1, StoredValue::Inline(vec![1])), 10_001);
    assert!(!d.events.is_empty(), "the longest-removed client's requests were forgotten: it puts again");
    let d = send(&mut s, last, put(1, StoredValue::Inline(vec![1])), 10_001);
    assert!(d.events.is_empty(), "the last removed client's request is remembered");
}

#[test]
fn a_resend_that_crossed_its_timeout_answer_times_out_again_instead_of_taking_the_lock() {
    let mut s = Scheduler::new(Config::default());
    let (a, b) = (ClientId::from("a"), ClientId::from("b"));
    hello(&mut s, &a, 0);
    hello(&mut s, &b, 0);
    let acquire = |req, timeout_ms| prim(req, PrimitiveOp::LockAcquire { name: "L".into(), timeout_ms });
    send(&mut s, &a, acquire(1, None), 1);
    let d = send(&mut s, &b, acquire(1, Some(100)), 2);
    assert!(answers(&d).is_empty(), "b waits");
    let d = s.handle(Input::Tick, 200);
    assert_eq!(answers(&d), [(1, PrimitiveResult::Timeout)]);
    send(&mut s, &a, prim(2, PrimitiveOp::LockRelease { name: "L".into(), lease: RequestId(1) }), 201);
    // b's resend (sent after a reconnect, before the answer reached it).
    let d = send(&mut s, &b, acquire(1, Some(100)), 202);
    assert_eq!(answers(&d), [(1, PrimitiveResult::Timeout)]);
    assert!(d.events.is_empty(), "the lock is not taken for a request told it timed out: {:?}", d.events);
    assert_eq!(s.state().lock_holder("L"), None);
    // The same for a wait that timed out at once.
    let d = send(&mut s, &b, prim(3, PrimitiveOp::QueueGet { name: "q".into(), timeout_ms: Some(0) }), 203);
    assert_eq!(answers(&d), [(3, PrimitiveResult::Timeout)]);
    send(&mut s, &a, put(4, StoredValue::Inline(vec![1])), 204);
    let d = send(&mut s, &b, prim(3, PrimitiveOp::QueueGet { name: "q".into(), timeout_ms: Some(0) }), 205);
    assert_eq!(answers(&d), [(3, PrimitiveResult::Timeout)], "the item stays for another");
    assert_eq!(s.state().queue("q").map(|q| q.len()), Some(1));
}
