//! The simulated world: one thread, one seeded RNG, one clock, one queue of
//! timed events, and the real cores (scheduler, workers, client sessions)
//! wired through a simulated network and a simulated log.
//!
//! A run has three phases: *faults* (the scenario's operations, workload
//! and faults mixed), *liveness* (faults stop, everything heals and
//! restarts; every future a client holds must resolve within a bound) and
//! *quiescence* (clients drop every handle; the scheduler must forget every
//! task within a bound).
mod checks;
mod client;
mod model;
mod net;
mod ops;
mod prims;
mod sched;
mod worker;

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use bytes::Bytes;
use reprise_proto::{Attempt, ClientMsg, Key, TaskError, ToClient, ToWorker, WorkerMsg};

use crate::invariants::{Invariant, Violation};
use crate::rng::Rng;
use crate::scenario::{Params, Scenario, TimedOp};
use crate::trace::Trace;
use crate::{SimOptions, Stats};

use client::ClientNode;
use model::Model;
use net::{Net, PeerId};
use sched::SchedNode;
use worker::WorkerNode;

/// More dispatched events than this means the run does not settle.
const STEPS_MAX: u64 = 2_000_000;
/// When the first operation runs, after the cluster started.
const FIRST_OP_MS: u64 = 50;

/// Something that happens at a simulated time.
#[derive(Debug)]
enum Ev {
    Op(usize),
    FaultsEnd,
    Deadline,
    SchedProcess {
        inc: u64,
    },
    SchedFlushed {
        inc: u64,
    },
    SchedRestart {
        inc: u64,
    },
    SchedTimer {
        at: u64,
    },
    ToSched {
        gen: u64,
        msgs: Inbound,
    },
    ToWorker {
        gen: u64,
        msgs: Vec<ToWorker>,
    },
    ToClient {
        gen: u64,
        msgs: Vec<ToClient>,
    },
    WorkerTimer {
        w: usize,
        at: u64,
    },
    ClientTimer {
        c: usize,
        at: u64,
    },
    Connect {
        peer: PeerId,
        inc: u64,
    },
    Disconnected {
        peer: PeerId,
        gen: u64,
    },
    TaskDone {
        w: usize,
        inc: u64,
        key: Key,
        attempt: Attempt,
        outcome: Result<Bytes, TaskError>,
    },
    PeerGet {
        from: usize,
        from_inc: u64,
        to: usize,
        address: String,
        keys: Vec<Key>,
    },
    PeerData {
        w: usize,
        inc: u64,
        address: String,
        items: Vec<(Key, Option<Bytes>)>,
    },
    FetchFailed {
        w: usize,
        inc: u64,
        address: String,
        keys: Vec<Key>,
    },
    WorkerRestart {
        w: usize,
        inc: u64,
    },
    Heal {
        peer: PeerId,
    },
    /// Liveness: set what primitive requests still wait for; quiescence
    /// (`emptying`): empty the primitives again.
    Unblock {
        emptying: bool,
    },
    /// The client gives back the lease its request `req` was granted.
    PrimRelease {
        c: usize,
        inc: u64,
        req: reprise_proto::RequestId,
    },
}

/// A batch of messages for the scheduler, with its sender.
#[derive(Debug)]
enum Inbound {
    Client(reprise_proto::ClientId, Vec<ClientMsg>),
    Worker(reprise_proto::WorkerId, Vec<WorkerMsg>),
}

struct Scheduled {
    time: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so that the max-heap pops the earliest (time, seq) first:
    /// events at the same time run in the order they were scheduled.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Faults,
    Liveness,
    Quiescence,
    Done,
}

pub(crate) struct World<'a> {
    opts: &'a SimOptions,
    params: &'a Params,
    ops: &'a [TimedOp],
    now: u64,
    next_seq: u64,
    queue: BinaryHeap<Scheduled>,
    /// The scheduler node's randomness (flush times).
    rng: Rng,
    /// Each peer's own randomness (its link's delays, its reconnects), so
    /// that dropping one peer's operations while shrinking leaves the
    /// others' timing alone.
    rngs: std::collections::BTreeMap<PeerId, Rng>,
    rng_seed: u64,
    sched: SchedNode,
    workers: Vec<WorkerNode>,
    clients: Vec<ClientNode>,
    net: Net,
    model: Model,
    trace: Trace,
    phase: Phase,
    steps: u64,
    stats: Stats,
}

impl<'a> World<'a> {
    pub(crate) fn new(scenario: &'a Scenario, opts: &'a SimOptions) -> World<'a> {
        let params = &scenario.params;
        let workers = (0..params.workers.len()).map(|i| WorkerNode::new(i, params.workers[i])).collect();
        let clients = (0..usize::from(params.n_clients.max(1))).map(ClientNode::new).collect();
        World {
            opts,
            params,
            ops: &scenario.ops,
            now: 0,
            next_seq: 0,
            queue: BinaryHeap::new(),
            rng: Rng::new(scenario.rng_seed),
            rngs: std::collections::BTreeMap::new(),
            rng_seed: scenario.rng_seed,
            sched: SchedNode::new(params),
            workers,
            clients,
            net: Net::default(),
            model: Model::default(),
            trace: Trace::new(opts.trace),
            phase: Phase::Faults,
            steps: 0,
            stats: Stats::default(),
        }
    }

    fn schedule(&mut self, time: u64, ev: Ev) {
        self.next_seq += 1;
        self.queue.push(Scheduled { time, seq: self.next_seq, ev });
    }

    /// The randomness of `peer`.
    fn rng_of(&mut self, peer: PeerId) -> &mut Rng {
        let tag = match peer {
            PeerId::Worker(w) => 0x1000 + w as u64,
            PeerId::Client(c) => 0x2000 + c as u64,
        };
        let seed = self.rng_seed ^ crate::rng::mix64(tag);
        self.rngs.entry(peer).or_insert_with(|| Rng::new(seed))
    }

    fn trace(&mut self, text: impl FnOnce() -> String) {
        self.trace.line(self.now, text);
    }

    /// Run to the end, or to the first violated invariant.
    pub(crate) fn run(&mut self) -> Result<Stats, Violation> {
        self.start();
        while let Some(item) = self.queue.pop() {
            self.now = item.time;
            self.steps += 1;
            let result = if self.steps > STEPS_MAX {
                Err(Violation::new(Invariant::Crash, format!("no end after {STEPS_MAX} steps")))
            } else {
                self.dispatch(item.ev).and_then(|()| self.check_phase())
            };
            if let Err(mut v) = result {
                v.time_ms = self.now;
                v.step = self.steps;
                let text = format!("VIOLATION {v}");
                self.trace(|| text);
                return Err(v);
            }
            if self.phase == Phase::Done {
                break;
            }
        }
        if self.phase != Phase::Done {
            let v = Violation {
                invariant: Invariant::Liveness,
                message: "the world ran out of events".to_owned(),
                time_ms: self.now,
                step: self.steps,
            };
            return Err(v);
        }
        self.stats.sim_ms = self.now;
        self.stats.steps = self.steps;
        Ok(self.stats.clone())
    }

    fn start(&mut self) {
        self.sched.start(self.now);
        for w in 0..self.workers.len() {
            self.start_worker(w);
        }
        for c in 0..self.clients.len() {
            self.start_client(c);
        }
        let mut at = FIRST_OP_MS;
        for (i, op) in self.ops.iter().enumerate() {
            at += u64::from(op.gap_ms);
            self.schedule(at, Ev::Op(i));
        }
        self.schedule(at + 1, Ev::FaultsEnd);
        self.arm_sched_timer();
    }

    fn dispatch(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::Op(i) => self.run_op(i),
            Ev::FaultsEnd => self.end_faults(),
            Ev::Deadline => self.deadline(),
            Ev::SchedProcess { inc } => self.sched_process(inc),
            Ev::SchedFlushed { inc } => self.sched_flushed(inc),
            Ev::SchedRestart { inc } => self.sched_restart(inc),
            Ev::SchedTimer { at } => self.sched_timer(at),
            Ev::ToSched { gen, msgs } => self.deliver_to_sched(gen, msgs),
            Ev::ToWorker { gen, msgs } => self.deliver_to_worker(gen, msgs),
            Ev::ToClient { gen, msgs } => self.deliver_to_client(gen, msgs),
            Ev::WorkerTimer { w, at } => self.worker_timer(w, at),
            Ev::ClientTimer { c, at } => self.client_timer(c, at),
            Ev::Connect { peer, inc } => self.connect(peer, inc),
            Ev::Disconnected { peer, gen } => self.disconnected(peer, gen),
            Ev::TaskDone { w, inc, key, attempt, outcome } => self.task_done(w, inc, key, attempt, outcome),
            Ev::PeerGet { from, from_inc, to, address, keys } => self.peer_get(from, from_inc, to, address, keys),
            Ev::PeerData { w, inc, address, items } => self.peer_data(w, inc, address, items),
            Ev::FetchFailed { w, inc, address, keys } => self.fetch_failed(w, inc, address, keys),
            Ev::WorkerRestart { w, inc } => self.worker_restart(w, inc),
            Ev::PrimRelease { c, inc, req } => self.prim_release(c, inc, req),
            Ev::Unblock { emptying } => self.unblock(emptying),
            Ev::Heal { peer } => {
                let stalled = self.net.heal(peer, self.now);
                if !stalled.is_empty() || !self.net.is_partitioned(peer, self.now) {
                    self.trace(|| format!("~  {peer} partition heals ({} messages were held)", stalled.len()));
                }
                self.release_stalled(stalled);
                Ok(())
            }
        }
    }

    /// Faults stop: partitions heal, the scheduler and every worker run
    /// again, and every held future must now resolve within the bound.
    fn end_faults(&mut self) -> Result<(), Violation> {
        self.trace(|| "== faults end: heal, restart, expect every future to resolve".to_owned());
        let stalled = self.net.heal_all();
        self.release_stalled(stalled);
        self.sched.disarm();
        if !self.sched.is_up() {
            let inc = self.sched.incarnation;
            self.sched_restart(inc)?;
        }
        for w in 0..self.workers.len() {
            if self.workers[w].core.is_none() {
                let inc = self.workers[w].incarnation;
                self.worker_restart(w, inc)?;
            }
        }
        self.phase = Phase::Liveness;
        let deadline = self.now + self.opts.liveness_ms;
        self.schedule(deadline, Ev::Deadline);
        self.schedule(self.now + 1_000, Ev::Unblock { emptying: false });
        Ok(())
    }

    /// Move on when the current phase's goal is reached.
    fn check_phase(&mut self) -> Result<(), Violation> {
        match self.phase {
            Phase::Liveness if self.unresolved().is_empty() => {
                self.stats.resolved_ms = self.now;
                self.trace(|| "== every future resolved; clients let go of everything".to_owned());
                self.phase = Phase::Quiescence;
                for c in 0..self.clients.len() {
                    self.release_everything(c)?;
                }
                self.empty_primitives(0)?;
                let deadline = self.now + self.opts.quiescence_ms;
                self.schedule(deadline, Ev::Deadline);
                Ok(())
            }
            Phase::Quiescence if self.quiet() => {
                self.trace(|| "== quiescent: the scheduler forgot every task".to_owned());
                self.phase = Phase::Done;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn deadline(&mut self) -> Result<(), Violation> {
        match self.phase {
            Phase::Liveness => {
                let pending = self.unresolved();
                let shown: Vec<String> = pending.iter().take(10).map(|(c, k)| self.describe(c, k.as_ref())).collect();
                Err(Violation::new(
                    Invariant::Liveness,
                    format!(
                        "{} held futures or primitive requests still pending {} ms after faults stopped: {}",
                        pending.len(),
                        self.opts.liveness_ms,
                        shown.join("; ")
                    ),
                ))
            }
            Phase::Quiescence if !self.quiet() => {
                let tasks = self.sched.core.as_ref().map(|s| s.state().n_tasks()).unwrap_or_default();
                let left = self.sched.core.as_ref().map(|s| {
                    s.state()
                        .tasks()
                        .take(10)
                        .map(|(k, t)| format!("{k}: {}", t.state().name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                let live: Vec<String> = self
                    .clients
                    .iter()
                    .filter_map(|c| c.session.as_ref().map(|s| (c, s)))
                    .flat_map(|(c, s)| {
                        self.model.expected.keys().filter(|k| s.refs(k) > 0).map(move |k| {
                            format!(
                                "{}:{k} refs {} acked {} {:?}",
                                c.id,
                                s.refs(k),
                                s.is_acked(k),
                                s.status(k).map(|x| x.future_status())
                            )
                        })
                    })
                    .collect();
                let live = format!("{} ({})", live.len(), live.join(", "));
                let leases: Vec<String> = self.sched.core.as_ref().map_or(Vec::new(), |s| {
                    let locks = s.state().locks().map(|(n, l)| format!("lock {n} held by {}#{}", l.client, l.req.0));
                    let sems = s.state().semaphores().flat_map(|(n, sem)| {
                        sem.leases().iter().map(move |l| format!("semaphore {n} leased to {}#{}", l.client, l.req.0))
                    });
                    let vars = s.state().variables().map(|(n, v)| format!("variable {n} = {v:?}"));
                    let queues = s.state().queues().map(|(n, q)| format!("queue {n} with {} items", q.len()));
                    let datasets = s.state().datasets().map(|(n, k)| format!("dataset {n} = {k}"));
                    locks.chain(sems).chain(vars).chain(queues).chain(datasets).collect()
                });
                Err(Violation::new(
                    Invariant::Quiescence,
                    format!(
                        "{} ms after every handle was dropped, the scheduler still has {tasks} tasks ({}) and leases and primitives [{}], and sessions {live} live keys",
                        self.opts.quiescence_ms,
                        left.unwrap_or_default(),
                        leases.join(", ")
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether the scheduler has forgotten every task and every lease, and
    /// every session every key.
    fn quiet(&self) -> bool {
        let sessions_empty = self.clients.iter().filter_map(|c| c.session.as_ref()).all(|s| s.n_live() == 0);
        let no_leases = |s: &reprise_scheduler::core::State| {
            s.locks().next().is_none()
                && s.semaphores().all(|(_, sem)| sem.leases().is_empty())
                && World::primitives_empty(s)
        };
        sessions_empty && self.sched.core.as_ref().is_some_and(|s| s.state().n_tasks() == 0 && no_leases(s.state()))
    }
}

impl World<'_> {
    /// Where the run is: simulated time and step.
    pub(crate) fn position(&self) -> (u64, u64) {
        (self.now, self.steps)
    }

    /// Hand over the trace: kept lines, hash of every line, line count.
    pub(crate) fn trace_finish(self) -> (Vec<String>, u64, u64) {
        self.trace.finish()
    }
}
