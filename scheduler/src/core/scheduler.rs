//! The `Scheduler`: decides, one input at a time, what happens.
use std::collections::{BTreeMap, BTreeSet};

use reprise_proto::{ClientId, Event, Key, ToClient, ToWorker, WorkerId};

use super::cluster::ClusterOps;
use super::prims::waiters::Waiters;
use super::sessions::Sessions;
use super::{Config, Decision, Effect, Input, Millis, State};

/// The sans-IO scheduler: the durable [`State`] plus volatile session data.
#[derive(Clone, Debug)]
pub struct Scheduler {
    pub(crate) config: Config,
    pub(crate) state: State,
    pub(crate) sessions: Sessions,
    /// Requests blocked on a primitive (volatile, like the sessions).
    pub(crate) waiters: Waiters,
    /// The last durable log sequence number, as the service reports it; only
    /// used to answer `SchedulerInfo`.
    pub(crate) last_seq: u64,
    /// Decisions taken, for spacing the debug builds' invariant checks.
    decisions: u64,
    /// Copies on their way for replicate and rebalance requests (volatile).
    pub(crate) cluster: ClusterOps,
}

/// Debug builds check the invariants after every decision while the state
/// holds at most this many tasks, and on a stride that grows with the state
/// beyond, so that their cost stays linear in the work: checking a state of
/// 10,000 live tasks after every input (a linear check each time) stalled a
/// debug scheduler for minutes in the end-to-end restart soak test. The
/// tests and the simulator call `check_invariants` after every step anyway.
const DEBUG_CHECK_TASKS: u64 = 512;

/// How much of the queue to look at again at the end of a decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rescan {
    /// Assign queued tasks while some live worker has a free slot.
    #[default]
    FreeSlots,
    /// A worker joined: `no-worker` tasks may fit now.
    NoWorker,
    /// A worker left: every queued task's fit may have changed.
    All,
}

/// One decision in the making: its output plus the work still to do.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    pub(crate) dec: Decision,
    /// Tasks that may have entered `waiting`: to revive released inputs, err
    /// on erred ones, or place.
    pub(crate) to_advance: BTreeSet<Key>,
    /// Keys whose references dropped: to forget, or to release their data.
    pub(crate) to_settle: BTreeSet<Key>,
    /// Ready tasks to place once the cascades are done.
    pub(crate) ready: BTreeSet<Key>,
    /// `Free` messages, sent together at the end of the decision.
    pub(crate) frees: BTreeMap<WorkerId, BTreeSet<Key>>,
    pub(crate) rescan: Rescan,
}

impl Cx {
    pub(crate) fn send_client(&mut self, client: &ClientId, msg: ToClient) {
        self.dec.effects.push(Effect::ToClient { client: client.clone(), msg });
    }
    pub(crate) fn send_worker(&mut self, worker: &WorkerId, msg: ToWorker) {
        self.dec.effects.push(Effect::ToWorker { worker: worker.clone(), msg });
    }
    pub(crate) fn free(&mut self, worker: &WorkerId, key: &Key) {
        self.frees.entry(worker.clone()).or_default().insert(key.clone());
    }
    pub(crate) fn rescan(&mut self, rescan: Rescan) {
        self.rescan = self.rescan.max(rescan);
    }
}

impl Scheduler {
    /// A scheduler with an empty state.
    pub fn new(config: Config) -> Self {
        Scheduler::from_state(config, State::default(), 0)
    }

    /// A scheduler over a replayed state. Every known worker and client
    /// gets the reconnect grace period from `now` to come back; workers get
    /// no new tasks until they register again.
    pub fn from_state(config: Config, state: State, now: Millis) -> Self {
        let mut sessions = Sessions::default();
        for worker in state.workers.keys() {
            sessions.returning_worker(worker, now, config.reconnect_grace_ms);
        }
        for client in state.clients.keys() {
            sessions.returning_client(client, now, config.reconnect_grace_ms);
        }
        Scheduler {
            config,
            state,
            sessions,
            waiters: Waiters::default(),
            last_seq: 0,
            decisions: 0,
            cluster: ClusterOps::default(),
        }
    }

    /// Decide what `input` leads to at time `now`. Never panics, whatever
    /// the input; malformed or out-of-place messages get an error reply or
    /// are ignored.
    pub fn handle(&mut self, input: Input, now: Millis) -> Decision {
        let mut cx = Cx::default();
        match input {
            Input::Client { client, msg } => self.handle_client(&mut cx, &client, msg, now),
            Input::Worker { worker, msg } => self.handle_worker(&mut cx, &worker, msg, now),
            Input::Tick => self.handle_tick(&mut cx, now),
        }
        self.finish_decision(&mut cx);
        self.decisions += 1;
        if cfg!(debug_assertions) && self.decisions.is_multiple_of((self.state.n_tasks() as u64 / DEBUG_CHECK_TASKS).max(1)) {
            debug_assert_eq!(self.check_invariants(), Ok(()), "after {:?}", cx.dec);
        }
        cx.dec
    }

    /// The durable state.
    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// When a [`Input::Tick`] is next useful: the first moment some peer
    /// will have been silent for longer than the heartbeat timeout, a
    /// blocked request's timeout runs out, or a lease expires.
    pub fn next_deadline(&self) -> Option<Millis> {
        let peers = self.sessions.next_deadline(self.config.heartbeat_timeout_ms);
        [peers, self.primitives_next_deadline()].into_iter().flatten().min()
    }

    /// How many requests wait on a primitive.
    pub fn n_waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Workers that registered with this scheduler run and can get tasks.
    pub fn live_workers(&self) -> impl Iterator<Item = &WorkerId> {
        self.sessions.live_workers.iter()
    }

    /// Tell the core the last durable sequence number, so that
    /// `SchedulerInfo` replies report it. The core itself never numbers events.
    pub fn set_last_seq(&mut self, seq: u64) {
        self.last_seq = seq;
    }

    /// The state's invariants plus the session data's agreement with it.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.state.check_invariants()?;
        for worker in &self.sessions.live_workers {
            if !self.state.workers.contains_key(worker) {
                return Err(format!("live worker {worker} is not in the state"));
            }
        }
        let known: BTreeSet<&WorkerId> = self.state.workers.keys().collect();
        if known != self.sessions.worker_seen.keys().collect() {
            return Err("heartbeat records disagree with the known workers".to_owned());
        }
        let known: BTreeSet<&ClientId> = self.state.clients.keys().collect();
        if known != self.sessions.client_seen.keys().collect() {
            return Err("heartbeat records disagree with the known clients".to_owned());
        }
        self.check_waiters()?;
        // Slots are filled eagerly: nothing waits that a live worker could take now.
        let parked = self.state.queued().chain(self.state.no_worker.iter());
        if let Some(key) = parked.into_iter().find(|k| self.assignable(k)) {
            return Err(format!("{key} waits in the scheduler although a worker could take it"));
        }
        Ok(())
    }

    /// Apply `ev` at once, so that the rest of the cascade sees its effect,
    /// and record it in the decision.
    pub(crate) fn emit(&mut self, cx: &mut Cx, ev: Event) {
        let ignored = self.state.n_ignored_events;
        self.state.apply(&ev);
        debug_assert_eq!(ignored, self.state.n_ignored_events, "the core emitted an event that does not fit: {ev:?}");
        cx.dec.events.push(ev);
    }

    /// Run the cascades to a fixpoint, fill free slots, then send the frees.
    fn finish_decision(&mut self, cx: &mut Cx) {
        loop {
            self.run_cascades(cx);
            let rescan = std::mem::take(&mut cx.rescan);
            self.fill_slots(cx, rescan);
            if cx.to_advance.is_empty() && cx.to_settle.is_empty() && cx.ready.is_empty() {
                break;
            }
        }
        self.settle_copies(cx);
        for (worker, keys) in std::mem::take(&mut cx.frees) {
            cx.send_worker(&worker, ToWorker::Free { keys: keys.into_iter().collect() });
        }
    }

    /// Advance waiting tasks, forget or release unneeded keys, place ready
    /// tasks; repeat until nothing is left to do.
    pub(crate) fn run_cascades(&mut self, cx: &mut Cx) {
        loop {
            if !cx.to_advance.is_empty() {
                let keys = std::mem::take(&mut cx.to_advance);
                self.advance(cx, keys);
            } else if !cx.to_settle.is_empty() {
                let keys = std::mem::take(&mut cx.to_settle);
                self.settle(cx, keys);
            } else if !cx.ready.is_empty() {
                let keys = std::mem::take(&mut cx.ready);
                self.place(cx, keys);
            } else {
                break;
            }
        }
    }

    /// Expire the peers whose heartbeats stopped: clients first, then workers.
    fn handle_tick(&mut self, cx: &mut Cx, now: Millis) {
        let (clients, workers) = self.sessions.expired(now, self.config.heartbeat_timeout_ms);
        for client in &clients {
            self.remove_client(cx, client);
        }
        for worker in &workers {
            self.remove_worker(cx, worker);
        }
        self.expire_primitives(cx, now);
    }
}
