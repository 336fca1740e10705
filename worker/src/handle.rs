use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::worker::Status;
use crate::{Error, Result};

/// A worker running on the tokio runtime, from [`Worker::spawn`](crate::Worker::spawn).
///
/// Dropping the handle kills the worker (as [`WorkerHandle::kill`] does),
/// so that an in-process cluster never leaves workers behind.
#[derive(Debug)]
pub struct WorkerHandle {
    name: String,
    status: watch::Receiver<Status>,
    shutdown: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<Result<()>>>,
}

impl WorkerHandle {
    pub(crate) fn new(
        name: String,
        status: watch::Receiver<Status>,
        shutdown: oneshot::Sender<()>,
        join: JoinHandle<Result<()>>,
    ) -> Self {
        WorkerHandle { name, status, shutdown: Some(shutdown), join: Some(join) }
    }

    /// The worker's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peer socket's address, once it is bound (see [`WorkerHandle::ready`]).
    pub fn peer_address(&self) -> Option<String> {
        self.status.borrow().address.clone()
    }

    /// Wait until the peer socket is bound and return its address; `Err` if
    /// the worker failed or ended before that.
    pub async fn ready(&self) -> Result<String> {
        let status = self.wait_status(|s| s.address.is_some()).await?;
        status.address.ok_or_else(|| Error::Stopped("the worker ended before binding its peer socket".into()))
    }

    /// Wait until the scheduler has welcomed the worker; `Err` (with the
    /// reason, e.g. a refusal) if the worker ended before that.
    pub async fn registered(&self) -> Result<()> {
        let status = self.wait_status(|s| s.registered).await?;
        if status.registered {
            Ok(())
        } else {
            Err(Error::Stopped(status.ended.unwrap_or_else(|| "the worker ended before registering".into())))
        }
    }

    /// The status once `done` holds or the worker has ended.
    async fn wait_status(&self, done: impl Fn(&Status) -> bool) -> Result<Status> {
        let mut status = self.status.clone();
        let seen = match status.wait_for(|s| done(s) || s.ended.is_some()).await {
            Ok(seen) => seen.clone(),
            Err(_) => return Err(Error::Stopped("the worker ended".into())),
        };
        match (done(&seen), &seen.ended) {
            (false, Some(ended)) => Err(Error::Stopped(ended.clone())),
            _ => Ok(seen),
        }
    }

    /// Whether the worker has stopped.
    pub fn is_finished(&self) -> bool {
        self.join.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stop abruptly, as if the process died: the sockets are dropped, no
    /// `Goodbye` is sent, and results of tasks still running are discarded.
    pub async fn kill(mut self) {
        if let Some(join) = self.join.take() {
            join.abort();
            let _ = join.await;
        }
    }

    /// Stop gracefully: tell the scheduler `Goodbye`, then end. Returns how the worker ended.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.wait().await
    }

    /// Wait for the worker to end on its own (scheduler `Shutdown`, refusal,
    /// or a lost scheduler) and return how it ended. Cancel-safe, so it can
    /// sit in a `select!` next to a shutdown signal; once it has returned,
    /// later calls return `Err(Error::Stopped)`.
    pub async fn join(&mut self) -> Result<()> {
        self.wait().await
    }

    async fn wait(&mut self) -> Result<()> {
        let Some(join) = self.join.as_mut() else {
            return Err(Error::Stopped("the worker was already stopped".into()));
        };
        let ended = join.await;
        self.join = None;
        match ended {
            Ok(result) => result,
            Err(e) => Err(Error::Stopped(format!("the worker task ended abnormally: {e}"))),
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(join) = self.join.take() {
            join.abort();
        }
    }
}
