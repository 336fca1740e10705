//! `TaskBuilder`: a submission with Dask's per-task options.
use std::sync::atomic::Ordering;

use reprise_proto::{Key, TaskSpec, WorkerId};
use serde::Serialize;

use crate::client::{check_args_size, Client};
use crate::error::{Error, Result};
use crate::future::Future;
use crate::keys::{encode_args, pure_key, unique_key, EncodedArgs};

/// Built by [`Client::task`]; [`TaskBuilder::submit`] queues it.
///
/// ```no_run
/// # async fn demo(client: reprise_client::Client) -> reprise_client::Result<()> {
/// let f: reprise_client::Future<i64> = client.task("inc").args((1,)).key("my-key").pure(false)
///     .priority(10).retries(2).workers(["w1"]).resources([("GPU", 1.0)]).submit()?;
/// # Ok(()) }
/// ```
#[must_use = "a task is only queued by `submit()`"]
pub struct TaskBuilder {
    client: Client,
    func: String,
    args: Result<EncodedArgs>,
    key: Option<String>,
    pure: bool,
    priority: i32,
    retries: u32,
    workers: Vec<WorkerId>,
    resources: Vec<(String, f64)>,
}

impl TaskBuilder {
    pub(crate) fn new(client: Client, func: &str) -> TaskBuilder {
        TaskBuilder {
            client,
            func: func.to_owned(),
            args: encode_args(&()),
            key: None,
            pure: true,
            priority: 0,
            retries: 0,
            workers: Vec::new(),
            resources: Vec::new(),
        }
    }

    /// The arguments: a tuple or any sequence, futures allowed anywhere inside.
    pub fn args<A: Serialize>(mut self, args: A) -> Self {
        self.args = encode_args(&args);
        self
    }

    /// Use this key instead of a generated one.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Whether identical calls share a key (default `true`); `false` gives a unique key.
    pub fn pure(mut self, pure: bool) -> Self {
        self.pure = pure;
        self
    }

    /// Higher runs first (default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// How many times a failing run is retried (default 0).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Only these workers (by name) may run the task.
    pub fn workers<S: Into<String>>(mut self, workers: impl IntoIterator<Item = S>) -> Self {
        self.workers = workers.into_iter().map(|w| WorkerId(w.into())).collect();
        self
    }

    /// Abstract resources one run needs, e.g. `[("GPU", 1.0)]`.
    pub fn resources<S: Into<String>>(mut self, resources: impl IntoIterator<Item = (S, f64)>) -> Self {
        self.resources = resources.into_iter().map(|(r, n)| (r.into(), n)).collect();
        self
    }

    /// Queue the task and return its future at once.
    pub fn submit<T>(self) -> Result<Future<T>> {
        let args = self.args?;
        check_args_size(&self.func, &args.bytes)?;
        let key = match self.key {
            Some(k) if k.is_empty() => return Err(Error::Config("a task key cannot be empty".into())),
            Some(k) => Key(k),
            None if self.pure => pure_key(&self.func, &args.bytes),
            None => {
                let n = self.client.shared().unique_counter.fetch_add(1, Ordering::Relaxed);
                unique_key(&self.func, self.client.client_id(), n)
            }
        };
        let spec = TaskSpec {
            key,
            func: self.func,
            args: args.bytes,
            deps: args.deps,
            priority: self.priority,
            retries: self.retries,
            resources: self.resources,
            workers: self.workers,
        };
        let mut futs = self.client.register(vec![spec])?;
        futs.pop().ok_or_else(|| Error::Protocol("submit returned nothing".into()))
    }
}
