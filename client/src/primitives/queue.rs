//! `Queue`: a named FIFO of values and futures.
use std::time::Duration;

use reprise_proto::{PrimitiveOp, PrimitiveResult, StoredValue};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{check_name, done, encode_value, failure, future_value, millis, one_value, unique_name, Got};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::future::Future;

/// A named queue in the scheduler (Dask's `Queue`). Items are taken in put
/// order; `get` waits for an item, a put waits while the queue holds
/// `maxsize` items (`with_maxsize`; 0, the default, means no bound). A
/// future put with [`Queue::put_future`] stays alive until it is taken.
///
/// ```no_run
/// # async fn demo(client: reprise_client::Client) -> reprise_client::Result<()> {
/// let q = reprise_client::Queue::new(&client, "jobs").with_maxsize(100);
/// q.put(&"job-1").await?;
/// let job: String = q.get(None).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Queue {
    client: Client,
    name: String,
    maxsize: u64,
}

impl Queue {
    /// A handle on the queue `name`, without a bound (nothing is sent yet).
    pub fn new(client: &Client, name: impl Into<String>) -> Queue {
        Queue { client: client.clone(), name: name.into(), maxsize: 0 }
    }

    /// A handle on a queue with a fresh name.
    pub fn new_unique(client: &Client) -> Queue {
        Queue::new(client, unique_name("queue"))
    }

    /// This handle's puts wait while the queue holds `maxsize` items.
    pub fn with_maxsize(mut self, maxsize: u64) -> Queue {
        self.maxsize = maxsize;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn maxsize(&self) -> u64 {
        self.maxsize
    }

    /// Append a value, waiting while the queue is full.
    pub async fn put<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let value = encode_value(value, &self.what())?;
        self.put_stored(value, None).await
    }

    /// Append a value, waiting at most `timeout` while the queue is full
    /// (then `Error::Timeout`, and nothing is put).
    pub async fn put_timeout<T: Serialize + ?Sized>(&self, value: &T, timeout: Duration) -> Result<()> {
        let value = encode_value(value, &self.what())?;
        self.put_stored(value, Some(timeout)).await
    }

    /// Append a future, waiting while the queue is full; it stays alive
    /// until taken. A cancelled future is refused with `Error::Cancelled`.
    pub async fn put_future<T>(&self, fut: &Future<T>) -> Result<()> {
        let value = future_value(fut)?;
        let _alive = fut.clone(); // kept until the queue holds it
        self.put_stored(value, None).await
    }

    /// Take the first item, waiting up to `timeout` (`None`: for ever) for
    /// one; `Error::Timeout` if none comes. A future item is waited for.
    pub async fn get<T: DeserializeOwned>(&self, timeout: Option<Duration>) -> Result<T> {
        self.get_raw::<T>(timeout).await?.value(&self.what()).await
    }

    /// Take the first item as a future (it must be one).
    pub async fn get_future<T>(&self, timeout: Option<Duration>) -> Result<Future<T>> {
        self.get_raw::<T>(timeout).await?.future(&self.what())
    }

    /// Take up to `n` items that are in the queue now, without waiting
    /// (possibly none). Future items are waited for.
    pub async fn get_batch<T: DeserializeOwned>(&self, n: usize) -> Result<Vec<T>> {
        check_name(&self.name)?;
        let op = PrimitiveOp::QueueGetBatch { name: self.name.clone(), n: n as u64 };
        let got = match self.client.ask(op, self.client.request_bound()).await? {
            PrimitiveResult::Values(values) => self.client.take_values::<T>(values),
            other => return Err(failure(other, &self.what())),
        };
        let mut out = Vec::with_capacity(got.len());
        for item in got {
            out.push(item.value(&self.what()).await?);
        }
        Ok(out)
    }

    /// How many items the queue holds.
    pub async fn qsize(&self) -> Result<u64> {
        check_name(&self.name)?;
        let op = PrimitiveOp::QueueSize { name: self.name.clone() };
        match self.client.ask(op, self.client.request_bound()).await? {
            PrimitiveResult::Count(n) => Ok(n),
            other => Err(failure(other, &self.what())),
        }
    }

    async fn put_stored(&self, value: StoredValue, timeout: Option<Duration>) -> Result<()> {
        check_name(&self.name)?;
        let op = PrimitiveOp::QueuePut {
            name: self.name.clone(),
            value,
            maxsize: self.maxsize,
            timeout_ms: timeout.map(millis),
        };
        // An unbounded queue never makes a put wait.
        let bound = if self.maxsize == 0 { self.client.request_bound() } else { self.client.wait_bound(timeout) };
        done(self.client.ask(op, bound).await?, &self.what())
    }

    async fn get_raw<T>(&self, timeout: Option<Duration>) -> Result<Got<T>> {
        check_name(&self.name)?;
        let op = PrimitiveOp::QueueGet { name: self.name.clone(), timeout_ms: timeout.map(millis) };
        let result = self.client.ask(op, self.client.wait_bound(timeout)).await?;
        one_value(&self.client, result, &self.what()).map_err(|e| match e {
            Error::Protocol(_) => Error::Protocol(format!("{}: a get returned no item", self.what())),
            other => other,
        })
    }

    fn what(&self) -> String {
        format!("queue {:?}", self.name)
    }
}
