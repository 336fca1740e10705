//! [`TaskContext`]: what a running task can reach besides its arguments —
//! its key, its worker, a client of its own cluster (Dask's `get_client`),
//! and its executor slot (`secede` / `rejoin`).
use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};

use reprise_client::Client;
use reprise_proto::{Attempt, Key, WorkerId};
use tokio::sync::oneshot;

use crate::executor::{ExecEvent, Pool};

/// The longest client name a worker gives its tasks' client.
const CLIENT_NAME_BYTES_MAX: usize = 200;

/// What every task of one worker shares: where the scheduler is, and the
/// one client (made on first use) its tasks talk to it through.
pub(crate) struct Services {
    pub(crate) worker: WorkerId,
    /// The worker's peer socket address.
    pub(crate) address: String,
    scheduler: String,
    token: Option<String>,
    runtime: tokio::runtime::Handle,
    client: Mutex<Option<Client>>,
}

impl Services {
    pub(crate) fn new(
        worker: WorkerId,
        address: String,
        scheduler: String,
        token: Option<String>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Services { worker, address, scheduler, token, runtime, client: Mutex::new(None) }
    }

    /// The tasks' client, connected on first use. The lock is held while
    /// connecting, so that concurrent first uses share one client.
    fn client(&self) -> reprise_client::Result<Client> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let mut builder = Client::builder().address(self.scheduler.as_str()).name(client_name(&self.worker));
        if let Some(token) = &self.token {
            builder = builder.auth_token(token.as_str());
        }
        let client = self.runtime.block_on(builder.connect())?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Let go of the tasks' client (its session ends once running tasks drop
    /// their clones). Never waits: a task may be connecting right now.
    pub(crate) fn close_client(&self) {
        if let Ok(mut slot) = self.client.try_lock() {
            slot.take();
        }
    }

    /// Run `fut` to completion on the worker's runtime, from a thread that is
    /// not one of the runtime's own (task threads, actor threads).
    pub(crate) fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.runtime.block_on(fut)
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("worker", &self.worker)
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

/// `task-client-<worker>`, shortened to fit a client name.
fn client_name(worker: &WorkerId) -> String {
    let mut name = format!("task-client-{worker}");
    if name.len() > CLIENT_NAME_BYTES_MAX {
        let mut end = CLIENT_NAME_BYTES_MAX;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// Where the running task stands with respect to the worker's thread pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// It holds one of the worker's `nthreads` slots.
    Held,
    /// It left the pool with [`TaskContext::secede`] and has not rejoined.
    Seceded,
    /// It never had a slot (a `run` call, or a task run outside a worker).
    Outside,
}

/// What a task function registered with
/// [`WorkerBuilder::task_with_context`](crate::WorkerBuilder::task_with_context)
/// gets besides its arguments.
///
/// ```no_run
/// use reprise_worker::{TaskContext, Worker};
///
/// let builder = Worker::builder().task_with_context("fanout", |ctx: &TaskContext, n: u64| {
///     let client = ctx.client()?;  // a client of this worker's cluster (Dask's get_client)
///     ctx.secede();                // free this task's thread slot while it waits
///     let futs: Vec<reprise_client::Future<u64>> = client.map("inc", 0..n)?;
///     let xs = ctx.block_on(client.gather(&futs))?;
///     ctx.rejoin();                // wait for a free slot again
///     Ok(xs.iter().sum::<u64>())
/// });
/// # drop(builder);
/// ```
///
/// A task that waits for tasks it submitted should `secede` first: on a
/// worker whose every slot is taken by such waiting tasks, the tasks they
/// wait for could otherwise never start.
pub struct TaskContext {
    key: Key,
    attempt: Attempt,
    pool: Option<Arc<Pool>>,
    slot: Cell<Slot>,
}

impl TaskContext {
    /// The context of a task executing in `pool`'s slot.
    pub(crate) fn in_pool(key: Key, attempt: Attempt, pool: Arc<Pool>) -> Self {
        TaskContext { key, attempt, pool: Some(pool), slot: Cell::new(Slot::Held) }
    }

    /// The context of a call that holds no slot (a `run` request).
    pub(crate) fn outside_pool(key: Key, pool: Arc<Pool>) -> Self {
        TaskContext { key, attempt: Attempt(0), pool: Some(pool), slot: Cell::new(Slot::Outside) }
    }

    /// The context of a task run outside a running worker (by
    /// [`Worker::execute`](crate::Worker::execute)): no client, no pool.
    pub(crate) fn detached(key: Key) -> Self {
        TaskContext { key, attempt: Attempt(0), pool: None, slot: Cell::new(Slot::Outside) }
    }

    /// The worker's shared services, inside a running worker.
    pub(crate) fn services(&self) -> Option<&Services> {
        self.pool.as_ref().map(|p| p.services.as_ref())
    }

    /// The task's key.
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// The id (name) of the worker running the task; `None` outside a running worker.
    pub fn worker_id(&self) -> Option<&WorkerId> {
        self.pool.as_ref().map(|p| &p.services.worker)
    }

    /// A client of the cluster this worker belongs to (Dask's `get_client`):
    /// one per worker, shared by its tasks, connected on first use. Futures
    /// made with it work as any others; they are released when dropped.
    pub fn client(&self) -> reprise_client::Result<Client> {
        match &self.pool {
            Some(pool) => pool.services.client(),
            None => Err(reprise_client::Error::Config(
                "a task run outside a running worker has no client of a cluster".to_owned(),
            )),
        }
    }

    /// Run `fut` (e.g. `client.gather(&futs)`) to completion and return its
    /// output. Task threads are not async, so this is how a task awaits;
    /// do not call it from inside an `async` block.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        match &self.pool {
            Some(pool) => pool.services.block_on(fut),
            None => futures::executor::block_on(fut),
        }
    }

    /// Leave the worker's thread pool: the slot this task held goes to the
    /// next task while this one keeps running (Dask's `secede`). Call it
    /// before waiting on other tasks. Does nothing if the task already
    /// seceded or never held a slot.
    pub fn secede(&self) {
        if self.slot.get() != Slot::Held {
            return;
        }
        let Some(pool) = &self.pool else { return };
        self.slot.set(Slot::Seceded);
        pool.take_off(&(self.key.clone(), self.attempt));
        pool.report(ExecEvent::Seceded { key: self.key.clone(), attempt: self.attempt });
    }

    /// Come back into the thread pool after [`TaskContext::secede`]: block
    /// until a slot is free and take it (Dask's `rejoin`). Does nothing if
    /// the task did not secede.
    pub fn rejoin(&self) {
        if self.slot.get() != Slot::Seceded {
            return;
        }
        let Some(pool) = &self.pool else { return };
        let (resume, granted) = oneshot::channel();
        pool.report(ExecEvent::Rejoin { key: self.key.clone(), attempt: self.attempt, resume });
        // An error means the worker is gone; the task may as well finish
        // (its result goes nowhere).
        let _ = granted.blocking_recv();
        pool.put_back(&(self.key.clone(), self.attempt));
        self.slot.set(Slot::Held);
    }

    /// Whether the task is outside the thread pool now (it seceded and has
    /// not rejoined).
    pub fn is_seceded(&self) -> bool {
        self.slot.get() == Slot::Seceded
    }
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("key", &self.key)
            .field("worker", &self.worker_id())
            .field("seceded", &self.is_seceded())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_name_is_cut_to_the_limit_on_a_char_boundary() {
        let long = WorkerId("é".repeat(200));
        let name = client_name(&long);
        assert!(name.len() <= CLIENT_NAME_BYTES_MAX && name.starts_with("task-client-"), "{name}");
        assert_eq!(client_name(&WorkerId::from("w1")), "task-client-w1");
    }

    #[test]
    fn detached_context_has_no_client_and_secede_is_a_no_op() {
        let ctx = TaskContext::detached(Key::from("k"));
        assert_eq!(ctx.key(), "k");
        assert!(ctx.worker_id().is_none());
        assert!(ctx.client().is_err());
        ctx.secede();
        assert!(!ctx.is_seceded());
        ctx.rejoin();
        assert_eq!(ctx.block_on(async { 7 }), 7);
    }
}
