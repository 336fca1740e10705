//! Cluster management asked by clients: `replicate`, `rebalance`,
//! `restart` and `shutdown`, which travel as `Info` requests and are
//! answered once done.
//!
//! Copies are made by the workers: the scheduler sends `Fetch` to a worker
//! that should hold a key, the worker fetches it from a holder and answers
//! `DataAdded` (the scheduler then logs `ReplicaAdded`) or `FetchFailed`.
//! A rebalance is a copy followed by dropping the source's copy
//! (`ReplicaRemoved` and `Free`). Which copies are on their way, and which
//! requests wait for them, is volatile: after a scheduler restart a client
//! resends its request and the copies still missing are asked again.
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
            let coming: BTreeSet<&WorkerId> =
                self.cluster.pending.keys().filter(|(k, _)| k == key).map(|(_, w)| w).collect();
            let have = who_has.len() + coming.len();
            let mut candidates: Vec<&WorkerId> =
                live.iter().filter(|w| !who_has.contains(*w) && !coming.contains(w)).collect();
            for _ in have..target {
                candidates.sort_by_key(|w| (loads.get(*w).copied().unwrap_or(0), (*w).clone()));
                let Some(dest) = candidates.first().copied() else { break };
                candidates.remove(0);
                *loads.entry(dest.clone()).or_default() += *nbytes;
                plan.push((key.clone(), dest.clone(), None));
            }
            // Copies already on their way count for this request too.
            plan.extend(coming.into_iter().map(|w| (key.clone(), w.clone(), None)));
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
