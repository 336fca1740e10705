//! Workers and sessions: loss, reconnects, stale reports, heartbeats, auth.
mod harness;

use harness::*;
use reprise_proto::{
    Attempt, ClientMsg, Event, EventKind, KeyState, ScatteredItem, TaskErrorKind, ToClient, ToWorker, WorkerMsg,
};
use reprise_scheduler::core::{Config, Input, Scheduler};

#[test]
fn a_lost_worker_requeues_its_running_tasks() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    let d = h.worker_msg("w1", WorkerMsg::Goodbye);
    assert_eq!(d.kinds(), vec![EventKind::TaskRescheduled, EventKind::WorkerRemoved, EventKind::TaskQueued]);
    let d = h.worker("w2", 1, FUNCS);
    assert_eq!(d.computes(), vec![("w2".into(), "a".into())]);
    assert_eq!(h.sched.state().task(&key("a")).map(|t| t.suspicious()), Some(1));
}

#[test]
fn a_lost_result_is_recomputed_from_lineage() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.worker("w2", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &["a"])]);
    h.release("c", &["a"]);
    h.finish("a");
    h.finish("b");
    assert_eq!(h.state_of("a"), "released");
    let d = h.worker_msg("w1", WorkerMsg::Goodbye);
    assert!(d.has_event(&Event::ReplicaRemoved { key: key("b"), worker: wid("w1") }));
    assert!(d.has_event(&Event::TaskLost { key: key("b") }));
    assert!(d.has_event(&Event::TaskLost { key: key("a") }), "b's released input is recomputed too");
    assert_eq!(d.computes(), vec![("w2".into(), "a".into())]);
    h.finish("a");
    let d = h.finish("b");
    assert!(matches!(d.update_of("c", "b"), Some(KeyState::Finished { .. })));
}

#[test]
fn a_small_result_survives_its_worker_inline() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.finish_sized("a", 1, Some(vec![7]));
    let d = h.worker_msg("w1", WorkerMsg::Goodbye);
    assert!(!d.kinds().contains(&EventKind::TaskLost));
    assert_eq!(h.state_of("a"), "memory");
}

#[test]
fn lost_scattered_data_is_reported_and_its_waiting_dependents_err() {
    let mut h = Harness::with_config(Config { prefetch: 0, ..Config::default() });
    h.client("c");
    h.worker("w1", 1, FUNCS);
    let item = ScatteredItem { key: key("s"), nbytes: 100, inline: None };
    let d = h.client_msg("c", ClientMsg::Scattered { worker: wid("w1"), items: vec![item] });
    assert_eq!(d.kinds(), vec![EventKind::DataScattered, EventKind::ClientWants]);
    assert!(d.to_client("c").contains(&ToClient::Acked { keys: vec![key("s")] }));
    h.worker("w2", 1, FUNCS);
    let mut blocked = spec("t", "inc", &["s"]);
    blocked.workers = vec![wid("w2")];
    let mut other = spec("u", "inc", &["s"]);
    other.workers = vec![wid("w2")];
    h.submit("c", vec![blocked, other]);
    assert_eq!(h.state_of("t"), "processing");
    assert_eq!(h.state_of("u"), "queued");
    let d = h.worker_msg("w1", WorkerMsg::Goodbye);
    assert_eq!(d.update_of("c", "s"), Some(KeyState::Lost));
    assert_eq!(d.cancels("w2"), vec!["t"], "a task whose input vanished is called off");
    for k in ["t", "u"] {
        assert!(
            matches!(d.update_of("c", k), Some(KeyState::Erred(e)) if e.kind == TaskErrorKind::LostDependency && e.key == key("s"))
        );
    }
    assert_eq!(h.state_of("s"), "lost");
}

#[test]
fn killed_worker_after_allowed_failures() {
    let mut h = Harness::with_config(Config { allowed_failures: 1, ..Config::default() });
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.worker_msg("w1", WorkerMsg::Goodbye);
    h.worker("w2", 1, FUNCS);
    let d = h.worker_msg("w2", WorkerMsg::Goodbye);
    match d.update_of("c", "a") {
        Some(KeyState::Erred(e)) => {
            assert_eq!(e.kind, TaskErrorKind::KilledWorker);
            assert!(e.message.contains("on 2 different workers"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stale_attempt_is_ignored() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.worker("w2", 1, FUNCS);
    let mut s = spec("a", "fail", &[]);
    s.retries = 1;
    h.submit("c", vec![s]);
    let (w, old) = h.running("a");
    h.fail("a", "once");
    let (_, new) = h.running("a");
    assert_ne!(old, new);
    let d = h.worker_msg(w.as_str(), WorkerMsg::Finished { key: key("a"), attempt: old, nbytes: 1, inline: None });
    assert!(d.events.is_empty());
    let d = h.worker_msg(
        w.as_str(),
        WorkerMsg::Erred {
            key: key("a"),
            attempt: old,
            error: reprise_proto::TaskError::new(TaskErrorKind::Raised, key("a"), "late"),
        },
    );
    assert!(d.is_empty());
    assert_eq!(h.state_of("a"), "processing");
}

#[test]
fn a_duplicate_finish_is_ignored() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    let (_, attempt) = h.running("a");
    h.finish("a");
    let d = h.worker_msg("w1", WorkerMsg::Finished { key: key("a"), attempt, nbytes: 8, inline: None });
    assert!(d.is_empty(), "no events and no Free: w1 is the holder");
}

#[test]
fn a_finish_for_an_unknown_key_frees_it() {
    let mut h = Harness::new();
    h.worker("w1", 1, FUNCS);
    let d = h.worker_msg("w1", WorkerMsg::Finished { key: key("zzz"), attempt: Attempt(99), nbytes: 1, inline: None });
    assert!(d.events.is_empty());
    assert_eq!(d.frees("w1"), vec!["zzz"]);
}

#[test]
fn heartbeat_timeout_removes_a_client_and_releases_its_keys() {
    let mut h = Harness::with_config(Config { heartbeat_timeout_ms: 1000, ..Config::default() });
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.finish("a");
    assert_eq!(h.sched.next_deadline(), Some(1001));
    h.advance_ms(600);
    let d = h.worker_msg("w1", WorkerMsg::Heartbeat);
    assert_eq!(d.to_worker("w1"), vec![ToWorker::Heartbeat]);
    h.advance_ms(600);
    let d = h.tick();
    assert_eq!(d.kinds(), vec![EventKind::ClientReleased, EventKind::TaskForgotten, EventKind::ClientRemoved]);
    assert_eq!(d.frees("w1"), vec!["a"]);
    assert!(!h.sched.state().has_client(&cid("c")));
    assert_eq!(h.sched.next_deadline(), Some(1601), "w1 was heard from at 600");
}

#[test]
fn a_bad_auth_token_is_refused() {
    let mut h = Harness::with_config(Config { auth_token: Some("s3cret".into()), ..Config::default() });
    let d = h.client_msg("c", ClientMsg::Hello { client: cid("c"), name: "c".into(), token: Some("guess".into()) });
    assert_eq!(d.to_client("c"), vec![ToClient::Refused { reason: "invalid auth token".into() }]);
    assert!(d.events.is_empty());
    let d = h.worker_msg("w1", register("w1", 1, FUNCS));
    assert_eq!(d.to_worker("w1"), vec![ToWorker::Refused { reason: "invalid auth token".into() }]);
    let d = h.client_msg("c", ClientMsg::Hello { client: cid("c"), name: "c".into(), token: Some("s3cret".into()) });
    assert_eq!(d.kinds(), vec![EventKind::ClientJoined]);
}

#[test]
fn messages_before_hello_get_an_error_and_change_nothing() {
    let mut h = Harness::new();
    let d = h.submit("c", vec![spec("a", "inc", &[])]);
    assert!(d.events.is_empty());
    assert!(matches!(d.to_client("c").as_slice(), [ToClient::Error { .. }]));
    let d = h.worker_msg("w9", WorkerMsg::Heartbeat);
    assert!(d.is_empty());
}

#[test]
fn re_registering_reconciles_held_and_running_work() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 2, FUNCS);
    h.worker("w2", 2, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &[]), spec("c", "inc", &[]), spec("d", "inc", &[])]);
    // a, c on w1; b, d on w2
    assert_eq!(h.running("a").0, wid("w1"));
    assert_eq!(h.running("c").0, wid("w1"));
    h.finish("a");
    h.finish("b");
    let (_, c_attempt) = h.running("c");
    // w1 comes back holding b (a replica) but not a, running c but also an unknown attempt.
    let mut reg = register("w1", 2, FUNCS);
    if let WorkerMsg::Register { held, running, .. } = &mut reg {
        *held = vec![(key("b"), 8), (key("junk"), 1)];
        *running = vec![(key("c"), c_attempt), (key("old"), Attempt(1234))];
    }
    let d = h.worker_msg("w1", reg);
    assert!(d.has_event(&Event::ReplicaAdded { key: key("b"), worker: wid("w1") }));
    assert!(d.has_event(&Event::ReplicaRemoved { key: key("a"), worker: wid("w1") }));
    assert!(d.has_event(&Event::TaskLost { key: key("a") }), "a is wanted: recompute it");
    assert_eq!(d.frees("w1"), vec!["junk"]);
    assert_eq!(d.cancels("w1"), vec!["old"]);
    assert_eq!(h.running("c"), (wid("w1"), c_attempt), "the reported attempt keeps running");
    // w2 comes back without d: it is rescheduled.
    let d = h.worker_msg("w2", register("w2", 2, FUNCS));
    assert!(d.has_event(&Event::TaskRescheduled { key: key("d") }));
    assert!(d.has_event(&Event::ReplicaRemoved { key: key("b"), worker: wid("w2") }));
    assert_eq!(h.state_of("b"), "memory", "w1 still has b");
}

#[test]
fn after_a_restart_known_peers_get_one_timeout_to_come_back() {
    let mut h = Harness::with_config(Config { heartbeat_timeout_ms: 1000, reconnect_grace_ms: 1000, ..Config::default() });
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.worker("w2", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &[])]);
    let (_, a_attempt) = h.running("a");
    let state = h.sched.state().clone();
    let mut s = Scheduler::from_state(h.sched.config().clone(), state, 5000);
    assert_eq!(s.next_deadline(), Some(6001));
    assert_eq!(s.live_workers().count(), 0);
    let mut reg = register("w1", 1, FUNCS);
    if let WorkerMsg::Register { running, .. } = &mut reg {
        *running = vec![(key("a"), a_attempt)];
    }
    let d = s.handle(Input::Worker { worker: wid("w1"), msg: reg }, 5500);
    assert!(d.events.is_empty(), "w1 is back exactly as the log says: {d:?}");
    let d = s.handle(Input::Client { client: cid("c"), msg: ClientMsg::Heartbeat }, 5500);
    assert!(d.events.is_empty());
    let d = s.handle(Input::Tick, 6000);
    assert!(d.is_empty(), "nobody is late yet");
    let d = s.handle(Input::Tick, 6001);
    let kinds: Vec<EventKind> = d.events.iter().map(Event::kind).collect();
    assert_eq!(kinds, vec![EventKind::TaskRescheduled, EventKind::WorkerRemoved, EventKind::TaskAssigned]);
    assert!(d.has_event(&Event::WorkerRemoved { worker: wid("w2") }));
    assert_eq!(d.computes(), vec![("w1".into(), "b".into())], "only a worker that came back gets tasks");
    assert_eq!(s.check_invariants(), Ok(()));
}
