//! Worker nodes: the real `WorkerCore`, with task execution simulated
//! (the function table in [`crate::funcs`] decides value, failure and
//! duration) and fetches served by the other workers' cores.
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use reprise_proto::{Attempt, Key, TaskError, TaskErrorKind, WorkerId};
use reprise_worker::core::{CoreConfig, Effect, Job, StopReason, WorkerCore};

use super::net::PeerId;
use super::{Ev, Inbound, World};
use crate::funcs::{self, Fail};
use crate::invariants::{check, ensure, Invariant, Violation};

pub(crate) struct WorkerNode {
    pub(crate) id: WorkerId,
    pub(crate) address: String,
    config: CoreConfig,
    /// Bumped when the process dies: events for an older process are ignored.
    pub(crate) incarnation: u64,
    /// `None` while the process is down.
    pub(crate) core: Option<WorkerCore>,
    /// The link to the scheduler the process is using, if any.
    pub(crate) link: Option<u64>,
    timer_at: Option<u64>,
}

impl WorkerNode {
    pub(crate) fn new(idx: usize, nthreads: u8) -> WorkerNode {
        let id = WorkerId(format!("w{idx}"));
        let address = format!("sim://w{idx}");
        let mut functions = vec![funcs::FUNC.to_owned()];
        if idx.is_multiple_of(2) {
            functions.push(funcs::FUNC_RARE.to_owned());
        }
        let mut config = CoreConfig::new(id.clone(), u32::from(nthreads.max(1)), address.clone(), functions);
        if idx == 0 {
            config.resources = vec![(funcs::GPU.to_owned(), 1.0)];
        }
        WorkerNode { id, address, config, incarnation: 0, core: None, link: None, timer_at: None }
    }
}

fn at(now: u64) -> Duration {
    Duration::from_millis(now)
}

impl World<'_> {
    /// A fresh worker process: empty store, no session yet.
    pub(super) fn start_worker(&mut self, w: usize) {
        let node = &mut self.workers[w];
        node.core = Some(WorkerCore::new(node.config.clone(), at(self.now)));
        node.link = None;
        node.timer_at = None;
        // The first effect is a connect; nothing can fail yet.
        let _ = self.pump_worker(w);
    }

    pub(super) fn worker_restart(&mut self, w: usize, inc: u64) -> Result<(), Violation> {
        if self.workers[w].incarnation != inc || self.workers[w].core.is_some() {
            return Ok(());
        }
        self.trace(|| format!("w{w} starts afresh"));
        self.start_worker(w);
        Ok(())
    }

    /// The worker process dies with its data; it starts afresh `down_ms` later.
    pub(super) fn crash_worker(&mut self, w: usize, down_ms: u64, why: &str) {
        let node = &mut self.workers[w];
        if node.core.take().is_none() {
            return;
        }
        node.incarnation += 1;
        node.timer_at = None;
        if let Some(gen) = node.link.take() {
            self.net.close(gen);
        }
        self.stats.worker_crashes += 1;
        self.trace(|| format!("!! w{w} {why}; back in {down_ms} ms"));
        let inc = self.workers[w].incarnation;
        self.schedule(self.now + down_ms, Ev::WorkerRestart { w, inc });
    }

    /// Act on the core's effects, send its messages, check it, re-arm its timer.
    pub(super) fn pump_worker(&mut self, w: usize) -> Result<(), Violation> {
        let mut stop = None;
        while let Some(effect) = self.workers[w].core.as_mut().and_then(|c| c.poll_effect()) {
            match effect {
                Effect::Connect => {
                    if let Some(gen) = self.workers[w].link.take() {
                        self.net.close(gen);
                    }
                    let inc = self.workers[w].incarnation;
                    let when = self.now + self.rng_of(PeerId::Worker(w)).between(1, 30);
                    self.schedule(when, Ev::Connect { peer: PeerId::Worker(w), inc });
                }
                Effect::Execute(job) => self.execute(w, job)?,
                Effect::Fetch { address, keys } => self.start_fetch(w, address, keys),
                // The simulated tasks never secede, so none asks to rejoin.
                Effect::Resume { key, attempt } => {
                    return Err(Violation::new(
                        Invariant::WorkerCore,
                        format!("w{w} resumes {key}#{}, which never seceded", attempt.0),
                    ));
                }
                Effect::Stop(reason) => stop = Some(reason),
            }
        }
        self.send_worker_messages(w)?;
        if let Some(reason) = stop {
            ensure(Invariant::WorkerCore, !matches!(reason, StopReason::Refused(_)), || {
                format!("w{w} was refused by the scheduler: {reason:?}")
            })?;
            self.crash_worker(w, 1000, &format!("stops ({reason:?})"));
            return Ok(());
        }
        self.check_worker(w)?;
        self.arm_worker_timer(w);
        Ok(())
    }

    fn send_worker_messages(&mut self, w: usize) -> Result<(), Violation> {
        let node = &mut self.workers[w];
        let (Some(core), Some(gen)) = (node.core.as_mut(), node.link) else { return Ok(()) };
        if !core.has_messages() {
            return Ok(());
        }
        let msgs = core.poll_messages();
        let id = node.id.clone();
        self.send_up(gen, Inbound::Worker(id, msgs))
    }

    fn check_worker(&self, w: usize) -> Result<(), Violation> {
        let Some(core) = self.workers[w].core.as_ref() else { return Ok(()) };
        check(Invariant::WorkerCore, core.check_invariants().map_err(|e| format!("w{w}: {e}")))?;
        for (key, _) in core.held() {
            let right = core.data(&key).zip(self.model.expected.get(&key)).is_some_and(|(d, e)| d == e);
            ensure(Invariant::CorrectValues, right, || format!("w{w} holds a wrong value for {key}"))?;
        }
        Ok(())
    }

    fn arm_worker_timer(&mut self, w: usize) {
        let node = &mut self.workers[w];
        let Some(deadline) = node.core.as_ref().and_then(|c| c.next_deadline()) else { return };
        let when = (deadline.as_millis() as u64).max(self.now);
        if node.timer_at.is_none_or(|t| when < t) {
            node.timer_at = Some(when);
            self.schedule(when, Ev::WorkerTimer { w, at: when });
        }
    }

    pub(super) fn worker_timer(&mut self, w: usize, when: u64) -> Result<(), Violation> {
        if self.workers[w].timer_at != Some(when) {
            return Ok(());
        }
        self.workers[w].timer_at = None;
        let now = at(self.now);
        if let Some(core) = self.workers[w].core.as_mut() {
            if core.next_deadline().is_some_and(|d| d <= now) {
                core.handle_tick(now);
            }
        }
        self.pump_worker(w)
    }

    /// Run a job: check its inputs, decide its outcome from its arguments,
    /// and report it after its duration.
    fn execute(&mut self, w: usize, job: Job) -> Result<(), Violation> {
        let Job { key, attempt, args, inputs, .. } = job;
        self.check_inputs(w, &key, &inputs)?;
        let runs = self.model.executions.entry(key.clone()).or_insert(0);
        let run = *runs;
        *runs += 1;
        self.stats.executions += 1;
        let (outcome, dur_ms) = match funcs::decode_args(&args) {
            Ok(a) => {
                let fails = match a.fail {
                    Fail::Never => false,
                    Fail::First(n) => run < u32::from(n),
                    Fail::Always => true,
                };
                let outcome = if fails {
                    Err(TaskError::new(TaskErrorKind::Raised, key.clone(), format!("planned failure of run {run}")))
                } else {
                    Ok(funcs::task_value(a.id, a.big, &inputs))
                };
                (outcome, a.dur_ms)
            }
            Err(e) => (Err(TaskError::new(TaskErrorKind::Codec, key.clone(), e)), 0),
        };
        let ok = outcome.is_ok();
        self.trace(|| {
            format!("w{w} runs {key}#{} (run {run}, {dur_ms} ms, {})", attempt.0, if ok { "ok" } else { "fails" })
        });
        let inc = self.workers[w].incarnation;
        self.schedule(self.now + dur_ms, Ev::TaskDone { w, inc, key, attempt, outcome });
        Ok(())
    }

    /// A job has exactly its task's inputs, each with its true value.
    fn check_inputs(&self, w: usize, key: &Key, inputs: &[(Key, Bytes)]) -> Result<(), Violation> {
        let Some(spec) = self.model.specs.get(key) else {
            return Err(Violation::new(Invariant::LegalInputs, format!("w{w} runs {key}, which no client submitted")));
        };
        let got: BTreeMap<&Key, &Bytes> = inputs.iter().map(|(k, d)| (k, d)).collect();
        for dep in &spec.deps {
            let right = got.get(dep).zip(self.model.expected.get(dep)).is_some_and(|(d, e)| *d == e);
            ensure(Invariant::LegalInputs, right, || {
                let what = if got.contains_key(dep) { "a wrong value for" } else { "no value for" };
                format!("w{w} runs {key} with {what} its input {dep}")
            })?;
        }
        ensure(
            Invariant::LegalInputs,
            got.len() == spec.deps.iter().collect::<std::collections::BTreeSet<_>>().len(),
            || format!("w{w} runs {key} with inputs it does not depend on"),
        )
    }

    pub(super) fn task_done(
        &mut self,
        w: usize,
        inc: u64,
        key: Key,
        attempt: Attempt,
        outcome: Result<Bytes, TaskError>,
    ) -> Result<(), Violation> {
        let node = &mut self.workers[w];
        if node.incarnation != inc {
            return Ok(());
        }
        let Some(core) = node.core.as_mut() else { return Ok(()) };
        core.handle_task_done(key, attempt, outcome);
        self.pump_worker(w)
    }

    /// Ask the worker at `address` for `keys`; a down peer fails the fetch
    /// after a connect timeout.
    fn start_fetch(&mut self, w: usize, address: String, keys: Vec<Key>) {
        let inc = self.workers[w].incarnation;
        let target = self.workers.iter().position(|n| n.address == address);
        let delay = self.delay(PeerId::Worker(w));
        match target {
            Some(to) if self.workers[to].core.is_some() => {
                self.schedule(self.now + delay, Ev::PeerGet { from: w, from_inc: inc, to, address, keys });
            }
            _ => {
                let when = self.now + self.rng_of(PeerId::Worker(w)).between(50, 300);
                self.schedule(when, Ev::FetchFailed { w, inc, address, keys });
            }
        }
    }

    pub(super) fn peer_data(
        &mut self,
        w: usize,
        inc: u64,
        address: String,
        items: Vec<(Key, Option<Bytes>)>,
    ) -> Result<(), Violation> {
        let node = &mut self.workers[w];
        if node.incarnation != inc {
            return Ok(());
        }
        let Some(core) = node.core.as_mut() else { return Ok(()) };
        core.handle_fetched(&address, items, at(self.now));
        self.pump_worker(w)
    }

    pub(super) fn fetch_failed(
        &mut self,
        w: usize,
        inc: u64,
        address: String,
        keys: Vec<Key>,
    ) -> Result<(), Violation> {
        let node = &mut self.workers[w];
        if node.incarnation != inc {
            return Ok(());
        }
        let Some(core) = node.core.as_mut() else { return Ok(()) };
        core.handle_fetch_failed(&address, &keys, at(self.now));
        self.pump_worker(w)
    }
}
