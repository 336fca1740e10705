use serde::{Deserialize, Serialize};

use crate::{Attempt, ClientId, Key, TaskError, TaskSpec, WorkerId};

/// The schema version of [`Event`] as written to the log.
///
/// Bump the version when you change `Event`, `Holder`, `TaskSpec` or
/// `TaskError` in any way that changes their CBOR form, and teach the log
/// reader the old form if old logs must keep opening.
pub const EVENT_SCHEMA_VERSION: u16 = 1;

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
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 22] = [
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
        }
    }
}
