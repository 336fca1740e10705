//! What the simulator knows independently of the cores, to check them:
//! every key's expected value, which wants the scheduler acknowledged, and
//! which task attempts it handed out and has not taken back.
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use reprise_proto::{Attempt, ClientId, Event, Key, LeaseOn, OpId, RequestId, TaskSpec, ToWorker, WorkerId};
use reprise_scheduler::core::Effect;

/// What a client asked of a primitive.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PrimReq {
    /// Take a lease, and give it back `hold_ms` after it is granted.
    Acquire { on: LeaseOn, max_leases: u64, hold_ms: u64 },
    /// Give a lease back.
    Release,
}

#[derive(Debug, Default)]
pub(crate) struct Model {
    /// The value each key must have, wherever it shows up.
    pub(crate) expected: BTreeMap<Key, Bytes>,
    /// The spec of every task the workload created, for sharing.
    pub(crate) specs: BTreeMap<Key, TaskSpec>,
    /// How many times each task started running, over all workers.
    pub(crate) executions: BTreeMap<Key, u32>,
    /// (client, key) pairs the scheduler told the client were durable
    /// (`Acked` while wanting the key), until a durable `ClientReleased`
    /// or `ClientRemoved` lets go of them.
    pub(crate) ledger: BTreeSet<(ClientId, Key)>,
    /// Attempts sent to workers that the scheduler has neither cancelled
    /// nor taken back by declaring their worker dead.
    pub(crate) assignments: BTreeMap<Key, BTreeSet<(WorkerId, Attempt)>>,
    pub(crate) next_task: u64,
    pub(crate) next_scatter: u64,
    /// Every primitive request of the run, by client and request id.
    pub(crate) prim_requests: BTreeMap<(ClientId, RequestId), PrimReq>,
    /// The lease each client was told holds a lock, until a durable release
    /// or expiry of it.
    pub(crate) lock_grants: BTreeMap<String, OpId>,
    /// The same for semaphore leases.
    pub(crate) sem_grants: BTreeMap<String, BTreeSet<OpId>>,
    /// When the scheduler last heard from each client (a restart counts as
    /// hearing from every client it knows).
    pub(crate) last_heard: BTreeMap<ClientId, u64>,
}

impl Model {
    /// A decision as the scheduler takes it: attempts it takes back, by
    /// cancelling them (even if the `Cancel` is then lost with a crash or a
    /// connection: the attempt is fenced off all the same) or by declaring
    /// their worker dead.
    pub(crate) fn observe_decision(&mut self, events: &[Event], effects: &[Effect]) {
        for effect in effects {
            if let Effect::ToWorker { worker, msg: ToWorker::Cancel { key, attempt } } = effect {
                self.revoke(key, worker, *attempt);
            }
        }
        for ev in events {
            match ev {
                Event::WorkerRemoved { worker } => {
                    for set in self.assignments.values_mut() {
                        set.retain(|(w, _)| w != worker);
                    }
                }
                // Its worker left, or came back without it.
                Event::TaskRescheduled { key } => {
                    self.assignments.remove(key);
                }
                _ => {}
            }
        }
    }

    /// Events as they become durable: acknowledged wants released, granted
    /// leases given back or expired.
    pub(crate) fn observe_durable(&mut self, ev: &Event) {
        match ev {
            Event::ClientReleased { client, key } => {
                self.ledger.remove(&(client.clone(), key.clone()));
            }
            Event::ClientRemoved { client } => self.ledger.retain(|(c, _)| c != client),
            Event::LockReleased { lock, lease } | Event::LeaseExpired { on: LeaseOn::Lock(lock), lease }
                if self.lock_grants.get(lock) == Some(lease) =>
            {
                self.lock_grants.remove(lock);
            }
            Event::LeaseReleased { semaphore, lease }
            | Event::LeaseExpired { on: LeaseOn::Semaphore(semaphore), lease } => {
                if let Some(leases) = self.sem_grants.get_mut(semaphore) {
                    leases.remove(lease);
                }
            }
            Event::SemaphoreClosed { semaphore } => {
                self.sem_grants.remove(semaphore);
            }
            _ => {}
        }
    }

    pub(crate) fn assign(&mut self, key: &Key, worker: &WorkerId, attempt: Attempt) {
        self.assignments.entry(key.clone()).or_default().insert((worker.clone(), attempt));
    }

    pub(crate) fn revoke(&mut self, key: &Key, worker: &WorkerId, attempt: Attempt) {
        if let Some(set) = self.assignments.get_mut(key) {
            set.remove(&(worker.clone(), attempt));
            if set.is_empty() {
                self.assignments.remove(key);
            }
        }
    }
}
