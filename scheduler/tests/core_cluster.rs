//! Cluster management through the core: replicate, rebalance, restart,
//! shutdown, and actors that are lost rather than recomputed.
mod harness;

use harness::*;
use reprise_proto::{
    ClientMsg, Event, EventKind, InfoReply, InfoRequest, KeyState, RequestId, TaskErrorKind, ToClient, ToWorker,
    WorkerMsg,
};

fn ask(h: &mut Harness, c: &str, req: u64, what: InfoRequest) -> reprise_scheduler::core::Decision {
    h.client_msg(c, ClientMsg::Info { req: RequestId(req), what })
}

fn reply(d: &reprise_scheduler::core::Decision, c: &str, req: u64) -> Option<InfoReply> {
    d.to_client(c).into_iter().find_map(|m| match m {
        ToClient::Reply { req: r, body } if r == RequestId(req) => Some(body),
        _ => None,
    })
}

/// (destination, key) of every `Fetch` the decision sends.
fn fetches(d: &reprise_scheduler::core::Decision, workers: &[&str]) -> Vec<(String, String)> {
    workers
        .iter()
        .flat_map(|w| {
            d.to_worker(w).into_iter().filter_map(move |m| match m {
                ToWorker::Fetch { key, from } => {
                    assert!(!from.is_empty(), "a fetch names where to fetch from");
                    Some((w.to_string(), key.to_string()))
                }
                _ => None,
            })
        })
        .collect()
}

/// A client, three one-thread workers, and `a` computed on w1.
fn cluster_with_a() -> Harness {
    let mut h = Harness::new();
    h.client("c");
    for w in ["w1", "w2", "w3"] {
        h.worker(w, 1, FUNCS);
    }
    h.submit("c", vec![spec("a", "inc", &[])]);
    h.finish_sized("a", 100, None);
    h
}

#[test]
fn replicate_fetches_copies_to_the_least_loaded_workers_and_answers_once_they_exist() {
    let mut h = cluster_with_a();
    let holder = h.sched.state().who_has(&key("a"))[0].to_string();
    let d = ask(&mut h, "c", 7, InfoRequest::Replicate { keys: vec![key("a")], n: 2 });
    let asked = fetches(&d, &["w1", "w2", "w3"]);
    assert_eq!(asked.len(), 1, "one more copy makes two: {asked:?}");
    assert_ne!(asked[0].0, holder);
    assert_eq!(reply(&d, "c", 7), None, "the answer waits for the copy");
    let dest = asked[0].0.clone();
    let d = h.worker_msg(&dest, WorkerMsg::DataAdded { key: key("a"), nbytes: 100 });
    assert!(d.has_event(&Event::ReplicaAdded { key: key("a"), worker: wid(&dest) }));
    assert_eq!(reply(&d, "c", 7), Some(InfoReply::Transferred { copied: 1, failed: 0 }));
    assert_eq!(h.sched.state().who_has(&key("a")).len(), 2);
    // Asking again for two copies has nothing to do.
    let d = ask(&mut h, "c", 8, InfoRequest::Replicate { keys: vec![key("a")], n: 2 });
    assert_eq!(reply(&d, "c", 8), Some(InfoReply::Transferred { copied: 0, failed: 0 }));
}

#[test]
fn replicate_to_more_workers_than_exist_copies_to_all_and_counts_failures() {
    let mut h = cluster_with_a();
    let d = ask(&mut h, "c", 1, InfoRequest::Replicate { keys: vec![key("a"), key("unknown")], n: 10 });
    let asked = fetches(&d, &["w1", "w2", "w3"]);
    assert_eq!(asked.len(), 2);
    let d = h.worker_msg(&asked[0].0, WorkerMsg::FetchFailed { key: key("a"), message: "x".into() });
    assert_eq!(reply(&d, "c", 1), None);
    assert!(d.events.is_empty());
    // The other destination leaves before its copy arrives.
    let d = h.worker_msg(&asked[1].0, WorkerMsg::Goodbye);
    assert_eq!(reply(&d, "c", 1), Some(InfoReply::Transferred { copied: 0, failed: 3 }));
}

#[test]
fn a_copy_nobody_asked_for_is_kept_if_useful_and_freed_otherwise() {
    let mut h = cluster_with_a();
    let other = if h.sched.state().who_has(&key("a"))[0].as_str() == "w2" { "w3" } else { "w2" };
    let d = h.worker_msg(other, WorkerMsg::DataAdded { key: key("a"), nbytes: 100 });
    assert!(d.has_event(&Event::ReplicaAdded { key: key("a"), worker: wid(other) }));
    let d = h.worker_msg(other, WorkerMsg::DataAdded { key: key("gone"), nbytes: 1 });
    assert_eq!(d.frees(other), vec!["gone"]);
}

#[test]
fn rebalance_moves_data_from_the_fullest_worker_and_drops_the_source_copy() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 4, FUNCS);
    h.submit("c", vec![spec("a", "inc", &[]), spec("b", "inc", &[]), spec("x", "inc", &[]), spec("y", "inc", &[])]);
    for k in ["a", "b", "x", "y"] {
        h.finish_sized(k, 100, None);
    }
    h.worker("w2", 1, FUNCS);
    let d = ask(&mut h, "c", 3, InfoRequest::Rebalance);
    let moves = fetches(&d, &["w1", "w2"]);
    assert_eq!(moves.len(), 2, "400 bytes on w1 and none on w2: two moves even them out ({moves:?})");
    assert!(moves.iter().all(|(w, _)| w == "w2"));
    let mut last = None;
    for (_, k) in &moves {
        let d = h.worker_msg("w2", WorkerMsg::DataAdded { key: key(k), nbytes: 100 });
        assert!(d.has_event(&Event::ReplicaAdded { key: key(k), worker: wid("w2") }));
        assert!(d.has_event(&Event::ReplicaRemoved { key: key(k), worker: wid("w1") }));
        assert_eq!(d.frees("w1"), vec![k.clone()]);
        last = Some(d);
    }
    assert_eq!(reply(&last.unwrap(), "c", 3), Some(InfoReply::Transferred { copied: 2, failed: 0 }));
    let held = |w: &str| h.sched.state().has_what(&wid(w)).map_or(0, |s| s.len());
    assert_eq!((held("w1"), held("w2")), (2, 2));
}

#[test]
fn restart_loses_every_pending_and_in_memory_key_and_tells_every_worker() {
    let mut h = cluster_with_a();
    h.submit("c", vec![spec("b", "inc", &[]), spec("c2", "add", &["a", "b"])]);
    h.client_msg("c", ClientMsg::FireAndForget { keys: vec![key("b")] });
    let d = ask(&mut h, "c", 9, InfoRequest::Restart);
    assert_eq!(d.kinds().iter().filter(|k| **k == EventKind::ClusterRestarted).count(), 1);
    for w in ["w1", "w2", "w3"] {
        assert!(d.to_worker(w).contains(&ToWorker::Restart), "{w} is told to restart");
    }
    for k in ["a", "b", "c2"] {
        assert_eq!(d.update_of("c", k), Some(KeyState::Lost), "{k}");
        assert_eq!(h.state_of(k), "lost");
    }
    assert!(d.has_event(&Event::HolderRemoved { holder: reprise_proto::Holder::FireAndForget, key: key("b") }));
    assert_eq!(reply(&d, "c", 9), Some(InfoReply::Done));
    let d = ask(&mut h, "c", 10, InfoRequest::HasWhat);
    match reply(&d, "c", 10) {
        Some(InfoReply::HasWhat(map)) => assert!(map.values().all(Vec::is_empty), "{map:?}"),
        other => panic!("{other:?}"),
    }
    // A late finish from before the restart is ignored and freed.
    let d = h.worker_msg(
        "w2",
        WorkerMsg::Finished { key: key("b"), attempt: reprise_proto::Attempt(2), nbytes: 8, inline: None },
    );
    assert!(d.events.is_empty());
    // A released lost key is forgotten; new work runs as usual.
    h.release("c", &["a", "b", "c2"]);
    assert_eq!(h.state_of("a"), "forgotten");
    let d = h.submit("c", vec![spec("a", "inc", &[])]);
    assert_eq!(d.computes().len(), 1);
}

#[test]
fn shutdown_tells_every_worker_to_stop_and_answers() {
    let mut h = cluster_with_a();
    assert!(!h.sched.shutdown_requested());
    let d = ask(&mut h, "c", 4, InfoRequest::Shutdown);
    for w in ["w1", "w2", "w3"] {
        assert!(d.to_worker(w).contains(&ToWorker::Shutdown));
    }
    assert_eq!(reply(&d, "c", 4), Some(InfoReply::Done));
    assert!(h.sched.shutdown_requested());
}

#[test]
fn an_actor_whose_worker_left_errs_instead_of_being_recreated_elsewhere() {
    let mut h = Harness::new();
    h.client("c");
    h.worker("w1", 1, &["actor:Counter"]);
    h.worker("w2", 1, &["actor:Counter"]);
    h.submit("c", vec![spec("actor:Counter-1", "actor:Counter", &[])]);
    let (holder, _) = h.running("actor:Counter-1");
    h.finish("actor:Counter-1");
    let d = h.worker_msg(holder.as_str(), WorkerMsg::Goodbye);
    assert!(d.computes().is_empty(), "never run again: {:?}", d.computes());
    match d.update_of("c", "actor:Counter-1") {
        Some(KeyState::Erred(e)) => {
            assert_eq!(e.kind, TaskErrorKind::LostDependency);
            assert!(e.message.contains("actor Counter") && e.message.contains("not resilient"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.state_of("actor:Counter-1"), "erred");
}
