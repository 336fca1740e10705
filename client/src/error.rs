//! The crate's one error type.
use std::time::Duration;

use reprise_proto::{TaskError, TaskErrorKind};

/// Everything that can go wrong in a client call.
///
/// `Clone` so that one failure (a refused or lost connection) can be handed
/// to every waiter.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The task (or one of its inputs) failed; the error names the task that failed first.
    #[error("{0}")]
    Task(TaskError),
    /// The future was cancelled (by this client, or by the scheduler).
    #[error("future {key} was cancelled")]
    Cancelled { key: String },
    /// A bounded wait ran out.
    #[error("timed out")]
    Timeout,
    /// The scheduler stopped answering and could not be reached again in time.
    #[error("the connection to the scheduler was lost and could not be re-established")]
    ConnectionLost,
    /// The scheduler refused this client (bad token, protocol version, …).
    #[error("the scheduler refused this client: {0}")]
    Refused(String),
    /// No connected worker has registered this function.
    #[error("no connected worker has the function {0:?}: register it on a worker (`Worker::builder().task({0:?}, ..)`)")]
    UnknownFunction(String),
    /// A value did not (de)serialize as asked.
    #[error("cannot (de)serialize: {0}")]
    Codec(String),
    /// The client, or the object asked (a closed semaphore), is closed.
    #[error("closed: the client, or the semaphore asked, is closed")]
    Closed,
    /// The scheduler refused a request as it stands (a bad primitive name,
    /// a semaphore asked with another `max_leases`, a dataset name in use, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// What was asked for does not exist (an unpublished dataset).
    #[error("not found: {0}")]
    NotFound(String),
    /// The key's data was lost with its workers and will not be recomputed.
    #[error("the data of {key} was lost (every worker holding it left) and cannot be recomputed")]
    Lost { key: String },
    /// A finished result could not be fetched from any worker that holds it.
    #[error("could not fetch {key}: {reason}")]
    Fetch { key: String, reason: String },
    /// Scattered data could not be stored on a worker.
    #[error("scatter failed: {0}")]
    Scatter(String),
    /// An operation that needs a worker (scatter) found none connected.
    #[error("no worker is connected to the scheduler (waited {waited:?}): start one, e.g. `reprise worker --scheduler ADDR`")]
    NoWorkers { waited: Duration },
    /// A builder setting cannot work (empty address, over-long name, …).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// An actor's worker is gone (it died or cannot be reached), or the
    /// scheduler lost the actor: actors are not resilient, as in Dask.
    #[error("actor {actor} ({key}) on worker {worker} is gone: {reason}; actors are not resilient, so it is not recreated elsewhere")]
    ActorLost { actor: String, key: String, worker: String, reason: String },
    /// The actor cannot take the call as asked (no such actor type or
    /// instance, too many calls waiting, a future among the arguments, …).
    #[error("actor {actor}: {message}")]
    Actor { actor: String, message: String },
    /// A worker could not be asked (`run`), or answered what it should not.
    #[error("worker {worker}: {message}")]
    Worker { worker: String, message: String },
    /// Copies between workers (`replicate`, `rebalance`) could not all be made.
    #[error("{0}")]
    Transfer(String),
    /// An embedded cluster (`LocalCluster`) could not start or change.
    #[error("local cluster: {0}")]
    Cluster(String),
    /// The scheduler answered something this client did not expect.
    #[error("unexpected answer from the scheduler: {0}")]
    Protocol(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The error a failed task surfaces as. `func_of` names the function of a
    /// key (needed to report an unknown function by its name).
    pub(crate) fn from_task_error(error: TaskError, func_of: impl FnOnce(&str) -> String) -> Error {
        match error.kind {
            TaskErrorKind::UnknownFunction => Error::UnknownFunction(func_of(error.key())),
            _ => Error::Task(error),
        }
    }
}

impl From<reprise_proto::CodecError> for Error {
    fn from(e: reprise_proto::CodecError) -> Self {
        Error::Codec(e.to_string())
    }
}
