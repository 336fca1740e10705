//! The run's trace: one short line per step (a delivered message batch, a
//! commit, a crash, an operation), with its simulated time. Lines are only
//! formatted when tracing is on; their hash proves two runs identical.
use std::collections::VecDeque;

use reprise_proto::{ClientMsg, KeyState, ToClient, ToWorker, WorkerMsg};

use crate::rng::{fnv1a, FNV_OFFSET};

/// How much of the trace a run keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceMode {
    /// Nothing: the fastest, for sweeping many seeds.
    #[default]
    Off,
    /// The last `n` lines, for failure reports.
    Tail(usize),
    /// Every line, for replaying one seed.
    Full,
}

pub(crate) struct Trace {
    mode: TraceMode,
    lines: VecDeque<String>,
    hash: u64,
    n_lines: u64,
}

impl Trace {
    pub(crate) fn new(mode: TraceMode) -> Trace {
        Trace { mode, lines: VecDeque::new(), hash: FNV_OFFSET, n_lines: 0 }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.mode != TraceMode::Off
    }

    /// Record a line at `now`; `text` is only called when tracing is on.
    pub(crate) fn line(&mut self, now: u64, text: impl FnOnce() -> String) {
        if !self.is_on() {
            return;
        }
        let line = format!("{now:>8} {}", text());
        self.hash = fnv1a(fnv1a(self.hash, line.as_bytes()), b"\n");
        self.n_lines += 1;
        self.lines.push_back(line);
        if let TraceMode::Tail(n) = self.mode {
            while self.lines.len() > n {
                self.lines.pop_front();
            }
        }
    }

    /// The kept lines, the hash of every line and how many there were.
    pub(crate) fn finish(self) -> (Vec<String>, u64, u64) {
        (self.lines.into_iter().collect(), self.hash, self.n_lines)
    }
}

fn keys<'a>(keys: impl IntoIterator<Item = &'a reprise_proto::Key>) -> String {
    let names: Vec<&str> = keys.into_iter().map(|k| k.as_str()).collect();
    format!("[{}]", names.join(","))
}

pub(crate) fn client_msg(msg: &ClientMsg) -> String {
    match msg {
        ClientMsg::Hello { .. } => "Hello".to_owned(),
        ClientMsg::Submit { tasks } => {
            let parts: Vec<String> = tasks
                .iter()
                .map(|t| if t.deps.is_empty() { t.key.to_string() } else { format!("{}<-{}", t.key, keys(&t.deps)) })
                .collect();
            format!("Submit[{}]", parts.join(","))
        }
        ClientMsg::Release { keys: k } => format!("Release{}", keys(k)),
        ClientMsg::Cancel { keys: k, force } => format!("Cancel{}{}", keys(k), if *force { "!" } else { "" }),
        ClientMsg::FireAndForget { keys: k } => format!("FireAndForget{}", keys(k)),
        ClientMsg::Retry { keys: k } => format!("Retry{}", keys(k)),
        ClientMsg::Scattered { worker, items } => format!("Scattered@{worker}{}", keys(items.iter().map(|i| &i.key))),
        ClientMsg::Info { req, .. } => format!("Info#{}", req.0),
        ClientMsg::Primitive { req, op } => format!("Primitive#{} {op:?}", req.0),
        ClientMsg::Heartbeat => "Heartbeat".to_owned(),
        ClientMsg::Goodbye => "Goodbye".to_owned(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

pub(crate) fn to_client(msg: &ToClient) -> String {
    match msg {
        ToClient::Welcome { .. } => "Welcome".to_owned(),
        ToClient::Refused { reason } => format!("Refused({reason})"),
        ToClient::Acked { keys: k } => format!("Acked{}", keys(k)),
        ToClient::Update(u) => format!("Update {} {}", u.key, key_state(&u.state)),
        ToClient::Reply { req, .. } => format!("Reply#{}", req.0),
        ToClient::PrimitiveReply { req, result } => format!("PrimitiveReply#{} {result:?}", req.0),
        ToClient::Error { message } => format!("Error({message})"),
        ToClient::Heartbeat => "Heartbeat".to_owned(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

fn key_state(state: &KeyState) -> String {
    match state {
        KeyState::Finished { nbytes, location } => {
            let holders: Vec<&str> = location.holders.iter().map(|(w, _)| w.as_str()).collect();
            let inline = if location.inline.is_some() { "+inline" } else { "" };
            format!("finished({nbytes}B@[{}]{inline})", holders.join(","))
        }
        KeyState::Erred(e) => format!("erred({:?} from {})", e.kind, e.key),
        KeyState::Cancelled => "cancelled".to_owned(),
        KeyState::Lost => "lost".to_owned(),
    }
}

pub(crate) fn worker_msg(msg: &WorkerMsg) -> String {
    match msg {
        WorkerMsg::Register { held, running, .. } => {
            let running: Vec<String> = running.iter().map(|(k, a)| format!("{k}#{}", a.0)).collect();
            format!("Register held{} running[{}]", keys(held.iter().map(|(k, _)| k)), running.join(","))
        }
        WorkerMsg::Finished { key, attempt, nbytes, .. } => format!("Finished {key}#{} {nbytes}B", attempt.0),
        WorkerMsg::Erred { key, attempt, error } => format!("Erred {key}#{} {:?}", attempt.0, error.kind),
        WorkerMsg::Heartbeat => "Heartbeat".to_owned(),
        WorkerMsg::Goodbye => "Goodbye".to_owned(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

pub(crate) fn to_worker(msg: &ToWorker) -> String {
    match msg {
        ToWorker::Welcome { .. } => "Welcome".to_owned(),
        ToWorker::Refused { reason } => format!("Refused({reason})"),
        ToWorker::Compute(c) => format!("Compute {}#{}", c.key, c.attempt.0),
        ToWorker::Cancel { key, attempt } => format!("Cancel {key}#{}", attempt.0),
        ToWorker::Free { keys: k } => format!("Free{}", keys(k)),
        ToWorker::Heartbeat => "Heartbeat".to_owned(),
        ToWorker::Shutdown => "Shutdown".to_owned(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

/// Several messages on one line.
pub(crate) fn batch<M>(msgs: &[M], one: fn(&M) -> String) -> String {
    let parts: Vec<String> = msgs.iter().map(one).collect();
    parts.join(" | ")
}

/// An event, named by its kind, with the details that identify it. New
/// event kinds print by kind alone until they get their own detail.
pub(crate) fn event(ev: &reprise_proto::Event) -> String {
    use reprise_proto::Event as E;
    let detail = match ev {
        E::ClientJoined { client } | E::ClientRemoved { client } => client.to_string(),
        E::TaskSubmitted { spec } => spec.key.to_string(),
        E::ClientWants { client, key } | E::ClientReleased { client, key } => format!("{client} {key}"),
        E::HolderAdded { holder, key } | E::HolderRemoved { holder, key } => format!("{holder:?} {key}"),
        E::TaskAssigned { key, worker, attempt } | E::TaskFinished { key, worker, attempt, .. } => {
            format!("{key}#{} {worker}", attempt.0)
        }
        E::DataScattered { key, worker, .. } | E::ReplicaAdded { key, worker } | E::ReplicaRemoved { key, worker } => {
            format!("{key} {worker}")
        }
        E::TaskErred { key, error } => format!("{key} ({:?} from {})", error.kind, error.key),
        E::TaskQueued { key }
        | E::TaskNoWorker { key }
        | E::TaskRetried { key }
        | E::TaskRescheduled { key }
        | E::TaskLost { key }
        | E::TaskCancelled { key }
        | E::TaskForgotten { key } => key.to_string(),
        E::WorkerJoined { worker, .. } | E::WorkerRemoved { worker } => worker.to_string(),
        E::LockAcquired { lock: name, lease }
        | E::LockReleased { lock: name, lease }
        | E::LeaseGranted { semaphore: name, lease }
        | E::LeaseReleased { semaphore: name, lease } => format!("{name} {}#{}", lease.client, lease.req.0),
        E::LeaseExpired { on, lease } => format!("{on:?} {}#{}", lease.client, lease.req.0),
        E::SemaphoreCreated { semaphore, max_leases } => format!("{semaphore} max {max_leases}"),
        E::SemaphoreClosed { semaphore: name } | E::EventSet { name } | E::EventCleared { name } => name.clone(),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    };
    format!("{:?} {detail}", ev.kind())
}
