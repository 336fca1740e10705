//! Reprise's worker: runs named task functions for the scheduler, keeps
//! their results, and serves them to clients and other workers.
//!
//! ```no_run
//! # async fn example() -> reprise_worker::Result<()> {
//! use reprise_worker::Worker;
//!
//! fn inc(x: i64) -> i64 { x + 1 }
//!
//! let worker = Worker::builder()
//!     .scheduler("tcp://127.0.0.1:8786")
//!     .nthreads(2)
//!     .task("inc", inc)
//!     .task("add", |x: i64, y: i64| x + y);
//! reprise_worker::stock::register(worker).build()?.run().await
//! # }
//! ```
//!
//! # Conventions other components rely on
//!
//! - **Arguments**: a task's `args` is the CBOR of its argument tuple, an
//!   array with one item per argument (`null` is also accepted for none, and
//!   a value that is not an array is taken as the only argument of a
//!   one-argument function). Future references (CBOR tag
//!   [`reprise_proto::FUTURE_REF_TAG`]) anywhere inside are replaced by the
//!   inputs' values before the arguments are decoded into the function's types.
//!   A wrong count or type fails the task with `TaskErrorKind::Codec`.
//! - **Results** are the CBOR of the returned value (see [`TaskReturn`]); a
//!   result of at most [`reprise_proto::INLINE_BYTES_MAX`] bytes also travels
//!   inline in `WorkerMsg::Finished`.
//! - **Peer socket** (a ROUTER; its address is advertised in `Register`):
//!   each request message is one part holding a `Frame<PeerRequest>`; the
//!   answer is one part holding a `Frame<PeerReply>` with one reply per
//!   `Get`/`Put` request, in order; an `ActorCall` or `Run` is answered in a
//!   frame of its own once it ran (match replies by request id). A
//!   malformed message is answered with `PeerReply::Error { req:
//!   RequestId(0), .. }`. `Put` data is held like a result (listed in `held`
//!   on re-registration) until `Free`.
//! - **Actors**: each registered actor type is advertised as the function
//!   `actor:<name>`; that task's result is an `ActorRef` marker (never
//!   inline), and the instance lives while the marker's data does, its
//!   calls run one at a time in arrival order on a thread of its own.
//! - **Tasks with a context** ([`TaskContext`]) get a client of the
//!   cluster (one per worker, made on first use), `block_on`, and
//!   `secede`/`rejoin`: a seceded task holds no slot (a new pool thread
//!   takes its place) and a rejoining one waits for a free slot, ahead of
//!   ready tasks.
//! - **Scheduler session** (DEALER identity `w:<name>`): `Register` first on
//!   every fresh socket, then batched reports; a `Heartbeat` every second.
//!   The scheduler must send something (e.g. a `Heartbeat` answering each
//!   worker heartbeat) at least every few seconds: 5 s of silence make the
//!   worker drop its socket and register again from a fresh one. Reports sent
//!   into a socket that turned out dead are not resent: a `Finished` key then
//!   shows up in `held`, an `Erred` attempt in neither `held` nor `running`.
//!
//! Layout: [`core`] is the sans-IO protocol state machine (the simulator
//! drives it directly); the rest is the tokio + ZeroMQ shell around it —
//! `service` (the loop), `link` (the scheduler DEALER), `peer_server` and
//! `peer_client` (data between workers and clients), `executor` (the task
//! threads, secede/rejoin), `context` ([`TaskContext`]), `registry` and
//! `args` (calling a function with decoded arguments), `actor` (the
//! [`Actor`] trait and method tables) and `actor_host` (actor threads).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod actor;
mod actor_host;
mod args;
mod builder;
mod context;
pub mod core;
mod error;
mod executor;
mod handle;
mod link;
mod panic_capture;
mod peer_client;
mod peer_server;
mod registry;
mod service;
pub mod stock;
mod task_return;
mod worker;

pub use actor::{Actor, IntoMethod, Method, Methods};
pub use builder::{WorkerBuilder, AUTH_TOKEN_ENV};
pub use context::TaskContext;
pub use error::{Error, Result};
pub use handle::WorkerHandle;
pub use registry::{IntoContextTask, IntoTask, TaskFn};
pub use task_return::{ContextReturn, TaskReturn};
pub use worker::Worker;

#[cfg(test)]
mod architecture {
    /// The protocol core stays sans-IO and deterministic: no runtime, socket,
    /// thread, clock, randomness or hash-order iteration.
    #[test]
    fn core_imports_no_io_clock_or_randomness() {
        let source = include_str!("core.rs");
        for banned in ["tokio::", "zeromq::", "std::thread", "Instant", "SystemTime", "HashMap", "HashSet", "rand::"] {
            assert!(!source.contains(banned), "worker/src/core.rs mentions `{banned}`");
        }
    }
}

#[cfg(test)]
mod send_check {
    /// `Worker::run` must be `Send`, so that it can be spawned on a multi-threaded runtime.
    #[test]
    fn run_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let worker = crate::Worker::builder().scheduler("tcp://127.0.0.1:1").build().unwrap();
        let fut = worker.run();
        assert_send(&fut);
    }
}
