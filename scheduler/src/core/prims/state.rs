//! The primitives' durable state: what replaying their events rebuilds.
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use reprise_proto::{ClientId, Key, OpId, RequestId, StoredValue};
use serde::{Deserialize, Serialize};

use crate::core::State;

/// How many completed requests per client are remembered, so that a resend
/// after a reconnect gets the first answer instead of acting twice. Older
/// ones are forgotten first (request ids grow).
pub const RECENT_OPS_PER_CLIENT_MAX: usize = 64;

/// How many removed clients' recent requests are still remembered: a client
/// removed while it was cut off comes back under the same id and resends
/// what it never heard answered. The longest-removed are forgotten first.
pub const REMOVED_CLIENTS_REMEMBERED: usize = 1_024;

/// One queue's items, oldest first, each with its number.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueState {
    pub(crate) items: VecDeque<(u64, StoredValue)>,
    /// The number the next item gets.
    pub(crate) next_item: u64,
}

impl QueueState {
    /// The items, oldest first.
    pub fn items(&self) -> impl Iterator<Item = &StoredValue> {
        self.items.iter().map(|(_, v)| v)
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Whether some item is the future `key`.
    pub fn holds_key(&self, key: &Key) -> bool {
        self.items.iter().any(|(_, v)| v.key() == Some(key))
    }
}

/// A semaphore: its bound, its live leases, and whether it was closed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SemaphoreState {
    pub(crate) max_leases: u64,
    pub(crate) leases: BTreeSet<OpId>,
    pub(crate) closed: bool,
}

impl SemaphoreState {
    pub fn max_leases(&self) -> u64 {
        self.max_leases
    }
    /// The live leases, each named by the request that took it.
    pub fn leases(&self) -> &BTreeSet<OpId> {
        &self.leases
    }
    pub fn is_closed(&self) -> bool {
        self.closed
    }
    pub(crate) fn has_room(&self) -> bool {
        !self.closed && (self.leases.len() as u64) < self.max_leases
    }
}

/// What a remembered request did, enough to answer its resend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Done {
    /// A set, delete, put, publish or unpublish.
    Changed,
    /// A take from a queue, with the values taken.
    Took(Vec<StoredValue>),
}

/// Every primitive, by kind and name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Primitives {
    pub(crate) variables: BTreeMap<String, StoredValue>,
    /// Non-empty queues only.
    pub(crate) queues: BTreeMap<String, QueueState>,
    /// Held locks and the lease holding each.
    pub(crate) locks: BTreeMap<String, OpId>,
    pub(crate) semaphores: BTreeMap<String, SemaphoreState>,
    /// The events that are set (a cleared event is simply absent).
    pub(crate) set_events: BTreeSet<String>,
    pub(crate) datasets: BTreeMap<String, Key>,
    /// Recently completed requests per client (see [`RECENT_OPS_PER_CLIENT_MAX`]),
    /// removed clients' included (see [`REMOVED_CLIENTS_REMEMBERED`]).
    pub(crate) recent: BTreeMap<ClientId, BTreeMap<RequestId, Done>>,
    /// Removed clients whose recent requests are kept, longest-removed first.
    #[serde(default)]
    pub(crate) removed: VecDeque<ClientId>,
}

impl Primitives {
    /// Every lease held by `client`, with what it is on.
    pub(crate) fn leases_of(&self, client: &ClientId) -> Vec<(reprise_proto::LeaseOn, OpId)> {
        use reprise_proto::LeaseOn;
        let locks = self.locks.iter().filter(|(_, l)| &l.client == client).map(|(n, l)| (LeaseOn::Lock(n.clone()), l.clone()));
        let sems = self.semaphores.iter().flat_map(|(n, s)| {
            s.leases.iter().filter(|l| &l.client == client).map(|l| (LeaseOn::Semaphore(n.clone()), l.clone()))
        });
        locks.chain(sems).collect()
    }

    /// What a lease is on, if it is live.
    pub(crate) fn lease_on(&self, lease: &OpId) -> Option<reprise_proto::LeaseOn> {
        use reprise_proto::LeaseOn;
        if let Some((name, _)) = self.locks.iter().find(|(_, l)| *l == lease) {
            return Some(LeaseOn::Lock(name.clone()));
        }
        self.semaphores.iter().find(|(_, s)| s.leases.contains(lease)).map(|(n, _)| LeaseOn::Semaphore(n.clone()))
    }

    /// Every live lease, with what it is on.
    pub(crate) fn all_leases(&self) -> impl Iterator<Item = (reprise_proto::LeaseOn, &OpId)> {
        use reprise_proto::LeaseOn;
        let locks = self.locks.iter().map(|(n, l)| (LeaseOn::Lock(n.clone()), l));
        let sems = self.semaphores.iter().flat_map(|(n, s)| s.leases.iter().map(move |l| (LeaseOn::Semaphore(n.clone()), l)));
        locks.chain(sems)
    }
}

/// Read access for tests and the simulator's invariants.
impl State {
    /// The lease holding the lock, if it is held.
    pub fn lock_holder(&self, name: &str) -> Option<&OpId> {
        self.prims.locks.get(name)
    }
    /// Every held lock and its lease.
    pub fn locks(&self) -> impl Iterator<Item = (&String, &OpId)> {
        self.prims.locks.iter()
    }
    pub fn semaphore(&self, name: &str) -> Option<&SemaphoreState> {
        self.prims.semaphores.get(name)
    }
    /// Every semaphore in use (closed ones included).
    pub fn semaphores(&self) -> impl Iterator<Item = (&String, &SemaphoreState)> {
        self.prims.semaphores.iter()
    }
    pub fn variable(&self, name: &str) -> Option<&StoredValue> {
        self.prims.variables.get(name)
    }
    pub fn variables(&self) -> impl Iterator<Item = (&String, &StoredValue)> {
        self.prims.variables.iter()
    }
    /// A non-empty queue.
    pub fn queue(&self, name: &str) -> Option<&QueueState> {
        self.prims.queues.get(name)
    }
    /// Every non-empty queue.
    pub fn queues(&self) -> impl Iterator<Item = (&String, &QueueState)> {
        self.prims.queues.iter()
    }
    pub fn event_is_set(&self, name: &str) -> bool {
        self.prims.set_events.contains(name)
    }
    /// Every event that is set.
    pub fn set_events(&self) -> impl Iterator<Item = &String> {
        self.prims.set_events.iter()
    }
    pub fn dataset(&self, name: &str) -> Option<&Key> {
        self.prims.datasets.get(name)
    }
    pub fn datasets(&self) -> impl Iterator<Item = (&String, &Key)> {
        self.prims.datasets.iter()
    }
    /// What the request did, if it completed recently (see [`Done`]).
    pub fn recent_op(&self, op: &OpId) -> Option<&Done> {
        self.prims.recent.get(&op.client)?.get(&op.req)
    }
}
