//! Wire messages. One ZeroMQ message body is one CBOR [`crate::Frame`]
//! holding many of these, so per-task traffic is batched.
//!
//! Routing: a client's DEALER identity is `c:<client id>`, a worker's is
//! `w:<worker name>`; the scheduler's ROUTER learns who sent a frame from the
//! identity and decodes it as `Frame<ClientMsg>` or `Frame<WorkerMsg>`. The
//! first message of a session must be `Hello` / `Register`.
//!
//! Session protocol, client side:
//! - `Hello` → `Welcome` or `Refused` (bad token, protocol version).
//! - `Submit` → `Acked` once the submissions are durable (the client keeps a
//!   copy to resend until then; resubmitting a known key is harmless). The
//!   client wants every submitted key until it sends `Release`.
//! - Whenever a wanted key finishes, errs, is cancelled or is lost, the
//!   scheduler pushes `Update`. A key wanted after it already finished gets
//!   its `Update` at once.
//! - `Scattered` registers data the client already put on a worker's peer
//!   socket (`PeerRequest::Put`); it is `Acked` like a submit.
//! - `Info` → `Reply` with the same request id.
//! - `Heartbeat` both ways; `Goodbye` ends the session and releases its keys.
//!
//! Session protocol, worker side:
//! - `Register` (also after a reconnect, with held keys and running tasks)
//!   → `Welcome` or `Refused`.
//! - `Compute` runs a task; the worker answers `Finished` or `Erred` with the
//!   same attempt. `Cancel` says the attempt is no longer wanted (discard its
//!   result); `Free` says drop these keys' data.
//! - `Heartbeat` both ways; `Goodbye` on a clean exit; `Shutdown` from the
//!   scheduler asks the worker to exit.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Attempt, ClientId, Key, RequestId, TaskError, TaskSpec, WorkerId};

/// Client → scheduler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    Hello { client: ClientId, name: String, token: Option<String> },
    Submit { tasks: Vec<TaskSpec> },
    /// The client dropped its last reference to these keys.
    Release { keys: Vec<Key> },
    /// Cancel these keys; without `force` only if this client is their sole wanter.
    Cancel { keys: Vec<Key>, force: bool },
    /// Keep these keys (and their inputs) running after the client lets go.
    FireAndForget { keys: Vec<Key> },
    /// Re-run these erred keys and their erred inputs.
    Retry { keys: Vec<Key> },
    /// Data the client put on `worker`; the client wants each key.
    Scattered { worker: WorkerId, items: Vec<ScatteredItem> },
    Info { req: RequestId, what: InfoRequest },
    Heartbeat,
    Goodbye,
}

/// One scattered value, registered with the scheduler after the worker stored it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScatteredItem {
    pub key: Key,
    pub nbytes: u64,
    /// The value itself when it is small, so that it is logged and survives its worker.
    #[serde(with = "serde_bytes")]
    pub inline: Option<Vec<u8>>,
}

/// What a client can ask the scheduler about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InfoRequest {
    WhoHas { keys: Vec<Key> },
    HasWhat,
    Ncores,
    SchedulerInfo,
    /// Where to fetch these keys from (for gather, and its retries).
    Locate { keys: Vec<Key> },
}

/// The answer to an [`InfoRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum InfoReply {
    WhoHas(BTreeMap<Key, Vec<WorkerId>>),
    HasWhat(BTreeMap<WorkerId, Vec<Key>>),
    Ncores(BTreeMap<WorkerId, u32>),
    SchedulerInfo(SchedulerInfo),
    Locate(Vec<DepLocation>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerInfo {
    pub workers: Vec<WorkerInfo>,
    pub n_clients: u64,
    /// Live tasks by state name ("waiting", "processing", "memory", …).
    pub tasks_by_state: BTreeMap<String, u64>,
    /// The last log sequence number applied.
    pub last_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: WorkerId,
    /// The worker's peer socket, for fetching data and scattering.
    pub address: String,
    pub nthreads: u32,
    pub n_processing: u64,
    pub n_keys: u64,
    pub functions: Vec<String>,
}

/// Scheduler → client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToClient {
    Welcome { scheduler: String },
    Refused { reason: String },
    /// These submissions or scatters are durable.
    Acked { keys: Vec<Key> },
    Update(KeyUpdate),
    Reply { req: RequestId, body: InfoReply },
    /// Something the client sent was rejected (malformed, unknown, …).
    Error { message: String },
    Heartbeat,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyUpdate {
    pub key: Key,
    pub state: KeyState,
}

/// What a wanted key came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum KeyState {
    Finished { nbytes: u64, location: DepLocation },
    Erred(TaskError),
    Cancelled,
    /// Its data was lost and it will not be recomputed (e.g. scattered data
    /// whose worker left, or a `restart`).
    Lost,
}

/// Where a key's data can be fetched: worker peer addresses, or the value
/// itself when it is small.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepLocation {
    pub key: Key,
    pub holders: Vec<(WorkerId, String)>,
    #[serde(with = "serde_bytes")]
    pub inline: Option<Vec<u8>>,
}

/// Worker → scheduler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerMsg {
    Register {
        worker: WorkerId,
        nthreads: u32,
        /// The worker's peer ROUTER address.
        address: String,
        functions: Vec<String>,
        resources: Vec<(String, f64)>,
        token: Option<String>,
        /// Keys whose data this worker holds, with their sizes (after a reconnect).
        held: Vec<(Key, u64)>,
        /// Attempts this worker is running (after a reconnect).
        running: Vec<(Key, Attempt)>,
    },
    Finished {
        key: Key,
        attempt: Attempt,
        nbytes: u64,
        #[serde(with = "serde_bytes")]
        inline: Option<Vec<u8>>,
    },
    Erred { key: Key, attempt: Attempt, error: TaskError },
    Heartbeat,
    Goodbye,
}

/// A task to run, with where to find each input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComputeTask {
    pub key: Key,
    pub attempt: Attempt,
    pub func: String,
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    pub deps: Vec<DepLocation>,
}

/// Scheduler → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    Welcome { scheduler: String },
    Refused { reason: String },
    Compute(ComputeTask),
    /// The attempt is no longer wanted: discard its result when it ends.
    Cancel { key: Key, attempt: Attempt },
    /// Drop these keys' data.
    Free { keys: Vec<Key> },
    Heartbeat,
    Shutdown,
}

/// Client or worker → a worker's peer socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerRequest {
    Get { req: RequestId, keys: Vec<Key> },
    Put { req: RequestId, items: Vec<(Key, serde_bytes::ByteBuf)> },
}

/// A worker's peer socket → the asker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerReply {
    /// One entry per asked key; `None` when this worker does not hold it.
    Data { req: RequestId, items: Vec<(Key, Option<serde_bytes::ByteBuf>)> },
    Stored { req: RequestId },
    Error { req: RequestId, message: String },
}
