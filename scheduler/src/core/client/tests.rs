//! Unit tests of the client reactions the simulator found wanting: a
//! scatter registered on a worker that already left, and messages from a
//! client the scheduler removed.
use reprise_proto::{
    ClientId, ClientMsg, Key, KeyState, KeyUpdate, ScatteredItem, ToClient, WorkerId, WorkerMsg, HELLO_FIRST,
};

use crate::core::{Config, Decision, Effect, Input, Scheduler};

fn hello(s: &mut Scheduler, client: &ClientId, now: u64) {
    let msg = ClientMsg::Hello { client: client.clone(), name: "test".into(), token: None };
    s.handle(Input::Client { client: client.clone(), msg }, now);
}

fn register(s: &mut Scheduler, worker: &WorkerId, now: u64) {
    let msg = WorkerMsg::Register {
        worker: worker.clone(),
        nthreads: 1,
        address: format!("tcp://{worker}"),
        functions: vec!["inc".into()],
        resources: Vec::new(),
        token: None,
        held: Vec::new(),
        running: Vec::new(),
    };
    s.handle(Input::Worker { worker: worker.clone(), msg }, now);
}

fn item(key: &str) -> ScatteredItem {
    ScatteredItem { key: Key::from(key), nbytes: 1, inline: Some(vec![0x01]) }
}

fn to_client(d: &Decision) -> Vec<ToClient> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::ToClient { msg, .. } => Some(msg.clone()),
            Effect::ToWorker { .. } => None,
        })
        .collect()
}

fn lost(key: &str) -> ToClient {
    ToClient::Update(KeyUpdate { key: Key::from(key), state: KeyState::Lost })
}

#[test]
fn a_scatter_to_a_worker_that_left_is_acked_as_lost_not_left_unanswered() {
    let mut s = Scheduler::new(Config::default());
    let (c, w) = (ClientId::from("c"), WorkerId::from("w"));
    hello(&mut s, &c, 0);
    register(&mut s, &w, 0);
    s.handle(Input::Worker { worker: w.clone(), msg: WorkerMsg::Goodbye }, 1);
    let msg = ClientMsg::Scattered { worker: w.clone(), items: vec![item("s0")] };
    let d = s.handle(Input::Client { client: c.clone(), msg: msg.clone() }, 2);
    assert!(d.events.is_empty(), "nothing about data that is gone is logged: {:?}", d.events);
    let replies = to_client(&d);
    assert!(matches!(&replies[0], ToClient::Error { message } if message.contains("which left")), "{replies:?}");
    assert_eq!(replies[1..], [lost("s0"), ToClient::Acked { keys: vec![Key::from("s0")] }]);
    // A resend gets the same final answer.
    let again = s.handle(Input::Client { client: c, msg }, 3);
    assert_eq!(to_client(&again)[1..], replies[1..]);
    assert_eq!(s.check_invariants(), Ok(()));
}

#[test]
fn a_scatter_resent_after_its_worker_left_is_wanted_as_the_known_key() {
    let mut s = Scheduler::new(Config::default());
    let (c, w) = (ClientId::from("c"), WorkerId::from("w"));
    hello(&mut s, &c, 0);
    register(&mut s, &w, 0);
    let msg = ClientMsg::Scattered { worker: w.clone(), items: vec![item("s0")] };
    s.handle(Input::Client { client: c.clone(), msg: msg.clone() }, 1);
    s.handle(Input::Worker { worker: w.clone(), msg: WorkerMsg::Goodbye }, 2);
    // The first Acked was lost; the resend finds the key registered.
    let d = s.handle(Input::Client { client: c.clone(), msg }, 3);
    let replies = to_client(&d);
    assert_eq!(replies.last(), Some(&ToClient::Acked { keys: vec![Key::from("s0")] }), "{replies:?}");
    assert!(!replies.iter().any(|m| matches!(m, ToClient::Error { .. })), "{replies:?}");
    assert!(s.state().task(&Key::from("s0")).is_some_and(|t| t.wanted_by().contains(&c)));
    assert_eq!(s.check_invariants(), Ok(()));
}

#[test]
fn a_removed_client_is_told_to_say_hello_again() {
    let mut s = Scheduler::new(Config::default());
    let c = ClientId::from("c");
    hello(&mut s, &c, 0);
    let timeout = s.config().heartbeat_timeout_ms;
    let d = s.handle(Input::Tick, timeout + 1);
    assert!(!s.state().has_client(&c), "silent for longer than the timeout: removed ({:?})", d.events);
    let d = s.handle(Input::Client { client: c.clone(), msg: ClientMsg::Heartbeat }, timeout + 2);
    assert_eq!(to_client(&d), [ToClient::Error { message: HELLO_FIRST.to_owned() }]);
    hello(&mut s, &c, timeout + 3);
    assert!(s.state().has_client(&c), "Hello makes it known again");
}
