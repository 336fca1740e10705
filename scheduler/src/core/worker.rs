//! Reactions to worker messages, and a worker's departure.
use std::collections::BTreeMap;

use reprise_proto::{Attempt, Event, Key, TaskError, ToWorker, WorkerId, WorkerMsg};

use super::client::token_matches;
use super::scheduler::{Cx, Rescan, Scheduler};
use super::state::{Origin, TaskState};
use super::Millis;

/// Far more assignments than one lost commit batch can hold: the bound on
/// how far beyond the log's attempt numbers an adopted attempt may be.
const LOST_ATTEMPTS_MAX: u64 = 1 << 32;

/// A worker's `Register`, unpacked.
struct Registration {
    worker: WorkerId,
    nthreads: u32,
    address: String,
    functions: Vec<String>,
    resources: Vec<(String, f64)>,
    token: Option<String>,
    held: Vec<(Key, u64)>,
    running: Vec<(Key, Attempt)>,
}

impl Scheduler {
    pub(crate) fn handle_worker(&mut self, cx: &mut Cx, worker: &WorkerId, msg: WorkerMsg, now: Millis) {
        let msg = match msg {
            WorkerMsg::Register { worker: claimed, nthreads, address, functions, resources, token, held, running } => {
                let reg =
                    Registration { worker: claimed, nthreads, address, functions, resources, token, held, running };
                self.register(cx, worker, reg, now);
                return;
            }
            other => other,
        };
        // A worker that never registered is ignored: it has no slot, no
        // data and no tasks here.
        if self.state.worker(worker).is_none() {
            return;
        }
        self.sessions.seen_worker(worker, now);
        match msg {
            WorkerMsg::Register { .. } => {}
            WorkerMsg::Finished { key, attempt, nbytes, inline } => {
                self.finished(cx, worker, key, attempt, nbytes, inline)
            }
            WorkerMsg::Erred { key, attempt, error } => self.erred(cx, worker, key, attempt, error),
            WorkerMsg::DataAdded { key, nbytes: _ } => self.data_added(cx, worker, key),
            WorkerMsg::FetchFailed { key, message: _ } => self.fetch_failed(worker, key),
            WorkerMsg::Heartbeat => cx.send_worker(worker, ToWorker::Heartbeat),
            WorkerMsg::Goodbye => self.remove_worker(cx, worker),
        }
    }

    /// Why a registration is refused, if it is.
    fn refusal(&self, worker: &WorkerId, reg: &Registration) -> Option<String> {
        if let Some(expected) = &self.config.auth_token {
            if !token_matches(expected, reg.token.as_deref()) {
                return Some("invalid auth token".to_owned());
            }
        }
        if &reg.worker != worker {
            return Some(format!("Register names worker {} but the connection belongs to {worker}", reg.worker));
        }
        if reg.nthreads == 0 {
            return Some("a worker needs at least one thread".to_owned());
        }
        if let Some((name, amount)) = reg.resources.iter().find(|(_, a)| !a.is_finite() || *a < 0.0) {
            return Some(format!("resource '{name}' has amount {amount}: amounts must be finite and not negative"));
        }
        None
    }

    /// A worker registers, or registers again after a reconnect: its
    /// attributes are updated and what it reports holding and running is
    /// reconciled with what the state believes.
    fn register(&mut self, cx: &mut Cx, worker: &WorkerId, reg: Registration, now: Millis) {
        if let Some(reason) = self.refusal(worker, &reg) {
            cx.send_worker(worker, ToWorker::Refused { reason });
            return;
        }
        let joined = Event::WorkerJoined {
            worker: worker.clone(),
            nthreads: reg.nthreads,
            address: reg.address,
            functions: reg.functions,
            resources: reg.resources,
        };
        let changed = match (self.state.worker(worker), &joined) {
            (Some(record), Event::WorkerJoined { nthreads, address, functions, resources, .. }) => {
                !record.same_attributes(*nthreads, address, functions, resources)
            }
            _ => true,
        };
        if changed {
            self.emit(cx, joined);
        }
        self.sessions.seen_worker(worker, now);
        self.sessions.live_workers.insert(worker.clone());
        cx.send_worker(worker, ToWorker::Welcome { scheduler: self.config.scheduler_name.clone() });
        self.reconcile_data(cx, worker, reg.held);
        self.reconcile_running(cx, worker, reg.running);
        cx.rescan(Rescan::NoWorker);
    }

    /// Keys it holds that are in memory become replicas; a key it holds
    /// that the state has running on it finished while its report was lost
    /// with the connection, and is taken as finished; a key it holds that
    /// the state has ready to run finished under an assignment that a
    /// scheduler crash lost before it was logged, and is taken as finished
    /// too (rather than run again); keys the state thinks it holds but it
    /// does not report are gone; anything else it holds is not wanted here
    /// and is freed. Keys go in submission order, so that an input taken as
    /// finished makes its dependent ready before the dependent is looked at.
    fn reconcile_data(&mut self, cx: &mut Cx, worker: &WorkerId, held: Vec<(Key, u64)>) {
        let held: BTreeMap<Key, u64> = held.into_iter().collect();
        let mut in_order: Vec<(u64, &Key, u64)> =
            held.iter().map(|(k, n)| (self.state.task(k).map_or(u64::MAX, |t| t.order()), k, *n)).collect();
        in_order.sort();
        for (_, key, nbytes) in in_order {
            match self.state.task_state(key) {
                Some(TaskState::Memory { who_has, .. }) if who_has.contains(worker) => {}
                Some(TaskState::Memory { .. }) if self.copy_is_useful(key) => {
                    self.emit(cx, Event::ReplicaAdded { key: key.clone(), worker: worker.clone() });
                }
                // Found by the simulator: dropping this result (and counting
                // the worker as having died under the task) recomputed it.
                #[cfg(not(feature = "planted-reregister-drops-result"))]
                Some(TaskState::Processing { worker: w, attempt }) if w == worker => {
                    let attempt = *attempt;
                    self.finished(cx, worker, key.clone(), attempt, nbytes, None);
                }
                Some(state) if self.lost_assignment(key, state) => {
                    let attempt = self.state.next_attempt();
                    self.emit(cx, Event::TaskAssigned { key: key.clone(), worker: worker.clone(), attempt });
                    self.finished(cx, worker, key.clone(), attempt, nbytes, None);
                }
                _ => cx.free(worker, key),
            }
        }
        let believed: Vec<Key> = self.state.has_what(worker).into_iter().flatten().cloned().collect();
        for key in believed {
            if !held.contains_key(&key) {
                self.replica_gone(cx, &key, worker);
            }
        }
    }

    /// A computed task in this state is waiting for a worker: if a worker
    /// holds its result or runs it, the assignment was lost with a crash
    /// before it was logged (assignments leave before their batch is durable).
    fn lost_assignment(&self, key: &Key, state: &TaskState) -> bool {
        let waits_for_a_worker = state.is_ready() || matches!(state, TaskState::Queued | TaskState::NoWorker);
        waits_for_a_worker && self.state.task(key).is_some_and(|t| t.spec().is_some())
    }

    /// An attempt number a crashed scheduler could have handed out in the
    /// batch it lost: not far beyond the numbers the log knows. Adopting an
    /// absurd one (a buggy or hostile worker) would push every later
    /// attempt number to the end of the range, where they stop growing.
    fn plausible_lost_attempt(&self, attempt: Attempt) -> bool {
        attempt.0 <= self.state.next_attempt().0.saturating_add(LOST_ATTEMPTS_MAX)
    }

    /// One more copy of the key is worth tracking: it is scattered data
    /// (which cannot be recomputed), or someone still needs it.
    fn copy_is_useful(&self, key: &Key) -> bool {
        self.state
            .task(key)
            .is_some_and(|t| t.origin() == &Origin::Scattered || t.is_wanted() || self.state.has_pending_dependent(t))
    }

    /// Attempts it runs that the state also has stay; attempts the state
    /// has on it but it does not run are rescheduled; an attempt it runs of
    /// a task the state has ready to run was assigned just before a crash
    /// lost the assignment, and is adopted (the attempt number is not in
    /// use: nothing else runs the task); other attempts it runs are not
    /// wanted and are cancelled.
    fn reconcile_running(&mut self, cx: &mut Cx, worker: &WorkerId, running: Vec<(Key, Attempt)>) {
        let running: BTreeMap<Key, Attempt> = running.into_iter().collect();
        let believed: Vec<Key> =
            self.state.worker(worker).map(|w| w.processing().iter().cloned().collect()).unwrap_or_default();
        for key in believed {
            let attempt = match self.state.task_state(&key) {
                Some(TaskState::Processing { attempt, .. }) => *attempt,
                _ => continue,
            };
            if running.get(&key) != Some(&attempt) {
                self.reschedule(cx, &key);
            }
        }
        for (key, attempt) in running {
            let current = TaskState::Processing { worker: worker.clone(), attempt };
            match self.state.task_state(&key) {
                Some(state) if state == &current => {}
                Some(state) if self.lost_assignment(&key, state) && self.plausible_lost_attempt(attempt) => {
                    self.emit(cx, Event::TaskAssigned { key, worker: worker.clone(), attempt });
                }
                _ => cx.send_worker(worker, ToWorker::Cancel { key, attempt }),
            }
        }
    }

    /// The current attempt finished: the key is in memory, its wanters hear
    /// of it, its dependents may be ready, and inputs nobody needs any more
    /// are released. A report from any other attempt is ignored; if the
    /// worker now holds data the state does not track, it frees it.
    fn finished(
        &mut self,
        cx: &mut Cx,
        worker: &WorkerId,
        key: Key,
        attempt: Attempt,
        nbytes: u64,
        inline: Option<Vec<u8>>,
    ) {
        let current = TaskState::Processing { worker: worker.clone(), attempt };
        let Some(task) = self.state.task(&key) else {
            cx.free(worker, &key);
            return;
        };
        if task.state() != &current {
            let tracked = match task.state() {
                TaskState::Memory { who_has, .. } => who_has.contains(worker),
                TaskState::Processing { worker: w, .. } => w == worker,
                _ => false,
            };
            if !tracked {
                cx.free(worker, &key);
            }
            return;
        }
        let inline = inline.filter(|b| b.len() <= self.config.inline_bytes_max);
        self.emit(cx, Event::TaskFinished { key: key.clone(), worker: worker.clone(), attempt, nbytes, inline });
        if let Some(state) = self.final_update(&key) {
            self.notify(cx, &key, state);
        }
        let dependents = self.state.task(&key).map(|t| t.dependents().clone()).unwrap_or_default();
        cx.to_advance.extend(dependents);
        self.task_done(cx, &key);
    }

    /// The current attempt failed: retry while retries are left, else the
    /// task and its waiting dependents err. Other attempts are ignored.
    fn erred(&mut self, cx: &mut Cx, worker: &WorkerId, key: Key, attempt: Attempt, error: TaskError) {
        let current = TaskState::Processing { worker: worker.clone(), attempt };
        let Some(task) = self.state.task(&key) else { return };
        if task.state() != &current {
            return;
        }
        if task.retries_left() > 0 {
            self.emit(cx, Event::TaskRetried { key: key.clone() });
            cx.to_advance.insert(key);
        } else {
            // This task is where the failure started, whatever the report says.
            let error = TaskError { key: key.clone(), ..error };
            self.err_tasks(cx, &key, error);
        }
    }

    /// The worker is gone (goodbye or silence): its running tasks are
    /// rescheduled, its copies removed (lost results recomputed, lost
    /// scattered data reported), then the worker itself; what can run
    /// elsewhere is placed at the end of the decision.
    pub(crate) fn remove_worker(&mut self, cx: &mut Cx, worker: &WorkerId) {
        self.sessions.drop_worker(worker);
        let Some(record) = self.state.worker(worker) else { return };
        let processing: Vec<Key> = record.processing().iter().cloned().collect();
        let held: Vec<Key> = record.has_what().iter().cloned().collect();
        for key in &processing {
            if matches!(self.state.task_state(key), Some(TaskState::Processing { .. })) {
                self.reschedule(cx, key);
            }
        }
        for key in &held {
            self.replica_gone(cx, key, worker);
        }
        self.emit(cx, Event::WorkerRemoved { worker: worker.clone() });
        cx.rescan(Rescan::All);
    }
}
