//! What time, departures and cancels do to the primitives: waiters time
//! out, leases expire, a leaving client's leases and waiters go, and a
//! force-cancelled future leaves the primitives that held it.
use reprise_proto::{ClientId, Event, Holder, Key, LeaseOn, OpId, PrimitiveResult, StoredValue};

use super::waiters::WaitOn;
use crate::core::scheduler::{Cx, Scheduler};
use crate::core::Millis;

impl Scheduler {
    /// Time out the waiters whose deadline passed, then expire the leases
    /// of clients silent for longer than the lease timeout (and grant what
    /// they held to whoever is next in line).
    pub(crate) fn expire_primitives(&mut self, cx: &mut Cx, now: Millis) {
        for op in self.waiters.due(now) {
            if let Some(waiting) = self.waiters.remove(&op) {
                let result = match waiting.on {
                    WaitOn::Event(_) => PrimitiveResult::Bool(false),
                    _ => PrimitiveResult::Timeout,
                };
                self.time_out(cx, &op, result);
                self.waiter_left(cx, &waiting.on);
            }
        }
        let expired: Vec<(LeaseOn, OpId)> = self
            .state
            .prims
            .all_leases()
            .filter(|(_, lease)| self.lease_deadline(lease).is_some_and(|d| d <= now))
            .map(|(on, lease)| (on, lease.clone()))
            .collect();
        for (on, lease) in expired {
            self.emit(cx, Event::LeaseExpired { on: on.clone(), lease });
            match on {
                LeaseOn::Lock(name) => self.grant_lock(cx, &name),
                LeaseOn::Semaphore(name) => self.grant_semaphore(cx, &name),
            }
        }
    }

    /// When the lease expires: one lease timeout after its client was last
    /// heard from (every known client counts as heard from at a restart).
    fn lease_deadline(&self, lease: &OpId) -> Option<Millis> {
        let seen = self.sessions.client_seen.get(&lease.client)?;
        // Planted for the simulator (sim/README.md): expires one tick early.
        #[cfg(feature = "planted-lease-expiry-off-by-one")]
        return Some(seen.saturating_add(self.config.lease_timeout_ms));
        #[cfg(not(feature = "planted-lease-expiry-off-by-one"))]
        Some(seen.saturating_add(self.config.lease_timeout_ms).saturating_add(1))
    }

    /// The first waiter deadline or lease expiry, if any.
    pub(crate) fn primitives_next_deadline(&self) -> Option<Millis> {
        let leases = self.state.prims.all_leases().filter_map(|(_, lease)| self.lease_deadline(lease)).min();
        [self.waiters.next_deadline(), leases].into_iter().flatten().min()
    }

    /// A client leaves: its waiters are dropped unanswered and its leases
    /// released at once, for the next in line.
    pub(crate) fn remove_client_primitives(&mut self, cx: &mut Cx, client: &ClientId) {
        for op in self.waiters.of_client(client) {
            if let Some(waiting) = self.waiters.remove(&op) {
                self.waiter_left(cx, &waiting.on);
            }
        }
        for (on, lease) in self.state.prims.leases_of(client) {
            match on {
                LeaseOn::Lock(name) => self.lock_release(cx, &name, &lease),
                LeaseOn::Semaphore(name) => self.semaphore_release(cx, &name, &lease),
            }
        }
    }

    /// Nobody waits for request `op` any more: drop it from its line, or
    /// give back the lease it was granted.
    pub(super) fn abandon(&mut self, cx: &mut Cx, op: &OpId) {
        if let Some(waiting) = self.waiters.remove(op) {
            self.waiter_left(cx, &waiting.on);
            return;
        }
        match self.state.prims.lease_on(op) {
            Some(LeaseOn::Lock(name)) => self.lock_release(cx, &name, op),
            Some(LeaseOn::Semaphore(name)) => self.semaphore_release(cx, &name, op),
            None => {}
        }
    }

    /// A waiter left its line unserved. Only a blocked put can unblock the
    /// ones behind it: each carries its own `maxsize`, so the next may fit.
    fn waiter_left(&mut self, cx: &mut Cx, on: &WaitOn) {
        if let WaitOn::QueuePut(name) = on {
            self.serve_queue(cx, name);
        }
    }

    /// A forced cancel takes `key` away: the variables and datasets naming
    /// it are emptied and its queue items dropped. The caller removes the
    /// holders themselves.
    pub(crate) fn purge_primitive_refs(&mut self, cx: &mut Cx, key: &Key) {
        let Some(task) = self.state.task(key) else { return };
        let holders: Vec<Holder> = task.holders().iter().cloned().collect();
        for holder in holders {
            match holder {
                Holder::Variable(name) => {
                    if self.state.variable(&name).and_then(StoredValue::key) == Some(key) {
                        self.emit(cx, Event::VariableDeleted { name, op: None });
                    }
                }
                Holder::Queue(name) => {
                    let items = self.state.queue(&name).map(|q| q.numbers_of_key(key)).unwrap_or_default();
                    if !items.is_empty() {
                        self.emit(cx, Event::QueueTaken { name: name.clone(), items, op: None });
                        self.serve_queue(cx, &name);
                    }
                }
                Holder::Dataset(name) => {
                    if self.state.dataset(&name) == Some(key) {
                        self.emit(cx, Event::DatasetUnpublished { name, op: None });
                    }
                }
                Holder::FireAndForget => {}
            }
        }
    }
}
