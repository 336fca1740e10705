//! References: release, cancel, fire_and_forget, and forgetting.
mod harness;

use harness::*;
use reprise_proto::{ClientMsg, Event, EventKind, Holder, KeyState};
use reprise_scheduler::core::Config;

#[test]
fn releasing_the_last_reference_forgets_the_key_and_frees_its_data() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.finish("a");
    let d = h.release("c", &["a"]);
    assert_eq!(d.kinds(), vec![EventKind::ClientReleased, EventKind::TaskForgotten]);
    assert_eq!(d.frees("w1"), vec!["a"]);
    assert_eq!(h.state_of("a"), "forgotten");
}

#[test]
fn releasing_a_waiting_chain_forgets_it_and_cancels_the_running_input() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &["a"])]);
    h.release("c", &["a"]);
    assert_eq!(h.state_of("a"), "processing", "b still needs a");
    let d = h.release("c", &["b"]);
    assert_eq!(h.state_of("b"), "forgotten");
    assert_eq!(h.state_of("a"), "forgotten");
    assert_eq!(d.cancels("w1"), vec!["a"]);
}

#[test]
fn finished_inputs_nobody_wants_are_released_but_kept_as_lineage() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &["a"])]);
    h.release("c", &["a"]);
    h.finish("a");
    let d = h.finish("b");
    assert_eq!(d.frees("w1"), vec!["a"]);
    assert_eq!(h.state_of("a"), "released");
    let d = h.release("c", &["b"]);
    assert_eq!(h.state_of("a"), "forgotten", "forgetting b forgets its lineage");
    assert!(d.has_event(&Event::TaskForgotten { key: key("a") }));
}

#[test]
fn cancel_of_a_waiting_task_reports_cancelled_and_forgets_it() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &["a"])]);
    let d = h.cancel("c", &["b"], false);
    assert_eq!(d.update_of("c", "b"), Some(KeyState::Cancelled));
    assert_eq!(d.events_for("b"), vec![EventKind::TaskCancelled, EventKind::ClientReleased, EventKind::TaskForgotten]);
    assert_eq!(h.state_of("a"), "processing", "a is still wanted");
}

#[test]
fn cancel_of_a_queued_task_frees_nothing_and_forgets_it() {
    let mut h = Harness::with_config(Config { prefetch: 2, ..Config::default() });
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", (0..4).map(|i| spec(&format!("t{i}"), "inc", &[])).collect());
    assert_eq!(h.state_of("t3"), "queued");
    let d = h.cancel("c", &["t3"], false);
    assert!(d.effects.iter().all(|e| matches!(e, reprise_scheduler::core::Effect::ToClient { .. })));
    assert_eq!(h.state_of("t3"), "forgotten");
    assert_eq!(h.sched.state().queued().count(), 0);
}

#[test]
fn cancel_of_a_running_task_tells_its_worker_and_reports_its_dependents() {
    let mut h = Harness::new();
    h.client("c");
    h.client("other");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &["a"])]);
    h.submit("other", vec![spec("b", "inc", &["a"])]);
    let d = h.cancel("c", &["a"], false);
    assert_eq!(d.cancels("w1"), vec!["a"]);
    assert_eq!(d.update_of("c", "a"), Some(KeyState::Cancelled));
    assert_eq!(d.update_of("other", "b"), Some(KeyState::Cancelled), "dependents are cancelled for every wanter");
    assert_eq!(h.state_of("a"), "forgotten");
    assert_eq!(h.state_of("b"), "forgotten");
    // A stale finish of the cancelled attempt is ignored and its data freed.
    let d = h.worker_msg(
        "w1",
        reprise_proto::WorkerMsg::Finished {
            key: key("a"),
            attempt: reprise_proto::Attempt(1),
            nbytes: 8,
            inline: None,
        },
    );
    assert!(d.events.is_empty());
    assert_eq!(d.frees("w1"), vec!["a"]);
}

#[test]
fn cancel_without_force_needs_the_sole_wanter() {
    let mut h = Harness::new();
    h.client("c");
    h.client("d");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.submit("d", vec![spec("a", "inc", &[])]);
    let d = h.cancel("c", &["a"], false);
    assert!(d.is_empty());
    let d = h.cancel("c", &["a"], true);
    assert_eq!(d.update_of("d", "a"), Some(KeyState::Cancelled));
    assert_eq!(h.state_of("a"), "forgotten");
}

#[test]
fn a_cancelled_key_submitted_again_starts_fresh() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.finish("a");
    let d = h.cancel("c", &["a"], false);
    assert_eq!(d.frees("w1"), vec!["a"]);
    let d = h.submit("c", vec![spec("a", "inc", &[])]);
    assert_eq!(d.kinds(), vec![EventKind::TaskSubmitted, EventKind::ClientWants, EventKind::TaskAssigned]);
}

#[test]
fn fire_and_forget_keeps_a_chain_alive_then_releases_it() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &["a"])]);
    let d = h.client_msg("c", ClientMsg::FireAndForget { keys: vec![key("b")] });
    assert!(d.has_event(&Event::HolderAdded { holder: Holder::FireAndForget, key: key("b") }));
    h.release("c", &["a", "b"]);
    assert_eq!(h.state_of("a"), "processing");
    assert_eq!(h.state_of("b"), "waiting");
    h.finish("a");
    let d = h.finish("b");
    assert!(d.has_event(&Event::HolderRemoved { holder: Holder::FireAndForget, key: key("b") }));
    assert_eq!(h.state_of("b"), "forgotten");
    assert_eq!(h.state_of("a"), "forgotten");
    let mut freed = d.frees("w1");
    freed.sort();
    assert_eq!(freed, vec!["a", "b"]);
    assert_eq!(h.sched.state().n_tasks(), 0);
}
