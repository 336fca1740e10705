//! The network side of the session: connection events, incoming messages,
//! time, and outgoing batches.
use std::collections::BTreeMap;

use reprise_proto::{
    ClientMsg, KeyUpdate, PrimitiveOp, ScatteredItem, StoredValue, TaskSpec, ToClient, WorkerId, HELLO_FIRST,
};

use super::{Link, Output, Session, BATCH_BYTES_MAX, BATCH_ITEMS_MAX, MSG_OVERHEAD_BYTES};
use crate::status::KeyStatus;

impl Session {
    /// A fresh connection is up: `Hello` goes out, and nothing else until `Welcome`.
    pub fn handle_connected(&mut self, now_ms: u64) {
        if self.is_closed() {
            return;
        }
        self.link = Link::AwaitingWelcome;
        self.outbox.clear();
        self.outbox.push_back(ClientMsg::Hello {
            client: self.client.clone(),
            name: self.name.clone(),
            token: self.token.clone(),
        });
        self.last_heard_ms = now_ms;
        self.last_sent_ms = now_ms;
    }

    /// The connection is gone. What was in flight is resent after the next
    /// `Welcome`, from the state it came from.
    pub fn handle_disconnected(&mut self) {
        if self.is_closed() {
            self.link = Link::Closed;
            self.outbox.clear();
            return;
        }
        self.link = Link::Down;
        self.outbox.clear();
        for c in &mut self.controls {
            c.queued_ms = None;
        }
    }

    /// A message from the scheduler.
    pub fn handle_message(&mut self, msg: ToClient, now_ms: u64) {
        if self.link == Link::Closed {
            return;
        }
        self.last_heard_ms = now_ms;
        self.settle_controls(now_ms);
        match msg {
            ToClient::Welcome { scheduler } => self.on_welcome(scheduler, now_ms),
            ToClient::Refused { reason } => {
                self.goodbye();
                self.link = Link::Closed;
                self.outbox.clear();
                self.outputs.push_back(Output::Refused { reason });
            }
            ToClient::Acked { keys } => keys.into_iter().for_each(|k| self.on_acked(k, now_ms)),
            ToClient::Update(update) => self.on_update(update),
            ToClient::Reply { req, body } => {
                if self.infos.remove(&req).is_some() {
                    self.outputs.push_back(Output::Reply { req, body });
                }
            }
            ToClient::PrimitiveReply { req, result } => self.on_primitive_reply(req, result),
            ToClient::Error { message } if message == HELLO_FIRST => self.on_hello_first(now_ms),
            ToClient::Error { message } => self.outputs.push_back(Output::SchedulerError { message }),
            ToClient::Heartbeat => {}
        }
    }

    /// Time passed: a silent scheduler means a lost connection; an idle
    /// connection gets a `Heartbeat`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let live = matches!(self.link, Link::AwaitingWelcome | Link::Ready);
        if live && now_ms >= self.last_heard_ms + self.timing.silence_ms {
            self.handle_disconnected();
            self.outputs.push_back(Output::ConnectionLost);
            return;
        }
        if self.link == Link::Ready && self.outbox.is_empty() && now_ms >= self.last_sent_ms + self.timing.heartbeat_ms {
            self.outbox.push_back(ClientMsg::Heartbeat);
        }
    }

    /// When `handle_timeout` next has something to do, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        let silence = self.last_heard_ms + self.timing.silence_ms;
        match self.link {
            Link::AwaitingWelcome => Some(silence),
            Link::Ready => Some(silence.min(self.last_sent_ms + self.timing.heartbeat_ms)),
            Link::Down | Link::Closing | Link::Closed => None,
        }
    }

    /// The next batch of messages to send as one frame, consecutive
    /// submissions and releases merged. `None` when there is nothing to send.
    pub fn poll_transmit(&mut self, now_ms: u64) -> Option<Vec<ClientMsg>> {
        if matches!(self.link, Link::Down | Link::Closed) || self.outbox.is_empty() {
            return None;
        }
        let mut batch: Vec<ClientMsg> = Vec::new();
        let (mut n_items, mut n_bytes) = (0usize, 0usize);
        while let Some(msg) = self.outbox.pop_front() {
            let (items, bytes) = msg_cost(&msg);
            if !batch.is_empty() && (n_items + items > BATCH_ITEMS_MAX || n_bytes + bytes > BATCH_BYTES_MAX) {
                self.outbox.push_front(msg);
                break;
            }
            n_items += items;
            n_bytes += bytes;
            merge_into(&mut batch, msg);
        }
        if self.link == Link::Closing && self.outbox.is_empty() {
            self.link = Link::Closed;
        }
        self.last_sent_ms = now_ms;
        Some(batch)
    }

    /// The scheduler no longer knows this session: it removed it (its
    /// messages stalled past the heartbeat timeout while the scheduler's
    /// still arrived) and let go of everything it wanted. Say `Hello` again
    /// on this connection; after `Welcome`, everything is resent as after a
    /// reconnect, every live task included. Later refusals of what was in
    /// flight before the new `Hello` change nothing.
    fn on_hello_first(&mut self, now_ms: u64) {
        if self.link != Link::Ready {
            return;
        }
        self.rejoining = true;
        self.handle_disconnected();
        self.handle_connected(now_ms);
    }

    fn on_welcome(&mut self, scheduler: String, now_ms: u64) {
        if self.link != Link::AwaitingWelcome {
            return;
        }
        self.link = Link::Ready;
        self.queue_resend(now_ms);
        self.outputs.push_back(Output::Welcome { scheduler });
    }

    /// After `Welcome`: every unacked submission and scatter, the unsettled
    /// control messages in their order, a re-submission of every live pending
    /// task (to repair updates lost in flight; the scheduler answers a known
    /// finished key with its update), then the open info requests, then the
    /// unanswered primitive requests in request order. After the scheduler
    /// removed the session (`rejoining`), every live task is submitted again,
    /// finished ones included, so that the scheduler wants them again.
    fn queue_resend(&mut self, now_ms: u64) {
        let rejoining = std::mem::take(&mut self.rejoining);
        let mut by_seq: Vec<(u64, &TaskSpec, bool)> = Vec::new();
        let mut scatters: BTreeMap<&WorkerId, Vec<(u64, &ScatteredItem)>> = BTreeMap::new();
        for e in self.entries.values() {
            if let Some(spec) = &e.spec {
                if rejoining || !e.acked || e.status == KeyStatus::Pending {
                    by_seq.push((e.seq, spec, e.acked));
                }
            }
            if let Some((worker, item)) = &e.scatter {
                scatters.entry(worker).or_default().push((e.seq, item));
            }
        }
        by_seq.sort_by_key(|(seq, _, _)| *seq);
        let mut msgs = Vec::new();
        let unacked = by_seq.iter().filter(|(_, _, acked)| !acked);
        msgs.extend(unacked.map(|(_, spec, _)| ClientMsg::Submit { tasks: vec![(*spec).clone()] }));
        for (worker, mut items) in scatters {
            items.sort_by_key(|(seq, _)| *seq);
            let items = items.into_iter().map(|(_, item)| item.clone()).collect();
            msgs.push(ClientMsg::Scattered { worker: worker.clone(), items });
        }
        for c in &mut self.controls {
            c.queued_ms = Some(now_ms);
            match &c.msg {
                // A key wanted again since must not be released by an old `Release`.
                ClientMsg::Release { keys } => {
                    let keys: Vec<_> = keys.iter().filter(|k| !self.entries.contains_key(*k)).cloned().collect();
                    if !keys.is_empty() {
                        msgs.push(ClientMsg::Release { keys });
                    }
                }
                other => msgs.push(other.clone()),
            }
        }
        let acked = by_seq.iter().filter(|(_, _, acked)| *acked);
        msgs.extend(acked.map(|(_, spec, _)| ClientMsg::Submit { tasks: vec![(*spec).clone()] }));
        msgs.extend(self.infos.iter().map(|(req, what)| ClientMsg::Info { req: *req, what: what.clone() }));
        msgs.extend(self.prims.iter().map(|(req, op)| ClientMsg::Primitive { req: *req, op: op.clone() }));
        self.outbox.extend(msgs);
    }

    fn on_acked(&mut self, key: reprise_proto::Key, now_ms: u64) {
        let Some(entry) = self.entries.get_mut(&key) else {
            self.outputs.push_back(Output::Acked { key });
            return;
        };
        entry.acked = true;
        entry.scatter = None;
        let holds = std::mem::take(&mut entry.holds);
        self.outputs.push_back(Output::Acked { key });
        for held in holds {
            self.release_ref(&held, now_ms);
        }
    }

    fn on_update(&mut self, update: KeyUpdate) {
        let Some(entry) = self.entries.get(&update.key) else { return };
        // A cancelled future stays cancelled, whatever the task came to.
        if entry.status == KeyStatus::Cancelled {
            return;
        }
        self.set_status(&update.key, update.state.into());
    }

    /// Controls queued at least `settle_ms` before now, on this live
    /// connection, have been logged by a scheduler that is still answering.
    fn settle_controls(&mut self, now_ms: u64) {
        while let Some(c) = self.controls.front() {
            match c.queued_ms {
                Some(q) if now_ms >= q + self.timing.settle_ms => {
                    self.controls.pop_front();
                }
                _ => break,
            }
        }
    }
}

/// (items, approximate bytes) a message adds to a batch.
fn msg_cost(msg: &ClientMsg) -> (usize, usize) {
    match msg {
        ClientMsg::Submit { tasks } => {
            (tasks.len(), tasks.iter().map(|t| t.args.len() + MSG_OVERHEAD_BYTES).sum())
        }
        ClientMsg::Scattered { items, .. } => (
            items.len(),
            items.iter().map(|i| i.inline.as_ref().map_or(0, Vec::len) + MSG_OVERHEAD_BYTES).sum(),
        ),
        ClientMsg::Release { keys } => (keys.len(), keys.len() * MSG_OVERHEAD_BYTES),
        ClientMsg::Primitive { op: PrimitiveOp::VariableSet { value, .. } | PrimitiveOp::QueuePut { value, .. }, .. } => {
            (1, MSG_OVERHEAD_BYTES + value_bytes(value))
        }
        _ => (1, MSG_OVERHEAD_BYTES),
    }
}

fn value_bytes(value: &StoredValue) -> usize {
    match value {
        StoredValue::Inline(bytes) => bytes.len(),
        StoredValue::Future(key) => key.0.len(),
    }
}

/// Append `msg`, merging it into the last message when both are
/// submissions or both releases.
fn merge_into(batch: &mut Vec<ClientMsg>, msg: ClientMsg) {
    match (batch.last_mut(), msg) {
        (Some(ClientMsg::Submit { tasks }), ClientMsg::Submit { tasks: more }) => tasks.extend(more),
        (Some(ClientMsg::Release { keys }), ClientMsg::Release { keys: more }) => keys.extend(more),
        (_, msg) => batch.push(msg),
    }
}
