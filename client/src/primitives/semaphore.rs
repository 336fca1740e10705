//! `Semaphore`: at most `max_leases` holders at once, with leases.
use std::time::Duration;

use reprise_proto::{PrimitiveOp, PrimitiveResult, RequestId};

use super::{check_name, done, failure, millis, unique_name};
use crate::client::Client;
use crate::error::{Error, Result};

/// A named semaphore in the scheduler (Dask's `Semaphore`): at most
/// `max_leases` leases are held at once. Every handle on one name must
/// agree on `max_leases` (`Error::Invalid` otherwise).
///
/// Leases are refreshed by this client's heartbeats; a client that dies
/// gives its leases back after the scheduler's lease timeout (default
/// 30 s), one that closes gives them back at once. After [`Semaphore::close`]
/// every lease is released and every acquire, pending or later, is
/// `Error::Closed`.
///
/// ```no_run
/// # async fn demo(client: reprise_client::Client) -> reprise_client::Result<()> {
/// let sem = reprise_client::Semaphore::new(&client, "db-connections", 4);
/// let lease = sem.acquire().await?;
/// // … use one of four connections …
/// drop(lease);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Semaphore {
    client: Client,
    name: String,
    max_leases: u64,
}

/// A lease on a [`Semaphore`]: released on drop, or by [`SemaphoreGuard::release`].
#[must_use = "the lease is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct SemaphoreGuard {
    client: Client,
    name: String,
    lease: Option<RequestId>,
}

impl Semaphore {
    /// A handle on the semaphore `name` with `max_leases` leases (nothing is sent yet).
    pub fn new(client: &Client, name: impl Into<String>, max_leases: u64) -> Semaphore {
        Semaphore { client: client.clone(), name: name.into(), max_leases }
    }

    /// A handle on a semaphore with a fresh name.
    pub fn new_unique(client: &Client, max_leases: u64) -> Semaphore {
        Semaphore::new(client, unique_name("semaphore"), max_leases)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn max_leases(&self) -> u64 {
        self.max_leases
    }

    /// Wait for a lease. `Error::Closed` if the semaphore is (or gets) closed.
    pub async fn acquire(&self) -> Result<SemaphoreGuard> {
        self.acquire_within(None).await?.ok_or(Error::Timeout)
    }

    /// A lease if one comes free within `timeout` (`Duration::ZERO`: only
    /// if one is free now); `None` if none does.
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<SemaphoreGuard>> {
        self.acquire_within(Some(timeout)).await
    }

    /// How many leases are held now.
    pub async fn get_value(&self) -> Result<u64> {
        check_name(&self.name)?;
        let op = PrimitiveOp::SemaphoreValue { name: self.name.clone(), max_leases: self.max_leases };
        match self.client.ask(op, self.client.request_bound()).await? {
            PrimitiveResult::Count(n) => Ok(n),
            other => Err(failure(other, &self.what())),
        }
    }

    /// Release every lease and refuse later acquires; waiting acquires get
    /// `Error::Closed`. Closing twice is harmless.
    pub async fn close(&self) -> Result<()> {
        check_name(&self.name)?;
        let op = PrimitiveOp::SemaphoreClose { name: self.name.clone(), max_leases: self.max_leases };
        done(self.client.ask(op, self.client.request_bound()).await?, &self.what())
    }

    async fn acquire_within(&self, timeout: Option<Duration>) -> Result<Option<SemaphoreGuard>> {
        check_name(&self.name)?;
        if self.max_leases == 0 {
            return Err(Error::Invalid(format!("{}: max_leases must be at least 1", self.what())));
        }
        let op = PrimitiveOp::SemaphoreAcquire {
            name: self.name.clone(),
            max_leases: self.max_leases,
            timeout_ms: timeout.map(millis),
        };
        let (req, result) = self.client.ask_with_id(op, self.client.wait_bound(timeout)).await?;
        match result {
            PrimitiveResult::Granted => {
                Ok(Some(SemaphoreGuard { client: self.client.clone(), name: self.name.clone(), lease: Some(req) }))
            }
            PrimitiveResult::Timeout => Ok(None),
            other => Err(failure(other, &self.what())),
        }
    }

    fn what(&self) -> String {
        format!("semaphore {:?}", self.name)
    }
}

impl SemaphoreGuard {
    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Give the lease back and wait until that is durable.
    pub async fn release(mut self) -> Result<()> {
        let Some(lease) = self.lease.take() else { return Ok(()) };
        let op = PrimitiveOp::SemaphoreRelease { name: self.name.clone(), lease };
        let result = self.client.shared().primitive(op, self.client.request_bound(), false).await?;
        done(result, &format!("semaphore {:?}", self.name))
    }
}

impl Drop for SemaphoreGuard {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.client.shared().fire_primitive(PrimitiveOp::SemaphoreRelease { name: self.name.clone(), lease });
        }
    }
}
