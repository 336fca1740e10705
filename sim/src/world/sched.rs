//! The scheduler node: the real core, a [`MemLog`], and the group-commit
//! discipline of the real service (`scheduler/src/service/commit.rs`):
//! take every input that has arrived, let the core decide, append the
//! batch's events, flush once, and only then send the batch's effects.
//! A crash drops the unflushed tail (or keeps it, whole or torn); a
//! restart is snapshot + replay of the durable log, then `from_state`.
//!
//! Alongside runs a *replica*: a state fed only by replaying the durable
//! log's bytes, which every flush and every recovery is compared against.
use std::collections::BTreeMap;

use reprise_log::{LogStore, MemLog};
use reprise_proto::{ClientId, ClientMsg, Event, Seq, StoredValue, ToClient, ToWorker, WorkerId};
use reprise_scheduler::core::{Config, Effect, Input, Scheduler, State};

use super::checks::{check_held, event_request, held_expectations};
use super::{Ev, Inbound, World};
use crate::invariants::{check, ensure, Invariant, Violation};
use crate::scenario::{CrashPoint, Params, TailFate};
use crate::trace;

pub(crate) struct SchedNode {
    config: Config,
    pub(crate) core: Option<Scheduler>,
    /// Bumped at every crash: events of an older process are ignored.
    pub(crate) incarnation: u64,
    log: MemLog,
    inbox: Vec<Input>,
    process_scheduled: bool,
    /// The effects of the batch whose flush is under way.
    flushing: Option<Vec<Effect>>,
    armed: Option<(CrashPoint, TailFate, u64)>,
    pub(super) replica: State,
    replica_seq: Seq,
    since_snapshot: u64,
    snapshot_every: u64,
    timer_at: Option<u64>,
    /// The state the next recovery must produce.
    expected: Option<State>,
    pub(crate) client_routes: BTreeMap<ClientId, u64>,
    pub(crate) worker_routes: BTreeMap<WorkerId, u64>,
}

impl SchedNode {
    pub(crate) fn new(params: &Params) -> SchedNode {
        let config = Config {
            allowed_failures: u32::from(params.allowed_failures),
            prefetch: u32::from(params.prefetch),
            scheduler_name: "sim-scheduler".to_owned(),
            inline_bytes_max: params.inline_bytes_max,
            lease_timeout_ms: u64::from(params.lease_timeout_ms),
            ..Config::default()
        };
        SchedNode {
            config,
            core: None,
            incarnation: 0,
            log: MemLog::new(),
            inbox: Vec::new(),
            process_scheduled: false,
            flushing: None,
            armed: None,
            replica: State::default(),
            replica_seq: Seq(0),
            since_snapshot: 0,
            snapshot_every: u64::from(params.snapshot_every.max(1)),
            timer_at: None,
            expected: None,
            client_routes: BTreeMap::new(),
            worker_routes: BTreeMap::new(),
        }
    }

    pub(crate) fn start(&mut self, now: u64) {
        self.incarnation = 1;
        self.core = Some(Scheduler::from_state(self.config.clone(), State::default(), now));
    }

    pub(crate) fn is_up(&self) -> bool {
        self.core.is_some()
    }

    pub(crate) fn disarm(&mut self) {
        self.armed = None;
    }

    pub(crate) fn arm(&mut self, at: CrashPoint, tail: TailFate, down_ms: u64) {
        self.armed = Some((at, tail, down_ms));
    }

    pub(crate) fn receive(&mut self, msgs: Inbound) {
        match msgs {
            Inbound::Client(client, msgs) => {
                self.inbox.extend(msgs.into_iter().map(|msg| Input::Client { client: client.clone(), msg }))
            }
            Inbound::Worker(worker, msgs) => {
                self.inbox.extend(msgs.into_iter().map(|msg| Input::Worker { worker: worker.clone(), msg }))
            }
        }
    }

    fn armed_at(&self, point: CrashPoint) -> Option<(TailFate, u64)> {
        self.armed.filter(|(at, _, _)| *at == point).map(|(_, tail, down)| (tail, down))
    }
}

/// The items of queue `name`, oldest first.
fn queue_items(state: &State, name: &str) -> Vec<StoredValue> {
    state.queue(name).map(|q| q.items().cloned().collect()).unwrap_or_default()
}

/// What is in `before` and not in `after` (as multisets).
fn removed(mut before: Vec<StoredValue>, after: &[StoredValue]) -> Vec<StoredValue> {
    for v in after {
        if let Some(i) = before.iter().position(|b| b == v) {
            before.remove(i);
        }
    }
    before
}

/// Rebuild a state from a log: the newest snapshot, then the tail.
fn recover(log: &MemLog) -> Result<State, String> {
    let (mut state, after) = match log.snapshot().map_err(|e| e.to_string())? {
        Some((seq, bytes)) => (reprise_proto::decode::<State>(&bytes).map_err(|e| e.to_string())?, seq),
        None => (State::default(), Seq(0)),
    };
    log.replay(after, &mut |_, ev| {
        state.apply(&ev);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(state)
}

impl World<'_> {
    /// Make sure the scheduler looks at its inbox now.
    pub(super) fn wake_sched(&mut self) {
        if self.sched.process_scheduled || self.sched.flushing.is_some() || !self.sched.is_up() {
            return;
        }
        self.sched.process_scheduled = true;
        let inc = self.sched.incarnation;
        self.schedule(self.now, Ev::SchedProcess { inc });
    }

    pub(super) fn arm_sched_timer(&mut self) {
        let Some(deadline) = self.sched.core.as_ref().and_then(|s| s.next_deadline()) else { return };
        let at = deadline.max(self.now);
        if self.sched.timer_at.is_none_or(|t| at < t) {
            self.sched.timer_at = Some(at);
            self.schedule(at, Ev::SchedTimer { at });
        }
    }

    pub(super) fn sched_timer(&mut self, at: u64) -> Result<(), Violation> {
        if self.sched.timer_at != Some(at) {
            return Ok(());
        }
        self.sched.timer_at = None;
        if self.sched_due() {
            self.wake_sched();
        } else {
            self.arm_sched_timer();
        }
        Ok(())
    }

    fn sched_due(&self) -> bool {
        self.sched.core.as_ref().and_then(|s| s.next_deadline()).is_some_and(|d| d <= self.now)
    }

    /// One commit batch: decide on everything that arrived, append, and
    /// start the flush (or send at once when nothing was decided).
    pub(super) fn sched_process(&mut self, inc: u64) -> Result<(), Violation> {
        if inc != self.sched.incarnation {
            return Ok(());
        }
        self.sched.process_scheduled = false;
        if self.sched.flushing.is_some() {
            return Ok(());
        }
        let inputs = std::mem::take(&mut self.sched.inbox);
        if inputs.is_empty() && !self.sched_due() {
            self.arm_sched_timer();
            return Ok(());
        }
        let Some(mut core) = self.sched.core.take() else { return Ok(()) };
        let decided = self.decide(&mut core, inputs);
        self.sched.core = Some(core);
        let (events, effects) = decided?;
        if events.is_empty() {
            self.send_effects(effects)?;
            self.arm_sched_timer();
            return Ok(());
        }
        if self.trace.is_on() {
            let text = trace::batch(&events, trace::event);
            let first = self.sched.log.last_seq().0 + 1;
            self.trace(|| format!("s  append {first}.. {text}"));
        }
        self.sched.log.append(&events).map_err(|e| Violation::new(Invariant::Crash, format!("append failed: {e}")))?;
        self.sched.since_snapshot += events.len() as u64;
        self.stats.events += events.len() as u64;
        self.stats.commits += 1;
        if let Some((tail, down_ms)) = self.sched.armed_at(CrashPoint::BeforeFlush) {
            self.crash_scheduler(tail, down_ms, "after the append, before the flush");
            return Ok(());
        }
        #[cfg(feature = "planted-flush-skipped")]
        let effects = {
            // Planted bug: the effects go out without waiting for the flush.
            self.send_effects(effects)?;
            Vec::new()
        };
        let flush_ms = self.rng.between(0, u64::from(self.params.flush_ms_max));
        self.sched.flushing = Some(effects);
        let inc = self.sched.incarnation;
        self.schedule(self.now + flush_ms, Ev::SchedFlushed { inc });
        Ok(())
    }

    /// Let the core handle every input (and a tick when one is due), and
    /// check what it decided.
    fn decide(&mut self, core: &mut Scheduler, inputs: Vec<Input>) -> Result<(Vec<Event>, Vec<Effect>), Violation> {
        let mut events = Vec::new();
        let mut effects = Vec::new();
        let mut inputs = inputs;
        if core.next_deadline().is_some_and(|d| d <= self.now) {
            inputs.push(Input::Tick);
        }
        for input in inputs {
            let expectations = held_expectations(core.state(), &input);
            let event_req = event_request(core.state(), &input);
            let heard = match &input {
                Input::Client { client, msg } => {
                    (core.state().has_client(client) || matches!(msg, ClientMsg::Hello { .. })).then(|| client.clone())
                }
                _ => None,
            };
            let decision = core.handle(input, self.now);
            check_held(core.state(), expectations)?;
            self.check_lease_expiry(&decision.events)?;
            self.check_event_wake(event_req, &decision)?;
            if let Some(client) = heard {
                self.model.last_heard.insert(client, self.now);
            }
            self.model.observe_decision(&decision.events, &decision.effects);
            events.extend(decision.events);
            effects.extend(decision.effects);
        }
        if !events.is_empty() {
            check(Invariant::SchedulerCore, core.check_invariants())?;
            self.check_sched_state(core.state())?;
        }
        Ok((events, effects))
    }

    /// The flush is done: the batch is durable; compare, snapshot, send.
    pub(super) fn sched_flushed(&mut self, inc: u64) -> Result<(), Violation> {
        if inc != self.sched.incarnation {
            return Ok(());
        }
        let Some(effects) = self.sched.flushing.take() else { return Ok(()) };
        self.sched.log.flush().map_err(|e| Violation::new(Invariant::Crash, format!("flush failed: {e}")))?;
        self.catch_up_replica()?;
        let same = self.sched.core.as_ref().is_some_and(|s| s.state() == &self.sched.replica);
        ensure(Invariant::ReplayEquivalence, same, || {
            format!(
                "replaying the durable log up to seq {} does not give the scheduler's state",
                self.sched.replica_seq
            )
        })?;
        self.maybe_snapshot()?;
        if let Some((tail, down_ms)) = self.sched.armed_at(CrashPoint::BeforeSend) {
            self.crash_scheduler(tail, down_ms, "after the flush, before sending");
            return Ok(());
        }
        let durable = self.sched.log.durable_seq().0;
        if let Some(core) = self.sched.core.as_mut() {
            core.set_last_seq(durable);
        }
        self.send_effects(effects)?;
        if !self.sched.inbox.is_empty() || self.sched_due() {
            self.wake_sched();
        }
        self.arm_sched_timer();
        Ok(())
    }

    /// Feed the replica every durable event it has not seen, from the log's
    /// bytes, and check the acknowledged wants against it.
    fn catch_up_replica(&mut self) -> Result<(), Violation> {
        let mut events = Vec::new();
        self.sched
            .log
            .replay(self.sched.replica_seq, &mut |seq, ev| {
                events.push((seq, ev));
                Ok(())
            })
            .map_err(|e| {
                Violation::new(Invariant::ReplayEquivalence, format!("the durable log does not replay: {e}"))
            })?;
        for (seq, ev) in events {
            let before = match &ev {
                Event::QueueTaken { name, .. } => queue_items(&self.sched.replica, name),
                _ => Vec::new(),
            };
            self.sched.replica.apply(&ev);
            let taken = match &ev {
                Event::QueueTaken { name, .. } => removed(before, &queue_items(&self.sched.replica, name)),
                _ => Vec::new(),
            };
            self.model.observe_durable(&ev, &taken);
            self.sched.replica_seq = seq;
        }
        let ignored = self.sched.replica.n_ignored_events();
        ensure(Invariant::ReplayEquivalence, ignored == 0, || {
            format!("{ignored} logged events did not fit the state they met on replay")
        })?;
        self.check_ledger(Invariant::ReferencedKept, "the durable state")?;
        self.check_queues("the durable state")
    }

    fn maybe_snapshot(&mut self) -> Result<(), Violation> {
        if self.sched.since_snapshot < self.sched.snapshot_every {
            return Ok(());
        }
        let Some(core) = self.sched.core.as_ref() else { return Ok(()) };
        let bytes = reprise_proto::encode(core.state())
            .map_err(|e| Violation::new(Invariant::ReplayEquivalence, format!("the state does not encode: {e}")))?;
        let back: Option<State> = reprise_proto::decode(&bytes).ok();
        ensure(Invariant::ReplayEquivalence, back.as_ref() == Some(core.state()), || {
            "a snapshot does not decode to the state it was taken of".to_owned()
        })?;
        let seq = self.sched.log.durable_seq();
        self.sched
            .log
            .write_snapshot(seq, &bytes)
            .map_err(|e| Violation::new(Invariant::Crash, format!("snapshot failed: {e}")))?;
        self.sched.since_snapshot = 0;
        self.stats.snapshots += 1;
        self.trace(|| format!("s  snapshot at seq {seq}"));
        Ok(())
    }

    /// Send effects, one frame per peer, keeping each peer's order; record
    /// what the checks need to know about acks and assignments.
    fn send_effects(&mut self, effects: Vec<Effect>) -> Result<(), Violation> {
        let mut to_clients: BTreeMap<ClientId, Vec<ToClient>> = BTreeMap::new();
        let mut to_workers: BTreeMap<WorkerId, Vec<ToWorker>> = BTreeMap::new();
        for effect in effects {
            match effect {
                Effect::ToClient { client, msg } => {
                    match &msg {
                        ToClient::Acked { keys } => self.record_acks(&client, keys)?,
                        ToClient::PrimitiveReply { req, result } => self.record_prim_reply(&client, *req, result)?,
                        _ => {}
                    }
                    to_clients.entry(client).or_default().push(msg);
                }
                Effect::ToWorker { worker, msg } => {
                    if let ToWorker::Compute(task) = &msg {
                        self.check_single_runner(&worker, &task.key, task.attempt)?;
                        self.model.assign(&task.key, &worker, task.attempt);
                    }
                    to_workers.entry(worker).or_default().push(msg);
                }
            }
        }
        for (worker, msgs) in to_workers {
            self.send_to_worker(&worker, msgs)?;
        }
        for (client, msgs) in to_clients {
            self.send_to_client(&client, msgs)?;
        }
        Ok(())
    }

    /// The scheduler process dies. What its unflushed tail becomes is
    /// `tail`; it starts again after `down_ms`.
    pub(super) fn crash_scheduler(&mut self, tail: TailFate, down_ms: u64, when: &str) {
        let Some(core) = self.sched.core.take() else { return };
        let log = &mut self.sched.log;
        let unflushed = log.last_seq() > log.durable_seq();
        let expected = match (unflushed, tail) {
            (true, TailFate::Kept) => core.state().clone(),
            _ => self.sched.replica.clone(),
        };
        match (unflushed, tail) {
            (true, TailFate::Kept) => log.crash_keeping(usize::MAX),
            (true, TailFate::Torn) => {
                let first = log.durable_seq().next();
                log.crash_keeping(1);
                log.tamper_record(first, |bytes| bytes.truncate(bytes.len() / 2));
            }
            _ => log.crash(),
        }
        self.sched.expected = Some(expected);
        self.sched.incarnation += 1;
        self.sched.inbox.clear();
        self.sched.flushing = None;
        self.sched.process_scheduled = false;
        self.sched.armed = None;
        self.sched.timer_at = None;
        self.sched.client_routes.clear();
        self.sched.worker_routes.clear();
        // Waiters are volatile: the clients send their waits again.
        self.model.event_waiters.clear();
        self.stats.scheduler_crashes += 1;
        let fate = if unflushed { format!("unflushed tail {tail:?}") } else { "nothing unflushed".to_owned() };
        self.trace(|| format!("!! scheduler crashes {when} ({fate}); back in {down_ms} ms"));
        for (peer, gen) in self.net.close_all() {
            let per_mille = u32::from(self.params.notify_per_mille);
            let notify = self.rng_of(peer).chance(per_mille);
            self.break_link(peer, gen, notify);
        }
        let inc = self.sched.incarnation;
        self.schedule(self.now + down_ms, Ev::SchedRestart { inc });
    }

    /// Start the scheduler again from its log, checking what it recovers.
    pub(super) fn sched_restart(&mut self, inc: u64) -> Result<(), Violation> {
        if self.sched.is_up() || inc != self.sched.incarnation {
            return Ok(());
        }
        self.sched
            .log
            .reopen()
            .map_err(|e| Violation::new(Invariant::Recovery, format!("the log does not reopen after a crash: {e}")))?;
        self.catch_up_replica()?;
        let recovered = recover(&self.sched.log)
            .map_err(|e| Violation::new(Invariant::Recovery, format!("recovery failed: {e}")))?;
        ensure(Invariant::ReplayEquivalence, recovered == self.sched.replica, || {
            "snapshot + tail does not give the state that replaying every event gives".to_owned()
        })?;
        let expected = self.sched.expected.take();
        ensure(Invariant::Recovery, expected.as_ref().is_none_or(|e| *e == recovered), || {
            "the recovered state is not the state at the last flush".to_owned()
        })?;
        self.check_ledger(Invariant::AckedDurable, "the state recovered after a crash")?;
        self.check_queues("the state recovered after a crash")?;
        let n_tasks = recovered.n_tasks();
        for client in recovered.clients() {
            self.model.last_heard.insert(client.clone(), self.now);
        }
        let durable = self.sched.log.durable_seq();
        let mut core = Scheduler::from_state(self.sched.config.clone(), recovered, self.now);
        core.set_last_seq(durable.0);
        self.sched.core = Some(core);
        self.trace(|| format!("s  restarted from the log at seq {durable}: {n_tasks} tasks"));
        self.arm_sched_timer();
        Ok(())
    }
}
