//! The worker's protocol logic, sans IO.
//!
//! [`WorkerCore`] decides everything a worker does in its session with the
//! scheduler — registering (again, with what it holds, after a reconnect),
//! heartbeats and noticing a silent scheduler, taking tasks through
//! "fetch inputs → ready → executing → report", cancelling, freeing data,
//! serving peers from its store — as plain inputs (`handle_*`) and outputs
//! ([`WorkerCore::poll_messages`], [`WorkerCore::poll_effect`]).
//!
//! Architecture invariant: this module never touches a socket, a clock, a
//! thread or randomness. Time enters as `now`, a [`Duration`] since an origin
//! the driver chooses; the tokio shell and the simulator both drive it.
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use reprise_proto::{
    actor_type, Attempt, ComputeTask, Key, PeerReply, PeerRequest, TaskError, TaskErrorKind, ToWorker, WorkerId,
    WorkerMsg, INLINE_BYTES_MAX,
};
use serde_bytes::ByteBuf;

#[cfg(test)]
mod tests;

/// The most keys asked of one peer in one request.
pub const FETCH_KEYS_MAX: usize = 1024;
/// The longest wait between two rounds of asking every holder of an input.
pub const FETCH_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The first wait after every holder of an input failed once.
pub const FETCH_BACKOFF_MIN: Duration = Duration::from_millis(100);

/// What the core needs to know about its worker.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// The worker's unique name (its DEALER identity is `w:<name>`).
    pub name: WorkerId,
    /// Task threads; at most this many tasks execute at once.
    pub nthreads: u32,
    /// The peer socket's address, advertised to the scheduler.
    pub address: String,
    /// The registered function names.
    pub functions: Vec<String>,
    /// Abstract resources this worker offers, e.g. `("GPU", 1.0)`.
    pub resources: Vec<(String, f64)>,
    pub token: Option<String>,
    /// How often a heartbeat goes to the scheduler.
    pub heartbeat_interval: Duration,
    /// Silence from the scheduler for this long means it is gone.
    pub scheduler_timeout: Duration,
    /// Give up when the scheduler has been unreachable for this long.
    pub reconnect_timeout: Duration,
    /// An input that could not be fetched for this long fails its tasks with
    /// `LostDependency`.
    pub fetch_timeout: Duration,
}

impl CoreConfig {
    /// A config with the default timings (heartbeat 1 s, scheduler lost after
    /// 5 s of silence, reconnect for 60 s, fetch inputs for 30 s).
    pub fn new(name: impl Into<WorkerId>, nthreads: u32, address: impl Into<String>, functions: Vec<String>) -> Self {
        CoreConfig {
            name: name.into(),
            nthreads,
            address: address.into(),
            functions,
            resources: Vec::new(),
            token: None,
            heartbeat_interval: Duration::from_secs(1),
            scheduler_timeout: Duration::from_secs(5),
            reconnect_timeout: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(30),
        }
    }
}

/// Something the driver must do for the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Drop the scheduler socket, if any, connect a fresh one with the same
    /// identity, and call [`WorkerCore::handle_connected`] once it is connected.
    Connect,
    /// Run this task on a free task thread and report with
    /// [`WorkerCore::handle_task_done`].
    Execute(Job),
    /// Ask the peer at `address` for `keys` and report with
    /// [`WorkerCore::handle_fetched`] or [`WorkerCore::handle_fetch_failed`].
    Fetch { address: String, keys: Vec<Key> },
    /// Let the seceded attempt that asked to rejoin go on: it holds a slot again.
    Resume { key: Key, attempt: Attempt },
    /// Send what [`WorkerCore::poll_messages`] still holds, then stop.
    Stop(StopReason),
}

/// Why the worker stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The scheduler sent `Shutdown`, or the worker was asked to shut down.
    Shutdown,
    /// The scheduler refused the registration.
    Refused(String),
    /// The scheduler was unreachable for longer than the reconnect timeout.
    ConnectionLost,
}

/// One task, ready to execute, with all its inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub key: Key,
    pub attempt: Attempt,
    pub func: String,
    /// The CBOR argument tuple, future references still in it.
    pub args: Vec<u8>,
    /// Each input's CBOR value, by key.
    pub inputs: Vec<(Key, Bytes)>,
}

/// The connection to the scheduler as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// Waiting for the driver to connect a fresh socket.
    Connecting,
    /// Connected; `Register` has been queued.
    Connected,
}

/// A task's lifecycle on this worker (one enum, data per state).
#[derive(Debug)]
enum TaskState {
    /// Waiting for these inputs to arrive from peers.
    Fetching { missing: BTreeSet<Key> },
    /// All inputs present, waiting for a free thread.
    Ready,
    /// Running on a task thread.
    Executing,
}

#[derive(Debug)]
struct Task {
    attempt: Attempt,
    func: String,
    args: Vec<u8>,
    inputs: BTreeMap<Key, Bytes>,
    state: TaskState,
}

/// One input being fetched from its holders, shared by every task that
/// needs it, and kept as a replica when the scheduler asked for a copy.
#[derive(Debug)]
struct Fetch {
    /// The scheduler asked for a copy (`ToWorker::Fetch`): store it and
    /// report `DataAdded` (or `FetchFailed`).
    keep: bool,
    holders: Vec<String>,
    /// Index (modulo `holders.len()`) of the holder to ask next; each failure
    /// moves on to the next holder, each full round waits a growing backoff.
    next_holder: usize,
    in_flight: Option<String>,
    retry_at: Duration,
    started: Duration,
    waiters: BTreeSet<Key>,
}

/// The worker's protocol state machine. See the module docs.
#[derive(Debug)]
pub struct WorkerCore {
    config: CoreConfig,
    link: Link,
    /// When the scheduler was last heard from (or the link connected).
    last_heard: Duration,
    /// Since when the worker has been without a welcomed session; `None` while registered.
    lost_since: Option<Duration>,
    next_heartbeat: Duration,
    stopped: Option<StopReason>,
    tasks: BTreeMap<Key, Task>,
    /// Cancelled attempts still running on a thread: their results are discarded.
    zombies: BTreeSet<(Key, Attempt)>,
    ready: VecDeque<(Key, Attempt)>,
    /// Threads slots taken: executing attempts (zombies included) that did not secede.
    n_executing: usize,
    /// Executing attempts (zombies included) that left the thread pool
    /// (Dask's `secede`): they hold no slot.
    seceded: BTreeSet<(Key, Attempt)>,
    /// Seceded attempts waiting for a slot to rejoin the pool, first come first served.
    rejoining: VecDeque<(Key, Attempt)>,
    /// Attempts a restart abandoned while they run, their slots freed (see
    /// [`WorkerCore::poll_detached`]).
    detached: Vec<(Key, Attempt)>,
    fetches: BTreeMap<Key, Fetch>,
    store: BTreeMap<Key, Bytes>,
    outbox: Vec<WorkerMsg>,
    effects: VecDeque<Effect>,
}

impl WorkerCore {
    /// A core with no session yet: its first effect is [`Effect::Connect`].
    pub fn new(config: CoreConfig, now: Duration) -> Self {
        let mut core = WorkerCore {
            config,
            link: Link::Connecting,
            last_heard: now,
            lost_since: Some(now),
            next_heartbeat: now,
            stopped: None,
            tasks: BTreeMap::new(),
            zombies: BTreeSet::new(),
            ready: VecDeque::new(),
            n_executing: 0,
            seceded: BTreeSet::new(),
            rejoining: VecDeque::new(),
            detached: Vec::new(),
            fetches: BTreeMap::new(),
            store: BTreeMap::new(),
            outbox: Vec::new(),
            effects: VecDeque::new(),
        };
        core.effects.push_back(Effect::Connect);
        core
    }

    // ----- inputs -------------------------------------------------------

    /// A fresh socket to the scheduler is connected: register (again), with
    /// the keys held and the attempts accepted, ahead of anything queued.
    pub fn handle_connected(&mut self, now: Duration) {
        if self.stopped.is_some() {
            return;
        }
        self.link = Link::Connected;
        self.last_heard = now;
        self.next_heartbeat = now + self.config.heartbeat_interval;
        self.outbox.retain(|m| !matches!(m, WorkerMsg::Register { .. } | WorkerMsg::Heartbeat));
        self.outbox.insert(0, self.register_msg());
    }

    /// The socket reports the scheduler disconnected (faster than silence).
    pub fn handle_disconnected(&mut self, now: Duration) {
        if self.link == Link::Connected && self.stopped.is_none() {
            self.lose_link(now);
        }
    }

    /// A message from the scheduler.
    pub fn handle_message(&mut self, msg: ToWorker, now: Duration) {
        if self.stopped.is_some() || self.link != Link::Connected {
            return;
        }
        self.last_heard = now;
        match msg {
            ToWorker::Welcome { .. } => self.lost_since = None,
            ToWorker::Refused { reason } => self.stop(StopReason::Refused(reason)),
            ToWorker::Compute(task) => self.compute(task, now),
            ToWorker::Cancel { key, attempt } => self.cancel(&key, attempt),
            ToWorker::Free { keys } => keys.iter().for_each(|k| {
                self.store.remove(k);
            }),
            ToWorker::Fetch { key, from } => self.replicate(key, from, now),
            ToWorker::Restart => self.restart(),
            ToWorker::Heartbeat => {}
            ToWorker::Shutdown => self.shutdown(),
        }
        self.progress(now);
    }

    /// A task thread finished `key`'s `attempt` with its encoded result or its error.
    pub fn handle_task_done(&mut self, key: Key, attempt: Attempt, outcome: Result<Bytes, TaskError>) {
        let id = (key, attempt);
        if self.zombies.remove(&id) {
            self.free_slot_of(&id);
        } else if self.is_executing(&id) {
            self.free_slot_of(&id);
            let (key, attempt) = id;
            let task = self.tasks.remove(&key);
            match outcome {
                Ok(data) => {
                    let inline_ok = task.is_none_or(|t| !is_actor_func(&t.func));
                    self.outbox.push(finished_msg(&key, attempt, &data, inline_ok));
                    self.store.insert(key, data);
                }
                Err(error) => self.outbox.push(WorkerMsg::Erred { key, attempt, error }),
            }
        }
        self.start_ready();
    }

    /// The executing attempt left the thread pool (Dask's `secede`): its
    /// slot goes to the next ready task while it keeps running.
    pub fn handle_seceded(&mut self, key: Key, attempt: Attempt) {
        let id = (key, attempt);
        let running = self.is_executing(&id) || self.zombies.contains(&id);
        if running && self.seceded.insert(id) {
            self.n_executing -= 1;
            self.start_ready();
        }
    }

    /// The seceded attempt wants to rejoin the pool (Dask's `rejoin`): it
    /// gets [`Effect::Resume`] once a slot is free, before any ready task.
    /// An attempt that did not secede resumes at once.
    pub fn handle_rejoin(&mut self, key: Key, attempt: Attempt) {
        let id = (key, attempt);
        if !self.seceded.contains(&id) {
            self.effects.push_back(Effect::Resume { key: id.0, attempt: id.1 });
            return;
        }
        if !self.rejoining.contains(&id) {
            self.rejoining.push_back(id);
        }
        self.start_ready();
    }

    /// A peer answered a fetch: `Some(data)` for each key it holds, `None` otherwise.
    pub fn handle_fetched(&mut self, address: &str, items: Vec<(Key, Option<Bytes>)>, now: Duration) {
        for (key, data) in items {
            match data {
                Some(data) => {
                    if let Some(fetch) = self.fetches.remove(&key) {
                        if fetch.keep {
                            self.outbox.push(WorkerMsg::DataAdded { key: key.clone(), nbytes: data.len() as u64 });
                            self.store.insert(key.clone(), data.clone());
                        }
                        self.deliver_input(&key, &data, &fetch.waiters);
                    }
                }
                None => self.fetch_failed(&key, address, now),
            }
        }
        self.progress(now);
    }

    /// Asking the peer at `address` for `keys` failed (unreachable, timeout, error reply).
    pub fn handle_fetch_failed(&mut self, address: &str, keys: &[Key], now: Duration) {
        for key in keys {
            self.fetch_failed(key, address, now);
        }
        self.progress(now);
    }

    /// A request from a client or another worker on the peer socket, for
    /// data (`Get`, `Put`). Actor calls and `Run` are the driver's to serve
    /// (they run code); the core answers them with an error.
    pub fn handle_peer_request(&mut self, request: PeerRequest) -> PeerReply {
        match request {
            PeerRequest::Get { req, keys } => {
                let items = keys
                    .into_iter()
                    .map(|k| {
                        let data = self.store.get(&k).map(|d| ByteBuf::from(d.to_vec()));
                        (k, data)
                    })
                    .collect();
                PeerReply::Data { req, items }
            }
            PeerRequest::Put { req, items } => {
                for (key, data) in items {
                    self.store.insert(key, Bytes::from(data.into_vec()));
                }
                PeerReply::Stored { req }
            }
            other @ (PeerRequest::ActorCall { .. } | PeerRequest::Run { .. }) => {
                let message = "the worker's protocol core serves only Get and Put".to_owned();
                PeerReply::Error { req: other.req(), message }
            }
        }
    }

    /// The worker was asked to stop gracefully: say `Goodbye`, then stop.
    pub fn handle_shutdown_request(&mut self) {
        if self.stopped.is_none() {
            self.shutdown();
        }
    }

    /// Time passed: heartbeats, a silent scheduler, the reconnect deadline,
    /// fetch retries and fetch deadlines.
    pub fn handle_tick(&mut self, now: Duration) {
        if self.stopped.is_some() {
            return;
        }
        if self.link == Link::Connected {
            if now.saturating_sub(self.last_heard) >= self.config.scheduler_timeout {
                self.lose_link(now);
            } else if now >= self.next_heartbeat {
                self.outbox.push(WorkerMsg::Heartbeat);
                self.next_heartbeat = now + self.config.heartbeat_interval;
            }
        }
        if self.lost_since.is_some_and(|since| now.saturating_sub(since) >= self.config.reconnect_timeout) {
            self.stop(StopReason::ConnectionLost);
            return;
        }
        let expired: Vec<Key> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.in_flight.is_none() && now.saturating_sub(f.started) >= self.config.fetch_timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.give_up_fetch(&key);
        }
        self.progress(now);
    }

    // ----- outputs ------------------------------------------------------

    /// The messages to send to the scheduler now, in order, as one batch.
    /// Empty while no socket is connected (they wait for the next session).
    pub fn poll_messages(&mut self) -> Vec<WorkerMsg> {
        if self.link == Link::Connected {
            std::mem::take(&mut self.outbox)
        } else {
            Vec::new()
        }
    }

    /// Whether [`WorkerCore::poll_messages`] has something to send.
    pub fn has_messages(&self) -> bool {
        self.link == Link::Connected && !self.outbox.is_empty()
    }

    /// The attempts a restart abandoned while they run, whose slots it
    /// freed, since the last call. Their threads stay busy until their tasks
    /// end (a thread cannot be stopped), so the driver takes those threads
    /// out of its pool and puts new ones in, as for a seceded task.
    pub fn poll_detached(&mut self) -> Vec<(Key, Attempt)> {
        std::mem::take(&mut self.detached)
    }

    /// The next thing the driver must do.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`WorkerCore::handle_tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        if self.stopped.is_some() {
            return None;
        }
        let mut deadlines = Vec::new();
        if self.link == Link::Connected {
            deadlines.push(self.next_heartbeat);
            deadlines.push(self.last_heard + self.config.scheduler_timeout);
        }
        if let Some(since) = self.lost_since {
            deadlines.push(since + self.config.reconnect_timeout);
        }
        for fetch in self.fetches.values().filter(|f| f.in_flight.is_none()) {
            deadlines.push(fetch.retry_at);
            deadlines.push(fetch.started + self.config.fetch_timeout);
        }
        deadlines.into_iter().min()
    }

    // ----- queries ------------------------------------------------------

    /// The keys whose data this worker holds, with their sizes.
    pub fn held(&self) -> Vec<(Key, u64)> {
        self.store.iter().map(|(k, d)| (k.clone(), d.len() as u64)).collect()
    }

    /// The attempts accepted and not yet reported (fetching, ready or executing).
    pub fn running(&self) -> Vec<(Key, Attempt)> {
        self.tasks.iter().map(|(k, t)| (k.clone(), t.attempt)).collect()
    }

    /// How many thread slots are taken: executing attempts, cancelled ones
    /// included, that did not secede.
    pub fn n_executing(&self) -> usize {
        self.n_executing
    }

    /// How many executing attempts (cancelled ones included) seceded.
    pub fn n_seceded(&self) -> usize {
        self.seceded.len()
    }

    /// Whether the scheduler welcomed the current session.
    pub fn is_registered(&self) -> bool {
        self.link == Link::Connected && self.lost_since.is_none()
    }

    /// The data stored under `key`, if any.
    pub fn data(&self, key: &Key) -> Option<&Bytes> {
        self.store.get(key)
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Cross-check the bookkeeping; `Err` names the first inconsistency.
    ///
    /// It costs O(n log n) in the tasks held, so the unit tests and the
    /// simulator call it after every step rather than every `handle_*` in
    /// debug builds: that made a debug worker quadratic (5,000 queued tasks
    /// took 13 s instead of well under one).
    pub fn check_invariants(&self) -> Result<(), String> {
        let executing = self.tasks.values().filter(|t| matches!(t.state, TaskState::Executing)).count();
        let (n_zombies, n_seceded) = (self.zombies.len(), self.seceded.len());
        if executing + n_zombies != self.n_executing + n_seceded {
            return Err(format!(
                "{executing} executing + {n_zombies} cancelled != n_executing {} + {n_seceded} seceded",
                self.n_executing
            ));
        }
        if let Some((key, _)) = self.seceded.iter().find(|id| !self.is_executing(id) && !self.zombies.contains(*id)) {
            return Err(format!("{key} seceded but is not executing"));
        }
        if let Some((key, _)) = self.rejoining.iter().find(|id| !self.seceded.contains(*id)) {
            return Err(format!("{key} waits to rejoin but did not secede"));
        }
        if self.n_executing > self.config.nthreads as usize {
            return Err(format!("{} tasks execute on {} threads", self.n_executing, self.config.nthreads));
        }
        let queued: BTreeSet<&(Key, Attempt)> = self.ready.iter().collect();
        for (key, task) in &self.tasks {
            match &task.state {
                TaskState::Fetching { missing } if missing.is_empty() => {
                    return Err(format!("task {key} is fetching nothing"));
                }
                TaskState::Fetching { missing } => {
                    if let Some(dep) =
                        missing.iter().find(|d| !self.fetches.get(*d).is_some_and(|f| f.waiters.contains(key)))
                    {
                        return Err(format!("task {key} waits for {dep}, which nobody fetches for it"));
                    }
                }
                TaskState::Ready if !queued.contains(&(key.clone(), task.attempt)) => {
                    return Err(format!("ready task {key} is not queued"));
                }
                TaskState::Ready | TaskState::Executing => {}
            }
        }
        for (dep, fetch) in &self.fetches {
            if fetch.waiters.is_empty() && !fetch.keep {
                return Err(format!("fetch of {dep} has no waiter and is not kept"));
            }
            for waiter in &fetch.waiters {
                let waits = self
                    .tasks
                    .get(waiter)
                    .is_some_and(|t| matches!(&t.state, TaskState::Fetching { missing } if missing.contains(dep)));
                if !waits {
                    return Err(format!("fetch of {dep} lists {waiter}, which does not wait for it"));
                }
            }
        }
        Ok(())
    }

    // ----- reactions ----------------------------------------------------

    fn register_msg(&self) -> WorkerMsg {
        WorkerMsg::Register {
            worker: self.config.name.clone(),
            nthreads: self.config.nthreads,
            address: self.config.address.clone(),
            functions: self.config.functions.clone(),
            resources: self.config.resources.clone(),
            token: self.config.token.clone(),
            held: self.held(),
            running: self.running(),
        }
    }

    fn lose_link(&mut self, now: Duration) {
        self.link = Link::Connecting;
        self.lost_since.get_or_insert(now);
        // A heartbeat is only worth sending on the socket it was made for.
        self.outbox.retain(|m| !matches!(m, WorkerMsg::Heartbeat | WorkerMsg::Register { .. }));
        self.effects.push_back(Effect::Connect);
    }

    fn shutdown(&mut self) {
        self.outbox.push(WorkerMsg::Goodbye);
        self.stop(StopReason::Shutdown);
    }

    fn stop(&mut self, reason: StopReason) {
        self.stopped = Some(reason.clone());
        self.effects.push_back(Effect::Stop(reason));
    }

    /// Whether this attempt is the key's current one and executing.
    fn is_executing(&self, (key, attempt): &(Key, Attempt)) -> bool {
        self.tasks.get(key).is_some_and(|t| t.attempt == *attempt && matches!(t.state, TaskState::Executing))
    }

    /// An executing attempt ended: its slot is free, unless it had seceded.
    fn free_slot_of(&mut self, id: &(Key, Attempt)) {
        if !self.seceded.remove(id) {
            self.n_executing -= 1;
        }
    }

    fn compute(&mut self, task: ComputeTask, now: Duration) {
        let ComputeTask { key, attempt, func, args, deps } = task;
        if let Some(existing) = self.tasks.get(&key) {
            if existing.attempt >= attempt {
                return; // a duplicate (resent after a reconnect) or a stale assignment
            }
            self.abandon(&key);
        }
        if let Some(data) = self.store.get(&key) {
            // The result is here already (a report lost with a dead socket):
            // say so again rather than run the task twice.
            self.outbox.push(finished_msg(&key, attempt, data, !is_actor_func(&func)));
            return;
        }
        if !self.config.functions.contains(&func) {
            let message = format!("no function named `{func}` is registered on worker {}", self.config.name);
            let error = TaskError::new(TaskErrorKind::UnknownFunction, key.clone(), message);
            self.outbox.push(WorkerMsg::Erred { key, attempt, error });
            return;
        }
        let mut inputs = BTreeMap::new();
        let mut missing = BTreeSet::new();
        for dep in deps {
            if let Some(inline) = dep.inline {
                inputs.insert(dep.key, Bytes::from(inline));
            } else if let Some(local) = self.store.get(&dep.key) {
                inputs.insert(dep.key, local.clone());
            } else if dep.holders.is_empty() && !self.fetches.contains_key(&dep.key) {
                let message = format!("input {} has no known holder", dep.key);
                let error = TaskError::new(TaskErrorKind::LostDependency, key.clone(), message);
                self.drop_waiter(&key, &missing);
                self.outbox.push(WorkerMsg::Erred { key, attempt, error });
                return;
            } else {
                let holders = dep.holders.into_iter().map(|(_, address)| address);
                self.want_fetch(&dep.key, &key, holders, now);
                missing.insert(dep.key);
            }
        }
        let state = if missing.is_empty() {
            self.ready.push_back((key.clone(), attempt));
            TaskState::Ready
        } else {
            TaskState::Fetching { missing }
        };
        self.tasks.insert(key, Task { attempt, func, args, inputs, state });
    }

    fn want_fetch(&mut self, dep: &Key, waiter: &Key, holders: impl Iterator<Item = String>, now: Duration) {
        self.fetch_entry(dep, holders, now).waiters.insert(waiter.clone());
    }

    /// The fetch of `dep`, started if there is none, with `holders` added.
    fn fetch_entry(&mut self, dep: &Key, holders: impl Iterator<Item = String>, now: Duration) -> &mut Fetch {
        let fetch = self.fetches.entry(dep.clone()).or_insert_with(|| Fetch {
            keep: false,
            holders: Vec::new(),
            next_holder: 0,
            in_flight: None,
            retry_at: now,
            started: now,
            waiters: BTreeSet::new(),
        });
        for holder in holders {
            if !fetch.holders.contains(&holder) {
                fetch.holders.push(holder);
            }
        }
        fetch
    }

    /// The scheduler wants a copy of `key` here (replicate, rebalance).
    fn replicate(&mut self, key: Key, from: Vec<(WorkerId, String)>, now: Duration) {
        if let Some(data) = self.store.get(&key) {
            self.outbox.push(WorkerMsg::DataAdded { nbytes: data.len() as u64, key });
            return;
        }
        let me = &self.config.name;
        let holders: Vec<String> = from.into_iter().filter(|(w, _)| w != me).map(|(_, address)| address).collect();
        if holders.is_empty() && !self.fetches.contains_key(&key) {
            let message = format!("no other worker holds {key}");
            self.outbox.push(WorkerMsg::FetchFailed { key, message });
            return;
        }
        self.fetch_entry(&key, holders.into_iter(), now).keep = true;
    }

    /// The cluster restarts: every task is abandoned (running ones finish
    /// as zombies, their results discarded, and give up their slots at once,
    /// as if they seceded), every fetch dropped, all data freed.
    fn restart(&mut self) {
        let keys: Vec<Key> = self.tasks.keys().cloned().collect();
        for key in &keys {
            let running = self
                .tasks
                .get(key)
                .filter(|t| matches!(t.state, TaskState::Executing))
                .map(|t| (key.clone(), t.attempt));
            self.abandon(key);
            if let Some(id) = running {
                if self.seceded.insert(id.clone()) {
                    self.n_executing -= 1;
                    self.detached.push(id);
                }
            }
        }
        self.ready.clear();
        self.fetches.clear();
        self.store.clear();
    }

    fn cancel(&mut self, key: &Key, attempt: Attempt) {
        if self.tasks.get(key).is_some_and(|t| t.attempt == attempt) {
            self.abandon(key);
        }
    }

    /// Forget the task under `key`; an executing attempt becomes a zombie
    /// whose result will be discarded.
    fn abandon(&mut self, key: &Key) {
        let Some(task) = self.tasks.remove(key) else { return };
        match task.state {
            TaskState::Executing => {
                self.zombies.insert((key.clone(), task.attempt));
            }
            TaskState::Fetching { missing } => self.drop_waiter(key, &missing),
            // Its entry in `ready` is skipped when popped: the attempt no longer matches.
            TaskState::Ready => {}
        }
    }

    fn drop_waiter(&mut self, waiter: &Key, deps: &BTreeSet<Key>) {
        for dep in deps {
            if let Some(fetch) = self.fetches.get_mut(dep) {
                fetch.waiters.remove(waiter);
                if fetch.waiters.is_empty() && !fetch.keep {
                    self.fetches.remove(dep);
                }
            }
        }
    }

    fn deliver_input(&mut self, dep: &Key, data: &Bytes, waiters: &BTreeSet<Key>) {
        for waiter in waiters {
            let Some(task) = self.tasks.get_mut(waiter) else { continue };
            let TaskState::Fetching { missing } = &mut task.state else { continue };
            if missing.remove(dep) {
                task.inputs.insert(dep.clone(), data.clone());
            }
            if missing.is_empty() {
                task.state = TaskState::Ready;
                self.ready.push_back((waiter.clone(), task.attempt));
            }
        }
    }

    fn fetch_failed(&mut self, dep: &Key, address: &str, now: Duration) {
        let Some(fetch) = self.fetches.get_mut(dep) else { return };
        if fetch.in_flight.as_deref() != Some(address) {
            return; // an answer to an earlier request, already retried elsewhere
        }
        fetch.in_flight = None;
        fetch.next_holder += 1;
        if now.saturating_sub(fetch.started) >= self.config.fetch_timeout {
            self.give_up_fetch(dep);
            return;
        }
        let n_holders = fetch.holders.len().max(1);
        fetch.retry_at = if fetch.next_holder % n_holders == 0 {
            let round = u32::try_from(fetch.next_holder / n_holders).unwrap_or(u32::MAX);
            now + backoff(round)
        } else {
            now
        };
    }

    /// Every task waiting for `dep` fails with `LostDependency` (and a copy
    /// the scheduler asked for is reported as failed).
    fn give_up_fetch(&mut self, dep: &Key) {
        let Some(fetch) = self.fetches.remove(dep) else { return };
        if fetch.keep {
            let message =
                format!("could not fetch {dep} from any of {:?} within {:?}", fetch.holders, self.config.fetch_timeout);
            self.outbox.push(WorkerMsg::FetchFailed { key: dep.clone(), message });
        }
        for waiter in fetch.waiters {
            let Some(task) = self.tasks.remove(&waiter) else { continue };
            if let TaskState::Fetching { missing } = &task.state {
                let others: BTreeSet<Key> = missing.iter().filter(|k| *k != dep).cloned().collect();
                self.drop_waiter(&waiter, &others);
            }
            let message = format!(
                "could not fetch input {dep} from any of {:?} within {:?}",
                fetch.holders, self.config.fetch_timeout
            );
            let error = TaskError::new(TaskErrorKind::LostDependency, waiter.clone(), message);
            self.outbox.push(WorkerMsg::Erred { key: waiter, attempt: task.attempt, error });
        }
    }

    /// After every input: start what can start, ask for what must be fetched.
    fn progress(&mut self, now: Duration) {
        self.start_ready();
        self.schedule_fetches(now);
    }

    /// Give free slots to seceded attempts that asked to rejoin, then start
    /// ready tasks, oldest first.
    fn start_ready(&mut self) {
        while self.n_executing < self.config.nthreads as usize {
            if let Some(id) = self.rejoining.pop_front() {
                self.seceded.remove(&id);
                self.n_executing += 1;
                self.effects.push_back(Effect::Resume { key: id.0, attempt: id.1 });
                continue;
            }
            let Some((key, attempt)) = self.ready.pop_front() else { break };
            let Some(task) = self.tasks.get_mut(&key) else { continue };
            if task.attempt != attempt || !matches!(task.state, TaskState::Ready) {
                continue;
            }
            task.state = TaskState::Executing;
            self.n_executing += 1;
            let job = Job {
                key,
                attempt,
                func: task.func.clone(),
                args: std::mem::take(&mut task.args),
                inputs: std::mem::take(&mut task.inputs).into_iter().collect(),
            };
            self.effects.push_back(Effect::Execute(job));
        }
    }

    /// Ask one holder for each input due a try, one request per peer.
    fn schedule_fetches(&mut self, now: Duration) {
        let mut by_peer: BTreeMap<String, Vec<Key>> = BTreeMap::new();
        for (key, fetch) in &mut self.fetches {
            if fetch.in_flight.is_some() || fetch.retry_at > now || fetch.holders.is_empty() {
                continue;
            }
            let address = fetch.holders[fetch.next_holder % fetch.holders.len()].clone();
            fetch.in_flight = Some(address.clone());
            by_peer.entry(address).or_default().push(key.clone());
        }
        for (address, keys) in by_peer {
            for chunk in keys.chunks(FETCH_KEYS_MAX) {
                self.effects.push_back(Effect::Fetch { address: address.clone(), keys: chunk.to_vec() });
            }
        }
    }
}

/// `Finished` for `data`, carrying the value itself when it is small enough
/// to be kept in the scheduler's log. An actor's marker never travels
/// inline: a copy in the log would outlive the actor, which lives only on
/// this worker.
fn finished_msg(key: &Key, attempt: Attempt, data: &Bytes, inline_ok: bool) -> WorkerMsg {
    let inline = (inline_ok && data.len() <= INLINE_BYTES_MAX).then(|| data.to_vec());
    WorkerMsg::Finished { key: key.clone(), attempt, nbytes: data.len() as u64, inline }
}

/// Whether `func` creates an actor.
fn is_actor_func(func: &str) -> bool {
    actor_type(func).is_some()
}

/// The wait after `round` full rounds of failures: doubling from
/// [`FETCH_BACKOFF_MIN`], capped at [`FETCH_BACKOFF_MAX`].
fn backoff(round: u32) -> Duration {
    let factor = 1u32 << round.saturating_sub(1).min(16);
    FETCH_BACKOFF_MIN.saturating_mul(factor).min(FETCH_BACKOFF_MAX)
}
