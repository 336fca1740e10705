//! A worker that registers again after its connection was lost.
mod harness;

use harness::*;
use reprise_proto::{Event, EventKind, KeyState, WorkerMsg};

/// `w1` registers again and reports holding `held`.
fn register_holding(h: &mut Harness, held: &[(&str, u64)]) -> reprise_scheduler::core::Decision {
    let mut msg = register("w1", 1, FUNCS);
    if let WorkerMsg::Register { held: h, .. } = &mut msg {
        h.extend(held.iter().map(|(k, n)| (key(k), *n)));
    }
    h.worker_msg("w1", msg)
}

// Found by the simulator (sim/README.md): the result was freed, the task
// rescheduled as if its worker had died under it, and computed again.
#[test]
fn a_result_finished_while_disconnected_is_kept_when_its_worker_registers_again() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &["a"])]);
    let (_, attempt) = h.running("a");
    let d = register_holding(&mut h, &[("a", 8)]);
    let finished = Event::TaskFinished { key: key("a"), worker: wid("w1"), attempt, nbytes: 8, inline: None };
    assert!(d.has_event(&finished), "{d:?}");
    assert!(!d.kinds().contains(&EventKind::TaskRescheduled));
    assert!(d.frees("w1").is_empty());
    assert!(matches!(d.update_of("c", "a"), Some(KeyState::Finished { .. })));
    assert_eq!(d.computes(), vec![("w1".into(), "b".into())], "the dependent runs next");
    assert_eq!(h.sched.state().task(&key("a")).map(|t| t.suspicious()), Some(0));
}

#[test]
fn a_held_key_the_scheduler_does_not_run_there_is_freed() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, FUNCS);
    let d = register_holding(&mut h, &[("stray", 8)]);
    assert_eq!(d.frees("w1"), vec!["stray".to_owned()]);
    assert!(d.events.is_empty());
}
