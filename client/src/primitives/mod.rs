//! Coordination primitives: [`Variable`], [`Queue`], [`Lock`], [`Event`],
//! [`Semaphore`], and the dataset methods of [`Client`].
//!
//! Each is scheduler state named cluster-wide (one namespace per kind), so
//! two handles with the same name in two processes address the same
//! primitive, and all of them survive a scheduler restart exactly.
//! Constructors are synchronous and cheap; the name is checked at the first
//! operation (`Error::Invalid`).
//!
//! Values are CBOR-encoded and kept by the scheduler (at most
//! [`reprise_proto::PRIMITIVE_VALUE_BYTES_MAX`] bytes; larger values belong
//! on a worker, passed as their future). A future stored with `set_future`,
//! `put_future` or `publish_dataset` stays alive until it is taken,
//! overwritten, deleted or unpublished, whoever else holds it.
mod dataset;
mod event;
mod lock;
mod queue;
mod semaphore;
mod variable;

use std::time::Duration;

use ciborium::value::Value;
use reprise_proto::{invalid_primitive_name, list_refs, PrimitiveOp, PrimitiveResult, ReplyValue, StoredValue};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use queue::Queue;
pub use semaphore::{Semaphore, SemaphoreGuard};
pub use variable::Variable;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::future::Future;

/// A value received from a primitive: inline bytes, or a future handed to
/// this client.
enum Got<T> {
    Inline(Vec<u8>),
    Future(Future<T>),
}

impl<T: DeserializeOwned> Got<T> {
    /// The value itself; a future is waited for.
    async fn value(self, what: &str) -> Result<T> {
        match self {
            Got::Inline(bytes) => reprise_proto::decode(&bytes).map_err(|e| {
                Error::Codec(format!("the value of {what} does not decode as {}: {e}", std::any::type_name::<T>()))
            }),
            Got::Future(fut) => fut.result().await,
        }
    }
}

impl<T> Got<T> {
    /// The future; a plain value is not one.
    fn future(self, what: &str) -> Result<Future<T>> {
        match self {
            Got::Future(fut) => Ok(fut),
            Got::Inline(_) => Err(Error::Codec(format!("{what} holds a plain value, not a future: use get"))),
        }
    }
}

impl Client {
    /// Send `op` and wait for its answer (see [`crate::shared::Shared::primitive`]).
    async fn ask(&self, op: PrimitiveOp, bound: Option<Duration>) -> Result<PrimitiveResult> {
        self.shared().primitive(op, bound, true).await
    }

    /// [`Client::ask`], also returning the request id (an acquire's lease).
    async fn ask_with_id(&self, op: PrimitiveOp, bound: Option<Duration>) -> Result<(reprise_proto::RequestId, PrimitiveResult)> {
        self.shared().primitive_with_id(op, bound, true).await
    }

    /// The client timeout, for requests that do not wait at the scheduler.
    fn request_bound(&self) -> Option<Duration> {
        Some(self.shared().config.timeout)
    }

    /// How long to listen for the answer to a wait of `timeout` decided by
    /// the scheduler: the timeout plus the client timeout for the round trip.
    fn wait_bound(&self, timeout: Option<Duration>) -> Option<Duration> {
        timeout.map(|t| t.saturating_add(self.shared().config.timeout))
    }

    /// Turn every future of an answer into a handle at once, so that none of
    /// their counted references can leak.
    fn take_values<T>(&self, values: Vec<ReplyValue>) -> Vec<Got<T>> {
        values
            .into_iter()
            .map(|v| match v {
                ReplyValue::Inline(bytes) => Got::Inline(bytes),
                ReplyValue::Future { key, .. } => Got::Future(self.adopt_counted(key)),
            })
            .collect()
    }
}

/// `Err(Error::Invalid)` for a name the scheduler would refuse.
fn check_name(name: &str) -> Result<()> {
    match invalid_primitive_name(name) {
        Some(message) => Err(Error::Invalid(message)),
        None => Ok(()),
    }
}

/// A fresh name for `new_unique`.
fn unique_name(kind: &str) -> String {
    format!("{kind}-{}", uuid::Uuid::new_v4().simple())
}

/// Encode a plain value for the scheduler. Futures inside it would not be
/// kept alive, so they are refused: store a future with `*_future`.
fn encode_value<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<StoredValue> {
    let bytes = reprise_proto::encode(value)?;
    if bytes.len() > reprise_proto::PRIMITIVE_VALUE_BYTES_MAX {
        return Err(Error::Codec(format!(
            "the value for {what} is {} bytes, over the {} byte limit for values kept by the scheduler: scatter it and store its future",
            bytes.len(),
            reprise_proto::PRIMITIVE_VALUE_BYTES_MAX
        )));
    }
    let decoded: Value = reprise_proto::decode(&bytes)?;
    if let Some(key) = list_refs(&decoded).first() {
        return Err(Error::Codec(format!(
            "the value for {what} contains the future {key}, which it would not keep alive: store the future itself with set_future / put_future"
        )));
    }
    Ok(StoredValue::Inline(bytes))
}

/// A future to store, refused at once if it is cancelled.
fn future_value<T>(fut: &Future<T>) -> Result<StoredValue> {
    if fut.cancelled() {
        return Err(Error::Cancelled { key: fut.key().to_owned() });
    }
    Ok(StoredValue::Future(fut.key_ref().clone()))
}

/// The error an answer other than the expected one stands for.
fn failure(result: PrimitiveResult, what: &str) -> Error {
    match result {
        PrimitiveResult::Timeout => Error::Timeout,
        PrimitiveResult::Closed => Error::Closed,
        PrimitiveResult::Cancelled { key } => Error::Cancelled { key: key.0 },
        PrimitiveResult::NotFound { message } => Error::NotFound(message),
        PrimitiveResult::Invalid { message } => Error::Invalid(message),
        other => Error::Protocol(format!("{what}: unexpected answer {other:?}")),
    }
}

/// `Ok` for `Done`, the matching error otherwise.
fn done(result: PrimitiveResult, what: &str) -> Result<()> {
    match result {
        PrimitiveResult::Done => Ok(()),
        other => Err(failure(other, what)),
    }
}

/// Milliseconds of a timeout, for the wire.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The one value of a get.
fn single<T>(mut values: Vec<Got<T>>, what: &str) -> Result<Got<T>> {
    match (values.pop(), values.is_empty()) {
        (Some(v), true) => Ok(v),
        _ => Err(Error::Protocol(format!("{what}: expected one value"))),
    }
}

/// Decode the answer to a get of one value.
fn one_value<T>(client: &Client, result: PrimitiveResult, what: &str) -> Result<Got<T>> {
    match result {
        PrimitiveResult::Values(values) => single(client.take_values(values), what),
        other => Err(failure(other, what)),
    }
}
