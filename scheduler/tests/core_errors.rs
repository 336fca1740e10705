//! Failures: propagation to dependents, retries, client retry.
mod harness;

use harness::*;
use reprise_proto::{ClientMsg, Event, EventKind, KeyState, TaskErrorKind};

#[test]
fn an_error_flows_to_waiting_dependents_with_the_root_key() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 2, FUNCS);
    h.submit(
        "c",
        vec![spec("a", "fail", &[]), spec("b", "inc", &["a"]), spec("c", "inc", &["b"]), spec("x", "inc", &[])],
    );
    let d = h.fail("a", "boom");
    for k in ["a", "b", "c"] {
        match d.update_of("c", k) {
            Some(KeyState::Erred(e)) => {
                assert_eq!(e.key, key("a"), "{k} blames the task that failed first");
                assert_eq!(e.message, "boom");
                assert_eq!(e.kind, TaskErrorKind::Raised);
            }
            other => panic!("{k}: {other:?}"),
        }
        assert_eq!(h.state_of(k), "erred");
    }
    assert_eq!(h.state_of("x"), "processing", "independent tasks are unaffected");
}

#[test]
fn a_task_submitted_on_an_erred_input_errs_at_once() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "fail", &[])]);
    h.fail("a", "boom");
    let d = h.submit("c", vec![spec("b", "inc", &["a"])]);
    assert!(matches!(d.update_of("c", "b"), Some(KeyState::Erred(e)) if e.key == key("a")));
}

#[test]
fn a_failed_attempt_with_retries_left_runs_again() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    let mut s = spec("flaky", "fail", &[]);
    s.retries = 2;
    h.submit("c", vec![s]);
    let first = h.running("flaky").1;
    let d = h.fail("flaky", "once");
    assert_eq!(d.kinds(), vec![EventKind::TaskRetried, EventKind::TaskAssigned]);
    assert!(h.running("flaky").1 > first, "a retry is a new attempt");
    h.fail("flaky", "twice");
    assert_eq!(h.sched.state().task(&key("flaky")).map(|t| t.retries_left()), Some(0));
    let d = h.fail("flaky", "thrice");
    assert!(matches!(d.update_of("c", "flaky"), Some(KeyState::Erred(e)) if e.message == "thrice"));
}

#[test]
fn client_retry_reruns_the_erred_root_and_its_erred_dependents() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "fail", &[]), spec("b", "inc", &["a"]), spec("z", "fail", &[])]);
    h.fail("a", "boom");
    h.fail("z", "other");
    let d = h.client_msg("c", ClientMsg::Retry { keys: vec![key("b")] });
    assert!(d.has_event(&Event::TaskRetried { key: key("a") }));
    assert!(d.has_event(&Event::TaskRetried { key: key("b") }));
    assert_eq!(d.events_for("z"), vec![], "independent erred keys stay erred");
    assert_eq!(d.computes(), vec![("w1".into(), "a".into())]);
    assert_eq!(h.state_of("b"), "waiting");
    h.finish("a");
    h.finish("b");
    assert_eq!(h.state_of("b"), "memory");
}

#[test]
fn erring_releases_inputs_nobody_needs_any_more() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "fail", &["a"])]);
    h.finish("a");
    h.release("c", &["a"]);
    assert_eq!(h.state_of("a"), "memory", "b still needs a");
    let d = h.fail("b", "boom");
    assert_eq!(d.frees("w1"), vec!["a"]);
    assert_eq!(h.state_of("a"), "released", "a is kept as lineage for b's retry");
    let d = h.client_msg("c", ClientMsg::Retry { keys: vec![key("b")] });
    assert!(d.has_event(&Event::TaskLost { key: key("a") }), "retrying b recomputes a");
    assert_eq!(d.computes(), vec![("w1".into(), "a".into())]);
}
