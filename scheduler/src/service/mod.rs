//! The scheduler service: the thin tokio + ZeroMQ + sled shell around the
//! sans-IO [`crate::core`].
//!
//! Three parts, joined by bounded channels:
//! - a receive task reads frames from the ROUTER socket, learns the sender
//!   from its identity, decodes, and feeds the core thread ([`net`]);
//! - the core thread drains what is ready, lets the core decide, appends the
//!   batch's events to the log, flushes once (group commit), and only then
//!   hands the batch's effects to the send task ([`commit`]);
//! - a send task writes each peer's frame to the ROUTER socket.
//!
//! By default the core loop runs on a plain OS thread, because the log's
//! flush blocks: it must not stall a tokio worker of a caller's runtime,
//! which may be single-threaded. A runtime dedicated to the scheduler (the
//! `reprise scheduler` process) may run it as a task instead
//! ([`CorePlacement::Inline`]): a request then crosses no thread on its way
//! through the scheduler.
mod commit;
mod metrics;
mod net;
mod recover;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reprise_log::LogOptions;

pub use metrics::Metrics;
pub use recover::{recover_state, Recovered};

use crate::core;

/// Everything `reprise scheduler` and `LocalCluster` configure.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// The ROUTER socket's bind address, e.g. `tcp://127.0.0.1:8786` (port 0 picks a free one).
    pub listen: String,
    /// Where the event log lives.
    pub data_dir: PathBuf,
    pub log: LogOptions,
    pub core: core::Config,
    /// Take a snapshot and drop the events it covers after this many events.
    pub snapshot_every_events: u64,
    /// Where the core loop runs.
    pub core_placement: CorePlacement,
}

/// Where the scheduler's core loop (decide, append, flush, send) runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CorePlacement {
    /// A thread of its own: the log's blocking writes never stall the
    /// runtime that [`start`] was called on. Each request costs two thread
    /// wake-ups (to the core and back).
    #[default]
    OwnThread,
    /// A task on the runtime that [`start`] was called on, which then blocks
    /// while the log writes (microseconds with process durability, 0.1–3 ms
    /// with power durability). For a runtime that serves only the
    /// scheduler: no wake-up of another thread per request.
    Inline,
}

impl SchedulerConfig {
    pub fn new(listen: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        SchedulerConfig {
            listen: listen.into(),
            data_dir: data_dir.into(),
            log: LogOptions::default(),
            core: core::Config::default(),
            snapshot_every_events: 100_000,
            core_placement: CorePlacement::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Log(#[from] reprise_log::LogError),
    #[error("cannot bind the scheduler socket to {address}: {reason} (is another scheduler running there? choose another --listen address)")]
    Bind { address: String, reason: String },
    #[error("the log's snapshot at seq {seq} does not decode: {reason}")]
    Snapshot { seq: u64, reason: String },
    #[error("the scheduler's core thread stopped: {0}")]
    CoreThread(String),
}

/// The running core loop.
enum Core {
    Thread(std::thread::JoinHandle<Result<(), ServiceError>>),
    Task(tokio::task::JoinHandle<Result<(), ServiceError>>),
}

impl Core {
    async fn join(self) -> Result<(), ServiceError> {
        match self {
            Core::Thread(thread) => tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| ServiceError::CoreThread(e.to_string()))?
                .map_err(|_| ServiceError::CoreThread("the core thread panicked".into()))?,
            Core::Task(task) => task.await.map_err(|e| ServiceError::CoreThread(e.to_string()))?,
        }
    }
}

/// What start-up read from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryStats {
    /// The sequence number of the snapshot loaded, if there was one.
    pub snapshot_seq: Option<u64>,
    /// Events replayed after the snapshot.
    pub n_replayed: u64,
    /// The last sequence number in the log.
    pub last_seq: u64,
    /// Opening the log, checking it and rebuilding the state.
    pub took: Duration,
}

/// A running scheduler service.
pub struct SchedulerHandle {
    address: String,
    metrics: Arc<Metrics>,
    recovery: RecoveryStats,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    core: Option<Core>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    done: tokio::sync::watch::Receiver<bool>,
}

/// Recover the state from `config.data_dir`'s log, bind the socket and start serving.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use reprise_scheduler::service::{start, SchedulerConfig};
/// let handle = start(SchedulerConfig::new("tcp://127.0.0.1:0", "/tmp/reprise-data")).await?;
/// println!("serving on {}", handle.address());
/// handle.stop().await?;
/// # Ok(()) }
/// ```
pub async fn start(config: SchedulerConfig) -> Result<SchedulerHandle, ServiceError> {
    let metrics = Arc::new(Metrics::default());
    let dir = config.data_dir.clone();
    let log_options = config.log.clone();
    let opened = tokio::task::spawn_blocking(move || recover::open_and_recover(&dir, log_options))
        .await
        .map_err(|e| ServiceError::CoreThread(e.to_string()))??;
    let recovery = RecoveryStats {
        snapshot_seq: opened.1.snapshot_seq.map(|s| s.0),
        n_replayed: opened.1.n_replayed,
        last_seq: opened.1.last_seq.0,
        took: opened.1.took,
    };
    let (socket, address) = net::bind(&config.listen).await?;
    let (inbound_tx, inbound_rx) = tokio::sync::mpsc::channel(net::INBOUND_FRAMES_MAX);
    let (outbound_tx, outbound_rx) = tokio::sync::mpsc::unbounded_channel();
    let (send_half, recv_half) = socket.split();
    let tasks = vec![
        tokio::spawn(net::receive_loop(recv_half, inbound_tx, outbound_tx.clone(), metrics.clone())),
        tokio::spawn(net::send_loop(send_half, outbound_rx, metrics.clone())),
    ];
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let placement = config.core_placement;
    let core_loop = commit::CoreLoop {
        opened,
        config,
        inbound: inbound_rx,
        outbound: outbound_tx,
        stop: stop_rx,
        metrics: metrics.clone(),
    };
    let run = async move {
        let result = commit::run(core_loop).await;
        if let Err(e) = &result {
            tracing::error!("scheduler core stopped: {e}");
        }
        let _ = done_tx.send(true);
        result
    };
    let core = match placement {
        CorePlacement::Inline => Core::Task(tokio::spawn(run)),
        CorePlacement::OwnThread => {
            let runtime = tokio::runtime::Handle::current();
            let thread = std::thread::Builder::new()
                .name("reprise-core".into())
                .spawn(move || runtime.block_on(run))
                .map_err(|e| ServiceError::CoreThread(e.to_string()))?;
            Core::Thread(thread)
        }
    };
    Ok(SchedulerHandle {
        address,
        metrics,
        recovery,
        stop: Some(stop_tx),
        core: Some(core),
        tasks,
        done: done_rx,
    })
}

impl SchedulerHandle {
    /// The address clients and workers connect to (the real port when 0 was asked for).
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What start-up read from the log.
    pub fn recovery(&self) -> &RecoveryStats {
        &self.recovery
    }

    /// Resolves when the service stopped on its own (a fatal log error, or a shutdown request).
    pub async fn stopped(&mut self) {
        let _ = self.done.wait_for(|d| *d).await;
    }

    /// Stop serving: finish the batch in hand, close the log, drop the socket.
    pub async fn stop(mut self) -> Result<(), ServiceError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.core.take() {
            Some(core) => core.join().await,
            None => Ok(()),
        };
        for task in self.tasks.drain(..) {
            task.abort();
        }
        result
    }

    /// Stop at once, as `kill -9` would: the socket closes first, so no
    /// effect of the batch in hand leaves, and peers see the connection
    /// drop; the core thread then stops at its next wake without handling
    /// what is queued. Every batch the core handled before was flushed
    /// before its effects left, so nothing anyone relied on is lost. When
    /// this returns, the address and the data dir are free for a new start.
    pub async fn kill(mut self) -> Result<(), ServiceError> {
        for task in self.tasks.drain(..) {
            task.abort();
            // Awaiting the aborted task drops the socket halves, which stops
            // the listener and closes every peer connection.
            let _ = task.await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.core.take() {
            Some(core) => core.join().await,
            None => Ok(()),
        }
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}
