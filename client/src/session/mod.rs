//! The client session's protocol logic, without IO.
//!
//! A [`Session`] holds what the client must remember to keep its futures
//! right across lost messages and scheduler restarts:
//!
//! - per-key local reference counts (one per `Future` handle, plus internal
//!   holds), which send `Release` when they reach zero;
//! - the status of every live key, from the scheduler's `Update`s;
//! - the spec of every live task, and which submissions and scatters are not
//!   yet `Acked` (durable), to send again after a reconnect;
//! - control messages (`Release`, `Cancel`, `FireAndForget`, `Retry`) that
//!   have no acknowledgement, kept until they have settled;
//! - pending `Info` requests by request id;
//! - pending requests on coordination primitives by request id, resent
//!   after a reconnect until answered (the scheduler makes resends
//!   idempotent); futures handed out in their answers are adopted as live
//!   keys with one local reference each.
//!
//! A scheduler that no longer knows the session (it removed it while the
//! connection stayed up) answers with `ToClient::Error` carrying
//! `reprise_proto::HELLO_FIRST`: the session then says `Hello` again on the
//! same connection and resends everything once welcomed.
//!
//! It is driven by plain calls: the user side (`submit`, `add_ref`,
//! `release_ref`, `cancel`, …) and the network side (`handle_connected`,
//! `handle_message`, `handle_timeout`, `handle_disconnected`); it answers with
//! values (`poll_transmit` for message batches, `poll_output` for what the
//! shell must act on, `poll_timeout` for its next deadline). Time comes in as
//! `now_ms`, a millisecond count from any fixed origin.
//!
//! Architecture invariant: this module never imports tokio or zeromq, never
//! reads a clock and never iterates a `HashMap`.
mod link;

use std::collections::{BTreeMap, VecDeque};

use reprise_proto::{
    ClientId, ClientMsg, InfoReply, InfoRequest, Key, KeyState, PrimitiveOp, PrimitiveResult, ReplyValue, RequestId,
    ScatteredItem, TaskSpec, WorkerId,
};

pub use crate::status::{FutureStatus, KeyStatus};

/// The session's timing, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Send a `Heartbeat` when nothing else went out for this long.
    pub heartbeat_ms: u64,
    /// Hearing nothing from the scheduler for this long means the connection is lost.
    pub silence_ms: u64,
    /// A control message counts as settled (no longer resent after a
    /// reconnect) once the scheduler has been heard this long after it was
    /// queued on a live connection: by then it has been logged.
    pub settle_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { heartbeat_ms: 1_000, silence_ms: 5_000, settle_ms: 10_000 }
    }
}

/// The most control messages kept for resending; beyond it the oldest are
/// dropped (they are then only as reliable as the connection they went on).
pub const CONTROLS_MAX: usize = 100_000;
/// The most items (tasks, keys, messages) in one transmitted batch.
pub const BATCH_ITEMS_MAX: usize = 10_000;
/// A batch's approximate encoded size bound, well under the frame limit.
pub const BATCH_BYTES_MAX: usize = reprise_proto::FRAME_BYTES_MAX / 4;
/// The estimated encoded overhead of one message or task, beyond its payload.
const MSG_OVERHEAD_BYTES: usize = 64;

/// What the shell must act on, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// The scheduler accepted the session.
    Welcome { scheduler: String },
    /// The scheduler refused the session; the session is closed.
    Refused { reason: String },
    /// The scheduler went silent; the session is down and wants a fresh connection.
    ConnectionLost,
    /// A live key's status changed.
    Status { key: Key, status: KeyStatus },
    /// A submission or scatter of this key is durable.
    Acked { key: Key },
    /// The key left the session (its last reference went).
    Forgotten { key: Key },
    /// The answer to an `Info` request.
    Reply { req: RequestId, body: InfoReply },
    /// The scheduler rejected something this session sent.
    SchedulerError { message: String },
}

/// The connection as the session sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// No connection; everything waits to be sent after the next `Welcome`.
    Down,
    /// `Hello` is out; nothing else is sent until `Welcome`.
    AwaitingWelcome,
    Ready,
    /// `Goodbye` is queued and goes out with the next batch.
    Closing,
    Closed,
}

/// A live key.
#[derive(Debug)]
struct Entry {
    /// Local references: `Future` handles plus internal holds. Never 0 while live.
    refs: u32,
    status: KeyStatus,
    /// The task's spec, for resubmission (`None` for scattered data).
    spec: Option<TaskSpec>,
    /// The unacknowledged registration of scattered data, for resending.
    scatter: Option<(WorkerId, ScatteredItem)>,
    /// Submission order: resends keep it, so inputs go before their dependents.
    seq: u64,
    acked: bool,
    /// Keys this entry holds one reference on until it is acked: its inputs
    /// (so their specs stay for a resend) and, for fire-and-forget, itself.
    holds: Vec<Key>,
}

/// A message without acknowledgement, kept until settled.
#[derive(Debug)]
struct Control {
    msg: ClientMsg,
    /// When it was queued on a live connection (`None`: not sent yet).
    queued_ms: Option<u64>,
}

/// The client session's state machine. See the module docs.
#[derive(Debug)]
pub struct Session {
    client: ClientId,
    name: String,
    token: Option<String>,
    timing: Timing,
    link: Link,
    entries: BTreeMap<Key, Entry>,
    next_seq: u64,
    controls: VecDeque<Control>,
    n_controls_dropped: u64,
    infos: BTreeMap<RequestId, InfoRequest>,
    /// Primitive requests not answered yet, in request order.
    prims: BTreeMap<RequestId, PrimitiveOp>,
    /// Answers to primitive requests, for the shell (`poll_primitive_reply`).
    prim_replies: VecDeque<(RequestId, PrimitiveResult)>,
    next_req: u64,
    outbox: VecDeque<ClientMsg>,
    outputs: VecDeque<Output>,
    last_heard_ms: u64,
    last_sent_ms: u64,
    /// The scheduler removed this session while its connection stayed up:
    /// the next `Welcome` resubmits every live task (see `on_hello_first`).
    rejoining: bool,
}

impl Session {
    /// A session, not connected yet. `client` is kept across reconnects.
    pub fn new(client: ClientId, name: impl Into<String>, token: Option<String>, timing: Timing) -> Session {
        Session {
            client,
            name: name.into(),
            token,
            timing,
            link: Link::Down,
            entries: BTreeMap::new(),
            next_seq: 0,
            controls: VecDeque::new(),
            n_controls_dropped: 0,
            infos: BTreeMap::new(),
            prims: BTreeMap::new(),
            prim_replies: VecDeque::new(),
            next_req: 1,
            outbox: VecDeque::new(),
            outputs: VecDeque::new(),
            last_heard_ms: 0,
            last_sent_ms: 0,
            rejoining: false,
        }
    }

    /// This session's client id.
    pub fn client_id(&self) -> &ClientId {
        &self.client
    }

    /// Submit a task for one more local reference. Returns `false` when the
    /// key is already live (an identical pure call): then nothing is sent and
    /// the existing status is shared.
    pub fn submit(&mut self, spec: TaskSpec) -> bool {
        // A live key counts the new handle even on a closed session, so that
        // the handle's drop balances it.
        if let Some(entry) = self.entries.get_mut(&spec.key) {
            entry.refs += 1;
            return false;
        }
        if self.is_closed() {
            return false;
        }
        let key = spec.key.clone();
        let holds = self.hold_all(&spec.deps);
        self.send(ClientMsg::Submit { tasks: vec![spec.clone()] });
        let seq = self.take_seq();
        self.entries.insert(
            key,
            Entry { refs: 1, status: KeyStatus::Pending, spec: Some(spec), scatter: None, seq, acked: false, holds },
        );
        true
    }

    /// Register data already stored on `worker` (at peer `address`), one
    /// more local reference per item. Keys already live only gain a reference.
    pub fn scattered(&mut self, worker: &WorkerId, address: &str, items: Vec<ScatteredItem>) {
        let mut fresh = Vec::new();
        for item in items {
            if let Some(entry) = self.entries.get_mut(&item.key) {
                entry.refs += 1;
                continue;
            }
            if self.is_closed() {
                continue;
            }
            let status = KeyStatus::Finished {
                nbytes: item.nbytes,
                holders: vec![(worker.clone(), address.to_owned())],
                inline: item.inline.clone().map(Into::into),
            };
            let seq = self.take_seq();
            let entry = Entry {
                refs: 1,
                status,
                spec: None,
                scatter: Some((worker.clone(), item.clone())),
                seq,
                acked: false,
                holds: Vec::new(),
            };
            self.entries.insert(item.key.clone(), entry);
            fresh.push(item);
        }
        if !fresh.is_empty() {
            self.send(ClientMsg::Scattered { worker: worker.clone(), items: fresh });
        }
    }

    /// One more local reference to a live key (a `Future` was cloned).
    /// Returns `false` if the key is not live.
    pub fn add_ref(&mut self, key: &Key) -> bool {
        match self.entries.get_mut(key) {
            Some(entry) => {
                entry.refs += 1;
                true
            }
            None => false,
        }
    }

    /// One local reference fewer. At zero the key leaves the session
    /// (`Output::Forgotten`), `Release` is sent, and its holds are let go.
    pub fn release_ref(&mut self, key: &Key, now_ms: u64) {
        let mut work = vec![key.clone()];
        while let Some(key) = work.pop() {
            let Some(entry) = self.entries.get_mut(&key) else { continue };
            entry.refs -= 1;
            if entry.refs > 0 {
                continue;
            }
            let Some(entry) = self.entries.remove(&key) else { continue };
            if !entry.acked {
                work.extend(entry.holds);
            }
            self.outputs.push_back(Output::Forgotten { key: key.clone() });
            if !self.is_closed() {
                self.control(ClientMsg::Release { keys: vec![key] }, now_ms);
            }
        }
    }

    /// Cancel these keys: live ones are marked `Cancelled` at once (as Dask
    /// does), and the scheduler is asked to cancel them if this client is
    /// their only wanter.
    pub fn cancel(&mut self, keys: &[Key], now_ms: u64) {
        if self.is_closed() || keys.is_empty() {
            return;
        }
        for key in keys {
            self.set_status(key, KeyStatus::Cancelled);
        }
        self.control(ClientMsg::Cancel { keys: keys.to_vec(), force: false }, now_ms);
    }

    /// Re-run these keys if they erred: they go back to `Pending` and the
    /// scheduler re-runs them and their erred inputs. Others are left alone.
    pub fn retry(&mut self, keys: &[Key], now_ms: u64) {
        if self.is_closed() {
            return;
        }
        let erred: Vec<Key> = keys
            .iter()
            .filter(|k| matches!(self.entries.get(*k), Some(Entry { status: KeyStatus::Erred(_), .. })))
            .cloned()
            .collect();
        if erred.is_empty() {
            return;
        }
        for key in &erred {
            self.set_status(key, KeyStatus::Pending);
        }
        self.control(ClientMsg::Retry { keys: erred }, now_ms);
    }

    /// Keep these keys running after this client lets go. An unacked key
    /// holds itself until acked, so its submission is resent even if every
    /// local handle is dropped meanwhile.
    pub fn fire_and_forget(&mut self, keys: &[Key], now_ms: u64) {
        if self.is_closed() || keys.is_empty() {
            return;
        }
        for key in keys {
            if let Some(entry) = self.entries.get_mut(key) {
                if !entry.acked {
                    entry.refs += 1;
                    entry.holds.push(key.clone());
                }
            }
        }
        self.control(ClientMsg::FireAndForget { keys: keys.to_vec() }, now_ms);
    }

    /// Ask the scheduler something; the answer comes as `Output::Reply` with
    /// the returned id (also after a reconnect, when it is asked again).
    pub fn info(&mut self, what: InfoRequest) -> RequestId {
        let req = RequestId(self.next_req);
        self.next_req += 1;
        if !self.is_closed() {
            self.infos.insert(req, what.clone());
            self.send(ClientMsg::Info { req, what });
        }
        req
    }

    /// Stop waiting for the answer to `req` (its asker gave up).
    pub fn forget_info(&mut self, req: RequestId) {
        self.infos.remove(&req);
    }

    /// Send a request on a primitive; its answer comes out of
    /// [`Session::poll_primitive_reply`] with the returned id. It is resent
    /// after every reconnect until answered.
    pub fn primitive(&mut self, op: PrimitiveOp) -> RequestId {
        let req = RequestId(self.next_req);
        self.next_req += 1;
        if !self.is_closed() {
            self.prims.insert(req, op.clone());
            self.send(ClientMsg::Primitive { req, op });
        }
        req
    }

    /// Nobody waits for the answer to primitive request `req` any more: it
    /// is not resent, and the scheduler is asked to drop its wait (or give
    /// back the lease it may have been granted). Returns the id of that ask.
    pub fn abandon(&mut self, req: RequestId) -> RequestId {
        self.prims.remove(&req);
        self.primitive(PrimitiveOp::Abandon { req })
    }

    /// The next answer to a primitive request, in arrival order. Each future
    /// in it holds one local reference, which the receiver must take over
    /// (or release).
    pub fn poll_primitive_reply(&mut self) -> Option<(RequestId, PrimitiveResult)> {
        self.prim_replies.pop_front()
    }

    /// How many primitive requests wait for an answer.
    pub fn n_pending_primitives(&self) -> usize {
        self.prims.len()
    }

    /// A key the scheduler handed us (in a primitive's answer) and made us
    /// want: one more local reference, the entry created if it is new.
    fn adopt(&mut self, key: &Key, state: Option<KeyState>) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.refs += 1;
            return;
        }
        // The key left the session while the answer was on its way (an
        // `Acked` earlier in the same frame let go of the last hold on it,
        // say). The scheduler wanted it for us when it answered: a `Release`
        // not sent yet must not go out after the answer took the key back.
        self.outbox.retain(|m| !matches!(m, ClientMsg::Release { keys } if keys.len() == 1 && keys[0] == *key));
        let seq = self.take_seq();
        let status = state.map_or(KeyStatus::Pending, KeyStatus::from);
        let entry = Entry { refs: 1, status, spec: None, scatter: None, seq, acked: true, holds: Vec::new() };
        self.entries.insert(key.clone(), entry);
    }

    /// The answer to a primitive request: adopt the futures it hands out.
    pub(crate) fn on_primitive_reply(&mut self, req: RequestId, result: PrimitiveResult) {
        if self.prims.remove(&req).is_none() {
            return; // answered before, or abandoned
        }
        // A resend queued since (after a `Welcome`) must not go out: the
        // scheduler would take it for a new request.
        self.outbox.retain(|m| !matches!(m, ClientMsg::Primitive { req: r, .. } if *r == req));
        if let PrimitiveResult::Values(values) = &result {
            for v in values {
                if let ReplyValue::Future { key, state } = v {
                    self.adopt(key, state.clone());
                }
            }
        }
        self.prim_replies.push_back((req, result));
    }

    /// End the session: `Goodbye` goes out with the next batch if connected.
    pub fn goodbye(&mut self) {
        self.link = match self.link {
            Link::Ready => {
                self.outbox.push_back(ClientMsg::Goodbye);
                Link::Closing
            }
            Link::Closing => Link::Closing,
            _ => {
                self.outbox.clear();
                Link::Closed
            }
        };
        self.controls.clear();
        self.infos.clear();
        self.prims.clear();
    }

    /// The status of a live key.
    pub fn status(&self, key: &Key) -> Option<&KeyStatus> {
        self.entries.get(key).map(|e| &e.status)
    }

    /// Local references to a key (0 when not live).
    pub fn refs(&self, key: &Key) -> u32 {
        self.entries.get(key).map_or(0, |e| e.refs)
    }

    /// Whether the key's submission or scatter has been acknowledged
    /// (`false` for keys that are not live).
    pub fn is_acked(&self, key: &Key) -> bool {
        self.entries.get(key).is_some_and(|e| e.acked)
    }

    /// The function of a live task, when this session submitted it.
    pub fn func_of(&self, key: &Key) -> Option<&str> {
        self.entries.get(key)?.spec.as_ref().map(|s| s.func.as_str())
    }

    /// How many keys are live.
    pub fn n_live(&self) -> usize {
        self.entries.len()
    }

    /// How many control messages were dropped unsettled over [`CONTROLS_MAX`].
    pub fn n_controls_dropped(&self) -> u64 {
        self.n_controls_dropped
    }

    /// Whether `Welcome` was received on the current connection.
    pub fn is_ready(&self) -> bool {
        self.link == Link::Ready
    }

    /// Whether the session has ended (`goodbye` or `Refused`).
    pub fn is_closed(&self) -> bool {
        matches!(self.link, Link::Closing | Link::Closed)
    }

    /// The next thing the shell must act on.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Cross-check the state; `Err` describes the first inconsistency.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (key, e) in &self.entries {
            if e.refs == 0 {
                return Err(format!("live key {key} has no reference"));
            }
            if e.acked && (!e.holds.is_empty() || e.scatter.is_some()) {
                return Err(format!("acked key {key} still holds or keeps its scatter"));
            }
            if e.spec.is_some() == e.scatter.is_some() && !e.acked {
                return Err(format!("unacked key {key} must be a task or a scatter"));
            }
            if let Some(h) = e.holds.iter().find(|h| !self.entries.contains_key(*h)) {
                return Err(format!("{key} holds {h}, which is not live"));
            }
        }
        if self.link == Link::Down && !self.outbox.is_empty() {
            return Err("messages queued while down".to_owned());
        }
        if self.link == Link::AwaitingWelcome && self.outbox.iter().any(|m| !matches!(m, ClientMsg::Hello { .. })) {
            return Err("messages other than Hello queued before Welcome".to_owned());
        }
        if self.controls.len() > CONTROLS_MAX {
            return Err("too many controls kept".to_owned());
        }
        if self.infos.keys().chain(self.prims.keys()).any(|r| r.0 >= self.next_req) {
            return Err("a request id from the future".to_owned());
        }
        Ok(())
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// One reference more on each live key among `keys`; returns those held.
    fn hold_all(&mut self, keys: &[Key]) -> Vec<Key> {
        keys.iter().filter(|k| self.add_ref(k)).cloned().collect()
    }

    fn set_status(&mut self, key: &Key, status: KeyStatus) {
        let Some(entry) = self.entries.get_mut(key) else { return };
        if entry.status != status {
            entry.status = status.clone();
            self.outputs.push_back(Output::Status { key: key.clone(), status });
        }
    }

    /// Queue a message for the current connection (if any; otherwise the
    /// state it comes from is resent after the next `Welcome`).
    fn send(&mut self, msg: ClientMsg) {
        if self.link == Link::Ready {
            self.outbox.push_back(msg);
        }
    }

    /// Queue a control message and keep it until it has settled.
    fn control(&mut self, msg: ClientMsg, now_ms: u64) {
        let queued_ms = (self.link == Link::Ready).then_some(now_ms);
        self.send(msg.clone());
        self.controls.push_back(Control { msg, queued_ms });
        while self.controls.len() > CONTROLS_MAX {
            self.controls.pop_front();
            self.n_controls_dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests;
