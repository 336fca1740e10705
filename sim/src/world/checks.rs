//! The cross-node checks run around the scheduler node: what it tells
//! clients (acks, lease grants) against its durable log, what it decides
//! (expiries, reassignments) against what the simulator saw, and what a
//! re-registration does with the results a worker reports.
use std::collections::BTreeMap;

use reprise_proto::{
    ClientId, ClientMsg, Event, Holder, Key, LeaseOn, OpId, PrimitiveOp, PrimitiveResult, RequestId, StoredValue,
    ToClient, WorkerId, WorkerMsg,
};
use reprise_scheduler::core::{Decision, Effect, Input, State, TaskState};

use super::model::{PrimReq, Register};
use super::World;
use crate::invariants::{ensure, Invariant, Violation};

/// Keys a registering worker reports holding that the state has running
/// on it or in memory there: the registration must keep them.
pub(super) fn held_expectations(state: &State, input: &Input) -> Vec<(WorkerId, Key)> {
    let Input::Worker { worker, msg: WorkerMsg::Register { held, .. } } = input else { return Vec::new() };
    held.iter()
        .filter(|(k, _)| match state.task_state(k) {
            Some(TaskState::Processing { worker: w, .. }) => w == worker,
            Some(TaskState::Memory { who_has, .. }) => who_has.contains(worker),
            _ => false,
        })
        .map(|(k, _)| (worker.clone(), k.clone()))
        .collect()
}

/// A registration kept the results `held_expectations` listed.
pub(super) fn check_held(state: &State, expectations: Vec<(WorkerId, Key)>) -> Result<(), Violation> {
    for (worker, key) in expectations {
        // In memory, or dropped (released, forgotten) because nothing needs
        // it any more, is fine; going back to be computed again is not.
        let recomputed = state.task_state(&key).is_some_and(TaskState::is_pending);
        let name = state.task_state(&key).map_or("gone", |s| s.name());
        ensure(Invariant::HeldResultKept, !recomputed, || {
            format!("{worker} registered again holding {key}, but the scheduler made it {name} to compute it again")
        })?;
    }
    Ok(())
}

/// An event request of a known client: the event's name, the request, and
/// whether it is a wait (else a set).
pub(super) fn event_request(state: &State, input: &Input) -> Option<(String, OpId, bool)> {
    let Input::Client { client, msg: ClientMsg::Primitive { req, op } } = input else { return None };
    let (name, wait) = match op {
        PrimitiveOp::EventWait { name, .. } => (name, true),
        PrimitiveOp::EventSet { name } => (name, false),
        _ => return None,
    };
    state.has_client(client).then(|| (name.clone(), OpId { client: client.clone(), req: *req }, wait))
}

/// The requests a decision answers.
fn answered(decision: &Decision) -> impl Iterator<Item = OpId> + '_ {
    decision.effects.iter().filter_map(|e| match e {
        Effect::ToClient { client, msg: ToClient::PrimitiveReply { req, .. } } => {
            Some(OpId { client: client.clone(), req: *req })
        }
        _ => None,
    })
}

impl World<'_> {
    /// Event waits the scheduler keeps in line are followed; a set must
    /// answer every one in line for its event.
    pub(super) fn check_event_wake(
        &mut self,
        request: Option<(String, OpId, bool)>,
        decision: &Decision,
    ) -> Result<(), Violation> {
        let waiters = &mut self.model.event_waiters;
        if request.is_none() && waiters.is_empty() {
            return Ok(());
        }
        for op in answered(decision) {
            for line in waiters.values_mut() {
                line.remove(&op);
            }
        }
        for ev in &decision.events {
            if let Event::ClientRemoved { client } = ev {
                for line in waiters.values_mut() {
                    line.retain(|op| &op.client != client);
                }
            }
        }
        match request {
            Some((name, op, true)) if !answered(decision).any(|a| a == op) => {
                waiters.entry(name).or_default().insert(op);
            }
            Some((name, op, false)) => {
                let left: Vec<String> = waiters
                    .get(&name)
                    .map(|line| line.iter().map(|w| format!("{}#{}", w.client, w.req.0)).collect())
                    .unwrap_or_default();
                ensure(Invariant::EventWake, left.is_empty(), || {
                    format!(
                        "{}#{} set event {name}, but the waits [{}] in line for it were not answered",
                        op.client,
                        op.req.0,
                        left.join(", ")
                    )
                })?;
            }
            _ => {}
        }
        waiters.retain(|_, line| !line.is_empty());
        Ok(())
    }

    /// The scheduler answers request `req` of `client`: a change it reports
    /// done (or items it hands out) must be in the durable log, and a future
    /// it reports a primitive holds enters the ledger of held keys.
    pub(super) fn record_prim_reply(
        &mut self,
        client: &ClientId,
        req: RequestId,
        result: &PrimitiveResult,
    ) -> Result<(), Violation> {
        if *result == PrimitiveResult::Granted {
            return self.record_grant(client, req);
        }
        let Some(request) = self.model.prim_requests.get(&(client.clone(), req)).cloned() else { return Ok(()) };
        let op = OpId { client: client.clone(), req };
        let m = &mut self.model;
        // Whether the durable log has `value` as the register's latest value.
        let latest = |reg: Option<&Register>, value: &StoredValue| {
            reg.and_then(|r| r.history.last()).is_some_and(|v| v.as_ref() == Some(value))
        };
        let mut held = None;
        let must_be_logged = match (&request, result) {
            (PrimReq::VarSet { name, value }, PrimitiveResult::Done) => {
                if let Some(key) = value.key().filter(|_| latest(m.variables.get(name), value)) {
                    held = Some((Holder::Variable(name.clone()), key.clone()));
                }
                true
            }
            (PrimReq::QueuePut { name, value, .. }, PrimitiveResult::Done) => {
                match value {
                    StoredValue::Inline(bytes) => {
                        if let Some(item) = m.items.get_mut(bytes) {
                            item.acked = true;
                        }
                    }
                    StoredValue::Future(key) => {
                        if m.queue_keys.contains_key(&(name.clone(), key.clone())) {
                            held = Some((Holder::Queue(name.clone()), key.clone()));
                        }
                    }
                }
                true
            }
            (PrimReq::QueueGet { .. }, PrimitiveResult::Values(values)) => !values.is_empty(),
            (PrimReq::DsPublish { name, key }, PrimitiveResult::Done) => {
                let published = latest(m.datasets.get(name), &StoredValue::Future(key.clone()));
                if published {
                    held = Some((Holder::Dataset(name.clone()), key.clone()));
                }
                // Publishing the future already published logs nothing.
                !published
            }
            (PrimReq::DsUnpublish { .. }, PrimitiveResult::Done) => true,
            _ => false,
        };
        let logged = m.durable_ops.contains(&op);
        ensure(Invariant::AckedDurable, logged || !must_be_logged, || {
            format!("{client}#{} is answered {result:?} to {request:?}, but the durable log has no such change", req.0)
        })?;
        if let Some(entry) = held {
            m.held.insert(entry);
            self.check_ledger(Invariant::ReferencedKept, "the durable state")?;
        }
        Ok(())
    }

    /// Every acknowledged plain queue item not durably taken is in its
    /// queue once, and every durably taken one in none.
    pub(super) fn check_queues(&self, what: &str) -> Result<(), Violation> {
        if self.model.items.is_empty() {
            return Ok(());
        }
        let mut present: BTreeMap<&[u8], Vec<&str>> = BTreeMap::new();
        for (name, queue) in self.sched.replica.queues() {
            for value in queue.items() {
                if let StoredValue::Inline(bytes) = value {
                    present.entry(bytes.as_slice()).or_default().push(name.as_str());
                }
            }
        }
        for (bytes, item) in &self.model.items {
            let queues = present.get(bytes.as_slice()).cloned().unwrap_or_default();
            let text = || String::from_utf8_lossy(bytes).into_owned();
            let (ok, problem) = if item.taken {
                (queues.is_empty(), "was taken durably, yet is back")
            } else if item.acked {
                (queues == [item.queue.as_str()], "was acknowledged as put, and is not there exactly once")
            } else {
                (queues.iter().all(|q| *q == item.queue) && queues.len() <= 1, "is there more than once")
            };
            ensure(Invariant::QueueExactlyOnce, ok, || {
                format!("item {} of queue {} {problem} in {what} (found in {queues:?})", text(), item.queue)
            })?;
        }
        Ok(())
    }

    /// A lease expires only after its client was silent longer than the
    /// lease timeout.
    pub(super) fn check_lease_expiry(&mut self, events: &[Event]) -> Result<(), Violation> {
        for ev in events {
            if let Event::LeaseExpired { on, lease } = ev {
                self.stats.leases_expired += 1;
                let heard = self.model.last_heard.get(&lease.client).copied();
                let silent_ms = heard.map(|h| self.now.saturating_sub(h));
                let timeout_ms = u64::from(self.params.lease_timeout_ms);
                ensure(Invariant::LeaseExpiry, silent_ms.is_some_and(|s| s > timeout_ms), || {
                    format!(
                        "the lease of {}#{} on {on:?} expired after {silent_ms:?} ms of silence; the timeout is {timeout_ms} ms",
                        lease.client, lease.req.0
                    )
                })?;
            }
        }
        Ok(())
    }
    /// What the sim checks of the scheduler's state beyond its own checks:
    /// running tasks have their inputs in memory, inline values are right.
    pub(super) fn check_sched_state(&self, state: &State) -> Result<(), Violation> {
        for (key, task) in state.tasks() {
            match task.state() {
                TaskState::Processing { worker, .. } => {
                    for dep in task.deps() {
                        let in_memory = state.task_state(dep).is_some_and(TaskState::is_memory);
                        ensure(Invariant::LegalInputs, in_memory, || {
                            format!("{key} is processing on {worker} but its input {dep} is not in memory")
                        })?;
                    }
                }
                TaskState::Memory { inline: Some(bytes), .. } => {
                    let right = self.model.expected.get(key).is_some_and(|e| e.as_ref() == bytes.as_slice());
                    ensure(Invariant::CorrectValues, right, || {
                        format!("the scheduler's inline copy of {key} is wrong")
                    })?;
                }
                _ => {}
            }
        }
        Ok(())
    }
    /// Every acknowledged want that was not released is in the replica.
    pub(super) fn check_ledger(&self, invariant: Invariant, what: &str) -> Result<(), Violation> {
        for (client, key) in &self.model.ledger {
            let wanted = self.sched.replica.task(key).is_some_and(|t| t.wanted_by().contains(client));
            ensure(invariant, wanted, || {
                let state = self.sched.replica.task_state(key).map_or("gone", |s| s.name());
                format!("{client} was told {key} is durable and never released it, but in {what} it is {state} and not wanted by {client}")
            })?;
        }
        for (holder, key) in &self.model.held {
            let held = self.sched.replica.task(key).is_some_and(|t| t.holders().contains(holder));
            ensure(invariant, held, || {
                let state = self.sched.replica.task_state(key).map_or("gone", |s| s.name());
                format!("a client was told {holder:?} holds {key}, and nothing logged let go of it, but in {what} it is {state} and not held by it")
            })?;
        }
        Ok(())
    }
    /// The client hears these keys are durable: each one the scheduler has
    /// it wanting goes in the ledger, and must be in the durable state.
    pub(super) fn record_acks(&mut self, client: &ClientId, keys: &[Key]) -> Result<(), Violation> {
        let Some(core) = self.sched.core.as_ref() else { return Ok(()) };
        for key in keys {
            if core.state().task(key).is_some_and(|t| t.wanted_by().contains(client)) {
                self.model.ledger.insert((client.clone(), key.clone()));
            }
        }
        self.check_ledger(Invariant::AckedDurable, "the durable log")
    }
    /// The client hears its request `req` holds a lease: no other lease may
    /// hold the lock, nor more than `max_leases` the semaphore, unless
    /// released or expired durably.
    pub(super) fn record_grant(&mut self, client: &ClientId, req: RequestId) -> Result<(), Violation> {
        let request = self.model.prim_requests.get(&(client.clone(), req)).cloned();
        let Some(PrimReq::Acquire { on, max_leases, .. }) = request else { return Ok(()) };
        let Some(core) = self.sched.core.as_ref() else { return Ok(()) };
        let me = OpId { client: client.clone(), req };
        match on {
            LeaseOn::Lock(name) => {
                // Released again within the same batch: nobody holds it now.
                if core.state().lock_holder(&name) != Some(&me) {
                    return Ok(());
                }
                if let Some(other) = self.model.lock_grants.get(&name).filter(|o| **o != me) {
                    return Err(Violation::new(
                        Invariant::LockSingleHolder,
                        format!(
                            "{client}#{} is told it holds lock {name} while {}#{} holds it, neither released nor expired",
                            req.0, other.client, other.req.0
                        ),
                    ));
                }
                self.model.lock_grants.insert(name, me);
                self.stats.leases_granted += 1;
            }
            LeaseOn::Semaphore(name) => {
                if !core.state().semaphore(&name).is_some_and(|s| s.leases().contains(&me)) {
                    return Ok(());
                }
                let leases = self.model.sem_grants.entry(name.clone()).or_default();
                leases.insert(me);
                let n = leases.len() as u64;
                self.stats.leases_granted += 1;
                ensure(Invariant::LeaseBound, n <= max_leases, || {
                    format!("semaphore {name} has {n} leases granted and live, over its {max_leases}")
                })?;
            }
        }
        Ok(())
    }
    /// Before `attempt` of `key` goes to `worker`: no other live worker may
    /// still run an attempt the scheduler neither cancelled nor took back.
    pub(super) fn check_single_runner(
        &self,
        worker: &WorkerId,
        key: &Key,
        attempt: reprise_proto::Attempt,
    ) -> Result<(), Violation> {
        let Some(others) = self.model.assignments.get(key) else { return Ok(()) };
        for (w, a) in others {
            if w == worker {
                continue;
            }
            let still_running = self
                .workers
                .iter()
                .find(|n| &n.id == w)
                .and_then(|n| n.core.as_ref())
                .is_some_and(|core| core.running().contains(&(key.clone(), *a)));
            ensure(Invariant::SingleRunner, !still_running, || {
                format!("{key} goes to {worker} as attempt {} while {w} still runs attempt {}, which the scheduler neither cancelled nor took back by declaring {w} dead", attempt.0, a.0)
            })?;
        }
        Ok(())
    }
}
