//! Locks, semaphores and events: the primitives that make clients wait.
use reprise_proto::{Event, OpId, PrimitiveResult};

use super::data::due;
use super::reply;
use super::waiters::{Payload, WaitOn, Waiting};
use crate::core::scheduler::{Cx, Scheduler};
use crate::core::Millis;

impl Scheduler {
    pub(super) fn lock_acquire(&mut self, cx: &mut Cx, me: OpId, name: String, deadline: Option<Millis>, now: Millis) {
        match self.state.lock_holder(&name) {
            Some(holder) if holder == &me => reply(cx, &me, PrimitiveResult::Granted),
            // A free lock has nobody in line: a release grants to the first.
            None => {
                self.emit(cx, Event::LockAcquired { lock: name, lease: me.clone() });
                reply(cx, &me, PrimitiveResult::Granted);
            }
            Some(_) if due(deadline, now) => self.time_out(cx, &me, PrimitiveResult::Timeout),
            Some(_) => self.waiters.push(me, Waiting { on: WaitOn::Lock(name), deadline, payload: Payload::Nothing }),
        }
    }

    /// Give the lock back if `lease` holds it, and hand it to the next in line.
    pub(super) fn lock_release(&mut self, cx: &mut Cx, name: &str, lease: &OpId) {
        if self.state.lock_holder(name) == Some(lease) {
            let released = Event::LockReleased { lock: name.to_owned(), lease: lease.clone() };
            // Planted for the simulator (sim/README.md): applied, never logged.
            #[cfg(feature = "planted-lock-release-unlogged")]
            self.state.apply(&released);
            #[cfg(not(feature = "planted-lock-release-unlogged"))]
            self.emit(cx, released);
            self.grant_lock(cx, name);
        }
    }

    pub(super) fn grant_lock(&mut self, cx: &mut Cx, name: &str) {
        if self.state.lock_holder(name).is_some() {
            return;
        }
        if let Some((next, _)) = self.waiters.pop(&WaitOn::Lock(name.to_owned())) {
            self.emit(cx, Event::LockAcquired { lock: name.to_owned(), lease: next.clone() });
            reply(cx, &next, PrimitiveResult::Granted);
        }
    }

    pub(super) fn semaphore_acquire(
        &mut self,
        cx: &mut Cx,
        me: OpId,
        name: String,
        max_leases: u64,
        deadline: Option<Millis>,
        now: Millis,
    ) {
        if let Some(refused) = self.semaphore_refusal(&name, max_leases) {
            reply(cx, &me, refused);
            return;
        }
        match self.state.semaphore(&name) {
            Some(s) if s.leases().contains(&me) => {
                reply(cx, &me, PrimitiveResult::Granted);
                return;
            }
            Some(_) => {}
            None => self.emit(cx, Event::SemaphoreCreated { semaphore: name.clone(), max_leases }),
        }
        let line = WaitOn::Semaphore(name.clone());
        let room = self.state.semaphore(&name).is_some_and(|s| s.has_room());
        if room && !self.waiters.has_line(&line) {
            self.emit(cx, Event::LeaseGranted { semaphore: name, lease: me.clone() });
            reply(cx, &me, PrimitiveResult::Granted);
        } else if due(deadline, now) {
            self.time_out(cx, &me, PrimitiveResult::Timeout);
        } else {
            self.waiters.push(me, Waiting { on: line, deadline, payload: Payload::Nothing });
        }
    }

    /// The answer to an acquire that cannot be served at all, if any: a
    /// closed semaphore, or one asked with another bound than it has.
    fn semaphore_refusal(&self, name: &str, max_leases: u64) -> Option<PrimitiveResult> {
        if max_leases == 0 {
            return Some(PrimitiveResult::Invalid { message: "a semaphore needs max_leases of at least 1".to_owned() });
        }
        match self.state.semaphore(name) {
            Some(s) if s.is_closed() => Some(PrimitiveResult::Closed),
            Some(s) if s.max_leases() != max_leases => Some(PrimitiveResult::Invalid {
                message: format!(
                    "semaphore {name:?} has max_leases {}, not {max_leases}: every handle on it must agree",
                    s.max_leases()
                ),
            }),
            _ => None,
        }
    }

    pub(super) fn semaphore_release(&mut self, cx: &mut Cx, name: &str, lease: &OpId) {
        if self.state.semaphore(name).is_some_and(|s| s.leases().contains(lease)) {
            self.emit(cx, Event::LeaseReleased { semaphore: name.to_owned(), lease: lease.clone() });
            self.grant_semaphore(cx, name);
        }
    }

    /// Grant leases to those in line while there is room.
    pub(super) fn grant_semaphore(&mut self, cx: &mut Cx, name: &str) {
        let line = WaitOn::Semaphore(name.to_owned());
        while self.state.semaphore(name).is_some_and(|s| s.has_room()) {
            let Some((next, _)) = self.waiters.pop(&line) else { return };
            self.emit(cx, Event::LeaseGranted { semaphore: name.to_owned(), lease: next.clone() });
            reply(cx, &next, PrimitiveResult::Granted);
        }
    }

    pub(super) fn semaphore_value(&mut self, cx: &mut Cx, me: &OpId, name: &str, max_leases: u64) {
        let result = match self.semaphore_refusal(name, max_leases) {
            Some(PrimitiveResult::Closed) | None => {
                PrimitiveResult::Count(self.state.semaphore(name).map_or(0, |s| s.leases().len() as u64))
            }
            Some(refused) => refused,
        };
        reply(cx, me, result);
    }

    /// Close: leases go, waiters hear `Closed`, later acquires are refused.
    /// A semaphore never used is created closed, so that it stays closed.
    pub(super) fn semaphore_close(&mut self, cx: &mut Cx, me: &OpId, name: String, max_leases: u64) {
        match self.state.semaphore(&name) {
            Some(s) if s.is_closed() => {}
            Some(_) => self.emit(cx, Event::SemaphoreClosed { semaphore: name.clone() }),
            None => {
                let max_leases = max_leases.max(1);
                self.emit(cx, Event::SemaphoreCreated { semaphore: name.clone(), max_leases });
                self.emit(cx, Event::SemaphoreClosed { semaphore: name.clone() });
            }
        }
        for (waiter, _) in self.waiters.drain(&WaitOn::Semaphore(name)) {
            reply(cx, &waiter, PrimitiveResult::Closed);
        }
        reply(cx, me, PrimitiveResult::Done);
    }

    /// Set the event and wake everyone waiting on it.
    pub(super) fn event_set(&mut self, cx: &mut Cx, me: &OpId, name: String) {
        if !self.state.event_is_set(&name) {
            self.emit(cx, Event::EventSet { name: name.clone() });
        }
        for (waiter, _) in self.waiters.drain(&WaitOn::Event(name)) {
            reply(cx, &waiter, PrimitiveResult::Bool(true));
        }
        reply(cx, me, PrimitiveResult::Done);
    }

    pub(super) fn event_wait(&mut self, cx: &mut Cx, me: OpId, name: String, deadline: Option<Millis>, now: Millis) {
        if self.state.event_is_set(&name) {
            reply(cx, &me, PrimitiveResult::Bool(true));
        } else if due(deadline, now) {
            self.time_out(cx, &me, PrimitiveResult::Bool(false));
        } else {
            self.waiters.push(me, Waiting { on: WaitOn::Event(name), deadline, payload: Payload::Nothing });
        }
    }
}
