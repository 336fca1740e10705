//! Vocabulary of the coordination primitives (Variable, Queue, Lock, Event,
//! Semaphore, published datasets), shared by the log's events and the wire.
//!
//! Primitives are named cluster-wide; each kind has its own namespace (a
//! Lock "x" and a Queue "x" are unrelated). Every request carries the
//! client's [`RequestId`]; together with the client it is an [`OpId`], which
//! names what the request created (a lease, a queue item) and makes a resend
//! after a reconnect harmless.
use serde::{Deserialize, Serialize};

use crate::{ClientId, Key, KeyState, RequestId};

/// The longest primitive name, in bytes.
pub const PRIMITIVE_NAME_BYTES_MAX: usize = 256;

/// The largest value a Variable or Queue holds inline (encoded bytes); a
/// larger one belongs on a worker (`scatter`) and is stored as its future.
pub const PRIMITIVE_VALUE_BYTES_MAX: usize = 1 << 20;

/// Why `name` cannot name a primitive, if it cannot: it must be 1 to
/// [`PRIMITIVE_NAME_BYTES_MAX`] bytes without control characters.
///
/// ```
/// use reprise_proto::invalid_primitive_name;
/// assert!(invalid_primitive_name("jobs/high-priority").is_none());
/// assert!(invalid_primitive_name("").is_some());
/// assert!(invalid_primitive_name("a\nb").is_some());
/// ```
pub fn invalid_primitive_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a primitive name must not be empty".to_owned());
    }
    if name.len() > PRIMITIVE_NAME_BYTES_MAX {
        return Some(format!(
            "the primitive name {:?}… is {} bytes long, over the {PRIMITIVE_NAME_BYTES_MAX} byte limit",
            name.chars().take(32).collect::<String>(),
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Some(format!("the primitive name {name:?} contains the control character {c:?}"));
    }
    None
}

/// One client request that changed a primitive: the client and its request
/// id. Names a lease (for the lease's whole life) and makes resends idempotent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId {
    pub client: ClientId,
    pub req: RequestId,
}

/// A value held by a Variable, a Queue item or a dataset's future.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredValue {
    /// A CBOR-encoded value, at most [`PRIMITIVE_VALUE_BYTES_MAX`] bytes.
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A future's key; the primitive keeps the key alive (a `Holder`).
    Future(Key),
}

impl StoredValue {
    /// The future's key, for a future.
    pub fn key(&self) -> Option<&Key> {
        match self {
            StoredValue::Future(key) => Some(key),
            StoredValue::Inline(_) => None,
        }
    }
}

/// What a lease is held on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LeaseOn {
    Lock(String),
    Semaphore(String),
}

/// A request on a primitive. Waits (`timeout_ms`) are decided by the
/// scheduler's clock from the moment the request arrives; `None` waits for ever.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PrimitiveOp {
    VariableSet { name: String, value: StoredValue },
    /// Wait until the variable has a value.
    VariableGet { name: String, timeout_ms: Option<u64> },
    VariableDelete { name: String },
    /// Append an item, waiting while the queue holds `maxsize` items (0: no bound).
    QueuePut { name: String, value: StoredValue, maxsize: u64, timeout_ms: Option<u64> },
    /// Take the first item, waiting until there is one.
    QueueGet { name: String, timeout_ms: Option<u64> },
    /// Take up to `n` items that are there now, without waiting.
    QueueGetBatch { name: String, n: u64 },
    QueueSize { name: String },
    /// Wait until the lock is free and take it; the lease is this request.
    LockAcquire { name: String, timeout_ms: Option<u64> },
    /// Give back the lease taken by request `lease` of this client.
    LockRelease { name: String, lease: RequestId },
    LockLocked { name: String },
    SemaphoreAcquire { name: String, max_leases: u64, timeout_ms: Option<u64> },
    SemaphoreRelease { name: String, lease: RequestId },
    /// How many leases are held.
    SemaphoreValue { name: String, max_leases: u64 },
    /// Release every lease and refuse later acquires.
    SemaphoreClose { name: String, max_leases: u64 },
    EventSet { name: String },
    EventClear { name: String },
    EventIsSet { name: String },
    /// Wait until the event is set.
    EventWait { name: String, timeout_ms: Option<u64> },
    DatasetPublish { name: String, key: Key },
    DatasetGet { name: String },
    DatasetList,
    DatasetUnpublish { name: String },
    /// Nobody waits for the answer to request `req` any more: drop its
    /// waiter, and give back the lease it may have been granted.
    Abandon { req: RequestId },
}

impl PrimitiveOp {
    /// The primitive's name, for requests on one.
    pub fn name(&self) -> Option<&str> {
        use PrimitiveOp::*;
        match self {
            VariableSet { name, .. }
            | VariableGet { name, .. }
            | VariableDelete { name }
            | QueuePut { name, .. }
            | QueueGet { name, .. }
            | QueueGetBatch { name, .. }
            | QueueSize { name }
            | LockAcquire { name, .. }
            | LockRelease { name, .. }
            | LockLocked { name }
            | SemaphoreAcquire { name, .. }
            | SemaphoreRelease { name, .. }
            | SemaphoreValue { name, .. }
            | SemaphoreClose { name, .. }
            | EventSet { name }
            | EventClear { name }
            | EventIsSet { name }
            | EventWait { name, .. }
            | DatasetPublish { name, .. }
            | DatasetGet { name }
            | DatasetUnpublish { name } => Some(name),
            DatasetList | Abandon { .. } => None,
        }
    }
}

/// A value handed to a client: inline bytes, or a future the client now
/// wants (with the key's final state when it already has one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReplyValue {
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    Future { key: Key, state: Option<KeyState> },
}

/// The answer to a [`PrimitiveOp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PrimitiveResult {
    /// The change is durable (set, delete, put, release, close, publish, …).
    Done,
    /// The lease named by the request is granted (and durable).
    Granted,
    Bool(bool),
    Count(u64),
    /// Values taken or read (one for a get, up to n for a batch).
    Values(Vec<ReplyValue>),
    Names(Vec<String>),
    /// The wait ran out.
    Timeout,
    /// The semaphore is closed.
    Closed,
    /// A future put or set is cancelled or unknown to the scheduler.
    Cancelled { key: Key },
    /// No such dataset.
    NotFound { message: String },
    /// The request cannot be served as asked (bad name, size, mismatch, …).
    Invalid { message: String },
}
