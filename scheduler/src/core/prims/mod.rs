//! Coordination primitives as scheduler state: Variable, Queue, Lock,
//! Event, Semaphore and published datasets.
//!
//! Every change is an event (`VariableSet`, `QueuePut`, `QueueTaken`,
//! `LockAcquired`, `LeaseGranted`, `LeaseExpired`, `EventSet`,
//! `DatasetPublished`, …), so replay rebuilds them exactly. Futures they
//! hold are kept alive by `Holder::{Variable, Queue, Dataset}`. What is not
//! durable lives in the [`Scheduler`]: blocked requests ([`waiters`]) and
//! lease freshness, which is the holder's last heartbeat (`Sessions`), so a
//! restart counts every lease as refreshed at the restart.
//!
//! Semantics decided here:
//! - A request is answered by `PrimitiveReply` with its id; the answer is an
//!   effect, sent once the batch holding its events is durable.
//! - A request is named by [`OpId`] (client, request id). A lease is the
//!   request that took it. A resend of a request that completed recently
//!   (see [`RECENT_OPS_PER_CLIENT_MAX`]) gets its first answer again, also
//!   from a client removed and back under the same id (see
//!   [`REMOVED_CLIENTS_REMEMBERED`]); a
//!   resend of a blocked request keeps its place in line; a resend of an
//!   acquire whose lease is live is answered `Granted` again.
//! - Waits are FIFO per primitive. A waiter's deadline is the arrival time
//!   plus its timeout; at the deadline (on `Tick`) it gets `Timeout`
//!   (`Bool(false)` for an event wait). A resend of a request that timed out
//!   recently (it crossed the answer) gets the same answer, so that it never
//!   acts after its client was told it did not. A waiter whose client leaves is
//!   dropped without an answer.
//! - A lease expires (`LeaseExpired`) when its client has not been heard
//!   from for `lease_timeout_ms`; a client that leaves releases its leases
//!   at once (`LockReleased` / `LeaseReleased`).
//! - A future handed to a client (a get, a take, `get_dataset`) is wanted
//!   by that client (`ClientWants`) before the primitive lets go of it.
//! - A forced cancel of a future removes it from the primitives that hold
//!   it: the variable is deleted, the dataset unpublished, the queue items
//!   dropped.
//! - Closing a semaphore releases its leases, answers its waiters `Closed`,
//!   and leaves a tombstone that refuses later acquires.
mod apply;
mod data;
mod invariants;
mod lifecycle;
mod state;
mod sync;
pub(crate) mod waiters;

use reprise_proto::{
    invalid_primitive_name, ClientId, Event, Key, OpId, PrimitiveOp, PrimitiveResult, ReplyValue, RequestId,
    StoredValue, ToClient, PRIMITIVE_VALUE_BYTES_MAX,
};

pub use state::{Done, Primitives, QueueState, SemaphoreState, RECENT_OPS_PER_CLIENT_MAX, REMOVED_CLIENTS_REMEMBERED};

use super::scheduler::{Cx, Scheduler};
use super::state::TaskState;
use super::Millis;

impl Scheduler {
    /// A client's request on a primitive.
    pub(crate) fn primitive(&mut self, cx: &mut Cx, client: &ClientId, req: RequestId, op: PrimitiveOp, now: Millis) {
        let me = OpId { client: client.clone(), req };
        if let Some(message) = op.name().and_then(invalid_primitive_name) {
            reply(cx, &me, PrimitiveResult::Invalid { message });
            return;
        }
        // A resend of a request that is still in line keeps its place.
        if self.waiters.contains(&me) {
            return;
        }
        // A resend that crossed its `Timeout` answer times out again: the
        // client was told it did not happen.
        if self.waiters.has_timed_out(&me) {
            let result = match op {
                PrimitiveOp::EventWait { .. } => PrimitiveResult::Bool(false),
                _ => PrimitiveResult::Timeout,
            };
            reply(cx, &me, result);
            return;
        }
        if let Some(done) = self.state.recent_op(&me).cloned() {
            // The futures a take handed out are wanted again: the client may
            // have been removed (and its wants released) since.
            let result = match done {
                state::Done::Changed => PrimitiveResult::Done,
                state::Done::Took(values) => {
                    PrimitiveResult::Values(values.iter().map(|v| self.hand_out(cx, client, v)).collect())
                }
            };
            reply(cx, &me, result);
            return;
        }
        let deadline = |timeout_ms: Option<u64>| timeout_ms.map(|t| now.saturating_add(t));
        use PrimitiveOp::*;
        match op {
            VariableSet { name, value } => self.variable_set(cx, me, name, value),
            VariableGet { name, timeout_ms } => self.variable_get(cx, me, name, deadline(timeout_ms), now),
            VariableDelete { name } => self.variable_delete(cx, me, &name),
            QueuePut { name, value, maxsize, timeout_ms } => {
                self.queue_put(cx, me, name, value, maxsize, deadline(timeout_ms), now)
            }
            QueueGet { name, timeout_ms } => self.queue_get(cx, me, name, deadline(timeout_ms), now),
            QueueGetBatch { name, n } => self.queue_get_batch(cx, me, &name, n),
            QueueSize { name } => {
                let n = self.state.queue(&name).map_or(0, |q| q.len() as u64);
                reply(cx, &me, PrimitiveResult::Count(n));
            }
            LockAcquire { name, timeout_ms } => self.lock_acquire(cx, me, name, deadline(timeout_ms), now),
            LockRelease { name, lease } => {
                self.lock_release(cx, &name, &OpId { client: client.clone(), req: lease });
                reply(cx, &me, PrimitiveResult::Done);
            }
            LockLocked { name } => reply(cx, &me, PrimitiveResult::Bool(self.state.lock_holder(&name).is_some())),
            SemaphoreAcquire { name, max_leases, timeout_ms } => {
                self.semaphore_acquire(cx, me, name, max_leases, deadline(timeout_ms), now)
            }
            SemaphoreRelease { name, lease } => {
                self.semaphore_release(cx, &name, &OpId { client: client.clone(), req: lease });
                reply(cx, &me, PrimitiveResult::Done);
            }
            SemaphoreValue { name, max_leases } => self.semaphore_value(cx, &me, &name, max_leases),
            SemaphoreClose { name, max_leases } => self.semaphore_close(cx, &me, name, max_leases),
            EventSet { name } => self.event_set(cx, &me, name),
            EventClear { name } => {
                if self.state.event_is_set(&name) {
                    self.emit(cx, Event::EventCleared { name });
                }
                reply(cx, &me, PrimitiveResult::Done);
            }
            EventIsSet { name } => reply(cx, &me, PrimitiveResult::Bool(self.state.event_is_set(&name))),
            EventWait { name, timeout_ms } => self.event_wait(cx, me, name, deadline(timeout_ms), now),
            DatasetPublish { name, key } => self.dataset_publish(cx, me, name, key),
            DatasetGet { name } => self.dataset_get(cx, &me, &name),
            DatasetList => {
                let names = self.state.datasets().map(|(n, _)| n.clone()).collect();
                reply(cx, &me, PrimitiveResult::Names(names));
            }
            DatasetUnpublish { name } => self.dataset_unpublish(cx, me, &name),
            Abandon { req: abandoned } => {
                self.abandon(cx, &OpId { client: client.clone(), req: abandoned });
                reply(cx, &me, PrimitiveResult::Done);
            }
        }
    }

    /// Why a value cannot be stored, as the answer to give, if it cannot:
    /// an inline value over the size bound, or a future the scheduler does
    /// not know (cancelled, or never submitted).
    pub(crate) fn value_refusal(&self, value: &StoredValue) -> Option<PrimitiveResult> {
        match value {
            StoredValue::Inline(bytes) if bytes.len() > PRIMITIVE_VALUE_BYTES_MAX => Some(PrimitiveResult::Invalid {
                message: format!(
                    "a value of {} bytes is over the {PRIMITIVE_VALUE_BYTES_MAX} byte limit for values kept by the scheduler: scatter it and store its future",
                    bytes.len()
                ),
            }),
            StoredValue::Inline(_) => None,
            StoredValue::Future(key) => {
                let gone = self.state.task(key).is_none_or(|t| t.state() == &TaskState::Cancelled);
                gone.then(|| PrimitiveResult::Cancelled { key: key.clone() })
            }
        }
    }

    /// The value as a client receives it.
    pub(crate) fn reply_value(&self, value: &StoredValue) -> ReplyValue {
        match value {
            StoredValue::Inline(bytes) => ReplyValue::Inline(bytes.clone()),
            StoredValue::Future(key) => ReplyValue::Future { key: key.clone(), state: self.final_update(key) },
        }
    }

    /// Hand `value` to `client`: a future becomes wanted by it first, so
    /// that the primitive can let go of it without a gap.
    pub(crate) fn hand_out(&mut self, cx: &mut Cx, client: &ClientId, value: &StoredValue) -> ReplyValue {
        if let Some(key) = value.key() {
            self.want_handed_out(cx, client, key);
        }
        self.reply_value(value)
    }

    fn want_handed_out(&mut self, cx: &mut Cx, client: &ClientId, key: &Key) {
        let wanted = self.state.task(key).is_some_and(|t| t.wanted_by().contains(client));
        if !wanted && self.state.task(key).is_some() && self.state.has_client(client) {
            self.emit(cx, Event::ClientWants { client: client.clone(), key: key.clone() });
            // A resend of a take may hand out a key released since the first
            // answer: wanted again, it is recomputed, as a submit of it would be.
            self.revive_if_wanted(cx, key);
        }
    }
}

impl Scheduler {
    /// Answer request `op` `Timeout` (`Bool(false)` for an event wait), and
    /// remember that it timed out.
    pub(crate) fn time_out(&mut self, cx: &mut Cx, op: &OpId, result: PrimitiveResult) {
        self.waiters.timed_out(op);
        reply(cx, op, result);
    }
}

/// Answer request `op`.
pub(crate) fn reply(cx: &mut Cx, op: &OpId, result: PrimitiveResult) {
    cx.send_client(&op.client, ToClient::PrimitiveReply { req: op.req, result });
}

#[cfg(test)]
mod tests;
