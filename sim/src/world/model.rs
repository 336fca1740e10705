//! What the simulator knows independently of the cores, to check them:
//! every key's expected value, which wants the scheduler acknowledged,
//! which task attempts it handed out and has not taken back, and what the
//! durable log says the primitives held, in order.
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use reprise_proto::{
    Attempt, ClientId, Event, Holder, Key, LeaseOn, OpId, RequestId, StoredValue, TaskSpec, ToWorker, WorkerId,
};
use reprise_scheduler::core::Effect;

/// What a client asked of a primitive.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PrimReq {
    /// Take a lease, and give it back `hold_ms` after it is granted.
    Acquire {
        on: LeaseOn,
        max_leases: u64,
        hold_ms: u64,
    },
    /// Give a lease back.
    Release,
    VarSet {
        name: String,
        value: StoredValue,
    },
    VarDelete {
        name: String,
    },
    /// A get, sent when `floor` was the newest history index some client
    /// had been told of: it must see that value or a later one.
    VarGet {
        name: String,
        floor: usize,
    },
    /// A put; `bounded`: with a `maxsize`, so it may wait for room.
    QueuePut {
        name: String,
        value: StoredValue,
        bounded: bool,
    },
    /// A get (`batch`: a get_batch, which never waits).
    QueueGet {
        name: String,
        batch: bool,
    },
    QueueSize,
    EventSet {
        name: String,
    },
    EventWait {
        name: String,
    },
    /// Clear or is_set: nothing to check but an answer.
    EventOther,
    DsPublish {
        name: String,
        key: Key,
    },
    DsUnpublish {
        name: String,
    },
    DsGet {
        name: String,
        floor: usize,
    },
    /// A list, with the floor of each dataset name when it was sent.
    DsList {
        floors: Vec<(String, usize)>,
    },
}

/// A Variable's or a dataset's values as the durable log has them.
#[derive(Clone, Debug)]
pub(crate) struct Register {
    /// In log order; index 0 is the empty start, `None` a delete or unpublish.
    pub(crate) history: Vec<Option<StoredValue>>,
    /// The newest index some client was told of (an acknowledged change).
    pub(crate) floor: usize,
}

impl Default for Register {
    fn default() -> Self {
        Register { history: vec![None], floor: 0 }
    }
}

impl Register {
    /// Whether some entry from `floor` on satisfies `f`.
    pub(crate) fn since(&self, floor: usize, f: impl Fn(&Option<StoredValue>) -> bool) -> bool {
        self.history.iter().skip(floor).any(f)
    }

    pub(crate) fn last(&self) -> usize {
        self.history.len() - 1
    }
}

/// A plain queue item (unique in the run) and what became of it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Item {
    pub(crate) queue: String,
    /// Its put was answered `Done` (so it is durable).
    pub(crate) acked: bool,
    /// A durable `QueueTaken` removed it, for this request (`None`: a
    /// forced cancel dropped it).
    pub(crate) taken: bool,
    pub(crate) taken_by: Option<OpId>,
    /// The request it was handed to, once a client heard it.
    pub(crate) delivered: Option<OpId>,
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
    /// Variables and datasets by name, as the durable log has them.
    pub(crate) variables: BTreeMap<String, Register>,
    pub(crate) datasets: BTreeMap<String, Register>,
    /// The history index of each durable variable or dataset change.
    pub(crate) op_index: BTreeMap<OpId, usize>,
    /// Requests whose change (set, delete, put, take, publish, unpublish)
    /// is in the durable log.
    pub(crate) durable_ops: BTreeSet<OpId>,
    /// Plain queue items by value.
    pub(crate) items: BTreeMap<Vec<u8>, Item>,
    /// How many durable items of each queue are each future.
    pub(crate) queue_keys: BTreeMap<(String, Key), u32>,
    /// Futures a client was told a variable, queue or dataset holds, until
    /// a durable change lets go of them: the key must stay live and held.
    pub(crate) held: BTreeSet<(Holder, Key)>,
    /// Event waits the scheduler has in line (volatile, like its waiters).
    pub(crate) event_waiters: BTreeMap<String, BTreeSet<OpId>>,
    /// Numbers the plain values the workload stores.
    pub(crate) next_value: u64,
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
    /// leases given back or expired, primitives changed. `taken` is what a
    /// `QueueTaken` removed.
    pub(crate) fn observe_durable(&mut self, ev: &Event, taken: &[StoredValue]) {
        match ev {
            Event::VariableSet { name, value, op } => {
                let h = Holder::Variable(name.clone());
                self.held.retain(|(holder, k)| *holder != h || value.key() == Some(k));
                self.register_change(true, name, Some(value.clone()), Some(op));
            }
            Event::VariableDeleted { name, op } => {
                let h = Holder::Variable(name.clone());
                self.held.retain(|(holder, _)| *holder != h);
                self.register_change(true, name, None, op.as_ref());
            }
            Event::DatasetPublished { name, key, op } => {
                self.register_change(false, name, Some(StoredValue::Future(key.clone())), Some(op));
            }
            Event::DatasetUnpublished { name, op } => {
                let h = Holder::Dataset(name.clone());
                self.held.retain(|(holder, _)| *holder != h);
                self.register_change(false, name, None, op.as_ref());
            }
            Event::QueuePut { name, item, op } => {
                self.durable_ops.insert(op.clone());
                if let Some(key) = item.key() {
                    *self.queue_keys.entry((name.clone(), key.clone())).or_default() += 1;
                }
            }
            Event::QueueTaken { name, op, .. } => {
                if let Some(op) = op {
                    self.durable_ops.insert(op.clone());
                }
                for value in taken {
                    match value {
                        StoredValue::Inline(bytes) => {
                            if let Some(item) = self.items.get_mut(bytes) {
                                item.taken = true;
                                item.taken_by = op.clone();
                            }
                        }
                        StoredValue::Future(key) => {
                            let slot = (name.clone(), key.clone());
                            let n = self.queue_keys.get(&slot).copied().unwrap_or(0).saturating_sub(1);
                            if n == 0 {
                                self.queue_keys.remove(&slot);
                                self.held.remove(&(Holder::Queue(name.clone()), key.clone()));
                            } else {
                                self.queue_keys.insert(slot, n);
                            }
                        }
                    }
                }
            }
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

    /// A durable change of a variable (`variable`) or a dataset.
    fn register_change(&mut self, variable: bool, name: &str, value: Option<StoredValue>, op: Option<&OpId>) {
        let registers = if variable { &mut self.variables } else { &mut self.datasets };
        let reg = registers.entry(name.to_owned()).or_default();
        reg.history.push(value);
        let index = reg.last();
        if let Some(op) = op {
            self.op_index.insert(op.clone(), index);
            self.durable_ops.insert(op.clone());
        }
    }

    /// A client heard its change `op` of a variable or dataset acknowledged:
    /// later reads must see it (or what came after).
    pub(crate) fn acknowledged(&mut self, variable: bool, name: &str, op: &OpId) {
        let registers = if variable { &mut self.variables } else { &mut self.datasets };
        let reg = registers.entry(name.to_owned()).or_default();
        // A change that found nothing to change logged nothing: what the
        // log holds now is what the client was told of.
        let index = self.op_index.get(op).copied().unwrap_or(reg.last());
        reg.floor = reg.floor.max(index);
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
