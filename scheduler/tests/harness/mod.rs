//! A small driver for the scheduler core: it registers peers, sends
//! messages, advances time, and after every step checks the invariants and
//! that replaying the emitted events into a fresh `State` gives the
//! scheduler's state. Tests then assert on events and effects as plain values.
#![allow(dead_code)]

use reprise_proto::{
    Attempt, ClientId, ClientMsg, Event, EventKind, Key, KeyState, KeyUpdate, PrimitiveOp, PrimitiveResult, RequestId,
    TaskError, TaskErrorKind, TaskSpec, ToClient, ToWorker, WorkerId, WorkerMsg,
};
use reprise_scheduler::core::{Config, Decision, Effect, Input, Millis, Scheduler, State, TaskState};

pub struct Harness {
    pub sched: Scheduler,
    pub now: Millis,
    /// Every event emitted so far, replayed into `replica`.
    pub log: Vec<Event>,
    replica: State,
}

pub fn key(k: &str) -> Key {
    Key::from(k)
}

pub fn wid(w: &str) -> WorkerId {
    WorkerId::from(w)
}

pub fn cid(c: &str) -> ClientId {
    ClientId::from(c)
}

/// A task spec with default options.
pub fn spec(k: &str, func: &str, deps: &[&str]) -> TaskSpec {
    TaskSpec::new(key(k), func, vec![0x80], deps.iter().map(|d| key(d)).collect())
}

pub fn register(w: &str, nthreads: u32, functions: &[&str]) -> WorkerMsg {
    WorkerMsg::Register {
        worker: wid(w),
        nthreads,
        address: format!("tcp://{w}"),
        functions: functions.iter().map(|f| f.to_string()).collect(),
        resources: Vec::new(),
        token: None,
        held: Vec::new(),
        running: Vec::new(),
    }
}

pub const FUNCS: &[&str] = &["inc", "add", "sum", "fail"];

impl Default for Harness {
    fn default() -> Self {
        Harness::with_config(Config::default())
    }
}

impl Harness {
    pub fn new() -> Self {
        Harness::default()
    }

    pub fn with_config(config: Config) -> Self {
        Harness { sched: Scheduler::new(config), now: 0, log: Vec::new(), replica: State::default() }
    }

    /// Handle one input and check the scheduler against its own log.
    pub fn handle(&mut self, input: Input) -> Decision {
        let d = self.sched.handle(input, self.now);
        for ev in &d.events {
            self.replica.apply(ev);
        }
        self.log.extend(d.events.iter().cloned());
        assert_eq!(&self.replica, self.sched.state(), "replaying the log diverged from the scheduler");
        assert_eq!(self.sched.check_invariants(), Ok(()));
        assert_eq!(self.sched.state().n_ignored_events(), 0, "the core emitted an event that did not fit");
        d
    }

    pub fn client_msg(&mut self, c: &str, msg: ClientMsg) -> Decision {
        self.handle(Input::Client { client: cid(c), msg })
    }

    pub fn worker_msg(&mut self, w: &str, msg: WorkerMsg) -> Decision {
        self.handle(Input::Worker { worker: wid(w), msg })
    }

    pub fn client(&mut self, c: &str) -> Decision {
        let d = self.client_msg(c, ClientMsg::Hello { client: cid(c), name: c.to_owned(), token: None });
        assert!(d.to_client(c).iter().any(|m| matches!(m, ToClient::Welcome { .. })), "{c} not welcomed: {d:?}");
        d
    }

    pub fn worker(&mut self, w: &str, nthreads: u32, functions: &[&str]) -> Decision {
        self.worker_msg(w, register(w, nthreads, functions))
    }

    pub fn submit(&mut self, c: &str, tasks: Vec<TaskSpec>) -> Decision {
        self.client_msg(c, ClientMsg::Submit { tasks })
    }

    pub fn release(&mut self, c: &str, keys: &[&str]) -> Decision {
        self.client_msg(c, ClientMsg::Release { keys: keys.iter().map(|k| key(k)).collect() })
    }

    pub fn cancel(&mut self, c: &str, keys: &[&str], force: bool) -> Decision {
        self.client_msg(c, ClientMsg::Cancel { keys: keys.iter().map(|k| key(k)).collect(), force })
    }

    /// Where and as which attempt `k` runs.
    pub fn running(&self, k: &str) -> (WorkerId, Attempt) {
        match self.sched.state().task_state(&key(k)) {
            Some(TaskState::Processing { worker, attempt }) => (worker.clone(), *attempt),
            other => panic!("{k} is not processing but {other:?}"),
        }
    }

    /// The running attempt of `k` finishes with a result of `nbytes`.
    pub fn finish_sized(&mut self, k: &str, nbytes: u64, inline: Option<Vec<u8>>) -> Decision {
        let (w, attempt) = self.running(k);
        self.worker_msg(w.as_str(), WorkerMsg::Finished { key: key(k), attempt, nbytes, inline })
    }

    pub fn finish(&mut self, k: &str) -> Decision {
        self.finish_sized(k, 8, None)
    }

    /// The running attempt of `k` fails with `message`.
    pub fn fail(&mut self, k: &str, message: &str) -> Decision {
        let (w, attempt) = self.running(k);
        let error = TaskError::new(TaskErrorKind::Raised, key(k), message);
        self.worker_msg(w.as_str(), WorkerMsg::Erred { key: key(k), attempt, error })
    }

    /// Request `req` of client `c` on a primitive.
    pub fn prim(&mut self, c: &str, req: u64, op: PrimitiveOp) -> Decision {
        self.client_msg(c, ClientMsg::Primitive { req: RequestId(req), op })
    }

    pub fn advance_ms(&mut self, ms: Millis) {
        self.now += ms;
    }

    pub fn tick(&mut self) -> Decision {
        self.handle(Input::Tick)
    }

    /// The key's state name, or "forgotten".
    pub fn state_of(&self, k: &str) -> &'static str {
        self.sched.state().task_state(&key(k)).map_or("forgotten", |s| s.name())
    }
}

/// Reading a decision as plain values.
pub trait DecisionExt {
    fn kinds(&self) -> Vec<EventKind>;
    fn has_event(&self, ev: &Event) -> bool;
    fn to_client(&self, c: &str) -> Vec<ToClient>;
    fn to_worker(&self, w: &str) -> Vec<ToWorker>;
    /// (worker, key) of every Compute, in order.
    fn computes(&self) -> Vec<(String, String)>;
    fn updates(&self, c: &str) -> Vec<KeyUpdate>;
    fn update_of(&self, c: &str, k: &str) -> Option<KeyState>;
    /// Keys freed on `w`.
    fn frees(&self, w: &str) -> Vec<String>;
    /// Keys whose attempt `w` is told to cancel.
    fn cancels(&self, w: &str) -> Vec<String>;
    fn events_for(&self, k: &str) -> Vec<EventKind>;
    /// (request, result) of every primitive reply to `c`, in order.
    fn prim_replies(&self, c: &str) -> Vec<(u64, PrimitiveResult)>;
    /// The reply to request `req` of `c`, if the decision holds one.
    fn prim_reply(&self, c: &str, req: u64) -> Option<PrimitiveResult>;
}

fn event_key(ev: &Event) -> Option<&Key> {
    match ev {
        Event::TaskSubmitted { spec } => Some(&spec.key),
        Event::ClientWants { key, .. }
        | Event::ClientReleased { key, .. }
        | Event::HolderAdded { key, .. }
        | Event::HolderRemoved { key, .. }
        | Event::TaskQueued { key }
        | Event::TaskNoWorker { key }
        | Event::TaskAssigned { key, .. }
        | Event::TaskFinished { key, .. }
        | Event::DataScattered { key, .. }
        | Event::ReplicaAdded { key, .. }
        | Event::ReplicaRemoved { key, .. }
        | Event::TaskRetried { key }
        | Event::TaskErred { key, .. }
        | Event::TaskRescheduled { key }
        | Event::TaskLost { key }
        | Event::TaskCancelled { key }
        | Event::TaskForgotten { key } => Some(key),
        _ => None,
    }
}

impl DecisionExt for Decision {
    fn kinds(&self) -> Vec<EventKind> {
        self.events.iter().map(Event::kind).collect()
    }
    fn has_event(&self, ev: &Event) -> bool {
        self.events.contains(ev)
    }
    fn to_client(&self, c: &str) -> Vec<ToClient> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::ToClient { client, msg } if client.as_str() == c => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }
    fn to_worker(&self, w: &str) -> Vec<ToWorker> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::ToWorker { worker, msg } if worker.as_str() == w => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }
    fn computes(&self) -> Vec<(String, String)> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::ToWorker { worker, msg: ToWorker::Compute(c) } => Some((worker.to_string(), c.key.to_string())),
                _ => None,
            })
            .collect()
    }
    fn updates(&self, c: &str) -> Vec<KeyUpdate> {
        self.to_client(c)
            .into_iter()
            .filter_map(|m| match m {
                ToClient::Update(u) => Some(u),
                _ => None,
            })
            .collect()
    }
    fn update_of(&self, c: &str, k: &str) -> Option<KeyState> {
        self.updates(c).into_iter().find(|u| u.key.as_str() == k).map(|u| u.state)
    }
    fn frees(&self, w: &str) -> Vec<String> {
        self.to_worker(w)
            .into_iter()
            .flat_map(|m| match m {
                ToWorker::Free { keys } => keys.into_iter().map(|k| k.to_string()).collect(),
                _ => Vec::new(),
            })
            .collect()
    }
    fn cancels(&self, w: &str) -> Vec<String> {
        self.to_worker(w)
            .into_iter()
            .filter_map(|m| match m {
                ToWorker::Cancel { key, .. } => Some(key.to_string()),
                _ => None,
            })
            .collect()
    }
    fn prim_replies(&self, c: &str) -> Vec<(u64, PrimitiveResult)> {
        self.to_client(c)
            .into_iter()
            .filter_map(|m| match m {
                ToClient::PrimitiveReply { req, result } => Some((req.0, result)),
                _ => None,
            })
            .collect()
    }
    fn prim_reply(&self, c: &str, req: u64) -> Option<PrimitiveResult> {
        self.prim_replies(c).into_iter().find(|(r, _)| *r == req).map(|(_, result)| result)
    }
    fn events_for(&self, k: &str) -> Vec<EventKind> {
        self.events.iter().filter(|e| event_key(e).is_some_and(|x| x.as_str() == k)).map(Event::kind).collect()
    }
}
