//! `wait` and `fire_and_forget`.
use std::future::IntoFuture;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::error::Result;
use crate::future::{BoxedResult, Future};

/// What [`wait`] found: the futures that are done and those that are not.
#[derive(Debug)]
pub struct WaitResult<T> {
    /// Finished, erred, cancelled or lost, in the order given.
    pub done: Vec<Future<T>>,
    /// Still pending when the wait ended, in the order given.
    pub not_done: Vec<Future<T>>,
}

/// A wait on several futures; `.await` it (see [`wait`]).
#[must_use = "a wait does nothing until awaited"]
pub struct Wait<T> {
    futs: Vec<Future<T>>,
    timeout: Option<Duration>,
    first_completed: bool,
}

/// Wait until all `futs` are done (finished, erred, cancelled or lost);
/// `.timeout(d)` stops waiting after `d`, `.first_completed()` as soon as one
/// is done. Either way the result sorts the futures into `done` and `not_done`.
///
/// ```no_run
/// # async fn demo(futs: Vec<reprise_client::Future<i64>>) -> reprise_client::Result<()> {
/// use std::time::Duration;
/// let r = reprise_client::wait(&futs).timeout(Duration::from_secs(1)).await?;
/// println!("{} done, {} not", r.done.len(), r.not_done.len());
/// # Ok(()) }
/// ```
pub fn wait<'a, T: 'a>(futs: impl IntoIterator<Item = &'a Future<T>>) -> Wait<T> {
    Wait { futs: futs.into_iter().cloned().collect(), timeout: None, first_completed: false }
}

impl<T> Wait<T> {
    /// Stop waiting after `timeout`; not an error (unfinished futures are in `not_done`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Return as soon as any future is done.
    pub fn first_completed(mut self) -> Self {
        self.first_completed = true;
        self
    }

    async fn run(self) -> Result<WaitResult<T>> {
        let waits = async {
            let mut pending: FuturesUnordered<_> = self.futs.iter().map(Future::wait_done).collect();
            while let Some(r) = pending.next().await {
                r?;
                if self.first_completed {
                    break;
                }
            }
            Ok::<(), crate::Error>(())
        };
        match self.timeout {
            Some(t) => {
                if let Ok(r) = tokio::time::timeout(t, waits).await {
                    r?;
                }
            }
            None => waits.await?,
        }
        let (done, not_done) = self.futs.into_iter().partition(Future::done);
        Ok(WaitResult { done, not_done })
    }
}

impl<T: Send + 'static> IntoFuture for Wait<T> {
    type Output = Result<WaitResult<T>>;
    type IntoFuture = BoxedResult<'static, WaitResult<T>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Keep the task (and its inputs) running after every local reference is
/// dropped; once it has finished and nobody holds it, it is released.
pub async fn fire_and_forget<T>(fut: &Future<T>) -> Result<()> {
    let key = fut.key_ref().clone();
    fut.shared().with_session(|s, now| s.fire_and_forget(std::slice::from_ref(&key), now))
}
