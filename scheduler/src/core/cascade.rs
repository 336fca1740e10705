//! The cascades one stimulus sets off (Dask's recommendations run to a
//! fixpoint): advancing waiting tasks, propagating errors, and forgetting or
//! releasing keys nobody needs.
use std::collections::{BTreeMap, BTreeSet};

use reprise_proto::{
    actor_type, Event, Holder, Key, KeyState, KeyUpdate, TaskError, TaskErrorKind, ToClient, ToWorker, WorkerId,
};

use super::scheduler::{Cx, Scheduler};
use super::state::{Origin, TaskState};

impl Scheduler {
    /// Look at tasks that may be waiting: a task with an erred or lost input
    /// errs; released inputs are recomputed (`TaskLost`); a task whose
    /// inputs are all in memory is ready to place.
    pub(crate) fn advance(&mut self, cx: &mut Cx, keys: BTreeSet<Key>) {
        let mut stack: Vec<Key> = keys.into_iter().collect();
        while let Some(key) = stack.pop() {
            let Some(TaskState::Waiting { unfinished }) = self.state.task_state(&key) else { continue };
            let unfinished = unfinished.clone();
            if let Some(error) = self.blocking_error(&unfinished) {
                self.err_tasks(cx, &key, error);
                continue;
            }
            for dep in &unfinished {
                if self.state.task_state(dep) == Some(&TaskState::Released) && !self.lose_actor(cx, dep) {
                    self.emit(cx, Event::TaskLost { key: dep.clone() });
                    stack.push(dep.clone());
                }
            }
            if unfinished.is_empty() {
                cx.ready.insert(key);
            }
        }
    }

    /// The error a task inherits from an input that will never be in memory.
    fn blocking_error(&self, unfinished: &BTreeSet<Key>) -> Option<TaskError> {
        unfinished.iter().find_map(|dep| match self.state.task_state(dep) {
            Some(TaskState::Erred { error }) => Some(error.clone()),
            Some(TaskState::Lost) => Some(TaskError::new(
                TaskErrorKind::LostDependency,
                dep.clone(),
                format!("input {dep} was lost (its workers left, or the cluster restarted) and will not be recomputed"),
            )),
            _ => None,
        })
    }

    /// `key` fails with `error`, and so does every waiting dependent,
    /// recursively, with the same error (Dask's `exception_blame`).
    pub(crate) fn err_tasks(&mut self, cx: &mut Cx, key: &Key, error: TaskError) {
        let mut stack = vec![key.clone()];
        let mut erred = Vec::new();
        while let Some(k) = stack.pop() {
            let Some(task) = self.state.task(&k) else { continue };
            if !task.state().is_pending() {
                continue;
            }
            let waiting: Vec<Key> = task
                .dependents()
                .iter()
                .filter(|d| matches!(self.state.task_state(d), Some(TaskState::Waiting { .. })))
                .cloned()
                .collect();
            self.emit(cx, Event::TaskErred { key: k.clone(), error: error.clone() });
            stack.extend(waiting);
            erred.push(k);
        }
        for k in &erred {
            self.notify(cx, k, KeyState::Erred(error.clone()));
            self.task_done(cx, k);
        }
    }

    /// A task reached memory or erred: fire_and_forget lets go of it, and
    /// it and its inputs may no longer be needed.
    pub(crate) fn task_done(&mut self, cx: &mut Cx, key: &Key) {
        let Some(task) = self.state.task(key) else { return };
        let fire_and_forget = task.holders().contains(&Holder::FireAndForget);
        cx.to_settle.extend(task.deps().iter().cloned());
        cx.to_settle.insert(key.clone());
        if fire_and_forget {
            self.emit(cx, Event::HolderRemoved { holder: Holder::FireAndForget, key: key.clone() });
        }
    }

    /// Forget the keys nobody references and nothing depends on (and then
    /// their inputs, Dask's `_propagate_forgotten`); drop the data of keys
    /// that only finished dependents refer to. Dependents go before their
    /// inputs: submission order is topological.
    pub(crate) fn settle(&mut self, cx: &mut Cx, keys: BTreeSet<Key>) {
        let mut work: BTreeMap<u64, Key> =
            keys.into_iter().filter_map(|k| self.state.task(&k).map(|t| (t.order(), k))).collect();
        while let Some((_, key)) = work.pop_last() {
            let Some(task) = self.state.task(&key) else { continue };
            if task.is_wanted() {
                continue;
            }
            if task.dependents().is_empty() {
                for dep in task.deps() {
                    if let Some(d) = self.state.task(dep) {
                        work.insert(d.order(), dep.clone());
                    }
                }
                self.forget(cx, &key);
            } else if !self.state.has_pending_dependent(task) && matches!(task.origin(), Origin::Computed(_)) {
                self.release_data(cx, &key);
            }
        }
    }

    /// Tell the workers involved, then forget the key.
    pub(crate) fn forget(&mut self, cx: &mut Cx, key: &Key) {
        match self.state.task_state(key) {
            Some(TaskState::Processing { worker, attempt }) => {
                cx.send_worker(worker, ToWorker::Cancel { key: key.clone(), attempt: *attempt });
            }
            Some(TaskState::Memory { who_has, .. }) => {
                for worker in who_has.clone() {
                    cx.free(&worker, key);
                }
            }
            _ => {}
        }
        self.emit(cx, Event::TaskForgotten { key: key.clone() });
    }

    /// Free a computed key's data on its workers; its spec stays as lineage
    /// (an inline copy stays too: it costs the log nothing more).
    fn release_data(&mut self, cx: &mut Cx, key: &Key) {
        let Some(TaskState::Memory { who_has, .. }) = self.state.task_state(key) else { return };
        for worker in who_has.clone() {
            cx.free(&worker, key);
            self.emit(cx, Event::ReplicaRemoved { key: key.clone(), worker });
        }
    }

    /// A worker's copy of `key` is gone. If that was the last copy: tasks
    /// that were about to use it go back to waiting (their attempts are
    /// cancelled), a wanted computed key is recomputed, wanted scattered
    /// data is reported lost, and waiting dependents are looked at again.
    pub(crate) fn replica_gone(&mut self, cx: &mut Cx, key: &Key, worker: &WorkerId) {
        let Some(task) = self.state.task(key) else { return };
        let running: Vec<(Key, WorkerId, reprise_proto::Attempt)> = task
            .dependents()
            .iter()
            .filter_map(|d| match self.state.task_state(d) {
                Some(TaskState::Processing { worker, attempt }) => Some((d.clone(), worker.clone(), *attempt)),
                _ => None,
            })
            .collect();
        self.emit(cx, Event::ReplicaRemoved { key: key.clone(), worker: worker.clone() });
        let Some(task) = self.state.task(key) else { return };
        if task.state().is_memory() {
            return;
        }
        for (d, w, attempt) in running {
            cx.send_worker(&w, ToWorker::Cancel { key: d, attempt });
        }
        let dependents = task.dependents().clone();
        if task.state() == &TaskState::Lost {
            self.notify(cx, key, KeyState::Lost);
        }
        self.revive_if_wanted(cx, key);
        cx.to_advance.extend(dependents);
        cx.to_settle.insert(key.clone());
    }

    /// A released key that some client or holder wants is recomputed
    /// (an actor's errs instead: see [`Scheduler::lose_actor`]).
    pub(crate) fn revive_if_wanted(&mut self, cx: &mut Cx, key: &Key) {
        let Some(task) = self.state.task(key) else { return };
        if task.state() == &TaskState::Released && task.is_wanted() && !self.lose_actor(cx, key) {
            self.emit(cx, Event::TaskLost { key: key.clone() });
            cx.to_advance.insert(key.clone());
        }
    }

    /// A released key that creates an actor is not recomputed: the actor
    /// lived on the worker that held its data, and a new instance elsewhere
    /// would silently lose its state (actors are not resilient, as in Dask).
    /// It errs instead, and so do its waiting dependents. Returns whether
    /// `key` was such a key.
    fn lose_actor(&mut self, cx: &mut Cx, key: &Key) -> bool {
        let Some(actor) = self.state.task(key).and_then(|t| t.spec()).and_then(|s| actor_type(&s.func)) else {
            return false;
        };
        let message = format!(
            "actor {actor} ({key}) was lost with the worker that held it; actors are not resilient and are never recreated elsewhere"
        );
        // Back to waiting (the only way out of `released`), then erred.
        self.emit(cx, Event::TaskLost { key: key.clone() });
        self.err_tasks(cx, key, TaskError::new(TaskErrorKind::LostDependency, key.clone(), message));
        true
    }

    /// The worker running `key` left: try again elsewhere, unless workers
    /// died under it too often (Dask's `KilledWorker`).
    pub(crate) fn reschedule(&mut self, cx: &mut Cx, key: &Key) {
        self.emit(cx, Event::TaskRescheduled { key: key.clone() });
        let Some(task) = self.state.task(key) else { return };
        let suspicious = task.suspicious();
        if suspicious > self.config.allowed_failures {
            let message = format!(
                "Attempted to run task {key} on {suspicious} different workers, but all those workers died while running it"
            );
            self.err_tasks(cx, key, TaskError::new(TaskErrorKind::KilledWorker, key.clone(), message));
        } else {
            cx.to_advance.insert(key.clone());
        }
    }

    /// Send `state` to every client that wants `key`.
    pub(crate) fn notify(&self, cx: &mut Cx, key: &Key, state: KeyState) {
        let Some(task) = self.state.task(key) else { return };
        for client in task.wanted_by() {
            cx.send_client(client, ToClient::Update(KeyUpdate { key: key.clone(), state: state.clone() }));
        }
    }

    /// The update a client gets for a key that already reached a final
    /// state (memory, erred, lost), if it has.
    pub(crate) fn final_update(&self, key: &Key) -> Option<KeyState> {
        match self.state.task_state(key)? {
            TaskState::Memory { nbytes, .. } => {
                Some(KeyState::Finished { nbytes: *nbytes, location: self.location(key) })
            }
            TaskState::Erred { error } => Some(KeyState::Erred(error.clone())),
            TaskState::Lost => Some(KeyState::Lost),
            _ => None,
        }
    }
}
