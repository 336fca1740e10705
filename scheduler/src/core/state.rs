//! The durable scheduler state: what replaying the log rebuilds.
use std::collections::{BTreeMap, BTreeSet};

use reprise_proto::{Attempt, ClientId, Holder, Key, TaskError, TaskSpec, WorkerId};
use serde::{Deserialize, Serialize};

use super::prims::Primitives;

/// Where a key's value comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Origin {
    /// Computed by running the spec: it can be recomputed from lineage.
    Computed(TaskSpec),
    /// Put on a worker by a client: it cannot be recomputed.
    Scattered,
}

/// A task's lifecycle, one variant per state with the data that state needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskState {
    /// Some inputs are not in memory yet; `unfinished` names them.
    Waiting { unfinished: BTreeSet<Key> },
    /// Every input is in memory but no worker slot is free.
    Queued,
    /// Every input is in memory but no known worker satisfies the task's
    /// restrictions or resources.
    NoWorker,
    /// Attempt `attempt` runs on `worker`.
    Processing { worker: WorkerId, attempt: Attempt },
    /// The result exists: on the workers in `who_has`, and/or inline.
    Memory {
        who_has: BTreeSet<WorkerId>,
        nbytes: u64,
        #[serde(with = "serde_bytes")]
        inline: Option<Vec<u8>>,
    },
    /// A computed task whose data no worker holds any more and that nothing
    /// needs right now; its spec stays as lineage for its dependents.
    Released,
    /// Failed for good; `error.key` names the task that failed first.
    Erred { error: TaskError },
    /// Scattered data whose holders all left, with no inline copy; or any
    /// key that was pending or in memory when the cluster restarted. It is
    /// not recomputed.
    Lost,
    /// Cancelled; transient, always forgotten within the same decision.
    Cancelled,
}

impl TaskState {
    /// The state's name as Dask spells it ("no-worker", "memory", …).
    pub fn name(&self) -> &'static str {
        match self {
            TaskState::Waiting { .. } => "waiting",
            TaskState::Queued => "queued",
            TaskState::NoWorker => "no-worker",
            TaskState::Processing { .. } => "processing",
            TaskState::Memory { .. } => "memory",
            TaskState::Released => "released",
            TaskState::Erred { .. } => "erred",
            TaskState::Lost => "lost",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Every state name, for reports that list zero counts too.
    pub const NAMES: [&'static str; 9] =
        ["waiting", "queued", "no-worker", "processing", "memory", "released", "erred", "lost", "cancelled"];

    pub fn is_memory(&self) -> bool {
        matches!(self, TaskState::Memory { .. })
    }

    /// Not computed yet but on its way: waiting, queued, no-worker or processing.
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            TaskState::Waiting { .. } | TaskState::Queued | TaskState::NoWorker | TaskState::Processing { .. }
        )
    }

    /// Waiting with every input in memory: the moment to place it.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self, TaskState::Waiting { unfinished } if unfinished.is_empty())
    }
}

/// One live key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub(crate) origin: Origin,
    /// The spec's dependencies, deduplicated.
    pub(crate) deps: BTreeSet<Key>,
    /// Submission order; every dependency has a smaller one, so it is also a
    /// topological order.
    pub(crate) order: u64,
    pub(crate) state: TaskState,
    pub(crate) wanted_by: BTreeSet<ClientId>,
    pub(crate) holders: BTreeSet<Holder>,
    /// Live tasks that list this key as a dependency.
    pub(crate) dependents: BTreeSet<Key>,
    pub(crate) retries_left: u32,
    /// How many times a worker died while running it.
    pub(crate) suspicious: u32,
}

impl Task {
    pub fn state(&self) -> &TaskState {
        &self.state
    }
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
    /// The spec, for computed tasks.
    pub fn spec(&self) -> Option<&TaskSpec> {
        match &self.origin {
            Origin::Computed(spec) => Some(spec),
            Origin::Scattered => None,
        }
    }
    pub fn deps(&self) -> &BTreeSet<Key> {
        &self.deps
    }
    pub fn dependents(&self) -> &BTreeSet<Key> {
        &self.dependents
    }
    pub fn wanted_by(&self) -> &BTreeSet<ClientId> {
        &self.wanted_by
    }
    pub fn holders(&self) -> &BTreeSet<Holder> {
        &self.holders
    }
    pub fn order(&self) -> u64 {
        self.order
    }
    pub fn retries_left(&self) -> u32 {
        self.retries_left
    }
    pub fn suspicious(&self) -> u32 {
        self.suspicious
    }
    /// Some client or pseudo-client holds a reference.
    pub fn is_wanted(&self) -> bool {
        !self.wanted_by.is_empty() || !self.holders.is_empty()
    }
    pub(crate) fn priority(&self) -> i32 {
        self.spec().map_or(0, |s| s.priority)
    }
}

/// A registered worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub(crate) address: String,
    pub(crate) nthreads: u32,
    pub(crate) functions: BTreeSet<String>,
    /// Total abstract resources (name → amount), duplicates summed.
    pub(crate) resources: BTreeMap<String, f64>,
    /// Keys processing here (mirrors `TaskState::Processing`).
    pub(crate) processing: BTreeSet<Key>,
    /// Keys whose data is here (mirrors `TaskState::Memory::who_has`).
    pub(crate) has_what: BTreeSet<Key>,
}

impl WorkerRecord {
    pub fn address(&self) -> &str {
        &self.address
    }
    pub fn nthreads(&self) -> u32 {
        self.nthreads
    }
    pub fn functions(&self) -> &BTreeSet<String> {
        &self.functions
    }
    pub fn resources(&self) -> &BTreeMap<String, f64> {
        &self.resources
    }
    pub fn processing(&self) -> &BTreeSet<Key> {
        &self.processing
    }
    pub fn has_what(&self) -> &BTreeSet<Key> {
        &self.has_what
    }
}

/// A queued task's place in the ready queue: higher priority first, then
/// submission order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct QueueSlot {
    pub(crate) neg_priority: i64,
    pub(crate) order: u64,
    pub(crate) key: Key,
}

impl QueueSlot {
    pub(crate) fn of(key: &Key, task: &Task) -> Self {
        QueueSlot { neg_priority: -i64::from(task.priority()), order: task.order, key: key.clone() }
    }
}

/// Everything the log rebuilds: tasks, workers, clients and the counters
/// that keep replay deterministic. [`State::apply`] is its only mutator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub(crate) tasks: BTreeMap<Key, Task>,
    pub(crate) workers: BTreeMap<WorkerId, WorkerRecord>,
    /// Known client sessions and the keys each wants.
    pub(crate) clients: BTreeMap<ClientId, BTreeSet<Key>>,
    /// The queued tasks, in the order they get slots.
    pub(crate) queue: BTreeSet<QueueSlot>,
    /// The tasks in `no-worker`.
    pub(crate) no_worker: BTreeSet<Key>,
    pub(crate) next_order: u64,
    pub(crate) next_attempt: u64,
    /// Events that made no sense for the state they met and changed nothing.
    pub(crate) n_ignored_events: u64,
    /// Variables, queues, locks, semaphores, events and datasets.
    pub(crate) prims: Primitives,
}

impl Default for State {
    fn default() -> Self {
        State {
            tasks: BTreeMap::new(),
            workers: BTreeMap::new(),
            clients: BTreeMap::new(),
            queue: BTreeSet::new(),
            no_worker: BTreeSet::new(),
            next_order: 0,
            // Attempt 0 is never handed out, so a default Attempt is always stale.
            next_attempt: 1,
            n_ignored_events: 0,
            prims: Primitives::default(),
        }
    }
}

impl State {
    /// The live task with this key.
    pub fn task(&self, key: &Key) -> Option<&Task> {
        self.tasks.get(key)
    }
    /// The state of a live key.
    pub fn task_state(&self, key: &Key) -> Option<&TaskState> {
        self.tasks.get(key).map(|t| &t.state)
    }
    /// Every live task, by key.
    pub fn tasks(&self) -> impl Iterator<Item = (&Key, &Task)> {
        self.tasks.iter()
    }
    pub fn n_tasks(&self) -> usize {
        self.tasks.len()
    }
    /// Live tasks by state name; every name of [`TaskState::NAMES`] is present.
    pub fn counts_by_state(&self) -> BTreeMap<&'static str, u64> {
        let mut counts: BTreeMap<&'static str, u64> = TaskState::NAMES.iter().map(|n| (*n, 0)).collect();
        for task in self.tasks.values() {
            *counts.entry(task.state.name()).or_default() += 1;
        }
        counts
    }
    pub fn worker(&self, worker: &WorkerId) -> Option<&WorkerRecord> {
        self.workers.get(worker)
    }
    /// Every registered worker (removed ones are gone), by id.
    pub fn workers(&self) -> impl Iterator<Item = (&WorkerId, &WorkerRecord)> {
        self.workers.iter()
    }
    /// The workers holding the key's data (empty when not in memory).
    pub fn who_has(&self, key: &Key) -> Vec<WorkerId> {
        match self.task_state(key) {
            Some(TaskState::Memory { who_has, .. }) => who_has.iter().cloned().collect(),
            _ => Vec::new(),
        }
    }
    /// The keys whose data the worker holds.
    pub fn has_what(&self, worker: &WorkerId) -> Option<&BTreeSet<Key>> {
        self.workers.get(worker).map(|w| &w.has_what)
    }
    /// Known client sessions.
    pub fn clients(&self) -> impl Iterator<Item = &ClientId> {
        self.clients.keys()
    }
    pub fn has_client(&self, client: &ClientId) -> bool {
        self.clients.contains_key(client)
    }
    /// The keys a client wants.
    pub fn client_wants(&self, client: &ClientId) -> Option<&BTreeSet<Key>> {
        self.clients.get(client)
    }
    /// The queued keys, in the order they will get slots.
    pub fn queued(&self) -> impl Iterator<Item = &Key> {
        self.queue.iter().map(|slot| &slot.key)
    }
    /// The next attempt number to hand out.
    pub fn next_attempt(&self) -> Attempt {
        Attempt(self.next_attempt)
    }
    /// How many applied events changed nothing because they did not fit the
    /// state they met (zero for a log the core wrote).
    pub fn n_ignored_events(&self) -> u64 {
        self.n_ignored_events
    }

    /// The keys among `task`'s dependencies whose data is not in memory.
    pub(crate) fn unfinished_deps(&self, task: &Task) -> BTreeSet<Key> {
        task.deps.iter().filter(|d| !self.tasks.get(*d).is_some_and(|t| t.state.is_memory())).cloned().collect()
    }

    /// Some dependent still needs this key's data: it is not computed yet.
    pub(crate) fn has_pending_dependent(&self, task: &Task) -> bool {
        task.dependents.iter().any(|d| self.tasks.get(d).is_some_and(|t| t.state.is_pending()))
    }
}
