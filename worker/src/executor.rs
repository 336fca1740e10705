//! The task thread pool: `nthreads` OS threads run the (blocking) task
//! functions, never the tokio reactor.
//!
//! The core hands out a job only when a slot is free, so the job queue
//! never holds more jobs than there are free slots. A task that secedes
//! ([`TaskContext::secede`]), or that a restart abandons while it runs,
//! leaves the pool: its thread keeps running it off-pool and a new thread
//! takes its place in the pool, so that `nthreads` tasks can still run;
//! when that task ends its thread exits. A task that rejoins waits for the
//! core to grant it a slot, and its thread then counts in the pool again
//! (the pool then has a thread too many, which exits after its current
//! job). Threads are thus bounded by `nthreads` plus the tasks off-pool.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use reprise_proto::{Attempt, Key, TaskError, TaskErrorKind};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use crate::actor::ActorBox;
use crate::context::{Services, TaskContext};
use crate::core::Job;
use crate::registry::Registry;
use crate::{Error, Result};

/// A job's outcome, sent back to the service loop.
pub(crate) struct JobDone {
    pub(crate) key: Key,
    pub(crate) attempt: Attempt,
    pub(crate) outcome: Result<Bytes, TaskError>,
    /// The instance an actor-creating job made, to be kept under its key.
    pub(crate) actor: Option<ActorBox>,
}

impl std::fmt::Debug for JobDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobDone")
            .field("key", &self.key)
            .field("attempt", &self.attempt)
            .field("outcome", &self.outcome.as_ref().map(Bytes::len))
            .field("actor", &self.actor.is_some())
            .finish()
    }
}

/// What task threads tell the service loop.
#[derive(Debug)]
pub(crate) enum ExecEvent {
    Done(JobDone),
    /// The task left the pool: its slot is free for another task.
    Seceded {
        key: Key,
        attempt: Attempt,
    },
    /// The seceded task wants a slot again; `resume` fires when it has one.
    Rejoin {
        key: Key,
        attempt: Attempt,
        resume: oneshot::Sender<()>,
    },
}

/// What every task thread shares.
pub(crate) struct Pool {
    queue: Mutex<mpsc::Receiver<Job>>,
    registry: Arc<Registry>,
    events: UnboundedSender<ExecEvent>,
    pub(crate) services: Arc<Services>,
    nthreads: usize,
    /// Threads serving the job queue; a seceded task's thread is not one.
    in_pool: AtomicUsize,
    /// The jobs running now, and whether each one's thread left the pool;
    /// and jobs a restart abandoned before a thread took them, which are
    /// then not run at all.
    running: Mutex<Running>,
    /// Numbers thread names.
    n_started: AtomicUsize,
}

impl Pool {
    /// The running job `id`'s thread leaves the pool (it seceded, or a
    /// restart abandoned it), unless it already did.
    pub(crate) fn take_off(self: &Arc<Self>, id: &(Key, Attempt)) {
        let newly_off = {
            let mut running = self.lock_running();
            match running.jobs.get_mut(id) {
                Some(off) if !*off => {
                    *off = true;
                    true
                }
                Some(_) => false,
                None => {
                    running.abandoned.insert(id.clone());
                    false
                }
            }
        };
        if newly_off {
            self.leave();
        }
    }

    /// The running job `id` rejoined (the core granted it a slot): its
    /// thread counts in the pool again.
    pub(crate) fn put_back(&self, id: &(Key, Attempt)) {
        if let Some(off) = self.lock_running().jobs.get_mut(id) {
            if *off {
                *off = false;
                self.in_pool.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A thread leaves the pool; a new one takes its place if the pool is short.
    fn leave(self: &Arc<Self>) {
        let before = self.in_pool.fetch_sub(1, Ordering::AcqRel);
        if before <= self.nthreads {
            if let Err(e) = self.start_thread() {
                tracing::error!("cannot start a task thread in place of a seceded task: {e}");
            }
        }
    }

    /// Tell the service loop; a loop that is gone (a killed worker) discards it.
    pub(crate) fn report(&self, event: ExecEvent) {
        let _ = self.events.send(event);
    }

    fn start_thread(self: &Arc<Self>) -> std::io::Result<()> {
        self.in_pool.fetch_add(1, Ordering::AcqRel);
        let n = self.n_started.fetch_add(1, Ordering::Relaxed);
        let pool = Arc::clone(self);
        let started = std::thread::Builder::new().name(format!("reprise-task-{n}")).spawn(move || run_jobs(&pool));
        if started.is_err() {
            self.in_pool.fetch_sub(1, Ordering::AcqRel);
        }
        started.map(|_| ())
    }

    /// Leave the pool if it has more threads than slots; true if this thread should exit.
    fn shrink(&self) -> bool {
        self.in_pool.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n > self.nthreads).then(|| n - 1)).is_ok()
    }
}

/// The jobs the pool's threads run; see [`Pool::take_off`].
#[derive(Default)]
struct Running {
    jobs: BTreeMap<(Key, Attempt), bool>,
    abandoned: std::collections::BTreeSet<(Key, Attempt)>,
}

/// The pool, as the service loop holds it. Dropping it lets each thread exit
/// after its current job; the results of jobs still running then go nowhere
/// (a killed worker discards them).
pub(crate) struct Executor {
    jobs: mpsc::Sender<Job>,
    pool: Arc<Pool>,
}

impl Executor {
    pub(crate) fn start(
        nthreads: usize,
        registry: Arc<Registry>,
        events: UnboundedSender<ExecEvent>,
        services: Arc<Services>,
    ) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let pool = Arc::new(Pool {
            queue: Mutex::new(queue),
            registry,
            events,
            services,
            nthreads,
            in_pool: AtomicUsize::new(0),
            running: Mutex::new(Running::default()),
            n_started: AtomicUsize::new(0),
        });
        for _ in 0..nthreads {
            pool.start_thread().map_err(Error::Threads)?;
        }
        Ok(Executor { jobs, pool })
    }

    /// A restart abandoned the running job `id`: its thread leaves the
    /// pool (a new one takes its place) and exits once the task ends.
    pub(crate) fn detach(&self, id: &(Key, Attempt)) {
        self.pool.take_off(id);
    }

    /// Queue `job` for the next free thread.
    pub(crate) fn submit(&self, job: Job) {
        // The threads outlive the sender, so this fails only if every thread
        // died, which `run_jobs` never lets a task cause.
        if self.jobs.send(job).is_err() {
            tracing::error!("task threads are gone; a job was dropped");
        }
    }

    /// Call `func(args)` on a thread of its own, outside the pool (a `run`
    /// request), and hand the outcome to `done`.
    pub(crate) fn call_outside(
        &self,
        func: String,
        args: Vec<u8>,
        done: impl FnOnce(std::result::Result<Vec<u8>, TaskError>) + Send + 'static,
    ) -> std::io::Result<()> {
        let pool = Arc::clone(&self.pool);
        std::thread::Builder::new().name(format!("reprise-run-{func}")).spawn(move || {
            let key = Key(format!("run-{func}"));
            let ctx = TaskContext::outside_pool(key.clone(), Arc::clone(&pool));
            done(pool.registry.call(&ctx, &key, &func, &args, &[]));
        })?;
        Ok(())
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // The tasks' client belongs to the worker: its session ends with it.
        self.pool.services.close_client();
    }
}

fn run_jobs(pool: &Arc<Pool>) {
    loop {
        let job = {
            // Only the thread holding the lock waits in `recv`; the others
            // wait for the lock. A poisoned lock cannot happen (nothing panics
            // while holding it), but is treated as the end of the pool.
            let Ok(queue) = pool.queue.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let id = (job.key.clone(), job.attempt);
        let abandoned = {
            let mut running = pool.lock_running();
            let abandoned = running.abandoned.remove(&id);
            if !abandoned {
                running.jobs.insert(id.clone(), false);
            }
            abandoned
        };
        if abandoned {
            // A restart abandoned it before it started: no need to run it.
            let error =
                TaskError::new(TaskErrorKind::Raised, job.key.clone(), "abandoned by a restart before it started");
            pool.report(ExecEvent::Done(JobDone {
                key: job.key,
                attempt: job.attempt,
                outcome: Err(error),
                actor: None,
            }));
            continue;
        }
        let ctx = TaskContext::in_pool(job.key.clone(), job.attempt, Arc::clone(pool));
        let (outcome, actor) = match pool.registry.actor_of(&job.func) {
            Some(actor) => match pool.registry.create_actor(&ctx, actor, &job) {
                Ok((marker, instance)) => (Ok(Bytes::from(marker)), Some(instance)),
                Err(e) => (Err(e), None),
            },
            None => (pool.registry.call(&ctx, &job.key, &job.func, &job.args, &job.inputs).map(Bytes::from), None),
        };
        drop(ctx);
        let off_pool = pool.lock_running().jobs.remove(&id).unwrap_or(false);
        if let Err(e) = &outcome {
            tracing::debug!(key = %job.key, kind = ?e.kind, "task failed: {}", e.message);
        }
        pool.report(ExecEvent::Done(JobDone { key: job.key, attempt: job.attempt, outcome, actor }));
        // A thread whose task left the pool (and did not rejoin) exits; one
        // that rejoined may have made the pool a thread too large.
        if off_pool || pool.shrink() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    use reprise_proto::{encode, ComputeTask, ToWorker, WorkerId, WorkerMsg};

    use super::*;
    use crate::context::Services;
    use crate::core::{CoreConfig, Effect, WorkerCore};
    use crate::registry::IntoContextTask;

    const LIMIT: Duration = Duration::from_secs(20);

    /// Drive a real pool with a real core, as the service loop does, until
    /// `n_reports` tasks reported; the reports in order.
    async fn drive(
        core: &mut WorkerCore,
        executor: &Executor,
        events: &mut tokio::sync::mpsc::UnboundedReceiver<ExecEvent>,
        n_reports: usize,
    ) -> Vec<WorkerMsg> {
        let mut rejoins: BTreeMap<(Key, Attempt), oneshot::Sender<()>> = BTreeMap::new();
        let mut reports = Vec::new();
        while reports.len() < n_reports {
            while let Some(effect) = core.poll_effect() {
                match effect {
                    Effect::Execute(job) => executor.submit(job),
                    Effect::Resume { key, attempt } => {
                        if let Some(r) = rejoins.remove(&(key, attempt)) {
                            let _ = r.send(());
                        }
                    }
                    other => panic!("unexpected effect {other:?}"),
                }
            }
            let event =
                tokio::time::timeout(LIMIT, events.recv()).await.expect("the pool went quiet (deadlock?)").unwrap();
            match event {
                ExecEvent::Done(done) => core.handle_task_done(done.key, done.attempt, done.outcome),
                ExecEvent::Seceded { key, attempt } => core.handle_seceded(key, attempt),
                ExecEvent::Rejoin { key, attempt, resume } => {
                    rejoins.insert((key.clone(), attempt), resume);
                    core.handle_rejoin(key, attempt);
                }
            }
            core.check_invariants().unwrap();
            reports.extend(
                core.poll_messages()
                    .into_iter()
                    .filter(|m| matches!(m, WorkerMsg::Finished { .. } | WorkerMsg::Erred { .. })),
            );
        }
        reports
    }

    /// A pool of one thread, with its services and a core that is welcomed.
    fn one_thread_worker(
        registry: Registry,
    ) -> (Executor, WorkerCore, tokio::sync::mpsc::UnboundedReceiver<ExecEvent>) {
        let functions = registry.names();
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let services = Arc::new(Services::new(
            WorkerId::from("w1"),
            "tcp://127.0.0.1:1".into(),
            "tcp://127.0.0.1:2".into(),
            None,
            tokio::runtime::Handle::current(),
        ));
        let executor = Executor::start(1, Arc::new(registry), events_tx, services).unwrap();
        let mut core = WorkerCore::new(CoreConfig::new("w1", 1, "tcp://127.0.0.1:1", functions), Duration::ZERO);
        core.poll_effect();
        core.handle_connected(Duration::ZERO);
        core.handle_message(ToWorker::Welcome { scheduler: "s".into() }, Duration::ZERO);
        core.poll_messages();
        (executor, core, events)
    }

    fn compute(core: &mut WorkerCore, key: &str, func: &str) {
        let task = ComputeTask {
            key: Key::from(key),
            attempt: Attempt(1),
            func: func.into(),
            args: encode(&()).unwrap(),
            deps: vec![],
        };
        core.handle_message(ToWorker::Compute(task), Duration::ZERO);
    }

    /// After a restart, a task that still runs holds no slot and no pool
    /// thread: new work runs at once on a fresh thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_abandoned_by_a_restart_leaves_the_pool_to_new_work() {
        let (release_tx, release_rx) = std_mpsc::sync_channel::<()>(1);
        let (started_tx, started_rx) = std_mpsc::sync_channel::<()>(1);
        let release_rx = Mutex::new(release_rx);
        let mut registry = Registry::default();
        registry.insert(
            "block".into(),
            // A context task returns a value or a `reprise_client::Result`;
            // a channel failure here panics, which fails the task as well.
            (move |_ctx: &TaskContext| {
                started_tx.send(()).expect("the test waits for the start");
                release_rx.lock().unwrap().recv_timeout(LIMIT).expect("the test releases the task");
                1u64
            })
            .into_context_task(),
        );
        registry.insert("quick".into(), (|_ctx: &TaskContext| 2u64).into_context_task());
        let (executor, mut core, mut events) = one_thread_worker(registry);
        compute(&mut core, "b", "block");
        while let Some(effect) = core.poll_effect() {
            if let Effect::Execute(job) = effect {
                executor.submit(job);
            }
        }
        tokio::task::spawn_blocking(move || started_rx.recv_timeout(LIMIT)).await.unwrap().unwrap();
        core.handle_message(ToWorker::Restart, Duration::ZERO);
        for id in core.poll_detached() {
            executor.detach(&id);
        }
        for i in 0..3 {
            compute(&mut core, &format!("q{i}"), "quick");
        }
        let reports = drive(&mut core, &executor, &mut events, 3).await;
        assert_eq!(reports.len(), 3, "every quick task ran while the abandoned one blocks");
        release_tx.send(()).unwrap();
        let done = tokio::time::timeout(LIMIT, events.recv()).await.unwrap().unwrap();
        assert!(matches!(&done, ExecEvent::Done(d) if d.key.as_str() == "b"), "{done:?}");
        if let ExecEvent::Done(d) = done {
            core.handle_task_done(d.key, d.attempt, d.outcome);
        }
        assert!(core.poll_messages().is_empty(), "the abandoned result is discarded");
        assert_eq!((core.n_executing(), core.n_seceded()), (0, 0));
        assert_eq!(executor.pool.in_pool.load(Ordering::Acquire), 1, "the pool is back to one thread");
    }

    /// A job a restart abandoned before a thread took it is not run at all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn job_abandoned_before_it_started_is_not_run() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ran);
        let mut registry = Registry::default();
        registry.insert(
            "count".into(),
            (move |_ctx: &TaskContext| counted.fetch_add(1, Ordering::AcqRel) as u64).into_context_task(),
        );
        let (executor, mut core, mut events) = one_thread_worker(registry);
        compute(&mut core, "c", "count");
        let job = match core.poll_effect() {
            Some(Effect::Execute(job)) => job,
            other => panic!("{other:?}"),
        };
        core.handle_message(ToWorker::Restart, Duration::ZERO);
        for id in core.poll_detached() {
            executor.detach(&id);
        }
        executor.submit(job);
        match tokio::time::timeout(LIMIT, events.recv()).await.unwrap().unwrap() {
            ExecEvent::Done(d) => {
                assert!(d.outcome.is_err());
                core.handle_task_done(d.key, d.attempt, d.outcome);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ran.load(Ordering::Acquire), 0);
        assert!(core.poll_messages().is_empty());
        assert_eq!((core.n_executing(), core.n_seceded()), (0, 0));
        assert_eq!(executor.pool.in_pool.load(Ordering::Acquire), 1);
    }

    /// A task that waits on another task on a one-thread worker: after
    /// `secede` the other task runs on a fresh pool thread; `rejoin` then
    /// waits for the slot; no deadlock, and at most one task holds the slot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seceded_task_waits_for_a_task_on_a_one_thread_pool_without_deadlock() {
        let (flag_tx, flag_rx) = std_mpsc::sync_channel::<()>(1);
        let flag_rx = Mutex::new(flag_rx);
        let mut registry = Registry::default();
        registry.insert(
            "waiter".into(),
            (move |ctx: &TaskContext| {
                ctx.secede();
                let got = flag_rx.lock().unwrap().recv_timeout(LIMIT);
                ctx.rejoin();
                got.map(|()| 1u64).map_err(|e| reprise_client::Error::Invalid(e.to_string()))
            })
            .into_context_task(),
        );
        registry.insert(
            "setter".into(),
            (move |_ctx: &TaskContext| {
                flag_tx.send(()).map_err(|e| reprise_client::Error::Invalid(e.to_string()))?;
                Ok(2u64)
            })
            .into_context_task(),
        );
        let (executor, mut core, mut events) = one_thread_worker(registry);
        for (key, func) in [("w", "waiter"), ("s", "setter")] {
            compute(&mut core, key, func);
        }
        let reports = drive(&mut core, &executor, &mut events, 2).await;
        let keys: Vec<&str> = reports
            .iter()
            .map(|m| match m {
                WorkerMsg::Finished { key, .. } => key.as_str(),
                other => panic!("a task failed: {other:?}"),
            })
            .collect();
        assert_eq!(keys, vec!["s", "w"]);
        assert_eq!((core.n_executing(), core.n_seceded()), (0, 0));
        // The replacement thread or the rejoined one left again: one in the pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(executor.pool.in_pool.load(Ordering::Acquire), 1);
    }
}
