//! `Future<T>`: a handle on one task's (or scattered value's) result.
use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reprise_proto::{Key, TaskError, FUTURE_REF_TAG};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::fetch::{fetch_all, Wanted};
use crate::shared::{ClientInner, Shared};
use crate::status::{FutureStatus, KeyStatus};

/// A boxed, sendable std future, as `IntoFuture` hands out.
pub type BoxedResult<'a, T> = Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>;

/// A remote result of type `T`, known by its key.
///
/// Every clone is one more local reference; when the last handle on a key
/// (across all futures of this client) goes, the scheduler is told to
/// release it. A `Future` serializes as a reference to its key, so it can be
/// an argument of another task, also nested in a `Vec` or a struct.
pub struct Future<T> {
    key: Key,
    client: Arc<ClientInner>,
    rx: watch::Receiver<KeyStatus>,
    // `fn() -> T`: a future never holds a `T`, so it is `Send + Sync` whatever `T` is.
    _result: PhantomData<fn() -> T>,
}

impl<T> Future<T> {
    /// A handle on `key`, for which the session already counted one reference.
    pub(crate) fn from_counted(client: Arc<ClientInner>, key: Key) -> Future<T> {
        let rx = client.shared.watch(&key);
        Future { key, client, rx, _result: PhantomData }
    }

    /// The task's key.
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// The current status, without waiting.
    pub fn status(&self) -> FutureStatus {
        self.rx.borrow().future_status()
    }

    /// Whether the future has come to an end (finished, erred, cancelled or lost).
    pub fn done(&self) -> bool {
        self.status() != FutureStatus::Pending
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.status() == FutureStatus::Cancelled
    }

    /// Run `f` once the future is done; at once (on this thread) if it already is.
    pub fn add_done_callback(&self, f: impl FnOnce(FutureStatus) + Send + 'static) {
        self.shared().add_callback(&self.key, Box::new(f));
    }

    /// Cancel this future: it reports `Cancelled` at once; the scheduler stops
    /// the task if no other client wants it.
    pub async fn cancel(&self) -> Result<()> {
        self.shared().with_session(|s, now| s.cancel(std::slice::from_ref(&self.key), now))
    }

    /// Re-run the task if it erred (and its erred inputs); otherwise nothing.
    pub async fn retry(&self) -> Result<()> {
        self.shared().with_session(|s, now| s.retry(std::slice::from_ref(&self.key), now))
    }

    pub(crate) fn key_ref(&self) -> &Key {
        &self.key
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.client.shared
    }

    /// Wait until the key is done; its final status.
    pub(crate) async fn wait_done(&self) -> Result<KeyStatus> {
        let shared = self.shared();
        if let Some(e) = shared.terminal() {
            return Err(e);
        }
        let mut rx = self.rx.clone();
        let mut term = shared.terminal_rx();
        let status = tokio::select! {
            r = rx.wait_for(KeyStatus::is_done) => r.map(|s| s.clone()).ok(),
            _ = term.wait_for(Option::is_some) => None,
        };
        status.ok_or_else(|| shared.terminal().unwrap_or(Error::Closed))
    }
}

impl<T: DeserializeOwned> Future<T> {
    /// Wait for the result. A failed task gives `Error::Task` (or
    /// `Error::UnknownFunction`), a cancelled one `Error::Cancelled`.
    pub async fn result(&self) -> Result<T> {
        let status = self.wait_done().await?;
        let bytes = match status {
            KeyStatus::Finished { inline: Some(bytes), .. } => bytes.to_vec(),
            KeyStatus::Finished { holders, .. } => {
                let wanted = vec![Wanted { key: self.key.clone(), holders }];
                let mut got = fetch_all(self.shared(), wanted).await?;
                got.remove(&self.key).ok_or_else(|| Error::Fetch { key: self.key.0.clone(), reason: "not returned".into() })?
            }
            other => return Err(outcome_error(self.shared(), &self.key, other)),
        };
        decode_result(&self.key, &bytes)
    }

    /// [`Future::result`], giving up with `Error::Timeout` after `timeout`.
    pub async fn result_timeout(&self, timeout: Duration) -> Result<T> {
        tokio::time::timeout(timeout, self.result()).await.unwrap_or(Err(Error::Timeout))
    }

    /// Wait until done: the task's error if it erred, `None` if it finished.
    /// A cancelled or lost future is an `Err`, as its result would be.
    pub async fn exception(&self) -> Result<Option<TaskError>> {
        match self.wait_done().await? {
            KeyStatus::Finished { .. } => Ok(None),
            KeyStatus::Erred(e) => Ok(Some(e)),
            other => Err(outcome_error(self.shared(), &self.key, other)),
        }
    }
}

/// The error a key that did not finish surfaces as.
pub(crate) fn outcome_error(shared: &Shared, key: &Key, status: KeyStatus) -> Error {
    match status {
        KeyStatus::Erred(e) => Error::from_task_error(e, |k| shared.func_of(k)),
        KeyStatus::Cancelled => Error::Cancelled { key: key.0.clone() },
        KeyStatus::Lost => Error::Lost { key: key.0.clone() },
        KeyStatus::Pending | KeyStatus::Finished { .. } => {
            Error::Protocol(format!("{key} has no error to report (status {:?})", status.future_status()))
        }
    }
}

/// Decode an encoded result as `T`.
pub(crate) fn decode_result<T: DeserializeOwned>(key: &Key, bytes: &[u8]) -> Result<T> {
    reprise_proto::decode(bytes).map_err(|e| {
        Error::Codec(format!("the result of {key} does not decode as {}: {e}", std::any::type_name::<T>()))
    })
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        self.shared().with_session_always(|s, _| s.add_ref(&self.key));
        Future { key: self.key.clone(), client: self.client.clone(), rx: self.rx.clone(), _result: PhantomData }
    }
}

impl<T> Drop for Future<T> {
    fn drop(&mut self) {
        let key = &self.key;
        self.client.shared.with_session_always(|s, now| s.release_ref(key, now));
    }
}

impl<T> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Future").field("key", &self.key.as_str()).field("status", &self.status()).finish()
    }
}

impl<T> Serialize for Future<T> {
    /// The CBOR tag [`FUTURE_REF_TAG`] around the key: a reference that the
    /// worker running a task replaces with the value.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        ciborium::tag::Required::<&str, FUTURE_REF_TAG>(self.key.as_str()).serialize(serializer)
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for Future<T> {
    type Output = Result<T>;
    type IntoFuture = BoxedResult<'static, T>;

    /// `fut.await` is `fut.result().await`.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.result().await })
    }
}

impl<'a, T: DeserializeOwned + Send + 'static> IntoFuture for &'a Future<T> {
    type Output = Result<T>;
    type IntoFuture = BoxedResult<'a, T>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.result())
    }
}
