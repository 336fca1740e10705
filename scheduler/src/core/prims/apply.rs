//! `State::apply` for the primitives' events. Like the rest of `apply`, an
//! event that does not fit the state changes nothing and returns `false`.
use reprise_proto::{ClientId, Event, Key, LeaseOn, OpId, StoredValue};

use super::state::{Done, QueueState, SemaphoreState, RECENT_OPS_PER_CLIENT_MAX, REMOVED_CLIENTS_REMEMBERED};
use crate::core::State;

impl State {
    /// Apply a primitive event; `false` when it does not fit (or is not one).
    pub(crate) fn apply_primitive(&mut self, event: &Event) -> bool {
        match event {
            Event::VariableSet { name, value, op } => {
                self.prims.variables.insert(name.clone(), value.clone());
                self.remember(op, Done::Changed);
                true
            }
            Event::VariableDeleted { name, op } => {
                let changed = self.prims.variables.remove(name).is_some();
                if let (true, Some(op)) = (changed, op) {
                    self.remember(op, Done::Changed);
                }
                changed
            }
            Event::QueuePut { name, item, op } => {
                let queue = self.prims.queues.entry(name.clone()).or_default();
                queue.items.push_back((queue.next_item, item.clone()));
                queue.next_item = queue.next_item.saturating_add(1);
                self.remember(op, Done::Changed);
                true
            }
            Event::QueueTaken { name, items, op } => self.take_items(name, items, op.as_ref()),
            Event::LockAcquired { lock, lease } => {
                if self.prims.locks.contains_key(lock) || !self.clients.contains_key(&lease.client) {
                    return false;
                }
                self.prims.locks.insert(lock.clone(), lease.clone());
                true
            }
            Event::LockReleased { lock, lease } => self.release_lock(lock, lease),
            Event::SemaphoreCreated { semaphore, max_leases } => {
                if self.prims.semaphores.contains_key(semaphore) || *max_leases == 0 {
                    return false;
                }
                let state = SemaphoreState { max_leases: *max_leases, leases: Default::default(), closed: false };
                self.prims.semaphores.insert(semaphore.clone(), state);
                true
            }
            Event::LeaseGranted { semaphore, lease } => {
                let known = self.clients.contains_key(&lease.client);
                match self.prims.semaphores.get_mut(semaphore) {
                    Some(s) if known && s.has_room() => s.leases.insert(lease.clone()),
                    _ => false,
                }
            }
            Event::LeaseReleased { semaphore, lease } => self.release_lease(semaphore, lease),
            Event::LeaseExpired { on: LeaseOn::Lock(lock), lease } => self.release_lock(lock, lease),
            Event::LeaseExpired { on: LeaseOn::Semaphore(semaphore), lease } => self.release_lease(semaphore, lease),
            Event::SemaphoreClosed { semaphore } => match self.prims.semaphores.get_mut(semaphore) {
                Some(s) if !s.closed => {
                    s.closed = true;
                    s.leases.clear();
                    true
                }
                _ => false,
            },
            Event::EventSet { name } => self.prims.set_events.insert(name.clone()),
            Event::EventCleared { name } => self.prims.set_events.remove(name),
            Event::DatasetPublished { name, key, op } => {
                if self.prims.datasets.contains_key(name) {
                    return false;
                }
                self.prims.datasets.insert(name.clone(), key.clone());
                self.remember(op, Done::Changed);
                true
            }
            Event::DatasetUnpublished { name, op } => {
                let changed = self.prims.datasets.remove(name).is_some();
                if let (true, Some(op)) = (changed, op) {
                    self.remember(op, Done::Changed);
                }
                changed
            }
            _ => false,
        }
    }

    /// A client left: drop whatever leases it still held (the core releases
    /// them with events first). What it did recently is kept for a while:
    /// a client removed while it was cut off comes back under the same id
    /// and resends what it never heard answered, which must not act twice.
    pub(crate) fn primitives_client_removed(&mut self, client: &ClientId) {
        let removed = &mut self.prims.removed;
        removed.retain(|c| c != client);
        if self.prims.recent.contains_key(client) {
            removed.push_back(client.clone());
        }
        while removed.len() > REMOVED_CLIENTS_REMEMBERED {
            if let Some(old) = removed.pop_front() {
                // One that came back keeps its requests as a known client.
                if !self.clients.contains_key(&old) {
                    self.prims.recent.remove(&old);
                }
            }
        }
        self.prims.locks.retain(|_, lease| &lease.client != client);
        for s in self.prims.semaphores.values_mut() {
            s.leases.retain(|lease| &lease.client != client);
        }
    }

    /// Remove the numbered items; all of them must be in the queue.
    fn take_items(&mut self, name: &str, items: &[u64], op: Option<&OpId>) -> bool {
        let Some(queue) = self.prims.queues.get_mut(name) else { return false };
        if items.is_empty() || !items.iter().all(|n| queue.items.iter().any(|(m, _)| m == n)) {
            return false;
        }
        let mut taken: Vec<StoredValue> = Vec::with_capacity(items.len());
        for n in items {
            if let Some(pos) = queue.items.iter().position(|(m, _)| m == n) {
                if let Some((_, value)) = queue.items.remove(pos) {
                    taken.push(value);
                }
            }
        }
        if queue.items.is_empty() {
            // An empty queue leaves no trace; its numbering starts over.
            self.prims.queues.remove(name);
        }
        if let Some(op) = op {
            self.remember(op, Done::Took(taken));
        }
        true
    }

    fn release_lock(&mut self, lock: &str, lease: &OpId) -> bool {
        if self.prims.locks.get(lock) != Some(lease) {
            return false;
        }
        self.prims.locks.remove(lock);
        true
    }

    fn release_lease(&mut self, semaphore: &str, lease: &OpId) -> bool {
        self.prims.semaphores.get_mut(semaphore).is_some_and(|s| s.leases.remove(lease))
    }

    /// Remember a completed request of a known client, forgetting its oldest.
    fn remember(&mut self, op: &OpId, done: Done) {
        if !self.clients.contains_key(&op.client) {
            return;
        }
        let recent = self.prims.recent.entry(op.client.clone()).or_default();
        recent.insert(op.req, done);
        while recent.len() > RECENT_OPS_PER_CLIENT_MAX {
            recent.pop_first();
        }
    }
}

/// Whether `value` is the future `key`.
pub(crate) fn is_key(value: &StoredValue, key: &Key) -> bool {
    value.key() == Some(key)
}

impl QueueState {
    /// The numbers of the first `n` items.
    pub(crate) fn first_numbers(&self, n: usize) -> Vec<u64> {
        self.items.iter().take(n).map(|(m, _)| *m).collect()
    }
    /// The numbers of the items that are the future `key`.
    pub(crate) fn numbers_of_key(&self, key: &Key) -> Vec<u64> {
        self.items.iter().filter(|(_, v)| is_key(v, key)).map(|(m, _)| *m).collect()
    }
}
