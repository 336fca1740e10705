//! `Lock`: mutual exclusion across the cluster, with leases.
use std::time::Duration;

use reprise_proto::{PrimitiveOp, PrimitiveResult, RequestId};

use super::{check_name, done, failure, millis, unique_name};
use crate::client::Client;
use crate::error::Result;

/// A named lock in the scheduler (Dask's `Lock`). Not reentrant: a second
/// `acquire` while holding it waits like anyone else's.
///
/// Holding it is a lease, refreshed by this client's heartbeats: if the
/// client dies, the lock comes back after the scheduler's lease timeout
/// (default 30 s), or at once when the scheduler sees the client leave.
///
/// ```no_run
/// # async fn demo(client: reprise_client::Client) -> reprise_client::Result<()> {
/// let lock = reprise_client::Lock::new(&client, "db-migration");
/// let guard = lock.acquire().await?;
/// // … critical section …
/// guard.release().await?; // or let it drop
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Lock {
    client: Client,
    name: String,
}

/// Holding a [`Lock`]: released on drop, or by [`LockGuard::release`].
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    name: String,
    /// The request that took the lease; `None` once released.
    lease: Option<RequestId>,
}

impl Lock {
    /// A handle on the lock `name` (nothing is sent yet).
    pub fn new(client: &Client, name: impl Into<String>) -> Lock {
        Lock { client: client.clone(), name: name.into() }
    }

    /// A handle on a lock with a fresh name.
    pub fn new_unique(client: &Client) -> Lock {
        Lock::new(client, unique_name("lock"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Wait until the lock is free, and take it.
    pub async fn acquire(&self) -> Result<LockGuard> {
        self.acquire_within(None).await?.ok_or(crate::Error::Timeout)
    }

    /// Take the lock if it comes free within `timeout` (`Duration::ZERO`:
    /// only if it is free now); `None` if it does not.
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<LockGuard>> {
        self.acquire_within(Some(timeout)).await
    }

    /// Whether someone holds the lock.
    pub async fn locked(&self) -> Result<bool> {
        check_name(&self.name)?;
        let op = PrimitiveOp::LockLocked { name: self.name.clone() };
        match self.client.ask(op, self.client.request_bound()).await? {
            PrimitiveResult::Bool(b) => Ok(b),
            other => Err(failure(other, &self.what())),
        }
    }

    async fn acquire_within(&self, timeout: Option<Duration>) -> Result<Option<LockGuard>> {
        check_name(&self.name)?;
        let op = PrimitiveOp::LockAcquire { name: self.name.clone(), timeout_ms: timeout.map(millis) };
        let (req, result) = self.client.ask_with_id(op, self.client.wait_bound(timeout)).await?;
        match result {
            PrimitiveResult::Granted => {
                Ok(Some(LockGuard { client: self.client.clone(), name: self.name.clone(), lease: Some(req) }))
            }
            PrimitiveResult::Timeout => Ok(None),
            other => Err(failure(other, &self.what())),
        }
    }

    fn what(&self) -> String {
        format!("lock {:?}", self.name)
    }
}

impl LockGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Release the lock and wait until the release is durable.
    pub async fn release(mut self) -> Result<()> {
        let Some(lease) = self.lease.take() else { return Ok(()) };
        let op = PrimitiveOp::LockRelease { name: self.name.clone(), lease };
        // A release is never withdrawn: if we stop listening, it is still resent.
        let result = self.client.shared().primitive(op, self.client.request_bound(), false).await?;
        done(result, &format!("lock {:?}", self.name))
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.client.shared().fire_primitive(PrimitiveOp::LockRelease { name: self.name.clone(), lease });
        }
    }
}
