//! Cross-checks of the primitives' state and of the waiters against it.
use reprise_proto::{Holder, StoredValue};

use super::waiters::WaitOn;
use crate::core::scheduler::Scheduler;
use crate::core::State;

fn ensure(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(message())
    }
}

impl State {
    /// A lock has one holder and a semaphore at most `max_leases` live
    /// leases, all of known clients; every future a primitive refers to is
    /// live and held by it, and every such holder is justified.
    pub(crate) fn check_primitives(&self) -> Result<(), String> {
        let p = &self.prims;
        for (name, lease) in &p.locks {
            ensure(self.clients.contains_key(&lease.client), || format!("lock {name} held by unknown client {}", lease.client))?;
        }
        for (name, s) in &p.semaphores {
            ensure(s.max_leases >= 1, || format!("semaphore {name} allows no lease"))?;
            ensure(s.leases.len() as u64 <= s.max_leases, || {
                format!("semaphore {name} has {} leases, over its {}", s.leases.len(), s.max_leases)
            })?;
            ensure(!s.closed || s.leases.is_empty(), || format!("closed semaphore {name} has leases"))?;
            for lease in &s.leases {
                ensure(self.clients.contains_key(&lease.client), || format!("semaphore {name}: lease of unknown client {}", lease.client))?;
            }
        }
        for client in p.recent.keys() {
            let kept = self.clients.contains_key(client) || p.removed.contains(client);
            ensure(kept, || format!("recent requests of client {client}, neither known nor recently removed"))?;
        }
        let n_removed = p.removed.len();
        ensure(n_removed <= super::state::REMOVED_CLIENTS_REMEMBERED, || format!("{n_removed} removed clients remembered"))?;
        let held = |holder: Holder, value: &StoredValue| match value.key() {
            Some(key) => ensure(self.tasks.get(key).is_some_and(|t| t.holders.contains(&holder)), || {
                format!("{holder:?} refers to {key}, which is not live or not held by it")
            }),
            None => Ok(()),
        };
        for (name, value) in &p.variables {
            held(Holder::Variable(name.clone()), value)?;
        }
        for (name, queue) in &p.queues {
            ensure(!queue.items.is_empty(), || format!("queue {name} is kept although empty"))?;
            let increasing = queue.items.iter().zip(queue.items.iter().skip(1)).all(|((a, _), (b, _))| a < b);
            ensure(increasing, || format!("queue {name}: items out of order"))?;
            for (n, value) in &queue.items {
                ensure(*n < queue.next_item, || format!("queue {name}: item number from the future"))?;
                held(Holder::Queue(name.clone()), value)?;
            }
        }
        for (name, key) in &p.datasets {
            held(Holder::Dataset(name.clone()), &StoredValue::Future(key.clone()))?;
        }
        for (key, task) in &self.tasks {
            for holder in &task.holders {
                let justified = match holder {
                    Holder::FireAndForget => true,
                    Holder::Variable(name) => p.variables.get(name).and_then(StoredValue::key) == Some(key),
                    Holder::Queue(name) => p.queues.get(name).is_some_and(|q| q.holds_key(key)),
                    Holder::Dataset(name) => p.datasets.get(name) == Some(key),
                };
                ensure(justified, || format!("{key} is held by {holder:?}, which does not refer to it"))?;
            }
        }
        Ok(())
    }
}

impl Scheduler {
    /// Waiters are of known clients, and each waits on something that
    /// really makes it wait: nobody is left in line who could be served.
    pub(crate) fn check_waiters(&self) -> Result<(), String> {
        self.waiters.check()?;
        let state = &self.state;
        for (on, line) in self.waiters.lines() {
            for op in line {
                ensure(state.has_client(&op.client), || format!("waiter of unknown client {}", op.client))?;
            }
            let blocked = match on {
                WaitOn::Lock(name) => state.lock_holder(name).is_some(),
                WaitOn::Semaphore(name) => state.semaphore(name).is_some_and(|s| !s.is_closed() && !s.has_room()),
                WaitOn::Event(name) => !state.event_is_set(name),
                WaitOn::Variable(name) => state.variable(name).is_none(),
                WaitOn::QueueGet(name) => state.queue(name).is_none(),
                WaitOn::QueuePut(name) => match self.waiters.front(on) {
                    Some((_, w)) => match &w.payload {
                        super::waiters::Payload::Put { maxsize, .. } => {
                            *maxsize > 0 && state.queue(name).map_or(0, |q| q.len() as u64) >= *maxsize
                        }
                        super::waiters::Payload::Nothing => false,
                    },
                    None => true,
                },
            };
            ensure(blocked, || format!("{} waiter(s) on {on:?} could be served", line.len()))?;
        }
        Ok(())
    }
}
