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
//! - `Info` → `Reply` with the same request id. Besides questions, `Info`
//!   carries the cluster management requests (`Replicate`, `Rebalance`,
//!   `Restart`, `Shutdown`), answered once done; a resend after a
//!   reconnect asks again.
//! - `Primitive` → `PrimitiveReply` with the same request id, once the
//!   change it reveals is durable. A blocked request (acquire, get, wait,
//!   put on a full queue) is answered when it is served or its timeout runs
//!   out; `Abandon` withdraws it. Resends are idempotent.
//! - `Heartbeat` both ways (it also refreshes the client's leases); `Goodbye`
//!   ends the session and releases its keys and leases.
//!
//! Session protocol, worker side:
//! - `Register` (also after a reconnect, with held keys and running tasks)
//!   → `Welcome` or `Refused`.
//! - `Compute` runs a task; the worker answers `Finished` or `Erred` with the
//!   same attempt. `Cancel` says the attempt is no longer wanted (discard its
//!   result); `Free` says drop these keys' data.
//! - `Fetch` asks for a copy of a key from its holders (replicate,
//!   rebalance); the worker answers `DataAdded` or `FetchFailed`.
//! - `Restart` says drop all data and abandon every task (`restart()`).
//! - `Heartbeat` both ways; `Goodbye` on a clean exit; `Shutdown` from the
//!   scheduler asks the worker to exit.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Attempt, ClientId, Key, PrimitiveOp, PrimitiveResult, RequestId, TaskError, TaskSpec, WorkerId};

/// The message of the `ToClient::Error` a scheduler answers anything but
/// `Hello` with when it does not know the client (never met, or removed after
/// its heartbeats stopped while its connection stayed up): the session must
/// say `Hello` again and resend what it has pending, as after a reconnect.
pub const HELLO_FIRST: &str = "say Hello before anything else";

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
    /// A request on a coordination primitive; answered by `PrimitiveReply`
    /// with the same id. Resending it (after a reconnect) is harmless.
    Primitive { req: RequestId, op: PrimitiveOp },
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
    /// Make each key (in memory) held by `n` workers, or by every worker if
    /// there are fewer; answered `Transferred` once the copies exist or failed.
    Replicate { keys: Vec<Key>, n: u32 },
    /// Move data between workers so that they hold about as many bytes
    /// each; answered `Transferred` once the moves are done or failed.
    Rebalance,
    /// Every worker drops all its data and running tasks, and every key
    /// still pending or in memory is lost; answered `Done`.
    Restart,
    /// Every worker stops, then the scheduler; answered `Done` first.
    Shutdown,
}

/// The answer to an [`InfoRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum InfoReply {
    WhoHas(BTreeMap<Key, Vec<WorkerId>>),
    HasWhat(BTreeMap<WorkerId, Vec<Key>>),
    Ncores(BTreeMap<WorkerId, u32>),
    SchedulerInfo(SchedulerInfo),
    Locate(Vec<DepLocation>),
    /// Copies made (`copied`) and copies given up (`failed`: the worker
    /// could not fetch the data, left, or the key left memory meanwhile).
    Transferred { copied: u64, failed: u64 },
    /// The request was carried out.
    Done,
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
    /// The answer to `Primitive { req, .. }`, sent once what it reveals is durable.
    PrimitiveReply { req: RequestId, result: PrimitiveResult },
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
    /// The worker fetched the copy `Fetch` asked for and holds it now.
    DataAdded { key: Key, nbytes: u64 },
    /// The worker could not fetch the copy `Fetch` asked for.
    FetchFailed { key: Key, message: String },
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
    /// Fetch a copy of the key's data from one of `from` (worker, peer
    /// address) and keep it; answer `DataAdded` or `FetchFailed`.
    Fetch { key: Key, from: Vec<(WorkerId, String)> },
    /// Drop all data and abandon every task (the cluster restarts).
    Restart,
    Heartbeat,
    Shutdown,
}

/// Client or worker → a worker's peer socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerRequest {
    Get { req: RequestId, keys: Vec<Key> },
    Put { req: RequestId, items: Vec<(Key, serde_bytes::ByteBuf)> },
    /// Call `method` on the actor created by the task `key`, with the CBOR
    /// argument tuple `args`; answered `Returned` or `Raised` (or `Error`
    /// when no such actor lives there), in its own frame once it ran.
    ActorCall {
        req: RequestId,
        key: Key,
        method: String,
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
    },
    /// Call the registered function `func` once, outside the task slots
    /// (`client.run`); answered like `ActorCall`.
    Run {
        req: RequestId,
        func: String,
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
    },
}

impl PeerRequest {
    /// The request's id.
    pub fn req(&self) -> RequestId {
        match self {
            PeerRequest::Get { req, .. }
            | PeerRequest::Put { req, .. }
            | PeerRequest::ActorCall { req, .. }
            | PeerRequest::Run { req, .. } => *req,
        }
    }
}

/// A worker's peer socket → the asker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerReply {
    /// One entry per asked key; `None` when this worker does not hold it.
    Data { req: RequestId, items: Vec<(Key, Option<serde_bytes::ByteBuf>)> },
    Stored { req: RequestId },
    Error { req: RequestId, message: String },
    /// What an actor method or a `Run` function returned (CBOR).
    Returned {
        req: RequestId,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// The actor method or `Run` function failed.
    Raised { req: RequestId, error: TaskError },
}

impl PeerReply {
    /// The id of the request this answers.
    pub fn req(&self) -> RequestId {
        match self {
            PeerReply::Data { req, .. }
            | PeerReply::Stored { req }
            | PeerReply::Error { req, .. }
            | PeerReply::Returned { req, .. }
            | PeerReply::Raised { req, .. } => *req,
        }
    }
}
