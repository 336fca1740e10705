//! Reprise's client library: connect to a scheduler, submit named
//! functions, and work with the futures of their results, with the
//! programming model of Dask's futures.
//!
//! ```no_run
//! # async fn demo() -> reprise_client::Result<()> {
//! use reprise_client::{Client, Future};
//! let client = Client::connect("tcp://127.0.0.1:8786").await?;
//! let a: Future<i64> = client.submit("inc", (10,))?;
//! let b: Future<i64> = client.submit("inc", (20,))?;
//! let c: Future<i64> = client.submit("add", (&a, &b))?;
//! assert_eq!(c.await?, 32);
//! # Ok(()) }
//! ```
//!
//! Module map: [`session`] is the protocol logic without IO (driven by the
//! connection task here, and by the simulator); `connection` runs it over
//! ZeroMQ; `peer` and `fetch` move data to and from workers; `client`,
//! `task` and `future` are the public handles; `actor` ([`ActorHandle`])
//! and `manage` (`submit_actor`, `run`, `replicate`, `rebalance`,
//! `restart`, `shutdown` on `Client`); `wait` and `as_completed`
//! the free functions; `primitives` the coordination primitives
//! ([`Variable`], [`Queue`], [`Lock`], [`Event`], [`Semaphore`], datasets);
//! [`keys`] makes task keys.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod actor;
mod as_completed;
mod client;
mod connection;
mod error;
mod fetch;
mod future;
pub mod keys;
mod manage;
mod peer;
mod primitives;
pub mod session;
mod shared;
mod socket;
mod status;
mod task;
mod wait;

pub use actor::ActorHandle;
pub use as_completed::{as_completed, AsCompleted, Batches, WithResults};
pub use client::{Client, ClientBuilder, ARGS_BYTES_MAX, AUTH_TOKEN_ENV, DEFAULT_ADDRESS, DEFAULT_RECONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use error::{Error, Result};
pub use future::Future;
pub use primitives::{Event, Lock, LockGuard, Queue, Semaphore, SemaphoreGuard, Variable};
pub use reprise_proto::{SchedulerInfo, TaskError, TaskErrorKind, WorkerId, WorkerInfo};
pub use status::{FutureStatus, KeyStatus};
pub use task::TaskBuilder;
pub use wait::{fire_and_forget, wait, Wait, WaitResult};
