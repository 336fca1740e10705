//! Cluster management asked by clients: `replicate`, `rebalance`,
//! `restart` and `shutdown`, which travel as `Info` requests and are
//! answered once done.
//!
//! Copies are made by the workers: the scheduler sends `Fetch` to a worker
//! that should hold a key, the worker fetches it from a holder and answers
//! `DataAdded` (the scheduler then logs `ReplicaAdded`) or `FetchFailed`.
//! A rebalance is a copy followed by dropping the source's copy
//! (`ReplicaRemoved` and `Free`); a replicate counts such a move on its way
//! as no holder, and turns it into a plain copy (the source keeps its copy)
//! while it needs more holders. A request is answered in the decision that
//! records its last copy, so the answer leaves only once the `ReplicaAdded`
//! events are flushed. Which copies are on their way, and which requests
//! wait for them, is volatile: after a scheduler restart a client resends
//! its request and the copies still missing are asked again.
//!
//! `restart` logs one [`Event::ClusterRestarted`]: every key pending or in
//! memory becomes `lost` (its wanters hear `Lost`), and every live worker
//! is told to drop all its data and abandon its tasks. A lost computed key
//! is not recomputed; it stays lost until released, as lost scattered data does.
use std::collections::{BTreeMap, BTreeSet};

use reprise_proto::{
    ClientId, Event, Holder, InfoReply, InfoRequest, Key, KeyState, RequestId, ToClient, ToWorker, WorkerId,
};

use super::scheduler::{Cx, Scheduler};
use super::state::{Origin, TaskState};

/// Copy requests (replicate, rebalance) waiting for their copies at once;
/// more are answered at once with nothing copied.
pub(crate) const CLUSTER_REQUESTS_MAX: usize = 1_024;
/// Copies one request may ask for; the rest are counted as failed.
pub(crate) const TRANSFERS_PER_REQUEST_MAX: usize = 100_000;

/// The copies on their way and the requests waiting for them (volatile).
#[derive(Clone, Debug, Default)]
pub(crate) struct ClusterOps {
    /// `(key, destination)` → the worker whose copy goes once the copy
    /// arrived (a rebalance move), if any.
    pending: BTreeMap<(Key, WorkerId), Option<WorkerId>>,
    requests: Vec<CopyRequest>,
    /// A client asked the cluster to shut down: the service stops once the
    /// decision's effects are out.
    shutdown: bool,
}

/// A replicate or rebalance request waiting for its copies.
#[derive(Clone, Debug)]
struct CopyRequest {
    client: ClientId,
    req: RequestId,
    outstanding: BTreeSet<(Key, WorkerId)>,
    copied: u64,
    failed: u64,
}

impl Scheduler {
    /// A client's `Info`: questions are answered at once, management
    /// requests once they are carried out.
    pub(crate) fn handle_info(&mut self, cx: &mut Cx, client: &ClientId, req: RequestId, what: InfoRequest) {
        if let Some(body) = self.info(&what) {
            cx.send_client(client, ToClient::Reply { req, body });
            return;
        }
        match what {
            InfoRequest::Replicate { keys, n } => self.replicate(cx, client, req, &keys, n),
            InfoRequest::Rebalance => self.rebalance(cx, client, req),
            InfoRequest::Restart => self.restart_cluster(cx, client, req),
            InfoRequest::Shutdown => self.shutdown_cluster(cx, client, req),
            // Questions were answered above.
            _ => {}
        }
    }

    /// Whether a client asked the cluster to shut down: the service stops
    /// serving once this decision's effects are sent.
    pub fn shutdown_requested(&self) -> bool {
        self.cluster.shutdown
    }

    /// The copies on their way, as `(key, destination worker)`.
    pub fn pending_copies(&self) -> Vec<(Key, WorkerId)> {
        self.cluster.pending.keys().cloned().collect()
    }

    /// Make each key in memory held by `n` live workers (all of them if
    /// fewer), the least loaded first.
    fn replicate(&mut self, cx: &mut Cx, client: &ClientId, req: RequestId, keys: &[Key], n: u32) {
        let live: Vec<WorkerId> = self.sessions.live_workers.iter().cloned().collect();
        let target = (n.max(1) as usize).min(live.len());
        let mut loads = self.loads(&live);
        let mut plan = Vec::new();
        let mut failed = 0u64;
        let unique: BTreeSet<&Key> = keys.iter().collect();
        for key in unique {
            let Some(TaskState::Memory { who_has, nbytes, .. }) = self.state.task_state(key) else {
                failed += 1;
                continue;
            };
            if who_has.is_empty() {
                failed += 1; // only an inline copy: no worker to fetch it from
                continue;
            }
            // Copies already on their way: a plain copy adds a holder, but a
            // rebalance move only trades its source's copy for its
            // destination's, so it adds none (counting it answered with one
            // holder fewer than asked once the move dropped its source).
            let mut coming: Vec<(WorkerId, bool)> = self
                .cluster
                .pending
                .iter()
                .filter(|((k, _), _)| k == key)
                .map(|((_, dest), then_drop)| {
                    (dest.clone(), then_drop.as_ref().is_some_and(|src| who_has.contains(src)))
                })
                .collect();
            let mut have = who_has.len() + coming.iter().filter(|(_, moves)| !moves).count();
            // While more holders are needed, a move keeps its source's copy:
            // it becomes a plain copy, which this request waits for.
            for (dest, moves) in &mut coming {
                if *moves && have < target {
                    self.cluster.pending.insert((key.clone(), dest.clone()), None);
                    *moves = false;
                    have += 1;
                }
            }
            let mut candidates: Vec<&WorkerId> =
                live.iter().filter(|w| !who_has.contains(*w) && !coming.iter().any(|(d, _)| d == *w)).collect();
            for _ in have..target {
                candidates.sort_by_key(|w| (loads.get(*w).copied().unwrap_or(0), (*w).clone()));
                let Some(dest) = candidates.first().copied() else { break };
                candidates.remove(0);
                *loads.entry(dest.clone()).or_default() += *nbytes;
                plan.push((key.clone(), dest.clone(), None));
            }
            // Copies already on their way count for this request too (the
            // remaining moves leave the number of holders as it is).
            plan.extend(coming.into_iter().filter(|(_, moves)| !moves).map(|(w, _)| (key.clone(), w, None)));
        }
        self.start_copies(cx, client, req, plan, failed);
    }

    /// Move keys from the workers holding the most bytes to those holding
    /// the least, while a move narrows the gap.
    fn rebalance(&mut self, cx: &mut Cx, client: &ClientId, req: RequestId) {
        let live: Vec<WorkerId> = self.sessions.live_workers.iter().cloned().collect();
        let mut loads = self.loads(&live);
        let mut plan = Vec::new();
        let mut planned: BTreeSet<Key> = self.cluster.pending.keys().map(|(k, _)| k.clone()).collect();
        // Keys by holder, largest first: each move takes one copy off `src`.
        let mut movable: BTreeMap<WorkerId, Vec<(u64, Key)>> = BTreeMap::new();
        for w in &live {
            let held = self.state.has_what(w).into_iter().flatten();
            let mut keys: Vec<(u64, Key)> = held.filter_map(|k| Some((self.nbytes_in_memory(k)?, k.clone()))).collect();
            keys.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            movable.insert(w.clone(), keys);
        }
        while plan.len() < TRANSFERS_PER_REQUEST_MAX {
            let Some((src, dst)) = extremes(&loads) else { break };
            let gap = loads[&src] - loads[&dst];
            let holders_of = |k: &Key| self.state.who_has(k);
            let pick = movable.get(&src).and_then(|keys| {
                keys.iter()
                    .position(|(nb, k)| *nb > 0 && *nb < gap && !planned.contains(k) && !holders_of(k).contains(&dst))
            });
            let Some(i) = pick else { break };
            let Some((nb, key)) = movable.get_mut(&src).map(|keys| keys.remove(i)) else { break };
            *loads.entry(src.clone()).or_default() -= nb;
            *loads.entry(dst.clone()).or_default() += nb;
            planned.insert(key.clone());
            plan.push((key, dst, Some(src)));
        }
        self.start_copies(cx, client, req, plan, 0);
    }

    /// Send the `Fetch`es of `plan` (`(key, destination, source to drop
    /// afterwards)`) and remember the request; answer at once if there is
    /// nothing to wait for.
    fn start_copies(
        &mut self,
        cx: &mut Cx,
        client: &ClientId,
        req: RequestId,
        plan: Vec<(Key, WorkerId, Option<WorkerId>)>,
        mut failed: u64,
    ) {
        // A resent request (after a reconnect) joins the one already waiting.
        if self.cluster.requests.iter().any(|r| &r.client == client && r.req == req) {
            return;
        }
        if self.cluster.requests.len() >= CLUSTER_REQUESTS_MAX {
            failed += plan.len() as u64;
            let body = InfoReply::Transferred { copied: 0, failed };
            cx.send_client(client, ToClient::Reply { req, body });
            return;
        }
        let mut outstanding = BTreeSet::new();
        for (key, dest, then_drop) in plan {
            if outstanding.len() >= TRANSFERS_PER_REQUEST_MAX {
                failed += 1;
                continue;
            }
            let id = (key.clone(), dest.clone());
            if !self.cluster.pending.contains_key(&id) {
                let from = self.location(&key).holders;
                cx.send_worker(&dest, ToWorker::Fetch { key, from });
                self.cluster.pending.insert(id.clone(), then_drop);
            }
            outstanding.insert(id);
        }
        self.cluster.requests.push(CopyRequest { client: client.clone(), req, outstanding, copied: 0, failed });
    }

    /// A worker fetched a copy: it becomes a replica if it is still worth
    /// keeping (and a move drops its source's copy); otherwise it is freed.
    pub(crate) fn data_added(&mut self, cx: &mut Cx, worker: &WorkerId, key: Key) {
        let asked = self.cluster.pending.remove(&(key.clone(), worker.clone()));
        let useful = self.copy_worth_keeping(&key);
        let held = self.state.who_has(&key).contains(worker);
        if useful && !held {
            self.emit(cx, Event::ReplicaAdded { key: key.clone(), worker: worker.clone() });
        } else if !useful && !held {
            cx.free(worker, &key);
        }
        let Some(then_drop) = asked else { return };
        if let Some(src) = then_drop {
            let holders = self.state.who_has(&key);
            if useful && holders.contains(&src) && holders.contains(worker) {
                cx.free(&src, &key);
                self.emit(cx, Event::ReplicaRemoved { key: key.clone(), worker: src });
            }
        }
        self.resolve_copy(&(key, worker.clone()), useful);
    }

    /// A worker could not fetch the copy it was asked for.
    pub(crate) fn fetch_failed(&mut self, worker: &WorkerId, key: Key) {
        let id = (key, worker.clone());
        if self.cluster.pending.remove(&id).is_some() {
            self.resolve_copy(&id, false);
        }
    }

    /// At the end of every decision: copies whose destination left or whose
    /// key left memory are given up, and requests with nothing left to wait
    /// for are answered.
    pub(crate) fn settle_copies(&mut self, cx: &mut Cx) {
        if self.cluster.requests.is_empty() && self.cluster.pending.is_empty() {
            return;
        }
        let stale: Vec<(Key, WorkerId)> = self
            .cluster
            .pending
            .keys()
            .filter(|(k, w)| {
                !self.sessions.live_workers.contains(w) || !self.state.task_state(k).is_some_and(TaskState::is_memory)
            })
            .cloned()
            .collect();
        for id in stale {
            self.cluster.pending.remove(&id);
            self.resolve_copy(&id, false);
        }
        // A request may name a copy that another request's resolution
        // already took out of `pending`: such copies are done too.
        let pending = &self.cluster.pending;
        for request in &mut self.cluster.requests {
            let gone: Vec<(Key, WorkerId)> =
                request.outstanding.iter().filter(|id| !pending.contains_key(*id)).cloned().collect();
            for id in gone {
                request.outstanding.remove(&id);
                request.failed += 1;
            }
        }
        let (done, waiting): (Vec<CopyRequest>, Vec<CopyRequest>) =
            std::mem::take(&mut self.cluster.requests).into_iter().partition(|r| r.outstanding.is_empty());
        self.cluster.requests = waiting;
        for r in done {
            let body = InfoReply::Transferred { copied: r.copied, failed: r.failed };
            cx.send_client(&r.client, ToClient::Reply { req: r.req, body });
        }
    }

    fn resolve_copy(&mut self, id: &(Key, WorkerId), copied: bool) {
        for request in &mut self.cluster.requests {
            if request.outstanding.remove(id) {
                if copied {
                    request.copied += 1;
                } else {
                    request.failed += 1;
                }
            }
        }
    }

    /// Every worker drops its data and tasks; every key pending or in
    /// memory is lost, and its wanters hear so.
    fn restart_cluster(&mut self, cx: &mut Cx, client: &ClientId, req: RequestId) {
        let affected: Vec<Key> = self
            .state
            .tasks()
            .filter(|(_, t)| t.state().is_pending() || t.state().is_memory())
            .map(|(k, _)| k.clone())
            .collect();
        for worker in self.sessions.live_workers.clone() {
            cx.send_worker(&worker, ToWorker::Restart);
        }
        self.emit(cx, Event::ClusterRestarted);
        for key in &affected {
            self.notify(cx, key, KeyState::Lost);
            // A lost key never finishes: fire_and_forget lets go of it now.
            if self.state.task(key).is_some_and(|t| t.holders().contains(&Holder::FireAndForget)) {
                self.emit(cx, Event::HolderRemoved { holder: Holder::FireAndForget, key: key.clone() });
            }
            cx.to_settle.insert(key.clone());
        }
        cx.send_client(client, ToClient::Reply { req, body: InfoReply::Done });
    }

    /// Tell every worker to stop, answer, and let the service stop.
    fn shutdown_cluster(&mut self, cx: &mut Cx, client: &ClientId, req: RequestId) {
        for worker in self.sessions.live_workers.clone() {
            cx.send_worker(&worker, ToWorker::Shutdown);
        }
        cx.send_client(client, ToClient::Reply { req, body: InfoReply::Done });
        self.cluster.shutdown = true;
    }

    /// Bytes each of `workers` holds.
    fn loads(&self, workers: &[WorkerId]) -> BTreeMap<WorkerId, u64> {
        workers
            .iter()
            .map(|w| {
                let held = self.state.has_what(w).into_iter().flatten();
                (w.clone(), held.filter_map(|k| self.nbytes_in_memory(k)).fold(0u64, u64::saturating_add))
            })
            .collect()
    }

    fn nbytes_in_memory(&self, key: &Key) -> Option<u64> {
        match self.state.task_state(key) {
            Some(TaskState::Memory { nbytes, .. }) => Some(*nbytes),
            _ => None,
        }
    }

    /// A copy of the key is worth keeping: it is in memory and scattered
    /// (it cannot be recomputed), or someone still needs it.
    fn copy_worth_keeping(&self, key: &Key) -> bool {
        self.state.task(key).is_some_and(|t| {
            t.state().is_memory()
                && (t.origin() == &Origin::Scattered || t.is_wanted() || self.state.has_pending_dependent(t))
        })
    }
}

/// The most and the least loaded workers (ties by name), if they differ.
fn extremes(loads: &BTreeMap<WorkerId, u64>) -> Option<(WorkerId, WorkerId)> {
    let max = loads.iter().max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))?;
    let min = loads.iter().min_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))?;
    (max.1 > min.1).then(|| (max.0.clone(), min.0.clone()))
}

#[cfg(test)]
mod tests {
    use reprise_proto::{ClientMsg, RequestId, TaskSpec, WorkerMsg};

    use super::*;
    use crate::core::{Config, Decision, Effect, Input, State};

    /// A scheduler core driven by plain inputs; every step is checked
    /// against the invariants and against a replay of its events.
    struct Core {
        sched: Scheduler,
        replica: State,
    }

    fn wid(w: &str) -> WorkerId {
        WorkerId::from(w)
    }

    impl Core {
        fn new() -> Self {
            Core { sched: Scheduler::new(Config::default()), replica: State::default() }
        }

        fn input(&mut self, input: Input) -> Decision {
            let d = self.sched.handle(input, 0);
            for ev in &d.events {
                self.replica.apply(ev);
            }
            assert_eq!(&self.replica, self.sched.state(), "replaying the events diverged");
            assert_eq!(self.sched.check_invariants(), Ok(()));
            d
        }

        fn client(&mut self, c: &str, msg: ClientMsg) -> Decision {
            self.input(Input::Client { client: ClientId::from(c), msg })
        }

        fn worker(&mut self, w: &str, msg: WorkerMsg) -> Decision {
            self.input(Input::Worker { worker: wid(w), msg })
        }

        fn register(&mut self, w: &str, nthreads: u32) {
            let functions = vec!["inc".to_owned()];
            let (address, resources, held, running) = (format!("tcp://{w}"), Vec::new(), Vec::new(), Vec::new());
            let msg = WorkerMsg::Register {
                worker: wid(w),
                nthreads,
                address,
                functions,
                resources,
                token: None,
                held,
                running,
            };
            self.worker(w, msg);
        }

        /// Run `keys` (functions of no input) and finish each with 100 bytes.
        fn computed(&mut self, c: &str, keys: &[&str]) {
            let tasks = keys.iter().map(|k| TaskSpec::new(Key::from(*k), "inc", vec![0x80], Vec::new())).collect();
            self.client(c, ClientMsg::Submit { tasks });
            for k in keys {
                let Some(TaskState::Processing { worker, attempt }) = self.sched.state().task_state(&Key::from(*k))
                else {
                    panic!("{k} is not running");
                };
                let (worker, attempt) = (worker.to_string(), *attempt);
                let finished = WorkerMsg::Finished { key: Key::from(*k), attempt, nbytes: 100, inline: None };
                self.worker(&worker, finished);
            }
        }

        fn holders(&self, k: &str) -> Vec<String> {
            self.sched.state().who_has(&Key::from(k)).iter().map(ToString::to_string).collect()
        }
    }

    /// `(destination, key)` of every `Fetch` in the decision.
    fn fetches(d: &Decision) -> Vec<(String, String)> {
        d.effects
            .iter()
            .filter_map(|e| match e {
                Effect::ToWorker { worker, msg: ToWorker::Fetch { key, .. } } => {
                    Some((worker.to_string(), key.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    fn reply(d: &Decision, req: u64) -> Option<InfoReply> {
        d.effects.iter().find_map(|e| match e {
            Effect::ToClient { msg: ToClient::Reply { req: r, body }, .. } if *r == RequestId(req) => {
                Some(body.clone())
            }
            _ => None,
        })
    }

    /// Four keys of 100 bytes on w1 and empty w2, w3: a rebalance moves `a`
    /// to w2 and `b` to w3 (the moves are on their way when this returns).
    fn rebalancing() -> Core {
        let mut core = Core::new();
        core.client("c", ClientMsg::Hello { client: ClientId::from("c"), name: "c".into(), token: None });
        core.register("w1", 4);
        core.computed("c", &["a", "b", "x", "y"]);
        core.register("w2", 1);
        core.register("w3", 1);
        let d = core.client("c", ClientMsg::Info { req: RequestId(1), what: InfoRequest::Rebalance });
        let moves = vec![("w2".to_owned(), "a".to_owned()), ("w3".to_owned(), "b".to_owned())];
        assert_eq!(fetches(&d), moves);
        core
    }

    #[test]
    fn replicate_during_a_rebalance_move_of_the_key_answers_only_once_n_holders_are_recorded() {
        let mut core = rebalancing();
        let d = core.client(
            "c",
            ClientMsg::Info { req: RequestId(2), what: InfoRequest::Replicate { keys: vec![Key::from("a")], n: 2 } },
        );
        // The move to w2 on its way becomes the copy this request waits for.
        assert_eq!(fetches(&d), vec![], "no second fetch to w2");
        assert_eq!(reply(&d, 2), None, "the answer waits for the copy");
        let d = core.worker("w2", WorkerMsg::DataAdded { key: Key::from("a"), nbytes: 100 });
        assert_eq!(reply(&d, 2), Some(InfoReply::Transferred { copied: 1, failed: 0 }));
        // Recorded in the same decision (so logged before the answer leaves), and the move kept its source.
        assert!(d.events.contains(&Event::ReplicaAdded { key: Key::from("a"), worker: wid("w2") }), "{:?}", d.events);
        assert!(!d.events.iter().any(|e| matches!(e, Event::ReplicaRemoved { .. })), "{:?}", d.events);
        assert_eq!(core.holders("a"), vec!["w1", "w2"]);
        // The other move still moves: b leaves w1 for w3, and the rebalance is answered.
        let d = core.worker("w3", WorkerMsg::DataAdded { key: Key::from("b"), nbytes: 100 });
        assert!(d.events.contains(&Event::ReplicaRemoved { key: Key::from("b"), worker: wid("w1") }));
        assert_eq!(reply(&d, 1), Some(InfoReply::Transferred { copied: 2, failed: 0 }));
        assert_eq!(core.holders("b"), vec!["w3"]);
    }

    #[test]
    fn replicate_to_every_worker_during_a_move_fetches_the_missing_copy_as_well() {
        let mut core = rebalancing();
        let d = core.client(
            "c",
            ClientMsg::Info { req: RequestId(2), what: InfoRequest::Replicate { keys: vec![Key::from("a")], n: 3 } },
        );
        assert_eq!(fetches(&d), vec![("w3".to_owned(), "a".to_owned())]);
        let d = core.worker("w3", WorkerMsg::DataAdded { key: Key::from("a"), nbytes: 100 });
        assert_eq!(reply(&d, 2), None, "the copy on w2 is still on its way");
        let d = core.worker("w2", WorkerMsg::DataAdded { key: Key::from("a"), nbytes: 100 });
        assert_eq!(reply(&d, 2), Some(InfoReply::Transferred { copied: 2, failed: 0 }));
        assert_eq!(core.holders("a"), vec!["w1", "w2", "w3"]);
    }

    #[test]
    fn a_move_is_left_a_move_when_the_key_already_has_enough_holders() {
        let mut core = rebalancing();
        // Asking for one holder needs nothing: the move goes on and the request is answered at once.
        let d = core.client(
            "c",
            ClientMsg::Info { req: RequestId(2), what: InfoRequest::Replicate { keys: vec![Key::from("a")], n: 1 } },
        );
        assert_eq!(reply(&d, 2), Some(InfoReply::Transferred { copied: 0, failed: 0 }));
        let d = core.worker("w2", WorkerMsg::DataAdded { key: Key::from("a"), nbytes: 100 });
        assert!(d.events.contains(&Event::ReplicaRemoved { key: Key::from("a"), worker: wid("w1") }));
        assert_eq!(core.holders("a"), vec!["w2"]);
    }
}
