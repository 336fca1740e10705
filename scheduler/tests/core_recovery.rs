//! A scheduler restarted from its log: workers that come back are
//! reconciled with what the log says (nothing they hold runs again), and
//! workers and clients that do not come back within the grace period are
//! removed.
mod harness;

use harness::{cid, key, register, spec, wid, DecisionExt, FUNCS};
use reprise_proto::{Attempt, ClientMsg, Event, EventKind, KeyState, WorkerMsg};
use reprise_scheduler::core::{Config, Decision, Input, Millis, Scheduler, State, TaskState};

/// A scheduler whose decisions are logged, that can crash (losing the
/// events of the decisions marked lost) and restart from its log.
struct Node {
    config: Config,
    sched: Scheduler,
    now: Millis,
    /// The durable log.
    log: Vec<Event>,
}

impl Node {
    fn new(config: Config) -> Node {
        Node { sched: Scheduler::new(config.clone()), config, now: 0, log: Vec::new() }
    }

    /// Handle `input`; its events are durable.
    fn handle(&mut self, input: Input) -> Decision {
        let d = self.decide(input);
        self.log.extend(d.events.iter().cloned());
        assert_eq!(&replay(&self.log), self.sched.state(), "the log does not rebuild the state");
        d
    }

    /// Handle `input`, but the scheduler dies before its events are
    /// flushed: its early effects went out, its events are lost.
    fn handle_lost(&mut self, input: Input) -> Decision {
        self.decide(input)
    }

    fn decide(&mut self, input: Input) -> Decision {
        let d = self.sched.handle(input, self.now);
        assert_eq!(self.sched.check_invariants(), Ok(()));
        assert_eq!(self.sched.state().n_ignored_events(), 0, "the core emitted an event that did not fit");
        d
    }

    /// `kill -9`, then a start on the same log.
    fn restart(&mut self) {
        self.sched = Scheduler::from_state(self.config.clone(), replay(&self.log), self.now);
        assert_eq!(self.sched.check_invariants(), Ok(()));
    }

    fn client(&mut self, c: &str) -> Decision {
        self.handle(Input::Client { client: cid(c), msg: ClientMsg::Hello { client: cid(c), name: c.into(), token: None } })
    }

    fn worker(&mut self, w: &str, msg: WorkerMsg) -> Decision {
        self.handle(Input::Worker { worker: wid(w), msg })
    }

    fn submit(&mut self, c: &str, tasks: Vec<reprise_proto::TaskSpec>) -> Decision {
        self.handle(Input::Client { client: cid(c), msg: ClientMsg::Submit { tasks } })
    }

    fn tick_at(&mut self, now: Millis) -> Decision {
        self.now = now;
        self.handle(Input::Tick)
    }

    fn running(&self, k: &str) -> (String, Attempt) {
        match self.sched.state().task_state(&key(k)) {
            Some(TaskState::Processing { worker, attempt }) => (worker.to_string(), *attempt),
            other => panic!("{k} is not processing but {other:?}"),
        }
    }

    fn state_of(&self, k: &str) -> &'static str {
        self.sched.state().task_state(&key(k)).map_or("forgotten", |s| s.name())
    }
}

fn replay(log: &[Event]) -> State {
    let mut state = State::default();
    for ev in log {
        state.apply(ev);
    }
    assert_eq!(state.n_ignored_events(), 0);
    state
}

fn finished(k: &str, attempt: Attempt) -> WorkerMsg {
    WorkerMsg::Finished { key: key(k), attempt, nbytes: 8, inline: None }
}

/// `w`'s registration after a reconnect, with what it holds and runs.
fn register_again(w: &str, held: &[&str], running: &[(&str, Attempt)]) -> WorkerMsg {
    let mut msg = register(w, 1, FUNCS);
    if let WorkerMsg::Register { held: h, running: r, .. } = &mut msg {
        h.extend(held.iter().map(|k| (key(k), 8)));
        r.extend(running.iter().map(|(k, a)| (key(k), *a)));
    }
    msg
}

fn config() -> Config {
    Config { heartbeat_timeout_ms: 1_000, reconnect_grace_ms: 5_000, prefetch: 0, ..Config::default() }
}

#[test]
fn a_task_that_finished_while_the_scheduler_was_down_is_taken_from_its_worker_not_run_again() {
    let mut n = Node::new(config());
    n.client("c");
    n.worker("w1", register("w1", 1, FUNCS));
    n.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &["a"])]);
    let (_, attempt) = n.running("a");
    n.restart();
    // The worker finished `a` while the scheduler was down; its Finished
    // report went to the dead socket. It reports `a` among the keys it holds.
    let d = n.worker("w1", register_again("w1", &["a"], &[]));
    let expected = Event::TaskFinished { key: key("a"), worker: wid("w1"), attempt, nbytes: 8, inline: None };
    assert!(d.has_event(&expected), "{d:?}");
    assert!(!d.computes().iter().any(|(_, k)| k == "a"), "a ran again: {d:?}");
    assert!(d.frees("w1").is_empty());
    assert!(!d.kinds().contains(&EventKind::TaskRescheduled));
    assert!(matches!(d.update_of("c", "a"), Some(KeyState::Finished { .. })));
    assert_eq!(d.computes(), vec![("w1".to_owned(), "b".to_owned())], "the dependent runs next");
}

#[test]
fn a_result_whose_assignment_the_crash_lost_is_taken_not_run_again() {
    let mut n = Node::new(config());
    n.client("c");
    n.worker("w1", register("w1", 1, FUNCS));
    n.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &[]), spec("c2", "add", &["a", "b"])]);
    assert_eq!(n.state_of("b"), "queued");
    let (_, attempt_a) = n.running("a");
    // `a` finishes and `b` is assigned; the Compute leaves before the flush
    // and the scheduler dies before the flush.
    let d = n.handle_lost(Input::Worker { worker: wid("w1"), msg: finished("a", attempt_a) });
    assert_eq!(d.computes(), vec![("w1".to_owned(), "b".to_owned())]);
    n.restart();
    assert_eq!((n.state_of("a"), n.state_of("b")), ("processing", "queued"));
    // The worker ran `b` as well before it noticed; it holds both.
    let d = n.worker("w1", register_again("w1", &["a", "b"], &[]));
    assert!(d.computes().iter().all(|(_, k)| k != "a" && k != "b"), "a result ran again: {d:?}");
    assert!(d.frees("w1").is_empty(), "{d:?}");
    assert_eq!((n.state_of("a"), n.state_of("b")), ("memory", "memory"));
    assert_eq!(d.computes(), vec![("w1".to_owned(), "c2".to_owned())], "the dependent of both runs next");
    assert_eq!(n.sched.state().task(&key("b")).map(|t| t.suspicious()), Some(0));
}

#[test]
fn an_attempt_running_under_an_assignment_the_crash_lost_is_adopted() {
    let mut n = Node::new(config());
    n.client("c");
    n.worker("w1", register("w1", 1, FUNCS));
    n.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &[])]);
    let (_, attempt_a) = n.running("a");
    let d = n.handle_lost(Input::Worker { worker: wid("w1"), msg: finished("a", attempt_a) });
    let attempt_b = match d.to_worker("w1").iter().find_map(|m| match m {
        reprise_proto::ToWorker::Compute(t) if t.key == key("b") => Some(t.attempt),
        _ => None,
    }) {
        Some(a) => a,
        None => panic!("b was not assigned: {d:?}"),
    };
    n.restart();
    let d = n.worker("w1", register_again("w1", &["a"], &[("b", attempt_b)]));
    assert!(d.cancels("w1").is_empty(), "{d:?}");
    assert!(d.computes().is_empty(), "{d:?}");
    assert!(d.has_event(&Event::TaskAssigned { key: key("b"), worker: wid("w1"), attempt: attempt_b }), "{d:?}");
    // Its report, when it comes, is the current attempt's.
    let d = n.worker("w1", finished("b", attempt_b));
    assert!(d.kinds().contains(&EventKind::TaskFinished), "{d:?}");
    assert_eq!(n.state_of("b"), "memory");
}

#[test]
fn a_worker_that_is_not_back_within_the_grace_period_is_removed_and_its_work_redone_elsewhere() {
    let mut n = Node::new(config());
    n.client("c");
    n.worker("w1", register("w1", 1, FUNCS));
    n.submit("c", vec![spec("a", "inc", &[])]);
    let (_, attempt) = n.running("a");
    n.worker("w1", WorkerMsg::Finished { key: key("a"), attempt, nbytes: 100_000, inline: None });
    n.worker("w2", register("w2", 1, FUNCS));
    n.submit("c", vec![spec("b", "inc", &["a"])]);
    assert_eq!(n.running("b").0, "w1", "b runs where its input is");
    n.now = 10_000;
    n.restart();
    assert_eq!(n.sched.next_deadline(), Some(10_000 + 5_000 + 1), "the grace period, not the heartbeat timeout");
    n.now = 10_100;
    n.client("c");
    n.worker("w2", register_again("w2", &[], &[]));
    // Past the heartbeat timeout but within the grace period: w1 may still come back.
    for t in [11_000, 12_000, 13_000, 14_000, 15_000] {
        n.now = t;
        n.handle(Input::Client { client: cid("c"), msg: ClientMsg::Heartbeat });
        n.worker("w2", WorkerMsg::Heartbeat);
        let d = n.tick_at(t);
        assert!(!d.kinds().contains(&EventKind::WorkerRemoved), "{d:?}");
    }
    let d = n.tick_at(15_001);
    assert!(d.has_event(&Event::WorkerRemoved { worker: wid("w1") }), "{d:?}");
    assert!(d.has_event(&Event::TaskRescheduled { key: key("b") }), "{d:?}");
    assert!(d.has_event(&Event::TaskLost { key: key("a") }), "the lost input is recomputed: {d:?}");
    assert_eq!(d.computes(), vec![("w2".to_owned(), "a".to_owned())], "{d:?}");
    assert_eq!(n.state_of("b"), "waiting");
}

#[test]
fn a_client_that_is_not_back_within_the_grace_period_has_its_references_released() {
    let mut n = Node::new(config());
    n.client("gone");
    n.client("back");
    n.worker("w1", register("w1", 1, FUNCS));
    n.submit("gone", vec![spec("a", "inc", &[])]);
    n.submit("back", vec![spec("b", "inc", &[])]);
    for k in ["a", "b"] {
        let (_, attempt) = n.running(k);
        n.worker("w1", finished(k, attempt));
    }
    n.now = 1_000;
    n.restart();
    n.now = 1_200;
    n.client("back");
    n.worker("w1", register_again("w1", &["a", "b"], &[]));
    for t in [2_000, 3_000, 4_000, 5_000, 6_000] {
        n.now = t;
        n.handle(Input::Client { client: cid("back"), msg: ClientMsg::Heartbeat });
        n.worker("w1", WorkerMsg::Heartbeat);
        let d = n.tick_at(t);
        assert!(!d.kinds().contains(&EventKind::ClientRemoved), "removed within the grace period: {d:?}");
    }
    let d = n.tick_at(6_001);
    assert!(d.has_event(&Event::ClientReleased { client: cid("gone"), key: key("a") }), "{d:?}");
    assert!(d.has_event(&Event::ClientRemoved { client: cid("gone") }), "{d:?}");
    assert_eq!(d.frees("w1"), vec!["a".to_owned()]);
    assert_eq!(n.state_of("a"), "forgotten");
    assert_eq!(n.state_of("b"), "memory", "the client that came back keeps its key");
    assert_eq!(n.sched.state().has_what(&wid("w1")).map(|k| k.len()), Some(1));
}

#[test]
fn a_peer_that_came_back_is_held_to_the_heartbeat_timeout_again() {
    let mut n = Node::new(config());
    n.client("c");
    n.worker("w1", register("w1", 1, FUNCS));
    n.restart();
    n.now = 100;
    n.client("c");
    n.worker("w1", register_again("w1", &[], &[]));
    assert_eq!(n.sched.next_deadline(), Some(100 + 1_000 + 1));
    let d = n.tick_at(1_101);
    assert!(d.has_event(&Event::ClientRemoved { client: cid("c") }), "{d:?}");
    assert!(d.has_event(&Event::WorkerRemoved { worker: wid("w1") }), "{d:?}");
}

#[test]
fn an_absurd_attempt_number_is_cancelled_not_adopted() {
    let mut n = Node::new(config());
    n.client("c");
    n.worker("w1", register("w1", 1, FUNCS));
    n.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &[])]);
    assert_eq!(n.state_of("b"), "queued");
    n.restart();
    let (_, attempt_a) = n.running("a");
    let d = n.worker("w1", register_again("w1", &[], &[("a", attempt_a), ("b", Attempt(u64::MAX))]));
    assert_eq!(d.cancels("w1"), vec!["b".to_owned()], "{d:?}");
    assert!(n.sched.state().next_attempt().0 < 1_000, "attempt numbers jumped: {:?}", n.sched.state().next_attempt());
}
