use reprise_proto::{encode, DepLocation, RequestId};

use super::*;

const S: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A core under test, with the time it was last driven at.
struct Harness {
    core: WorkerCore,
    now: Duration,
}

impl Harness {
    /// A core with `nthreads` threads, connected and welcomed, its Register drained.
    fn registered(nthreads: u32) -> Self {
        let config = CoreConfig::new("w1", nthreads, "tcp://127.0.0.1:9001", vec!["inc".into(), "add".into()]);
        let mut h = Harness { core: WorkerCore::new(config, Duration::ZERO), now: Duration::ZERO };
        assert_eq!(h.effects(), vec![Effect::Connect]);
        h.core.handle_connected(h.now);
        let msgs = h.messages();
        assert!(matches!(msgs.as_slice(), [WorkerMsg::Register { .. }]), "{msgs:?}");
        h.recv(ToWorker::Welcome { scheduler: "s".into() });
        assert!(h.core.is_registered());
        h
    }

    fn check(&self) {
        if let Err(e) = self.core.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    fn recv(&mut self, msg: ToWorker) {
        self.core.handle_message(msg, self.now);
        self.check();
    }

    fn tick(&mut self, to: Duration) {
        self.now = to;
        self.core.handle_tick(to);
        self.check();
    }

    fn done(&mut self, key: &str, attempt: u64, outcome: Result<Vec<u8>, TaskError>) {
        self.core.handle_task_done(Key::from(key), Attempt(attempt), outcome.map(Bytes::from));
        self.check();
    }

    fn effects(&mut self) -> Vec<Effect> {
        std::iter::from_fn(|| self.core.poll_effect()).collect()
    }

    fn messages(&mut self) -> Vec<WorkerMsg> {
        self.core.poll_messages()
    }

    fn executed(&mut self) -> Vec<Job> {
        self.effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Execute(job) => Some(job),
                _ => None,
            })
            .collect()
    }
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    encode(v).unwrap()
}

fn inline_dep(key: &str, value: i64) -> DepLocation {
    DepLocation { key: Key::from(key), holders: vec![], inline: Some(cbor(&value)) }
}

fn remote_dep(key: &str, holders: &[&str]) -> DepLocation {
    let holders = holders.iter().map(|a| (WorkerId::from(format!("w-{a}")), (*a).to_owned())).collect();
    DepLocation { key: Key::from(key), holders, inline: None }
}

fn compute(key: &str, attempt: u64, func: &str, deps: Vec<DepLocation>) -> ToWorker {
    ToWorker::Compute(ComputeTask {
        key: Key::from(key),
        attempt: Attempt(attempt),
        func: func.into(),
        args: cbor(&(1,)),
        deps,
    })
}

fn finished_keys(msgs: &[WorkerMsg]) -> Vec<(String, u64)> {
    msgs.iter()
        .filter_map(|m| match m {
            WorkerMsg::Finished { key, attempt, .. } => Some((key.0.clone(), attempt.0)),
            _ => None,
        })
        .collect()
}

fn erred(msgs: &[WorkerMsg]) -> Vec<TaskError> {
    msgs.iter()
        .filter_map(|m| match m {
            WorkerMsg::Erred { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn compute_with_inline_input_executes_and_reports_finished() {
    let mut h = Harness::registered(2);
    h.recv(compute("inc-1", 1, "inc", vec![inline_dep("x", 41)]));
    let jobs = h.executed();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].func, "inc");
    assert_eq!(jobs[0].inputs, vec![(Key::from("x"), Bytes::from(cbor(&41)))]);
    h.done("inc-1", 1, Ok(cbor(&42)));
    let msgs = h.messages();
    assert_eq!(
        msgs,
        vec![WorkerMsg::Finished { key: Key::from("inc-1"), attempt: Attempt(1), nbytes: 2, inline: Some(cbor(&42)) }]
    );
    assert_eq!(h.core.data(&Key::from("inc-1")).map(|d| d.to_vec()), Some(cbor(&42)));
    assert_eq!(h.core.n_executing(), 0);
}

#[test]
fn large_result_is_reported_without_inline_bytes() {
    let mut h = Harness::registered(1);
    h.recv(compute("big-1", 1, "inc", vec![]));
    assert_eq!(h.executed().len(), 1);
    h.done("big-1", 1, Ok(vec![0u8; INLINE_BYTES_MAX + 1]));
    match h.messages().as_slice() {
        [WorkerMsg::Finished { nbytes, inline: None, .. }] => assert_eq!(*nbytes, INLINE_BYTES_MAX as u64 + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn task_error_is_reported_as_erred_with_the_same_attempt() {
    let mut h = Harness::registered(1);
    h.recv(compute("inc-1", 3, "inc", vec![]));
    h.executed();
    let error = TaskError::new(TaskErrorKind::Raised, Key::from("inc-1"), "bad");
    h.done("inc-1", 3, Err(error.clone()));
    assert_eq!(h.messages(), vec![WorkerMsg::Erred { key: Key::from("inc-1"), attempt: Attempt(3), error }]);
    assert!(h.core.data(&Key::from("inc-1")).is_none());
}

#[test]
fn cancel_of_executing_task_discards_its_result() {
    let mut h = Harness::registered(1);
    h.recv(compute("slow-1", 1, "inc", vec![]));
    assert_eq!(h.executed().len(), 1);
    h.recv(ToWorker::Cancel { key: Key::from("slow-1"), attempt: Attempt(1) });
    assert_eq!(h.core.n_executing(), 1, "the thread is still busy until the task ends");
    h.done("slow-1", 1, Ok(cbor(&1)));
    assert!(h.messages().is_empty());
    assert!(h.core.data(&Key::from("slow-1")).is_none());
    assert_eq!(h.core.n_executing(), 0);
}

#[test]
fn cancel_of_queued_task_means_it_never_executes() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 1, "inc", vec![]));
    h.recv(compute("b", 1, "inc", vec![]));
    assert_eq!(h.executed().iter().map(|j| j.key.0.clone()).collect::<Vec<_>>(), vec!["a"]);
    h.recv(ToWorker::Cancel { key: Key::from("b"), attempt: Attempt(1) });
    h.done("a", 1, Ok(cbor(&1)));
    assert!(h.executed().is_empty());
    assert_eq!(finished_keys(&h.messages()), vec![("a".into(), 1)]);
}

#[test]
fn cancel_with_a_stale_attempt_is_ignored() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 2, "inc", vec![]));
    h.executed();
    h.recv(ToWorker::Cancel { key: Key::from("a"), attempt: Attempt(1) });
    h.done("a", 2, Ok(cbor(&1)));
    assert_eq!(finished_keys(&h.messages()), vec![("a".into(), 2)]);
}

#[test]
fn at_most_nthreads_tasks_execute_at_once() {
    let mut h = Harness::registered(2);
    for k in ["a", "b", "c"] {
        h.recv(compute(k, 1, "inc", vec![]));
    }
    assert_eq!(h.executed().len(), 2);
    h.done("a", 1, Ok(cbor(&1)));
    let next = h.executed();
    assert_eq!(next.iter().map(|j| j.key.0.clone()).collect::<Vec<_>>(), vec!["c"]);
}

#[test]
fn free_drops_data_and_peers_then_get_none() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 1, "inc", vec![]));
    h.executed();
    h.done("a", 1, Ok(cbor(&5)));
    let get = || PeerRequest::Get { req: RequestId(7), keys: vec![Key::from("a")] };
    let reply = h.core.handle_peer_request(get());
    assert_eq!(
        reply,
        PeerReply::Data { req: RequestId(7), items: vec![(Key::from("a"), Some(ByteBuf::from(cbor(&5))))] }
    );
    h.recv(ToWorker::Free { keys: vec![Key::from("a")] });
    assert!(h.core.held().is_empty());
    let reply = h.core.handle_peer_request(get());
    assert_eq!(reply, PeerReply::Data { req: RequestId(7), items: vec![(Key::from("a"), None)] });
}

#[test]
fn peer_put_stores_data_that_is_then_held_and_served() {
    let mut h = Harness::registered(1);
    let put = PeerRequest::Put { req: RequestId(1), items: vec![(Key::from("s"), ByteBuf::from(cbor(&"hi")))] };
    assert_eq!(h.core.handle_peer_request(put), PeerReply::Stored { req: RequestId(1) });
    assert_eq!(h.core.held(), vec![(Key::from("s"), 3)]);
}

#[test]
fn silent_scheduler_triggers_reconnect_and_reregister_lists_held_and_running() {
    let mut h = Harness::registered(2);
    h.recv(compute("done-1", 1, "inc", vec![]));
    h.recv(compute("busy-1", 4, "inc", vec![]));
    assert_eq!(h.executed().len(), 2);
    h.done("done-1", 1, Ok(cbor(&9)));
    h.messages();
    h.tick(4 * S);
    assert!(h.effects().is_empty(), "4 s of silence is still alive");
    h.tick(5 * S);
    assert_eq!(h.effects(), vec![Effect::Connect]);
    assert!(h.messages().is_empty(), "nothing is sent while reconnecting");
    h.core.handle_connected(h.now);
    let msgs = h.messages();
    match msgs.first() {
        Some(WorkerMsg::Register { worker, held, running, .. }) => {
            assert_eq!(worker.as_str(), "w1");
            assert_eq!(held, &vec![(Key::from("done-1"), cbor(&9).len() as u64)]);
            assert_eq!(running, &vec![(Key::from("busy-1"), Attempt(4))]);
        }
        other => panic!("expected Register first, got {other:?}"),
    }
}

#[test]
fn report_made_while_disconnected_is_sent_after_the_new_register() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 1, "inc", vec![]));
    h.executed();
    h.core.handle_disconnected(h.now);
    assert_eq!(h.effects(), vec![Effect::Connect]);
    h.done("a", 1, Ok(cbor(&1)));
    assert!(h.messages().is_empty());
    h.core.handle_connected(h.now);
    let msgs = h.messages();
    assert!(matches!(msgs.first(), Some(WorkerMsg::Register { .. })));
    assert_eq!(finished_keys(&msgs), vec![("a".into(), 1)]);
}

#[test]
fn reconnecting_gives_up_after_the_reconnect_timeout() {
    let mut h = Harness::registered(1);
    h.core.handle_disconnected(h.now);
    assert_eq!(h.effects(), vec![Effect::Connect]);
    h.tick(59 * S);
    assert!(h.effects().is_empty());
    h.tick(60 * S);
    assert_eq!(h.effects(), vec![Effect::Stop(StopReason::ConnectionLost)]);
}

#[test]
fn welcome_resets_the_reconnect_deadline() {
    let mut h = Harness::registered(1);
    h.core.handle_disconnected(h.now);
    h.tick(30 * S);
    h.core.handle_connected(h.now);
    h.recv(ToWorker::Welcome { scheduler: "s".into() });
    h.tick(61 * S);
    assert!(!h.effects().contains(&Effect::Stop(StopReason::ConnectionLost)));
}

#[test]
fn heartbeat_goes_out_every_interval_while_the_scheduler_answers() {
    let mut h = Harness::registered(1);
    let mut beats = 0;
    for i in 1..=10 {
        h.tick(ms(500 * i));
        h.recv(ToWorker::Heartbeat);
        beats += h.messages().iter().filter(|m| matches!(m, WorkerMsg::Heartbeat)).count();
    }
    assert_eq!(beats, 5);
    assert_eq!(h.core.next_deadline(), Some(6 * S));
}

#[test]
fn refused_registration_stops_with_the_reason() {
    let config = CoreConfig::new("w1", 1, "tcp://x:1", vec![]);
    let mut core = WorkerCore::new(config, Duration::ZERO);
    core.poll_effect();
    core.handle_connected(Duration::ZERO);
    core.handle_message(ToWorker::Refused { reason: "bad token".into() }, Duration::ZERO);
    assert_eq!(core.poll_effect(), Some(Effect::Stop(StopReason::Refused("bad token".into()))));
}

#[test]
fn shutdown_says_goodbye_and_stops() {
    let mut h = Harness::registered(1);
    h.recv(ToWorker::Shutdown);
    assert_eq!(h.effects(), vec![Effect::Stop(StopReason::Shutdown)]);
    assert_eq!(h.messages(), vec![WorkerMsg::Goodbye]);
}

#[test]
fn unknown_function_errs_at_once() {
    let mut h = Harness::registered(1);
    h.recv(compute("x-1", 1, "nope", vec![]));
    assert!(h.executed().is_empty());
    let errors = erred(&h.messages());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, TaskErrorKind::UnknownFunction);
    assert_eq!(errors[0].key.as_str(), "x-1");
}

#[test]
fn duplicate_compute_is_ignored_and_held_result_is_reported_again() {
    let mut h = Harness::registered(2);
    h.recv(compute("a", 1, "inc", vec![]));
    h.recv(compute("a", 1, "inc", vec![]));
    assert_eq!(h.executed().len(), 1);
    h.done("a", 1, Ok(cbor(&1)));
    h.messages();
    h.recv(compute("a", 2, "inc", vec![]));
    assert!(h.executed().is_empty());
    assert_eq!(finished_keys(&h.messages()), vec![("a".into(), 2)]);
}

#[test]
fn input_from_a_peer_is_fetched_then_the_task_executes() {
    let mut h = Harness::registered(1);
    h.recv(compute("add-1", 1, "add", vec![inline_dep("x", 1), remote_dep("y", &["tcp://p1"])]));
    let effects = h.effects();
    assert_eq!(effects, vec![Effect::Fetch { address: "tcp://p1".into(), keys: vec![Key::from("y")] }]);
    h.core.handle_fetched("tcp://p1", vec![(Key::from("y"), Some(Bytes::from(cbor(&2))))], h.now);
    h.check();
    let jobs = h.executed();
    assert_eq!(jobs.len(), 1);
    let keys: Vec<&str> = jobs[0].inputs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["x", "y"]);
}

#[test]
fn input_held_locally_is_not_fetched() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 1, "inc", vec![]));
    h.executed();
    h.done("a", 1, Ok(cbor(&1)));
    h.recv(compute("b", 1, "inc", vec![remote_dep("a", &["tcp://elsewhere"])]));
    let effects = h.effects();
    assert!(matches!(effects.as_slice(), [Effect::Execute(job)] if job.inputs[0].1 == cbor(&1)));
}

#[test]
fn inputs_from_one_peer_are_asked_in_one_request_and_shared_by_tasks() {
    let mut h = Harness::registered(4);
    h.recv(compute("t1", 1, "add", vec![remote_dep("x", &["tcp://p"]), remote_dep("y", &["tcp://p"])]));
    h.recv(compute("t2", 1, "inc", vec![remote_dep("x", &["tcp://p"])]));
    let effects = h.effects();
    assert_eq!(effects, vec![Effect::Fetch { address: "tcp://p".into(), keys: vec![Key::from("x"), Key::from("y")] }]);
    let data = |v: i64| Some(Bytes::from(cbor(&v)));
    h.core.handle_fetched("tcp://p", vec![(Key::from("x"), data(1)), (Key::from("y"), data(2))], h.now);
    h.check();
    assert_eq!(h.executed().len(), 2);
}

#[test]
fn failed_fetch_tries_the_next_holder_then_backs_off() {
    let mut h = Harness::registered(1);
    h.recv(compute("t", 1, "inc", vec![remote_dep("x", &["tcp://a", "tcp://b"])]));
    assert_eq!(h.effects(), vec![Effect::Fetch { address: "tcp://a".into(), keys: vec![Key::from("x")] }]);
    h.core.handle_fetch_failed("tcp://a", &[Key::from("x")], h.now);
    assert_eq!(h.effects(), vec![Effect::Fetch { address: "tcp://b".into(), keys: vec![Key::from("x")] }]);
    h.core.handle_fetched("tcp://b", vec![(Key::from("x"), None)], h.now);
    assert!(h.effects().is_empty(), "both holders failed: wait before the next round");
    h.tick(FETCH_BACKOFF_MIN);
    assert_eq!(h.effects(), vec![Effect::Fetch { address: "tcp://a".into(), keys: vec![Key::from("x")] }]);
}

#[test]
fn input_unreachable_past_the_fetch_timeout_is_a_lost_dependency() {
    let mut h = Harness::registered(1);
    h.recv(compute("t", 1, "inc", vec![remote_dep("x", &["tcp://dead"])]));
    let mut now = Duration::ZERO;
    let mut lost = Vec::new();
    while now <= 40 * S && lost.is_empty() {
        for effect in h.effects() {
            if let Effect::Fetch { address, keys } = effect {
                h.core.handle_fetch_failed(&address, &keys, h.now);
                h.check();
            }
        }
        now += ms(250);
        h.tick(now);
        h.recv(ToWorker::Heartbeat);
        lost = erred(&h.messages());
    }
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].kind, TaskErrorKind::LostDependency);
    assert_eq!(lost[0].key.as_str(), "t");
    assert!(now >= 30 * S && now <= 33 * S, "gave up at {now:?}");
    assert!(h.core.running().is_empty());
}

#[test]
fn input_without_any_holder_is_a_lost_dependency_at_once() {
    let mut h = Harness::registered(1);
    h.recv(compute("t", 1, "inc", vec![remote_dep("x", &[])]));
    let errors = erred(&h.messages());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, TaskErrorKind::LostDependency);
}

#[test]
fn cancel_of_fetching_task_drops_its_fetch() {
    let mut h = Harness::registered(1);
    h.recv(compute("t", 1, "inc", vec![remote_dep("x", &["tcp://p"])]));
    h.effects();
    h.recv(ToWorker::Cancel { key: Key::from("t"), attempt: Attempt(1) });
    h.core.handle_fetched("tcp://p", vec![(Key::from("x"), Some(Bytes::from(cbor(&1))))], h.now);
    h.check();
    assert!(h.executed().is_empty());
    assert!(h.core.running().is_empty());
}

#[test]
fn newer_attempt_replaces_an_executing_one_whose_result_is_then_ignored() {
    let mut h = Harness::registered(2);
    h.recv(compute("a", 1, "inc", vec![]));
    h.executed();
    h.recv(compute("a", 2, "inc", vec![]));
    assert_eq!(h.executed().len(), 1);
    h.done("a", 1, Ok(cbor(&1)));
    assert!(h.messages().is_empty());
    h.done("a", 2, Ok(cbor(&1)));
    assert_eq!(finished_keys(&h.messages()), vec![("a".into(), 2)]);
}

impl Harness {
    fn secede(&mut self, key: &str, attempt: u64) {
        self.core.handle_seceded(Key::from(key), Attempt(attempt));
        self.check();
    }

    fn rejoin(&mut self, key: &str, attempt: u64) {
        self.core.handle_rejoin(Key::from(key), Attempt(attempt));
        self.check();
    }
}

fn resumed(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Resume { key, .. } => Some(key.0.clone()),
            _ => None,
        })
        .collect()
}

fn started(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Execute(job) => Some(job.key.0.clone()),
            _ => None,
        })
        .collect()
}

/// The shape of a task that submits tasks and waits for them on a
/// one-thread worker: it secedes, the tasks it waits for run in its slot,
/// and it gets a slot back only when one is free.
#[test]
fn seceded_task_frees_its_slot_so_a_one_thread_worker_runs_what_it_waits_for() {
    let mut h = Harness::registered(1);
    h.recv(compute("fanout", 1, "inc", vec![]));
    assert_eq!(started(&h.effects()), vec!["fanout"]);
    h.recv(compute("inc-a", 1, "inc", vec![]));
    h.recv(compute("inc-b", 1, "inc", vec![]));
    assert!(h.effects().is_empty(), "the one slot is taken");
    h.secede("fanout", 1);
    assert_eq!((h.core.n_executing(), h.core.n_seceded()), (1, 1));
    assert_eq!(started(&h.effects()), vec!["inc-a"]);
    h.done("inc-a", 1, Ok(cbor(&1)));
    assert_eq!(started(&h.effects()), vec!["inc-b"]);
    // Rejoining waits while inc-b holds the slot…
    h.rejoin("fanout", 1);
    assert!(resumed(&h.effects()).is_empty());
    h.recv(compute("inc-c", 1, "inc", vec![]));
    // …and gets it before the task that became ready meanwhile.
    h.done("inc-b", 1, Ok(cbor(&2)));
    assert_eq!(resumed(&h.effects()), vec!["fanout"]);
    assert_eq!((h.core.n_executing(), h.core.n_seceded()), (1, 0));
    h.done("fanout", 1, Ok(cbor(&3)));
    assert_eq!(started(&h.effects()), vec!["inc-c"]);
    assert_eq!(finished_keys(&h.messages()), vec![("inc-a".into(), 1), ("inc-b".into(), 1), ("fanout".into(), 1)]);
}

#[test]
fn seceded_task_that_ends_without_rejoining_frees_no_second_slot() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 1, "inc", vec![]));
    h.recv(compute("b", 1, "inc", vec![]));
    h.effects();
    h.secede("a", 1);
    assert_eq!(started(&h.effects()), vec!["b"]);
    h.done("a", 1, Ok(cbor(&1)));
    assert_eq!(h.core.n_executing(), 1, "b still holds the one slot");
    assert_eq!(h.core.n_seceded(), 0);
    h.done("b", 1, Ok(cbor(&1)));
    assert_eq!(h.core.n_executing(), 0);
}

#[test]
fn rejoin_without_secede_resumes_at_once_and_secede_twice_counts_once() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 1, "inc", vec![]));
    h.effects();
    h.rejoin("a", 1);
    assert_eq!(resumed(&h.effects()), vec!["a"]);
    h.secede("a", 1);
    h.secede("a", 1);
    assert_eq!((h.core.n_executing(), h.core.n_seceded()), (0, 1));
    h.secede("unknown", 1);
    assert_eq!(h.core.n_seceded(), 1);
}

#[test]
fn cancelled_seceded_task_still_waits_for_a_slot_to_rejoin() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 1, "inc", vec![]));
    h.effects();
    h.secede("a", 1);
    h.recv(ToWorker::Cancel { key: Key::from("a"), attempt: Attempt(1) });
    h.recv(compute("b", 1, "inc", vec![]));
    assert_eq!(started(&h.effects()), vec!["b"]);
    h.rejoin("a", 1);
    assert!(resumed(&h.effects()).is_empty());
    h.done("b", 1, Ok(cbor(&1)));
    assert_eq!(resumed(&h.effects()), vec!["a"]);
    h.done("a", 1, Ok(cbor(&1)));
    assert_eq!(finished_keys(&h.messages()), vec![("b".into(), 1)], "the cancelled result is discarded");
    assert_eq!(h.core.n_executing(), 0);
}

#[test]
fn actor_marker_never_travels_inline() {
    let mut h = Harness::registered(1);
    let task = ComputeTask {
        key: Key::from("actor:C-1"),
        attempt: Attempt(1),
        func: "actor:C".into(),
        args: cbor(&()),
        deps: vec![],
    };
    h.core.config.functions.push("actor:C".into());
    h.recv(ToWorker::Compute(task));
    assert_eq!(started(&h.effects()), vec!["actor:C-1"]);
    h.done("actor:C-1", 1, Ok(cbor(&"marker")));
    match h.messages().as_slice() {
        [WorkerMsg::Finished { inline: None, nbytes, .. }] => assert_eq!(*nbytes, 7),
        other => panic!("{other:?}"),
    }
}

fn fetch_order(key: &str, holders: &[&str]) -> ToWorker {
    let from = holders.iter().map(|a| (WorkerId::from(format!("w-{a}")), (*a).to_owned())).collect();
    ToWorker::Fetch { key: Key::from(key), from }
}

#[test]
fn fetch_order_keeps_the_copy_reports_data_added_and_serves_it() {
    let mut h = Harness::registered(1);
    h.recv(fetch_order("x", &["tcp://p"]));
    assert_eq!(h.effects(), vec![Effect::Fetch { address: "tcp://p".into(), keys: vec![Key::from("x")] }]);
    h.core.handle_fetched("tcp://p", vec![(Key::from("x"), Some(Bytes::from(cbor(&7))))], h.now);
    h.check();
    assert_eq!(h.messages(), vec![WorkerMsg::DataAdded { key: Key::from("x"), nbytes: 1 }]);
    assert_eq!(h.core.held(), vec![(Key::from("x"), 1)]);
    // A task needing it now finds it here.
    h.recv(compute("t", 1, "inc", vec![remote_dep("x", &["tcp://p"])]));
    assert_eq!(started(&h.effects()), vec!["t"]);
}

#[test]
fn fetch_order_for_data_held_already_is_answered_at_once() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 1, "inc", vec![]));
    h.executed();
    h.done("a", 1, Ok(cbor(&1)));
    h.messages();
    h.recv(fetch_order("a", &["tcp://p"]));
    assert!(h.effects().is_empty());
    assert_eq!(h.messages(), vec![WorkerMsg::DataAdded { key: Key::from("a"), nbytes: 1 }]);
}

#[test]
fn fetch_order_without_another_holder_or_past_the_timeout_fails() {
    let mut h = Harness::registered(1);
    h.recv(ToWorker::Fetch { key: Key::from("x"), from: vec![(WorkerId::from("w1"), "tcp://127.0.0.1:9001".into())] });
    assert!(matches!(h.messages().as_slice(), [WorkerMsg::FetchFailed { key, .. }] if key.as_str() == "x"));
    h.recv(fetch_order("y", &["tcp://dead"]));
    let mut now = Duration::ZERO;
    let mut failed = Vec::new();
    while now <= 40 * S && failed.is_empty() {
        for effect in h.effects() {
            if let Effect::Fetch { address, keys } = effect {
                h.core.handle_fetch_failed(&address, &keys, h.now);
                h.check();
            }
        }
        now += ms(250);
        h.tick(now);
        h.recv(ToWorker::Heartbeat);
        failed = h.messages().into_iter().filter(|m| matches!(m, WorkerMsg::FetchFailed { .. })).collect();
    }
    assert!(matches!(failed.as_slice(), [WorkerMsg::FetchFailed { key, .. }] if key.as_str() == "y"), "{failed:?}");
    assert!(h.core.held().is_empty());
}

#[test]
fn restart_drops_all_data_and_abandons_every_task() {
    let mut h = Harness::registered(1);
    h.recv(compute("a", 1, "inc", vec![]));
    h.executed();
    h.done("a", 1, Ok(cbor(&1)));
    h.recv(compute("b", 1, "inc", vec![]));
    h.recv(compute("c", 1, "inc", vec![]));
    h.recv(compute("d", 1, "inc", vec![remote_dep("x", &["tcp://p"])]));
    assert_eq!(started(&h.effects()), vec!["b"]);
    h.messages();
    h.recv(ToWorker::Restart);
    assert!(h.core.held().is_empty() && h.core.running().is_empty());
    assert_eq!(h.core.n_executing(), 0, "b's slot is free at once");
    assert_eq!(h.core.poll_detached(), vec![(Key::from("b"), Attempt(1))], "b's thread is busy until it ends");
    assert!(h.core.poll_detached().is_empty());
    h.recv(compute("e", 1, "inc", vec![]));
    assert_eq!(started(&h.effects()), vec!["e"], "new work starts while b still runs");
    h.done("b", 1, Ok(cbor(&2)));
    assert!(h.messages().is_empty(), "the abandoned result is discarded");
    assert!(h.effects().is_empty(), "c never starts");
    assert_eq!(h.core.n_executing(), 1);
}
