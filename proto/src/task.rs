use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Key, WorkerId};

/// Everything the scheduler needs to run a task and to recompute it from
/// lineage: it is logged verbatim in [`crate::Event::TaskSubmitted`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub key: Key,
    /// The registered function's name ("inc", "add", …).
    pub func: String,
    /// The CBOR-encoded argument tuple; future references inside are tagged
    /// with [`crate::FUTURE_REF_TAG`].
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    /// Keys whose results must be in memory before this task runs: the
    /// future references found in `args`, deduplicated, in first-seen order.
    pub deps: Vec<Key>,
    /// Higher runs first; ties go in submission order.
    pub priority: i32,
    /// How many more times an erring attempt is retried.
    pub retries: u32,
    /// Abstract resources one run consumes on its worker, e.g. `("GPU", 1.0)`.
    pub resources: Vec<(String, f64)>,
    /// If not empty, only these workers may run the task.
    pub workers: Vec<WorkerId>,
}

impl TaskSpec {
    /// A spec with default options: priority 0, no retries, no restrictions.
    ///
    /// ```
    /// use reprise_proto::{Key, TaskSpec};
    /// let spec = TaskSpec::new(Key::from("inc-1"), "inc", vec![0x81, 0x01], vec![]);
    /// assert_eq!(spec.priority, 0);
    /// ```
    pub fn new(key: Key, func: impl Into<String>, args: Vec<u8>, deps: Vec<Key>) -> Self {
        TaskSpec { key, func: func.into(), args, deps, priority: 0, retries: 0, resources: Vec::new(), workers: Vec::new() }
    }
}

/// Why a task failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskErrorKind {
    /// The function returned `Err`.
    Raised,
    /// The function panicked.
    Panicked,
    /// Its workers died `allowed_failures` times while running it.
    KilledWorker,
    /// No connected worker has the function.
    UnknownFunction,
    /// Its arguments or result did not (de)serialize as the function needs.
    Codec,
    /// An input was lost and cannot be recomputed (e.g. scattered data).
    LostDependency,
}

/// A task's failure, carried by the task that failed first and by every
/// dependent that failed because of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    pub kind: TaskErrorKind,
    pub message: String,
    pub traceback: Option<String>,
    /// The task that failed first (Dask's `exception_blame`).
    pub key: Key,
}

impl TaskError {
    pub fn new(kind: TaskErrorKind, key: Key, message: impl Into<String>) -> Self {
        TaskError { kind, message: message.into(), traceback: None, key }
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn traceback(&self) -> Option<&str> {
        self.traceback.as_deref()
    }
    pub fn key(&self) -> &str {
        self.key.as_str()
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {} failed: {}", self.key, self.message)
    }
}

impl std::error::Error for TaskError {}
