//! The scheduler's sans-IO core: Dask's task state machine, event-sourced.
//!
//! [`Scheduler::handle`] takes one [`Input`] and the current time and returns
//! a [`Decision`]: the [`Event`]s that happened (to be appended to the log)
//! and the [`Effect`]s (messages) to send once those events are durable.
//! [`State::apply`] is the only code that changes the durable state; the
//! scheduler applies every event the moment it decides it, so each later step
//! of a cascade sees the state the earlier steps left, and replaying a
//! decision's events into a copy of the state reproduces it exactly.
//!
//! Architecture invariant: nothing under `core/` does IO, reads a clock, uses
//! randomness, or iterates a hash map; the test `core_is_sans_io` checks the
//! imports.
//!
//! Task states (see [`TaskState`]): `waiting` → `queued` / `no-worker` →
//! `processing` → `memory`, plus `erred`, `released` (computed, its data
//! dropped because nothing needs it now, its spec kept as lineage for a
//! dependent that may need it recomputed), `lost` (scattered data whose
//! holders all left, or anything pending or in memory at a cluster
//! restart) and the transient `cancelled`, which always ends in
//! `TaskForgotten` within the same decision.
//!
//! Event semantics that the proto's doc comments leave open:
//! - A key leaving memory (`ReplicaRemoved` of its last copy with no inline
//!   copy, `TaskCancelled`) sends its queued, no-worker and processing
//!   dependents back to `waiting` inside `apply`, with no event of their own;
//!   the core tells their workers `Cancel`.
//! - `ReplicaRemoved` of the last copy makes a computed key `released` and
//!   scattered data `lost`. The core also uses it to drop the data of a key
//!   that only finished dependents refer to (it sends `Free`).
//! - `TaskLost` takes a `released` key back to `waiting` to recompute it,
//!   whether its data was lost or merely dropped; it is never emitted for
//!   scattered data (that becomes `lost` and its wanters get `Update{Lost}`).
//! - `TaskRetried` on a processing task uses up one retry; on an erred task
//!   (a client's `Retry`) it keeps the retry count and clears `suspicious`.
//! - `TaskForgotten` only applies to a key with no wanter, no holder and no
//!   dependent; a key with dependents but nothing pending downstream is
//!   `released` instead (its spec stays as lineage).
//! - `DataScattered` on a `lost` scattered key brings it back to memory.
//! - A `released` key whose task creates an actor (`actor:<type>`) is never
//!   recomputed: the core emits `TaskLost` and at once `TaskErred` for it,
//!   since a new instance elsewhere would silently have lost the state.
//! - `ClusterRestarted` makes every pending or in-memory key `lost` (see
//!   the `cluster` module, which also makes replicas for replicate and
//!   rebalance with the existing `ReplicaAdded` / `ReplicaRemoved`).
//! - `WorkerJoined` of a known worker updates its attributes; the core emits
//!   it only when something changed.
//! - An event that does not fit the state it meets changes nothing and is
//!   counted ([`State::n_ignored_events`]); the core never emits one.
//! - The coordination primitives' events and the semantics decided for
//!   them are described in the `prims` module.

mod apply;
mod cascade;
mod client;
mod cluster;
mod info;
mod invariants;
mod placement;
mod prims;
mod scheduler;
mod sessions;
mod state;
mod worker;

pub use reprise_proto::Event;
use reprise_proto::{ClientId, ClientMsg, ToClient, ToWorker, WorkerId, WorkerMsg, INLINE_BYTES_MAX};

pub use prims::{Done, QueueState, SemaphoreState, RECENT_OPS_PER_CLIENT_MAX, REMOVED_CLIENTS_REMEMBERED};
pub use scheduler::Scheduler;
pub use state::{Origin, State, Task, TaskState, WorkerRecord};

/// Milliseconds since an arbitrary origin chosen by whoever drives the core.
/// Time only ever enters the core as a value of this type.
pub type Millis = u64;

/// The scheduler's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// A task whose workers died while running it more than this many times
    /// errs with `KilledWorker` (Dask's `allowed-failures`).
    pub allowed_failures: u32,
    /// A worker gets at most `nthreads + prefetch` tasks at once; the rest
    /// wait in the scheduler's queue. The default (16) keeps a worker busy
    /// through one group-commit round trip of tiny tasks (measured: 1,000
    /// `inc`s on 2×2 threads took 275 ms with 2, 45–65 ms with 16–32); a
    /// smaller value balances long tasks better.
    pub prefetch: u32,
    /// A client or worker not heard from for longer than this is removed.
    pub heartbeat_timeout_ms: u64,
    /// If set, every `Hello` and `Register` must carry this token.
    pub auth_token: Option<String>,
    /// The name sent in `Welcome`.
    pub scheduler_name: String,
    /// Results and scattered values larger than this are not kept inline,
    /// whatever the worker or client sent.
    pub inline_bytes_max: usize,
    /// A Lock or Semaphore lease whose client is not heard from (no
    /// heartbeat) for longer than this expires (`LeaseExpired`).
    pub lease_timeout_ms: u64,
    /// After a restart, how long a worker or client known from the log has
    /// to come back (register or say hello again) before it is removed: its
    /// running tasks are rescheduled and its references released. Once back,
    /// the heartbeat timeout applies again.
    pub reconnect_grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allowed_failures: 3,
            prefetch: 16,
            heartbeat_timeout_ms: 10_000,
            auth_token: None,
            scheduler_name: "reprise-scheduler".to_owned(),
            inline_bytes_max: INLINE_BYTES_MAX,
            lease_timeout_ms: 30_000,
            reconnect_grace_ms: 10_000,
        }
    }
}

/// One stimulus for the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A message from a client session (identified by its connection).
    Client { client: ClientId, msg: ClientMsg },
    /// A message from a worker (identified by its connection).
    Worker { worker: WorkerId, msg: WorkerMsg },
    /// Time passed: expire peers whose heartbeats stopped.
    Tick,
}

/// A message the service must send, once the decision's events are durable.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    ToClient { client: ClientId, msg: ToClient },
    ToWorker { worker: WorkerId, msg: ToWorker },
}

/// What one input led to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Facts to append to the log, in the order they were applied.
    pub events: Vec<Event>,
    /// Messages to send after the events are durable, in order.
    pub effects: Vec<Effect>,
}

impl Decision {
    /// True when the input changed nothing and needs no reply.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.effects.is_empty()
    }
}
