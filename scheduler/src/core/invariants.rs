//! `State::check_invariants`: a full cross-check of the durable state.
use std::collections::BTreeSet;

use reprise_proto::Key;

use super::state::{Origin, QueueSlot, State, Task, TaskState};

/// Fail with a message when `cond` does not hold.
fn ensure(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(message())
    }
}

impl State {
    /// Check that every index agrees with the tasks, every task is in a
    /// state consistent with its inputs and dependents, and nothing that
    /// should have been forgotten is still here. Cost: linear in the state.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut orders = BTreeSet::new();
        for (key, task) in &self.tasks {
            ensure(orders.insert(task.order) && task.order < self.next_order, || {
                format!("{key}: bad order {}", task.order)
            })?;
            self.check_links(key, task)?;
            self.check_task_state(key, task)?;
        }
        self.check_workers()?;
        self.check_clients()?;
        self.check_indices()?;
        self.check_primitives()?;
        ensure(self.next_attempt >= 1, || "attempt numbers start at 1".to_owned())
    }

    fn check_links(&self, key: &Key, task: &Task) -> Result<(), String> {
        for dep in &task.deps {
            let d = self.tasks.get(dep).ok_or_else(|| format!("{key}: input {dep} is not live"))?;
            ensure(d.dependents.contains(key), || format!("{dep} does not list dependent {key}"))?;
            ensure(d.order < task.order, || format!("{key}: input {dep} is younger than it"))?;
        }
        for dependent in &task.dependents {
            let d = self.tasks.get(dependent).ok_or_else(|| format!("{key}: dependent {dependent} is not live"))?;
            ensure(d.deps.contains(key), || format!("{dependent} does not list input {key}"))?;
        }
        if let Origin::Computed(spec) = &task.origin {
            ensure(&spec.key == key, || format!("{key}: spec names {}", spec.key))?;
            ensure(task.deps == spec.deps.iter().cloned().collect(), || format!("{key}: deps differ from the spec"))?;
        }
        for client in &task.wanted_by {
            let wants = self.clients.get(client).ok_or_else(|| format!("{key}: wanted by unknown client {client}"))?;
            ensure(wants.contains(key), || format!("client {client} does not list {key}"))?;
        }
        ensure(task.is_wanted() || !task.dependents.is_empty(), || {
            format!("{key} ({}) is referenced by nobody and should have been forgotten", task.state.name())
        })
    }

    fn check_task_state(&self, key: &Key, task: &Task) -> Result<(), String> {
        let inputs_in_memory = self.unfinished_deps(task).is_empty();
        let scattered = task.origin == Origin::Scattered;
        let name = task.state.name();
        ensure(!scattered || matches!(task.state, TaskState::Memory { .. } | TaskState::Lost), || {
            format!("scattered {key} is {name}")
        })?;
        match &task.state {
            TaskState::Waiting { unfinished } => {
                ensure(*unfinished == self.unfinished_deps(task), || format!("{key}: stale unfinished set"))?;
                ensure(!unfinished.is_empty(), || format!("{key} is waiting on nothing"))?;
                for dep in unfinished {
                    let pending = self.tasks.get(dep).is_some_and(|d| d.state.is_pending());
                    ensure(pending, || format!("{key} waits on {dep}, which is not on its way"))?;
                }
            }
            TaskState::Queued | TaskState::NoWorker => {
                ensure(inputs_in_memory, || format!("{key} is {name} with inputs not in memory"))?;
            }
            TaskState::Processing { worker, attempt } => {
                ensure(inputs_in_memory, || format!("{key} runs with inputs not in memory"))?;
                let w = self.workers.get(worker).ok_or_else(|| format!("{key} runs on unknown worker {worker}"))?;
                ensure(w.processing.contains(key), || format!("{worker} does not list {key} as processing"))?;
                ensure(attempt.0 < self.next_attempt, || format!("{key}: attempt from the future"))?;
            }
            TaskState::Memory { who_has, inline, .. } => {
                ensure(!who_has.is_empty() || inline.is_some(), || format!("{key} is in memory nowhere"))?;
                let needed = scattered || who_has.is_empty() || task.is_wanted() || self.has_pending_dependent(task);
                ensure(needed, || format!("{key}'s data is kept on workers although nothing needs it"))?;
                for worker in who_has {
                    let w = self.workers.get(worker).ok_or_else(|| format!("{key} held by unknown worker {worker}"))?;
                    ensure(w.has_what.contains(key), || format!("{worker} does not list {key} as held"))?;
                }
            }
            TaskState::Released => {
                ensure(!task.is_wanted(), || format!("{key} is wanted but released"))?;
                ensure(!self.has_pending_dependent(task), || format!("{key} is needed but released"))?;
            }
            TaskState::Erred { .. } | TaskState::Lost => {
                ensure(!self.has_pending_dependent(task), || format!("{key} is {name} but a dependent is pending"))?;
            }
            TaskState::Cancelled => return Err(format!("{key} is still cancelled at the end of a decision")),
        }
        Ok(())
    }

    fn check_workers(&self) -> Result<(), String> {
        for (id, w) in &self.workers {
            for key in &w.processing {
                let ok = matches!(self.tasks.get(key).map(|t| &t.state), Some(TaskState::Processing { worker, .. }) if worker == id);
                ensure(ok, || format!("{id} lists {key} as processing, but it is not processing there"))?;
            }
            for key in &w.has_what {
                let ok = matches!(self.tasks.get(key).map(|t| &t.state), Some(TaskState::Memory { who_has, .. }) if who_has.contains(id));
                ensure(ok, || format!("{id} lists {key} as held, but the task does not say so"))?;
            }
        }
        Ok(())
    }

    fn check_clients(&self) -> Result<(), String> {
        for (client, wants) in &self.clients {
            for key in wants {
                let ok = self.tasks.get(key).is_some_and(|t| t.wanted_by.contains(client));
                ensure(ok, || format!("client {client} wants {key}, which does not list it"))?;
            }
        }
        Ok(())
    }

    fn check_indices(&self) -> Result<(), String> {
        for slot in &self.queue {
            let ok = self
                .tasks
                .get(&slot.key)
                .is_some_and(|t| t.state == TaskState::Queued && QueueSlot::of(&slot.key, t) == *slot);
            ensure(ok, || format!("queue entry for {} does not match its task", slot.key))?;
        }
        for key in &self.no_worker {
            let ok = self.tasks.get(key).is_some_and(|t| t.state == TaskState::NoWorker);
            ensure(ok, || format!("no-worker entry for {key} does not match its task"))?;
        }
        let n_queued = self.tasks.values().filter(|t| t.state == TaskState::Queued).count();
        let n_no_worker = self.tasks.values().filter(|t| t.state == TaskState::NoWorker).count();
        ensure(n_queued == self.queue.len(), || "a queued task is missing from the queue".to_owned())?;
        ensure(n_no_worker == self.no_worker.len(), || "a no-worker task is missing from its set".to_owned())
    }
}
