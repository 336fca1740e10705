use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use reprise_proto::TaskError;
use tokio::sync::{oneshot, watch};

use crate::builder::{Settings, WorkerBuilder};
use crate::context::TaskContext;
use crate::core::Job;
use crate::handle::WorkerHandle;
use crate::registry::Registry;
use crate::service;
use crate::Result;

/// What a running worker publishes about itself, as [`WorkerHandle`] sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Status {
    /// The peer socket's address, once bound.
    pub(crate) address: Option<String>,
    /// Whether the scheduler welcomed the current session.
    pub(crate) registered: bool,
    /// How the worker ended, once it has.
    pub(crate) ended: Option<String>,
}

/// A worker: runs the registered functions the scheduler assigns, keeps
/// their results, and serves them to clients and other workers.
///
/// ```no_run
/// # async fn example() -> reprise_worker::Result<()> {
/// use reprise_worker::Worker;
///
/// Worker::builder()
///     .scheduler("tcp://127.0.0.1:8786")
///     .task("inc", |x: i64| x + 1)
///     .build()?
///     .run()
///     .await
/// # }
/// ```
#[derive(Debug)]
pub struct Worker {
    pub(crate) settings: Settings,
    pub(crate) registry: Arc<Registry>,
    pub(crate) status: watch::Sender<Status>,
}

impl Worker {
    /// Start configuring a worker.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

    /// The worker's unique name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The registered function names, sorted: what the worker advertises.
    pub fn functions(&self) -> Vec<String> {
        self.registry.names()
    }

    /// Run `job` on the calling thread exactly as a task thread would, for a
    /// driver of [`WorkerCore`](crate::core::WorkerCore) other than
    /// [`Worker::run`], such as the simulator.
    ///
    /// The task's [`TaskContext`](crate::TaskContext) has no client and no
    /// pool (`secede` does nothing); an actor-creating job makes its instance
    /// and drops it, returning the marker.
    pub fn execute(&self, job: &Job) -> std::result::Result<Bytes, TaskError> {
        let ctx = TaskContext::detached(job.key.clone());
        match self.registry.actor_of(&job.func) {
            Some(actor) => self.registry.create_actor(&ctx, actor, job).map(|(marker, _instance)| Bytes::from(marker)),
            None => self.registry.call(&ctx, &job.key, &job.func, &job.args, &job.inputs).map(Bytes::from),
        }
    }

    /// Serve until the scheduler sends `Shutdown` (`Ok`), the scheduler
    /// refuses the worker, or it stays unreachable for the reconnect timeout
    /// (`Err`). Dropping the future stops the worker abruptly.
    pub async fn run(self) -> Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Like [`Worker::run`], and also stop gracefully (tell the scheduler
    /// `Goodbye`) once `shutdown` resolves — e.g. on Ctrl-C:
    /// `worker.run_until(async { tokio::signal::ctrl_c().await.ok(); })`.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let Worker { settings, registry, status } = self;
        service::serve(settings, registry, status, shutdown).await
    }

    /// Run the worker as a task on the current tokio runtime (panics outside
    /// one, like `tokio::spawn`), for in-process clusters and tests.
    pub fn spawn(self) -> WorkerHandle {
        let name = self.settings.name.clone();
        let status = self.status.subscribe();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let join = tokio::spawn(self.run_until(async move {
            // A dropped sender is not a request to shut down.
            if shutdown_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        WorkerHandle::new(name, status, shutdown_tx, join)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reprise_proto::{encode, future_ref_value, Attempt, ComputeTask, DepLocation, Key, ToWorker, WorkerMsg};

    use crate::core::{CoreConfig, Effect, WorkerCore};

    /// A core driven by hand, its jobs run with `Worker::execute`: the shape
    /// of the simulator's loop.
    #[test]
    fn core_driven_by_hand_runs_jobs_through_execute() {
        let worker = crate::stock::register(super::Worker::builder()).scheduler("tcp://127.0.0.1:1").build().unwrap();
        let config = CoreConfig::new(worker.name(), 1, "tcp://127.0.0.1:2", worker.functions());
        let mut core = WorkerCore::new(config, Duration::ZERO);
        assert_eq!(core.poll_effect(), Some(Effect::Connect));
        core.handle_connected(Duration::ZERO);
        let x = Key::from("x");
        let args = encode(&ciborium::Value::Array(vec![future_ref_value(&x)])).unwrap();
        let dep = DepLocation { key: x, holders: vec![], inline: Some(encode(&42i64).unwrap()) };
        let task = ComputeTask { key: Key::from("inc-1"), attempt: Attempt(1), func: "inc".into(), args, deps: vec![dep] };
        core.handle_message(ToWorker::Compute(task), Duration::ZERO);
        let Some(Effect::Execute(job)) = core.poll_effect() else { panic!("expected a job") };
        let outcome = worker.execute(&job);
        core.handle_task_done(job.key, job.attempt, outcome);
        let msgs = core.poll_messages();
        let finished = msgs.iter().find_map(|m| match m {
            WorkerMsg::Finished { inline: Some(v), .. } => Some(reprise_proto::decode::<i64>(v).unwrap()),
            _ => None,
        });
        assert_eq!(finished, Some(43));
    }
}
