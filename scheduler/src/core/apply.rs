//! `State::apply`: the only code that changes the durable state.
//!
//! Every event is checked against the state it meets. One that does not fit
//! (a finish for an attempt that is not running, a dependency on an unknown
//! key, …) changes nothing and is counted in `n_ignored_events`, so apply is
//! total: replaying any sequence of events never panics.
use std::collections::{BTreeMap, BTreeSet};

use reprise_proto::{Attempt, ClientId, Event, Holder, Key, TaskError, TaskSpec, WorkerId};

use super::state::{Origin, QueueSlot, State, Task, TaskState, WorkerRecord};

impl State {
    /// Apply one event. Never panics; an event that does not fit the current
    /// state is ignored and counted (see [`State::n_ignored_events`]).
    pub fn apply(&mut self, event: &Event) {
        let changed = match event {
            Event::ClientJoined { client } => self.clients.insert(client.clone(), BTreeSet::new()).is_none(),
            Event::ClientRemoved { client } => self.remove_client(client),
            Event::TaskSubmitted { spec } => self.submit(spec),
            Event::ClientWants { client, key } => self.set_want(client, key, true),
            Event::ClientReleased { client, key } => self.set_want(client, key, false),
            Event::HolderAdded { holder, key } => self.set_holder(holder, key, true),
            Event::HolderRemoved { holder, key } => self.set_holder(holder, key, false),
            Event::TaskQueued { key } => self.settle_ready(key, TaskState::Queued),
            Event::TaskNoWorker { key } => self.settle_ready(key, TaskState::NoWorker),
            Event::TaskAssigned { key, worker, attempt } => self.assign(key, worker, *attempt),
            Event::TaskFinished { key, worker, attempt, nbytes, inline } => {
                self.finish(key, worker, *attempt, *nbytes, inline.clone())
            }
            Event::DataScattered { key, worker, nbytes, inline } => self.scatter(key, worker, *nbytes, inline.clone()),
            Event::ReplicaAdded { key, worker } => self.add_replica(key, worker),
            Event::ReplicaRemoved { key, worker } => self.remove_replica(key, worker),
            Event::TaskRetried { key } => self.retry(key),
            Event::TaskErred { key, error } => self.err(key, error),
            Event::TaskRescheduled { key } => self.reschedule(key),
            Event::TaskLost { key } => self.recompute(key),
            Event::TaskCancelled { key } => self.cancel(key),
            Event::TaskForgotten { key } => self.forget(key),
            Event::WorkerJoined { worker, nthreads, address, functions, resources } => {
                self.join(worker, *nthreads, address, functions, resources)
            }
            Event::WorkerRemoved { worker } => self.remove_worker(worker),
            Event::ClusterRestarted => self.restart(),
            primitive => self.apply_primitive(primitive),
        };
        if !changed {
            self.n_ignored_events = self.n_ignored_events.saturating_add(1);
        }
    }

    /// Move a live task to `new`, keeping every index in step: worker
    /// processing sets, replica sets, the queue, the no-worker set, and the
    /// dependents whose inputs enter or leave memory.
    pub(crate) fn set_state(&mut self, key: &Key, new: TaskState) {
        let Some(task) = self.tasks.get_mut(key) else { return };
        let old = std::mem::replace(&mut task.state, new);
        let slot = QueueSlot::of(key, task);
        let new_is_memory = task.state.is_memory();
        match &old {
            TaskState::Processing { worker, .. } => {
                if let Some(w) = self.workers.get_mut(worker) {
                    w.processing.remove(key);
                }
            }
            TaskState::Queued => {
                self.queue.remove(&slot);
            }
            TaskState::NoWorker => {
                self.no_worker.remove(key);
            }
            TaskState::Memory { who_has, .. } => {
                for worker in who_has {
                    if let Some(w) = self.workers.get_mut(worker) {
                        w.has_what.remove(key);
                    }
                }
            }
            _ => {}
        }
        // Borrow the task and the indices separately: no clone of the state
        // (a memory state may carry inline bytes).
        let state = self.tasks.get(key).map(|t| &t.state);
        match state {
            Some(TaskState::Processing { worker, .. }) => {
                if let Some(w) = self.workers.get_mut(worker) {
                    w.processing.insert(key.clone());
                }
            }
            Some(TaskState::Queued) => {
                self.queue.insert(slot);
            }
            Some(TaskState::NoWorker) => {
                self.no_worker.insert(key.clone());
            }
            Some(TaskState::Memory { who_has, .. }) => {
                for worker in who_has {
                    if let Some(w) = self.workers.get_mut(worker) {
                        w.has_what.insert(key.clone());
                    }
                }
            }
            _ => {}
        }
        match (old.is_memory(), new_is_memory) {
            (false, true) => self.entered_memory(key),
            (true, false) => self.left_memory(key),
            _ => {}
        }
    }

    fn entered_memory(&mut self, key: &Key) {
        let dependents = self.tasks.get(key).map(|t| t.dependents.clone()).unwrap_or_default();
        for d in &dependents {
            if let Some(TaskState::Waiting { unfinished }) = self.tasks.get_mut(d).map(|t| &mut t.state) {
                unfinished.remove(key);
            }
        }
    }

    /// An input left memory: waiting dependents wait for it again, and
    /// dependents that were ready or running go back to waiting, because a
    /// task only runs with every input in memory.
    fn left_memory(&mut self, key: &Key) {
        let dependents = self.tasks.get(key).map(|t| t.dependents.clone()).unwrap_or_default();
        for d in &dependents {
            let Some(task) = self.tasks.get_mut(d) else { continue };
            match &mut task.state {
                TaskState::Waiting { unfinished } => {
                    unfinished.insert(key.clone());
                }
                TaskState::Queued | TaskState::NoWorker | TaskState::Processing { .. } => self.back_to_waiting(d),
                _ => {}
            }
        }
    }

    fn back_to_waiting(&mut self, key: &Key) {
        let Some(task) = self.tasks.get(key) else { return };
        let unfinished = self.unfinished_deps(task);
        self.set_state(key, TaskState::Waiting { unfinished });
    }

    /// `ClusterRestarted`: every key pending or in memory is lost, its
    /// data (inline copies included) gone; the indices empty with it. Always
    /// a change: the restart happened even if nothing was live.
    fn restart(&mut self) -> bool {
        let affected: Vec<Key> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.state.is_pending() || t.state.is_memory())
            .map(|(k, _)| k.clone())
            .collect();
        for key in &affected {
            self.set_state(key, TaskState::Lost);
        }
        true
    }

    fn remove_client(&mut self, client: &ClientId) -> bool {
        let Some(wants) = self.clients.remove(client) else { return false };
        self.primitives_client_removed(client);
        for key in &wants {
            if let Some(task) = self.tasks.get_mut(key) {
                task.wanted_by.remove(client);
            }
        }
        true
    }

    fn submit(&mut self, spec: &TaskSpec) -> bool {
        if self.tasks.contains_key(&spec.key) {
            return false;
        }
        let deps: BTreeSet<Key> = spec.deps.iter().cloned().collect();
        if !deps.iter().all(|d| self.tasks.contains_key(d)) {
            return false;
        }
        for d in &deps {
            if let Some(dep) = self.tasks.get_mut(d) {
                dep.dependents.insert(spec.key.clone());
            }
        }
        let mut task = Task {
            origin: Origin::Computed(spec.clone()),
            deps,
            order: self.next_order,
            state: TaskState::Waiting { unfinished: BTreeSet::new() },
            wanted_by: BTreeSet::new(),
            holders: BTreeSet::new(),
            dependents: BTreeSet::new(),
            retries_left: spec.retries,
            suspicious: 0,
        };
        task.state = TaskState::Waiting { unfinished: self.unfinished_deps(&task) };
        self.next_order = self.next_order.saturating_add(1);
        self.tasks.insert(spec.key.clone(), task);
        true
    }

    fn set_want(&mut self, client: &ClientId, key: &Key, want: bool) -> bool {
        let (Some(wants), Some(task)) = (self.clients.get_mut(client), self.tasks.get_mut(key)) else {
            return false;
        };
        if want {
            wants.insert(key.clone()) | task.wanted_by.insert(client.clone())
        } else {
            let changed = wants.remove(key) | task.wanted_by.remove(client);
            // Planted bug for the simulator: the release counts twice, and
            // another wanter loses its reference too.
            #[cfg(feature = "planted-refcount-twice")]
            if let Some(other) = task.wanted_by.pop_first() {
                if let Some(wants) = self.clients.get_mut(&other) {
                    wants.remove(key);
                }
            }
            changed
        }
    }

    fn set_holder(&mut self, holder: &Holder, key: &Key, hold: bool) -> bool {
        let Some(task) = self.tasks.get_mut(key) else { return false };
        if hold {
            task.holders.insert(holder.clone())
        } else {
            task.holders.remove(holder)
        }
    }

    /// `TaskQueued` / `TaskNoWorker`: a task whose inputs are all in memory
    /// waits for a slot or for a fitting worker.
    fn settle_ready(&mut self, key: &Key, new: TaskState) -> bool {
        let Some(task) = self.tasks.get(key) else { return false };
        let fits = match &task.state {
            TaskState::Waiting { unfinished } => unfinished.is_empty(),
            TaskState::Queued | TaskState::NoWorker => task.state != new,
            _ => false,
        };
        if !fits || task.spec().is_none() {
            return false;
        }
        self.set_state(key, new);
        true
    }

    fn assign(&mut self, key: &Key, worker: &WorkerId, attempt: Attempt) -> bool {
        let Some(task) = self.tasks.get(key) else { return false };
        let ready = task.state.is_ready() || matches!(task.state, TaskState::Queued | TaskState::NoWorker);
        if !ready || task.spec().is_none() || !self.workers.contains_key(worker) {
            return false;
        }
        self.next_attempt = self.next_attempt.max(attempt.0.saturating_add(1));
        self.set_state(key, TaskState::Processing { worker: worker.clone(), attempt });
        true
    }

    fn finish(&mut self, key: &Key, worker: &WorkerId, attempt: Attempt, nbytes: u64, inline: Option<Vec<u8>>) -> bool {
        let running = TaskState::Processing { worker: worker.clone(), attempt };
        if self.tasks.get(key).map(|t| &t.state) != Some(&running) {
            return false;
        }
        let who_has = BTreeSet::from([worker.clone()]);
        self.set_state(key, TaskState::Memory { who_has, nbytes, inline });
        true
    }

    fn scatter(&mut self, key: &Key, worker: &WorkerId, nbytes: u64, inline: Option<Vec<u8>>) -> bool {
        if !self.workers.contains_key(worker) {
            return false;
        }
        let memory = TaskState::Memory { who_has: BTreeSet::from([worker.clone()]), nbytes, inline };
        match self.tasks.get(key) {
            None => {
                let task = Task {
                    origin: Origin::Scattered,
                    deps: BTreeSet::new(),
                    order: self.next_order,
                    state: TaskState::Lost,
                    wanted_by: BTreeSet::new(),
                    holders: BTreeSet::new(),
                    dependents: BTreeSet::new(),
                    retries_left: 0,
                    suspicious: 0,
                };
                self.next_order = self.next_order.saturating_add(1);
                self.tasks.insert(key.clone(), task);
                self.set_state(key, memory);
                true
            }
            // Scattering a lost key again brings its data back.
            Some(task) if task.origin == Origin::Scattered && task.state == TaskState::Lost => {
                self.set_state(key, memory);
                true
            }
            Some(_) => false,
        }
    }

    fn add_replica(&mut self, key: &Key, worker: &WorkerId) -> bool {
        let Some(w) = self.workers.get_mut(worker) else { return false };
        let Some(TaskState::Memory { who_has, .. }) = self.tasks.get_mut(key).map(|t| &mut t.state) else {
            return false;
        };
        if !who_has.insert(worker.clone()) {
            return false;
        }
        w.has_what.insert(key.clone());
        true
    }

    /// The last copy of a value without an inline copy leaves memory:
    /// a computed task becomes `released`, scattered data `lost`.
    fn remove_replica(&mut self, key: &Key, worker: &WorkerId) -> bool {
        let Some(task) = self.tasks.get_mut(key) else { return false };
        let TaskState::Memory { who_has, inline, .. } = &mut task.state else { return false };
        if !who_has.remove(worker) {
            return false;
        }
        let gone = who_has.is_empty() && inline.is_none();
        let next = match task.origin {
            Origin::Computed(_) => TaskState::Released,
            Origin::Scattered => TaskState::Lost,
        };
        if let Some(w) = self.workers.get_mut(worker) {
            w.has_what.remove(key);
        }
        if gone {
            self.set_state(key, next);
        }
        true
    }

    /// `TaskRetried`: a failed attempt with retries left consumes one; an
    /// erred task retried by a client starts over with a clean record.
    fn retry(&mut self, key: &Key) -> bool {
        let Some(task) = self.tasks.get_mut(key) else { return false };
        match task.state {
            TaskState::Processing { .. } => task.retries_left = task.retries_left.saturating_sub(1),
            TaskState::Erred { .. } => task.suspicious = 0,
            _ => return false,
        }
        self.back_to_waiting(key);
        true
    }

    fn err(&mut self, key: &Key, error: &TaskError) -> bool {
        let Some(task) = self.tasks.get(key) else { return false };
        if !task.state.is_pending() || task.spec().is_none() {
            return false;
        }
        self.set_state(key, TaskState::Erred { error: error.clone() });
        true
    }

    fn reschedule(&mut self, key: &Key) -> bool {
        let Some(task) = self.tasks.get_mut(key) else { return false };
        if !matches!(task.state, TaskState::Processing { .. }) {
            return false;
        }
        task.suspicious = task.suspicious.saturating_add(1);
        self.back_to_waiting(key);
        true
    }

    /// `TaskLost`: a released task is needed again and is recomputed.
    fn recompute(&mut self, key: &Key) -> bool {
        if self.tasks.get(key).map(|t| &t.state) != Some(&TaskState::Released) {
            return false;
        }
        self.back_to_waiting(key);
        true
    }

    fn cancel(&mut self, key: &Key) -> bool {
        match self.tasks.get(key) {
            Some(task) if task.state != TaskState::Cancelled => {
                self.set_state(key, TaskState::Cancelled);
                true
            }
            _ => false,
        }
    }

    /// Only a key that nobody references and nothing depends on leaves the state.
    fn forget(&mut self, key: &Key) -> bool {
        match self.tasks.get(key) {
            Some(task) if task.dependents.is_empty() && !task.is_wanted() => {}
            _ => return false,
        }
        // Passing through `cancelled` drops the key from every index.
        self.set_state(key, TaskState::Cancelled);
        let Some(task) = self.tasks.remove(key) else { return false };
        for d in &task.deps {
            if let Some(dep) = self.tasks.get_mut(d) {
                dep.dependents.remove(key);
            }
        }
        true
    }

    fn join(
        &mut self,
        worker: &WorkerId,
        nthreads: u32,
        address: &str,
        functions: &[String],
        resources: &[(String, f64)],
    ) -> bool {
        let totals = resource_totals(resources);
        let is_new = !self.workers.contains_key(worker);
        let record = self.workers.entry(worker.clone()).or_insert_with(|| WorkerRecord {
            address: String::new(),
            nthreads: 0,
            functions: BTreeSet::new(),
            resources: BTreeMap::new(),
            processing: BTreeSet::new(),
            has_what: BTreeSet::new(),
        });
        let changed = is_new || !record.same_attributes(nthreads, address, functions, resources);
        let functions: BTreeSet<String> = functions.iter().cloned().collect();
        record.address = address.to_owned();
        record.nthreads = nthreads;
        record.functions = functions;
        record.resources = totals;
        changed
    }

    /// The worker leaves. The core emits `TaskRescheduled` and
    /// `ReplicaRemoved` for its tasks and data first; whatever is left is
    /// cleaned up here the same way (without counting suspicion), so that
    /// no task points at a worker that is gone.
    fn remove_worker(&mut self, worker: &WorkerId) -> bool {
        let Some(record) = self.workers.get(worker) else { return false };
        let processing = record.processing.clone();
        let held = record.has_what.clone();
        for key in &processing {
            self.back_to_waiting(key);
        }
        for key in &held {
            self.remove_replica(key, worker);
        }
        self.workers.remove(worker);
        true
    }
}

/// Resource amounts by name, duplicates summed in the order given.
pub(crate) fn resource_totals(resources: &[(String, f64)]) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    for (name, amount) in resources {
        *totals.entry(name.clone()).or_insert(0.0) += *amount;
    }
    totals
}

impl WorkerRecord {
    /// True when a registration with these attributes would change nothing.
    pub(crate) fn same_attributes(
        &self,
        nthreads: u32,
        address: &str,
        functions: &[String],
        resources: &[(String, f64)],
    ) -> bool {
        self.address == address
            && self.nthreads == nthreads
            && self.functions == functions.iter().cloned().collect::<BTreeSet<String>>()
            && self.resources == resource_totals(resources)
    }
}
