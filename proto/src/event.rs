use serde::{Deserialize, Serialize};

use crate::{Attempt, ClientId, Key, LeaseOn, OpId, StoredValue, TaskError, TaskSpec, WorkerId};

/// The schema version of [`Event`] as written to the log.
///
/// Bump the version when you change `Event`, `Holder`, `TaskSpec` or
/// `TaskError` in any way that changes their CBOR form, and teach the log
/// reader the old form if old logs must keep opening.
pub const EVENT_SCHEMA_VERSION: u16 = 3;

/// Something other than a client that keeps a key alive (Dask's pseudo-clients).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Holder {
    FireAndForget,
    Variable(String),
    Queue(String),
    Dataset(String),
}

/// One fact in the scheduler's history: the log record.
///
/// Events say what happened, never what was asked. `State::apply` in the
/// scheduler core is the only code that turns them into state, and replaying
/// the same events always gives the same state.
///
/// Bump [`EVENT_SCHEMA_VERSION`] when you change this.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A client session began (or re-attached after a restart).
    ClientJoined { client: ClientId },
    /// A client session ended; its wants were released by earlier events.
    ClientRemoved { client: ClientId },
    /// A task entered the graph, in state `waiting` on its unfinished inputs.
    TaskSubmitted { spec: TaskSpec },
    /// A client holds a reference to the key.
    ClientWants { client: ClientId, key: Key },
    /// A client dropped its last reference to the key.
    ClientReleased { client: ClientId, key: Key },
    /// A pseudo-client (fire_and_forget, a variable, a queue, a dataset) holds the key.
    HolderAdded { holder: Holder, key: Key },
    /// A pseudo-client let go of the key.
    HolderRemoved { holder: Holder, key: Key },
    /// Every input is in memory but no worker slot is free: the task waits in
    /// the scheduler's queue.
    TaskQueued { key: Key },
    /// Every input is in memory but no connected worker can run the task
    /// (restrictions, resources, missing function).
    TaskNoWorker { key: Key },
    /// The task was sent to `worker` as attempt `attempt`.
    TaskAssigned { key: Key, worker: WorkerId, attempt: Attempt },
    /// The attempt finished; the result (`nbytes` long) is in `worker`'s
    /// memory, and, when small, also here in `inline`.
    TaskFinished {
        key: Key,
        worker: WorkerId,
        attempt: Attempt,
        nbytes: u64,
        #[serde(with = "serde_bytes")]
        inline: Option<Vec<u8>>,
    },
    /// Data that no task computed (scatter) now lives on `worker`.
    DataScattered {
        key: Key,
        worker: WorkerId,
        nbytes: u64,
        #[serde(with = "serde_bytes")]
        inline: Option<Vec<u8>>,
    },
    /// One more worker holds a copy of the key's data.
    ReplicaAdded { key: Key, worker: WorkerId },
    /// A worker no longer holds a copy of the key's data.
    ReplicaRemoved { key: Key, worker: WorkerId },
    /// The attempt failed and the task goes back to waiting with one retry fewer.
    TaskRetried { key: Key },
    /// The task failed for good; `error.key` names the task that failed first.
    TaskErred { key: Key, error: TaskError },
    /// A task's worker left while it ran: back to waiting, `suspicious` + 1.
    TaskRescheduled { key: Key },
    /// The key's data was lost (its holders left) and it is needed again:
    /// back to waiting, to be recomputed from lineage.
    TaskLost { key: Key },
    /// The task was cancelled; its future reports `Cancelled`.
    TaskCancelled { key: Key },
    /// Nobody references the key any more; it leaves the state.
    TaskForgotten { key: Key },
    /// A worker registered.
    WorkerJoined {
        worker: WorkerId,
        nthreads: u32,
        address: String,
        functions: Vec<String>,
        resources: Vec<(String, f64)>,
    },
    /// A worker left (closed, timed out, or did not come back); events for
    /// its tasks and data precede this one.
    WorkerRemoved { worker: WorkerId },
    /// The variable holds `value` now (a future's `HolderAdded` precedes it).
    VariableSet { name: String, value: StoredValue, op: OpId },
    /// The variable is empty again; `op` is `None` when a forced cancel of
    /// its future emptied it.
    VariableDeleted { name: String, op: Option<OpId> },
    /// An item joined the end of the queue; it is numbered in put order.
    QueuePut { name: String, item: StoredValue, op: OpId },
    /// These items (by number) left the queue: taken by `op`, or dropped
    /// (`None`) because a forced cancel took their future.
    QueueTaken { name: String, items: Vec<u64>, op: Option<OpId> },
    /// The lock is held by the lease `lease` (the acquiring request).
    LockAcquired { lock: String, lease: OpId },
    /// The lock's holder gave it back (or its client left).
    LockReleased { lock: String, lease: OpId },
    /// A semaphore came into use with this many leases at most.
    SemaphoreCreated { semaphore: String, max_leases: u64 },
    LeaseGranted { semaphore: String, lease: OpId },
    /// The holder gave the lease back (or its client left).
    LeaseReleased { semaphore: String, lease: OpId },
    /// The lease's client was not heard from for the lease timeout.
    LeaseExpired { on: LeaseOn, lease: OpId },
    /// The semaphore released its leases and refuses acquires from now on.
    SemaphoreClosed { semaphore: String },
    EventSet { name: String },
    EventCleared { name: String },
    /// The dataset names the key (a `HolderAdded` precedes it).
    DatasetPublished { name: String, key: Key, op: OpId },
    /// The name is free again; `op` is `None` after a forced cancel.
    DatasetUnpublished { name: String, op: Option<OpId> },
    /// The cluster restarted (`client.restart()`): every worker dropped all
    /// its data and running tasks, and every key that was pending or in
    /// memory (inline copies included) is now lost; its future reports
    /// `Lost`. Erred and released keys stay as they were.
    ClusterRestarted,
}

/// The variant of an [`Event`] without its data, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    ClientJoined,
    ClientRemoved,
    TaskSubmitted,
    ClientWants,
    ClientReleased,
    HolderAdded,
    HolderRemoved,
    TaskQueued,
    TaskNoWorker,
    TaskAssigned,
    TaskFinished,
    DataScattered,
    ReplicaAdded,
    ReplicaRemoved,
    TaskRetried,
    TaskErred,
    TaskRescheduled,
    TaskLost,
    TaskCancelled,
    TaskForgotten,
    WorkerJoined,
    WorkerRemoved,
    VariableSet,
    VariableDeleted,
    QueuePut,
    QueueTaken,
    LockAcquired,
    LockReleased,
    SemaphoreCreated,
    LeaseGranted,
    LeaseReleased,
    LeaseExpired,
    SemaphoreClosed,
    EventSet,
    EventCleared,
    DatasetPublished,
    DatasetUnpublished,
    ClusterRestarted,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 38] = [
        EventKind::ClientJoined,
        EventKind::ClientRemoved,
        EventKind::TaskSubmitted,
        EventKind::ClientWants,
        EventKind::ClientReleased,
        EventKind::HolderAdded,
        EventKind::HolderRemoved,
        EventKind::TaskQueued,
        EventKind::TaskNoWorker,
        EventKind::TaskAssigned,
        EventKind::TaskFinished,
        EventKind::DataScattered,
        EventKind::ReplicaAdded,
        EventKind::ReplicaRemoved,
        EventKind::TaskRetried,
        EventKind::TaskErred,
        EventKind::TaskRescheduled,
        EventKind::TaskLost,
        EventKind::TaskCancelled,
        EventKind::TaskForgotten,
        EventKind::WorkerJoined,
        EventKind::WorkerRemoved,
        EventKind::VariableSet,
        EventKind::VariableDeleted,
        EventKind::QueuePut,
        EventKind::QueueTaken,
        EventKind::LockAcquired,
        EventKind::LockReleased,
        EventKind::SemaphoreCreated,
        EventKind::LeaseGranted,
        EventKind::LeaseReleased,
        EventKind::LeaseExpired,
        EventKind::SemaphoreClosed,
        EventKind::EventSet,
        EventKind::EventCleared,
        EventKind::DatasetPublished,
        EventKind::DatasetUnpublished,
        EventKind::ClusterRestarted,
    ];
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ClientJoined { .. } => EventKind::ClientJoined,
            Event::ClientRemoved { .. } => EventKind::ClientRemoved,
            Event::TaskSubmitted { .. } => EventKind::TaskSubmitted,
            Event::ClientWants { .. } => EventKind::ClientWants,
            Event::ClientReleased { .. } => EventKind::ClientReleased,
            Event::HolderAdded { .. } => EventKind::HolderAdded,
            Event::HolderRemoved { .. } => EventKind::HolderRemoved,
            Event::TaskQueued { .. } => EventKind::TaskQueued,
            Event::TaskNoWorker { .. } => EventKind::TaskNoWorker,
            Event::TaskAssigned { .. } => EventKind::TaskAssigned,
            Event::TaskFinished { .. } => EventKind::TaskFinished,
            Event::DataScattered { .. } => EventKind::DataScattered,
            Event::ReplicaAdded { .. } => EventKind::ReplicaAdded,
            Event::ReplicaRemoved { .. } => EventKind::ReplicaRemoved,
            Event::TaskRetried { .. } => EventKind::TaskRetried,
            Event::TaskErred { .. } => EventKind::TaskErred,
            Event::TaskRescheduled { .. } => EventKind::TaskRescheduled,
            Event::TaskLost { .. } => EventKind::TaskLost,
            Event::TaskCancelled { .. } => EventKind::TaskCancelled,
            Event::TaskForgotten { .. } => EventKind::TaskForgotten,
            Event::WorkerJoined { .. } => EventKind::WorkerJoined,
            Event::WorkerRemoved { .. } => EventKind::WorkerRemoved,
            Event::VariableSet { .. } => EventKind::VariableSet,
            Event::VariableDeleted { .. } => EventKind::VariableDeleted,
            Event::QueuePut { .. } => EventKind::QueuePut,
            Event::QueueTaken { .. } => EventKind::QueueTaken,
            Event::LockAcquired { .. } => EventKind::LockAcquired,
            Event::LockReleased { .. } => EventKind::LockReleased,
            Event::SemaphoreCreated { .. } => EventKind::SemaphoreCreated,
            Event::LeaseGranted { .. } => EventKind::LeaseGranted,
            Event::LeaseReleased { .. } => EventKind::LeaseReleased,
            Event::LeaseExpired { .. } => EventKind::LeaseExpired,
            Event::SemaphoreClosed { .. } => EventKind::SemaphoreClosed,
            Event::EventSet { .. } => EventKind::EventSet,
            Event::EventCleared { .. } => EventKind::EventCleared,
            Event::DatasetPublished { .. } => EventKind::DatasetPublished,
            Event::DatasetUnpublished { .. } => EventKind::DatasetUnpublished,
            Event::ClusterRestarted => EventKind::ClusterRestarted,
        }
    }
}
