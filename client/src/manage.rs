//! Actors and cluster management on `Client`: `submit_actor`, `run`,
//! `replicate`, `rebalance`, `restart`, `shutdown`.
use std::collections::{BTreeMap, BTreeSet};

use reprise_proto::{ActorRef, InfoReply, InfoRequest, Key, PeerReply, PeerRequest, WorkerId, ACTOR_FUNC_PREFIX};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::actor::{creation_error, ActorHandle};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::fetch;
use crate::future::{decode_result, outcome_error, Future};
use crate::keys::encode_args;
use crate::status::KeyStatus;

impl Client {
    /// Create an actor of the type registered as `actor` on some worker
    /// (`Worker::builder().actor::<T>(actor)`), with the creation arguments
    /// `args` (a tuple, `()` for none), and return its handle once it exists.
    ///
    /// ```no_run
    /// # async fn demo(client: reprise_client::Client) -> reprise_client::Result<()> {
    /// let counter = client.submit_actor("Counter", ()).await?;
    /// let n: u64 = counter.call("increment", ()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn submit_actor<A: Serialize>(&self, actor: &str, args: A) -> Result<ActorHandle> {
        let future: Future<ActorRef> =
            self.task(format!("{ACTOR_FUNC_PREFIX}{actor}")).args(args).pure(false).submit()?;
        let at = future.result().await.map_err(|e| creation_error(actor, e))?;
        Ok(ActorHandle::new(future, at))
    }

    /// Call the registered function `func` once on every connected worker
    /// that has it (Dask's `run`), outside the task slots, and return each
    /// worker's result. `args` is a tuple, as for `submit`. The first
    /// failure is the error; `Error::UnknownFunction` if no worker has `func`.
    pub async fn run<T: DeserializeOwned, A: Serialize>(
        &self,
        func: impl AsRef<str>,
        args: A,
    ) -> Result<BTreeMap<WorkerId, T>> {
        let func = func.as_ref();
        let args = encode_args(&args)?;
        if !args.deps.is_empty() {
            return Err(Error::Codec(format!("the arguments of run({func:?}) hold futures; pass values")));
        }
        let workers: Vec<_> = fetch::workers(self.shared())
            .await?
            .into_iter()
            .filter(|w| w.functions.iter().any(|f| f == func))
            .collect();
        if workers.is_empty() {
            return Err(Error::UnknownFunction(func.to_owned()));
        }
        let calls = workers.iter().map(|w| {
            let (func, args) = (func.to_owned(), args.bytes.clone());
            async move { (w, self.shared().peers.call(&w.address, |req| PeerRequest::Run { req, func, args }).await) }
        });
        let run_key = Key(format!("run-{func}"));
        let mut results = BTreeMap::new();
        for (worker, reply) in futures::future::join_all(calls).await {
            let failed = |message: String| Error::Worker { worker: worker.id.to_string(), message };
            let value = match reply {
                Ok(PeerReply::Returned { value, .. }) => decode_result(&run_key, &value)?,
                Ok(PeerReply::Raised { error, .. }) => return Err(Error::Task(error)),
                Ok(PeerReply::Error { message, .. }) => return Err(failed(message)),
                Ok(other) => return Err(failed(format!("answered run with {other:?}"))),
                Err(e) => return Err(failed(e.message)),
            };
            results.insert(worker.id.clone(), value);
        }
        Ok(results)
    }

    /// Make sure each future's data is held by `n` workers (every worker
    /// if there are fewer), waiting for the futures first; returns once
    /// the copies exist. `Error::Transfer` if some could not be made.
    pub async fn replicate<T>(&self, futs: &[Future<T>], n: usize) -> Result<()> {
        let mut keys = Vec::new();
        let mut seen = BTreeSet::new();
        for f in futs {
            let status = f.wait_done().await?;
            if !matches!(status, KeyStatus::Finished { .. }) {
                return Err(outcome_error(self.shared(), f.key_ref(), status));
            }
            if seen.insert(f.key_ref().clone()) {
                keys.push(f.key_ref().clone());
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        self.transfer("replicate", InfoRequest::Replicate { keys, n }).await
    }

    /// Move data between workers so that each holds about as many bytes
    /// (Dask's `rebalance`); returns once the moves are done.
    pub async fn rebalance(&self) -> Result<()> {
        self.transfer("rebalance", InfoRequest::Rebalance).await
    }

    /// Restart the cluster's work: every worker drops all its data and
    /// abandons its running tasks (their threads finish, their results are
    /// discarded), and every future that was pending or finished, small
    /// results kept in the log included, reports `Lost`. Workers stay
    /// connected; coordination primitives keep their state.
    pub async fn restart(&self) -> Result<()> {
        self.manage("restart", InfoRequest::Restart).await
    }

    /// Stop every worker and then the scheduler, and close this client.
    pub async fn shutdown(&self) -> Result<()> {
        self.manage("shutdown", InfoRequest::Shutdown).await?;
        self.close().await
    }

    async fn transfer(&self, what: &str, request: InfoRequest) -> Result<()> {
        match self.shared().info(request).await? {
            InfoReply::Transferred { failed: 0, .. } => Ok(()),
            InfoReply::Transferred { copied, failed } => Err(Error::Transfer(format!(
                "{what}: {failed} of {} copies could not be made (a worker left, could not fetch the data, or the data left memory meanwhile)",
                copied + failed
            ))),
            other => Err(Error::Protocol(format!("asked to {what}, got {other:?}"))),
        }
    }

    async fn manage(&self, what: &str, request: InfoRequest) -> Result<()> {
        match self.shared().info(request).await? {
            InfoReply::Done => Ok(()),
            other => Err(Error::Protocol(format!("asked to {what}, got {other:?}"))),
        }
    }
}
