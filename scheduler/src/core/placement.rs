//! Where ready tasks go: a worker with a free slot, the queue, `no-worker`,
//! or an `UnknownFunction` error.
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use reprise_proto::{ComputeTask, DepLocation, Event, Key, TaskError, TaskErrorKind, TaskSpec, ToWorker, WorkerId};

use super::scheduler::{Cx, Rescan, Scheduler};
use super::state::{QueueSlot, TaskState, WorkerRecord};

/// The outcome of looking for a worker for one task.
#[derive(Debug, PartialEq)]
enum Fit {
    /// No worker is connected at all: wait in the queue.
    NoLiveWorker,
    /// No known worker has the function.
    UnknownFunction,
    /// Workers have the function but none satisfies the restrictions or
    /// has enough resources in total.
    NoWorker,
    /// Fitting workers exist but none has a free slot and free resources now.
    Busy,
    Worker(WorkerId),
}

/// A candidate worker's claim to a task: input bytes it already holds, then load.
struct Claim<'a> {
    id: &'a WorkerId,
    input_bytes: u64,
    n_processing: u64,
    nthreads: u64,
}

impl Claim<'_> {
    /// Most input bytes first, then the lowest processing/nthreads, then id.
    fn better_than(&self, other: &Claim<'_>) -> bool {
        let by_load = (u128::from(self.n_processing) * u128::from(other.nthreads))
            .cmp(&(u128::from(other.n_processing) * u128::from(self.nthreads)));
        let order = other.input_bytes.cmp(&self.input_bytes).then(by_load).then(self.id.cmp(other.id));
        order == Ordering::Less
    }
}

/// The resources a spec needs, duplicates summed.
fn needs(spec: &TaskSpec) -> BTreeMap<&str, f64> {
    let mut out: BTreeMap<&str, f64> = BTreeMap::new();
    for (name, amount) in &spec.resources {
        *out.entry(name.as_str()).or_insert(0.0) += *amount;
    }
    out
}

impl Scheduler {
    /// Place ready tasks, highest priority first, then in submission order.
    pub(crate) fn place(&mut self, cx: &mut Cx, keys: BTreeSet<Key>) {
        let mut slots: Vec<QueueSlot> =
            keys.iter().filter_map(|k| self.state.task(k).map(|t| QueueSlot::of(k, t))).collect();
        slots.sort();
        for slot in slots {
            if self.state.task(&slot.key).is_some_and(|t| t.state().is_ready()) {
                self.place_one(cx, &slot.key);
            }
        }
    }

    /// Decide one ready, queued or no-worker task's next step.
    fn place_one(&mut self, cx: &mut Cx, key: &Key) {
        let Some(task) = self.state.task(key) else { return };
        let current = task.state().clone();
        match self.fit(key) {
            Fit::Worker(worker) => self.assign(cx, key, &worker),
            Fit::NoLiveWorker | Fit::Busy => {
                if current != TaskState::Queued {
                    self.emit(cx, Event::TaskQueued { key: key.clone() });
                }
            }
            Fit::NoWorker => {
                if current != TaskState::NoWorker {
                    self.emit(cx, Event::TaskNoWorker { key: key.clone() });
                }
            }
            Fit::UnknownFunction => {
                let func = self.state.task(key).and_then(|t| t.spec()).map(|s| s.func.clone()).unwrap_or_default();
                let message = format!("no connected worker has the function '{func}'");
                self.err_tasks(cx, key, TaskError::new(TaskErrorKind::UnknownFunction, key.clone(), message));
            }
        }
    }

    /// Some live worker could take the task right now.
    pub(crate) fn assignable(&self, key: &Key) -> bool {
        matches!(self.fit(key), Fit::Worker(_))
    }

    fn fit(&self, key: &Key) -> Fit {
        let Some(task) = self.state.task(key) else { return Fit::Busy };
        let Some(spec) = task.spec() else { return Fit::Busy };
        if self.sessions.live_workers.is_empty() {
            return Fit::NoLiveWorker;
        }
        let needs = needs(spec);
        // Workers known from the log but not back yet count here, so that a
        // restart does not err or park tasks before their workers return.
        let with_func: Vec<(&WorkerId, &WorkerRecord)> =
            self.state.workers.iter().filter(|(_, w)| w.functions.contains(&spec.func)).collect();
        if with_func.is_empty() {
            return Fit::UnknownFunction;
        }
        let allowed = |id: &WorkerId| spec.workers.is_empty() || spec.workers.contains(id);
        let capable = |w: &WorkerRecord| {
            needs.iter().all(|(name, need)| w.resources.get(*name).is_some_and(|t| t >= need) || *need <= 0.0)
        };
        if !with_func.iter().any(|(id, w)| allowed(id) && capable(w)) {
            return Fit::NoWorker;
        }
        let slots = u64::from(self.config.prefetch);
        let mut best: Option<Claim<'_>> = None;
        for (id, w) in with_func {
            let n_processing = w.processing.len() as u64;
            if !self.sessions.live_workers.contains(id)
                || !allowed(id)
                || n_processing >= u64::from(w.nthreads).saturating_add(slots)
                || !self.resources_free(w, &needs)
            {
                continue;
            }
            let input_bytes = self.input_bytes_on(task.deps(), id);
            let claim = Claim { id, input_bytes, n_processing, nthreads: u64::from(w.nthreads) };
            if best.as_ref().is_none_or(|b| claim.better_than(b)) {
                best = Some(claim);
            }
        }
        best.map_or(Fit::Busy, |c| Fit::Worker(c.id.clone()))
    }

    /// The worker's resources minus what its running tasks use cover `needs`.
    /// Use is recomputed from the processing set rather than kept as a
    /// running float sum, which could drift.
    fn resources_free(&self, w: &WorkerRecord, needs: &BTreeMap<&str, f64>) -> bool {
        needs.iter().all(|(name, need)| {
            if *need <= 0.0 {
                return true;
            }
            let used: f64 = w
                .processing
                .iter()
                .filter_map(|k| self.state.task(k).and_then(|t| t.spec()))
                .flat_map(|s| s.resources.iter())
                .filter(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .sum();
            w.resources.get(*name).is_some_and(|total| total - used >= *need)
        })
    }

    fn input_bytes_on(&self, deps: &BTreeSet<Key>, worker: &WorkerId) -> u64 {
        deps.iter()
            .filter_map(|d| match self.state.task_state(d) {
                Some(TaskState::Memory { who_has, nbytes, .. }) if who_has.contains(worker) => Some(*nbytes),
                _ => None,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Hand the task to `worker` under a fresh attempt number.
    fn assign(&mut self, cx: &mut Cx, key: &Key, worker: &WorkerId) {
        let attempt = self.state.next_attempt();
        self.emit(cx, Event::TaskAssigned { key: key.clone(), worker: worker.clone(), attempt });
        let Some(spec) = self.state.task(key).and_then(|t| t.spec()) else { return };
        let mut seen = BTreeSet::new();
        let deps = spec.deps.iter().filter(|d| seen.insert(*d)).map(|d| self.location(d)).collect();
        let compute = ComputeTask { key: key.clone(), attempt, func: spec.func.clone(), args: spec.args.clone(), deps };
        cx.send_worker(worker, ToWorker::Compute(compute));
    }

    /// Where the key's data can be fetched from.
    pub(crate) fn location(&self, key: &Key) -> DepLocation {
        let mut loc = DepLocation { key: key.clone(), holders: Vec::new(), inline: None };
        if let Some(TaskState::Memory { who_has, inline, .. }) = self.state.task_state(key) {
            loc.holders = who_has
                .iter()
                .filter_map(|w| self.state.worker(w).map(|r| (w.clone(), r.address().to_owned())))
                .collect();
            loc.inline = inline.clone();
        }
        loc
    }

    /// Fill free worker slots from the queue, in queue order. After a worker
    /// joined, `no-worker` tasks are looked at again first; after one left,
    /// every queued task is, since its fit may have changed.
    pub(crate) fn fill_slots(&mut self, cx: &mut Cx, rescan: Rescan) {
        if rescan == Rescan::NoWorker {
            let mut parked: Vec<QueueSlot> =
                self.state.no_worker.iter().filter_map(|k| self.state.task(k).map(|t| QueueSlot::of(k, t))).collect();
            parked.sort();
            for slot in parked {
                self.place_one(cx, &slot.key);
            }
        }
        let all = rescan == Rescan::All;
        let mut cursor: Option<QueueSlot> = None;
        loop {
            if !all && !self.any_free_slot() {
                return;
            }
            let lower = cursor.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
            let Some(slot) = self.state.queue.range((lower, Bound::Unbounded)).next().cloned() else { return };
            self.place_one(cx, &slot.key);
            cursor = Some(slot);
        }
    }

    fn any_free_slot(&self) -> bool {
        let prefetch = u64::from(self.config.prefetch);
        self.sessions.live_workers.iter().any(|id| {
            self.state
                .worker(id)
                .is_some_and(|w| (w.processing.len() as u64) < u64::from(w.nthreads).saturating_add(prefetch))
        })
    }
}
