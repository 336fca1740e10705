//! The normal path: submission, dependencies, queueing and placement.
mod harness;

use harness::*;
use reprise_proto::{
    ClientMsg, Event, EventKind, InfoReply, InfoRequest, KeyState, RequestId, TaskErrorKind, ToClient, WorkerMsg,
};
use reprise_scheduler::core::Config;

#[test]
fn inc_then_add_chain_runs_in_dependency_order() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 2, FUNCS);
    let d = h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &[]), spec("c", "add", &["a", "b"])]);
    assert_eq!(d.computes(), vec![("w1".into(), "a".into()), ("w1".into(), "b".into())]);
    assert_eq!(h.state_of("c"), "waiting");
    assert!(d.to_client("c").contains(&ToClient::Acked { keys: vec![key("a"), key("b"), key("c")] }));

    let d = h.finish("a");
    assert!(matches!(d.update_of("c", "a"), Some(KeyState::Finished { nbytes: 8, .. })));
    assert!(d.computes().is_empty(), "c still waits for b");
    let d = h.finish("b");
    assert_eq!(d.computes(), vec![("w1".into(), "c".into())]);
    let d = h.finish("c");
    assert!(matches!(d.update_of("c", "c"), Some(KeyState::Finished { .. })));
    assert_eq!(h.state_of("c"), "memory");
}

#[test]
fn compute_carries_each_input_location() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.finish_sized("a", 3, Some(vec![1, 2, 3]));
    let d = h.submit("c", vec![spec("b", "inc", &["a", "a"])]);
    let compute = d
        .to_worker("w1")
        .into_iter()
        .find_map(|m| match m {
            reprise_proto::ToWorker::Compute(c) => Some(c),
            _ => None,
        })
        .expect("b is computed");
    assert_eq!(compute.deps.len(), 1, "a repeated input is fetched once");
    assert_eq!(compute.deps[0].holders, vec![(wid("w1"), "tcp://w1".to_owned())]);
    assert_eq!(compute.deps[0].inline, Some(vec![1, 2, 3]));
}

#[test]
fn dependent_waits_until_every_input_is_in_memory() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &["a"]), spec("x", "add", &["a", "b"])]);
    assert_eq!(h.state_of("b"), "waiting");
    assert_eq!(h.state_of("x"), "waiting");
    let d = h.finish("a");
    assert_eq!(d.computes(), vec![("w1".into(), "b".into())]);
    assert_eq!(h.state_of("x"), "waiting");
}

#[test]
fn worker_gets_at_most_nthreads_plus_prefetch_and_the_queue_goes_by_priority() {
    let mut h = Harness::with_config(Config { prefetch: 1, ..Config::default() });
    h.client("c");
    h.worker("w1", 1, FUNCS);
    let mut tasks = Vec::new();
    for (i, prio) in [0, 5, 1, 5, 9].into_iter().enumerate() {
        let mut s = spec(&format!("t{i}"), "inc", &[]);
        s.priority = prio;
        tasks.push(s);
    }
    let d = h.submit("c", tasks);
    // Two slots: the highest priority, then the first of the two fives.
    assert_eq!(d.computes(), vec![("w1".into(), "t4".into()), ("w1".into(), "t1".into())]);
    assert_eq!(h.sched.state().queued().map(|k| k.to_string()).collect::<Vec<_>>(), vec!["t3", "t2", "t0"]);
    let d = h.finish("t4");
    assert_eq!(d.computes(), vec![("w1".into(), "t3".into())]);
    let d = h.finish("t1");
    assert_eq!(d.computes(), vec![("w1".into(), "t2".into())]);
}

#[test]
fn placement_prefers_the_worker_holding_most_input_bytes() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.worker("w2", 1, FUNCS);
    h.submit("c", vec![spec("small", "inc", &[]), spec("big", "inc", &[])]);
    assert_eq!(h.running("small").0, wid("w1"));
    assert_eq!(h.running("big").0, wid("w2"), "the least loaded worker gets the second task");
    h.finish_sized("small", 10, None);
    h.finish_sized("big", 1000, None);
    let d = h.submit("c", vec![spec("sum", "add", &["small", "big"])]);
    assert_eq!(d.computes(), vec![("w2".into(), "sum".into())]);
}

#[test]
fn restricted_task_waits_in_no_worker_until_a_matching_worker_joins() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    let mut s = spec("gpu-job", "inc", &[]);
    s.workers = vec![wid("w2")];
    let d = h.submit("c", vec![s]);
    assert!(d.has_event(&Event::TaskNoWorker { key: key("gpu-job") }));
    let d = h.worker("w2", 1, FUNCS);
    assert_eq!(d.computes(), vec![("w2".into(), "gpu-job".into())]);
}

#[test]
fn resources_are_held_while_processing_and_returned_at_finish() {
    let mut h = Harness::new();
    h.client("c");
    let mut reg = register("w1", 4, FUNCS);
    if let WorkerMsg::Register { resources, .. } = &mut reg {
        resources.push(("GPU".into(), 1.0));
    }
    h.worker_msg("w1", reg);
    let gpu = |k: &str| {
        let mut s = spec(k, "inc", &[]);
        s.resources = vec![("GPU".into(), 1.0)];
        s
    };
    let mut too_big = spec("huge", "inc", &[]);
    too_big.resources = vec![("GPU".into(), 2.0)];
    let d = h.submit("c", vec![gpu("g1"), gpu("g2"), too_big]);
    assert_eq!(d.computes(), vec![("w1".into(), "g1".into())], "one GPU, one task at a time");
    assert_eq!(h.state_of("g2"), "queued");
    assert_eq!(h.state_of("huge"), "no-worker", "no worker has two GPUs");
    let d = h.finish("g1");
    assert_eq!(d.computes(), vec![("w1".into(), "g2".into())]);
}

#[test]
fn unknown_function_errs_while_workers_are_connected() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, &["inc"]);
    let d = h.submit("c", vec![spec("m", "mystery", &[]), spec("n", "inc", &["m"])]);
    match d.update_of("c", "m") {
        Some(KeyState::Erred(e)) => {
            assert_eq!(e.kind, TaskErrorKind::UnknownFunction);
            assert!(e.message.contains("'mystery'"), "{}", e.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(matches!(d.update_of("c", "n"), Some(KeyState::Erred(e)) if e.key == key("m")));
}

#[test]
fn tasks_queue_while_no_worker_is_connected() {
    let mut h = Harness::new();
    h.client("c");
    let d = h.submit("c", vec![spec("a", "mystery", &[])]);
    assert!(d.has_event(&Event::TaskQueued { key: key("a") }));
    let d = h.worker("w1", 1, &["mystery"]);
    assert_eq!(d.computes(), vec![("w1".into(), "a".into())]);
}

#[test]
fn submit_depending_on_an_unknown_key_is_cancelled_without_events() {
    let mut h = Harness::new();
    h.client("c");
    let d = h.submit("c", vec![spec("b", "inc", &["gone"])]);
    assert!(d.events.is_empty());
    assert_eq!(d.update_of("c", "b"), Some(KeyState::Cancelled));
    assert!(d.to_client("c").contains(&ToClient::Acked { keys: vec![key("b")] }));
}

#[test]
fn inputs_later_in_the_same_message_are_accepted() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    let d = h.submit("c", vec![spec("b", "inc", &["a"]), spec("a", "inc", &[])]);
    assert_eq!(d.events_for("a")[0], EventKind::TaskSubmitted);
    assert_eq!(h.state_of("b"), "waiting");
    assert_eq!(h.state_of("a"), "processing");
}

#[test]
fn wanting_a_finished_key_reports_it_at_once() {
    let mut h = Harness::new();
    h.client("c");
    h.client("d");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.finish("a");
    let d = h.submit("d", vec![spec("a", "inc", &[])]);
    assert_eq!(d.kinds(), vec![EventKind::ClientWants]);
    assert!(matches!(d.update_of("d", "a"), Some(KeyState::Finished { .. })));
}

#[test]
fn has_what_lists_idle_workers_and_who_has_lists_holders() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.worker("w2", 3, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.finish("a");
    let ask = |h: &mut Harness, what| {
        let d = h.client_msg("c", ClientMsg::Info { req: RequestId(7), what });
        assert!(d.events.is_empty());
        match d.to_client("c").pop() {
            Some(ToClient::Reply { req: RequestId(7), body }) => body,
            other => panic!("no reply: {other:?}"),
        }
    };
    match ask(&mut h, InfoRequest::HasWhat) {
        InfoReply::HasWhat(m) => {
            assert_eq!(m.get(&wid("w1")), Some(&vec![key("a")]));
            assert_eq!(m.get(&wid("w2")), Some(&vec![]));
        }
        other => panic!("{other:?}"),
    }
    match ask(&mut h, InfoRequest::WhoHas { keys: vec![key("a"), key("nope")] }) {
        InfoReply::WhoHas(m) => {
            assert_eq!(m.get(&key("a")), Some(&vec![wid("w1")]));
            assert_eq!(m.get(&key("nope")), Some(&vec![]));
        }
        other => panic!("{other:?}"),
    }
    match ask(&mut h, InfoRequest::Ncores) {
        InfoReply::Ncores(m) => assert_eq!(m.values().sum::<u32>(), 4),
        other => panic!("{other:?}"),
    }
    match ask(&mut h, InfoRequest::SchedulerInfo) {
        InfoReply::SchedulerInfo(info) => {
            assert_eq!(info.workers.len(), 2);
            assert_eq!(info.n_clients, 1);
            assert_eq!(info.tasks_by_state.get("memory"), Some(&1));
        }
        other => panic!("{other:?}"),
    }
}
