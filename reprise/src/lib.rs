//! Reprise: a distributed task scheduler with the programming model of Dask's
//! futures, whose scheduler is event-sourced and survives `kill -9`.
//!
//! This crate is the one users depend on: the client API at its root,
//! [`worker`] for building worker binaries, and [`LocalCluster`] for an
//! embedded scheduler with stock workers.
//!
//! ```no_run
//! # async fn demo() -> reprise::Result<()> {
//! use reprise::Future;
//! let cluster = reprise::LocalCluster::builder().workers(2).start().await?;
//! let client = cluster.client().await?;
//! let a: Future<i64> = client.submit("inc", (10,))?;
//! let b: Future<i64> = client.submit("inc", (20,))?;
//! let c: Future<i64> = client.submit("add", (&a, &b))?;
//! assert_eq!(c.await?, 32);
//! # Ok(()) }
//! ```

mod local_cluster;

pub use local_cluster::{LocalCluster, LocalClusterBuilder};
pub use reprise_client::*;

/// Building worker binaries: `reprise::worker::Worker::builder()…`.
pub mod worker {
    pub use reprise_worker::*;
}

/// The scheduler service, for embedding it in a program of your own.
pub mod scheduler {
    pub use reprise_scheduler::service::*;
}
