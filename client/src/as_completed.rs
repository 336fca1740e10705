//! `as_completed`: futures in the order they complete.
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::future::Future;

/// A stream of futures in completion order (see [`as_completed`]).
pub struct AsCompleted<T> {
    /// Futures added through `&self` (also while a poll is in progress elsewhere).
    added_tx: mpsc::UnboundedSender<Future<T>>,
    added_rx: mpsc::UnboundedReceiver<Future<T>>,
    waiting: FuturesUnordered<BoxFuture<'static, Future<T>>>,
}

/// A stream of the given futures in the order they complete. Erred and
/// cancelled futures are yielded too; a future added twice is yielded twice.
/// More can be added while iterating with [`AsCompleted::add`] and
/// [`AsCompleted::update`]; the stream ends when none is left.
///
/// ```no_run
/// # async fn demo(client: reprise_client::Client, futs: Vec<reprise_client::Future<i64>>) -> reprise_client::Result<()> {
/// use tokio_stream::StreamExt;
/// let mut ac = reprise_client::as_completed(futs);
/// while let Some(f) = ac.next().await {
///     if f.result().await? < 10 {
///         ac.add(client.submit("inc", (&f,))?);
///     }
/// }
/// # Ok(()) }
/// ```
pub fn as_completed<T: Send + 'static>(futs: impl IntoIterator<Item = Future<T>>) -> AsCompleted<T> {
    let (added_tx, added_rx) = mpsc::unbounded_channel();
    let ac = AsCompleted { added_tx, added_rx, waiting: FuturesUnordered::new() };
    ac.update(futs);
    ac
}

impl<T: Send + 'static> AsCompleted<T> {
    /// Add a future to wait for (also while iterating).
    pub fn add(&self, fut: Future<T>) {
        // The receiver lives in `self`, so the send cannot fail.
        let _ = self.added_tx.send(fut);
    }

    /// Add several futures.
    pub fn update(&self, futs: impl IntoIterator<Item = Future<T>>) {
        futs.into_iter().for_each(|f| self.add(f));
    }

    /// Yield each future with its result.
    pub fn with_results(self) -> WithResults<T>
    where
        T: DeserializeOwned,
    {
        WithResults { inner: self, fetching: FuturesUnordered::new() }
    }

    /// Yield everything that completed since the last poll, as one `Vec`.
    pub fn batches(self) -> Batches<T> {
        Batches { inner: self }
    }

    /// How many futures are still to be yielded.
    pub fn count(&self) -> usize {
        self.waiting.len() + self.added_rx.len()
    }

    fn take_added(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(fut)) = self.added_rx.poll_recv(cx) {
            self.waiting.push(Box::pin(async move {
                // A closed client ends the wait too; the future then reports it.
                let _ = fut.wait_done().await;
                fut
            }));
        }
    }
}

impl<T: Send + 'static> Stream for AsCompleted<T> {
    type Item = Future<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Future<T>>> {
        self.take_added(cx);
        // `FuturesUnordered` says `Ready(None)` when empty: the stream's end,
        // until something is added again.
        self.waiting.poll_next_unpin(cx)
    }
}

/// [`AsCompleted::with_results`]: `(future, its result)` in completion order.
pub struct WithResults<T> {
    inner: AsCompleted<T>,
    fetching: FuturesUnordered<BoxFuture<'static, (Future<T>, Result<T>)>>,
}

impl<T: DeserializeOwned + Send + 'static> WithResults<T> {
    /// Add a future to wait for (also while iterating).
    pub fn add(&self, fut: Future<T>) {
        self.inner.add(fut);
    }

    /// Add several futures.
    pub fn update(&self, futs: impl IntoIterator<Item = Future<T>>) {
        self.inner.update(futs);
    }
}

impl<T: DeserializeOwned + Send + 'static> Stream for WithResults<T> {
    type Item = (Future<T>, Result<T>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut inner_ended = false;
        loop {
            match self.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(fut)) => self.fetching.push(Box::pin(async move {
                    let r = fut.result().await;
                    (fut, r)
                })),
                Poll::Ready(None) => {
                    inner_ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        match self.fetching.poll_next_unpin(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Ready(None) if inner_ended => Poll::Ready(None),
            _ => Poll::Pending,
        }
    }
}

/// [`AsCompleted::batches`]: what completed since the last poll, as one `Vec`.
pub struct Batches<T> {
    inner: AsCompleted<T>,
}

impl<T: Send + 'static> Batches<T> {
    /// Add a future to wait for (also while iterating).
    pub fn add(&self, fut: Future<T>) {
        self.inner.add(fut);
    }

    /// Add several futures.
    pub fn update(&self, futs: impl IntoIterator<Item = Future<T>>) {
        self.inner.update(futs);
    }
}

impl<T: Send + 'static> Stream for Batches<T> {
    type Item = Vec<Future<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut batch = Vec::new();
        loop {
            match self.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(fut)) => batch.push(fut),
                Poll::Ready(None) if batch.is_empty() => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending if !batch.is_empty() => return Poll::Ready(Some(batch)),
                _ => return Poll::Pending,
            }
        }
    }
}
