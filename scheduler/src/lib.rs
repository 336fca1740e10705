//! Reprise's scheduler.
//!
//! [`core`] is the sans-IO state machine: it decides, from one input at a
//! time and the current time passed in as a value, which [`reprise_proto::Event`]s
//! happen and which messages go out. It never touches a socket, a clock, a
//! thread or a disk, so the simulator and the property tests drive the very
//! code that runs in production.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod core;

/// The tokio + ZeroMQ + sled shell around [`core`].
pub mod service;
