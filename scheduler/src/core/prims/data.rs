//! Variables, queues and datasets: the primitives that hold values.
use reprise_proto::{Event, Holder, Key, OpId, PrimitiveResult, ReplyValue, StoredValue};

use super::reply;
use super::waiters::{Payload, WaitOn, Waiting};
use crate::core::scheduler::{Cx, Scheduler};
use crate::core::Millis;

/// Whether a deadline has passed (a zero timeout is due at once).
pub(super) fn due(deadline: Option<Millis>, now: Millis) -> bool {
    deadline.is_some_and(|d| d <= now)
}

impl Scheduler {
    pub(super) fn variable_set(&mut self, cx: &mut Cx, me: OpId, name: String, value: StoredValue) {
        if let Some(refused) = self.value_refusal(&value) {
            reply(cx, &me, refused);
            return;
        }
        let holder = Holder::Variable(name.clone());
        self.hold(cx, &holder, &value);
        let old = self.state.variable(&name).cloned();
        self.emit(cx, Event::VariableSet { name: name.clone(), value: value.clone(), op: me.clone() });
        if let Some(old_key) = old.as_ref().and_then(StoredValue::key) {
            self.drop_holder_if_unused(cx, &holder, old_key);
        }
        for (getter, _) in self.waiters.drain(&WaitOn::Variable(name)) {
            let v = self.hand_out(cx, &getter.client, &value);
            reply(cx, &getter, PrimitiveResult::Values(vec![v]));
        }
        reply(cx, &me, PrimitiveResult::Done);
    }

    pub(super) fn variable_get(&mut self, cx: &mut Cx, me: OpId, name: String, deadline: Option<Millis>, now: Millis) {
        if let Some(value) = self.state.variable(&name).cloned() {
            let v = self.hand_out(cx, &me.client, &value);
            reply(cx, &me, PrimitiveResult::Values(vec![v]));
        } else if due(deadline, now) {
            self.time_out(cx, &me, PrimitiveResult::Timeout);
        } else {
            self.waiters.push(me, Waiting { on: WaitOn::Variable(name), deadline, payload: Payload::Nothing });
        }
    }

    pub(super) fn variable_delete(&mut self, cx: &mut Cx, me: OpId, name: &str) {
        if let Some(old) = self.state.variable(name).cloned() {
            self.emit(cx, Event::VariableDeleted { name: name.to_owned(), op: Some(me.clone()) });
            if let Some(key) = old.key() {
                self.drop_holder_if_unused(cx, &Holder::Variable(name.to_owned()), key);
            }
        }
        reply(cx, &me, PrimitiveResult::Done);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_put(
        &mut self,
        cx: &mut Cx,
        me: OpId,
        name: String,
        value: StoredValue,
        maxsize: u64,
        deadline: Option<Millis>,
        now: Millis,
    ) {
        if let Some(refused) = self.value_refusal(&value) {
            reply(cx, &me, refused);
            return;
        }
        let line = WaitOn::QueuePut(name.clone());
        if !self.waiters.has_line(&line) && self.queue_has_room(&name, maxsize) {
            self.put_item(cx, &name, value, me.clone());
            reply(cx, &me, PrimitiveResult::Done);
            self.serve_queue(cx, &name);
        } else if due(deadline, now) {
            self.time_out(cx, &me, PrimitiveResult::Timeout);
        } else {
            self.waiters.push(me, Waiting { on: line, deadline, payload: Payload::Put { value, maxsize } });
        }
    }

    pub(super) fn queue_get(&mut self, cx: &mut Cx, me: OpId, name: String, deadline: Option<Millis>, now: Millis) {
        // Items and waiting getters never coexist: a put serves getters first.
        if self.state.queue(&name).is_some() {
            let values = self.take(cx, &name, 1, &me);
            reply(cx, &me, PrimitiveResult::Values(values));
            self.serve_queue(cx, &name);
        } else if due(deadline, now) {
            self.time_out(cx, &me, PrimitiveResult::Timeout);
        } else {
            self.waiters.push(me, Waiting { on: WaitOn::QueueGet(name), deadline, payload: Payload::Nothing });
        }
    }

    pub(super) fn queue_get_batch(&mut self, cx: &mut Cx, me: OpId, name: &str, n: u64) {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let values = self.take(cx, name, n, &me);
        reply(cx, &me, PrimitiveResult::Values(values));
        self.serve_queue(cx, name);
    }

    /// Hand queued items to waiting getters and let waiting puts in while
    /// there is room, alternating until neither can go on.
    pub(super) fn serve_queue(&mut self, cx: &mut Cx, name: &str) {
        let getters = WaitOn::QueueGet(name.to_owned());
        let putters = WaitOn::QueuePut(name.to_owned());
        loop {
            if self.state.queue(name).is_some() && self.waiters.has_line(&getters) {
                if let Some((getter, _)) = self.waiters.pop(&getters) {
                    let values = self.take(cx, name, 1, &getter);
                    reply(cx, &getter, PrimitiveResult::Values(values));
                }
                continue;
            }
            let room = match self.waiters.front(&putters) {
                Some((_, Waiting { payload: Payload::Put { maxsize, .. }, .. })) => self.queue_has_room(name, *maxsize),
                _ => false,
            };
            if !room {
                return;
            }
            if let Some((putter, Waiting { payload: Payload::Put { value, .. }, .. })) = self.waiters.pop(&putters) {
                match self.value_refusal(&value) {
                    Some(refused) => reply(cx, &putter, refused),
                    None => {
                        self.put_item(cx, name, value, putter.clone());
                        reply(cx, &putter, PrimitiveResult::Done);
                    }
                }
            }
        }
    }

    fn queue_has_room(&self, name: &str, maxsize: u64) -> bool {
        maxsize == 0 || self.state.queue(name).map_or(0, |q| q.len() as u64) < maxsize
    }

    fn put_item(&mut self, cx: &mut Cx, name: &str, value: StoredValue, op: OpId) {
        self.hold(cx, &Holder::Queue(name.to_owned()), &value);
        self.emit(cx, Event::QueuePut { name: name.to_owned(), item: value, op });
    }

    /// Take up to `n` items from the front for `taker`; nothing (and no
    /// event) when the queue is empty.
    fn take(&mut self, cx: &mut Cx, name: &str, n: usize, taker: &OpId) -> Vec<ReplyValue> {
        let Some(queue) = self.state.queue(name) else { return Vec::new() };
        let items = queue.first_numbers(n);
        let values: Vec<StoredValue> = queue.items().take(n).cloned().collect();
        if items.is_empty() {
            return Vec::new();
        }
        self.emit(cx, Event::QueueTaken { name: name.to_owned(), items, op: Some(taker.clone()) });
        let out = values.iter().map(|v| self.hand_out(cx, &taker.client, v)).collect();
        let holder = Holder::Queue(name.to_owned());
        for key in values.iter().filter_map(StoredValue::key) {
            self.drop_holder_if_unused(cx, &holder, key);
        }
        out
    }

    pub(super) fn dataset_publish(&mut self, cx: &mut Cx, me: OpId, name: String, key: Key) {
        let result = match self.state.dataset(&name) {
            _ if self.value_refusal(&StoredValue::Future(key.clone())).is_some() => PrimitiveResult::Cancelled { key },
            Some(k) if k == &key => PrimitiveResult::Done,
            Some(_) => PrimitiveResult::Invalid {
                message: format!("a dataset named {name:?} is already published: unpublish it first"),
            },
            None => {
                self.hold(cx, &Holder::Dataset(name.clone()), &StoredValue::Future(key.clone()));
                self.emit(cx, Event::DatasetPublished { name, key, op: me.clone() });
                PrimitiveResult::Done
            }
        };
        reply(cx, &me, result);
    }

    pub(super) fn dataset_get(&mut self, cx: &mut Cx, me: &OpId, name: &str) {
        let result = match self.state.dataset(name).cloned() {
            Some(key) => PrimitiveResult::Values(vec![self.hand_out(cx, &me.client, &StoredValue::Future(key))]),
            None => PrimitiveResult::NotFound { message: format!("no dataset named {name:?} is published") },
        };
        reply(cx, me, result);
    }

    pub(super) fn dataset_unpublish(&mut self, cx: &mut Cx, me: OpId, name: &str) {
        let result = match self.state.dataset(name).cloned() {
            Some(key) => {
                self.emit(cx, Event::DatasetUnpublished { name: name.to_owned(), op: Some(me.clone()) });
                self.drop_holder_if_unused(cx, &Holder::Dataset(name.to_owned()), &key);
                PrimitiveResult::Done
            }
            None => PrimitiveResult::NotFound { message: format!("no dataset named {name:?} is published") },
        };
        reply(cx, &me, result);
    }

    /// The primitive `holder` keeps the future alive (and computed).
    fn hold(&mut self, cx: &mut Cx, holder: &Holder, value: &StoredValue) {
        let Some(key) = value.key() else { return };
        if self.state.task(key).is_some_and(|t| !t.holders().contains(holder)) {
            self.emit(cx, Event::HolderAdded { holder: holder.clone(), key: key.clone() });
            // A key kept only as lineage is needed again: recompute it.
            self.revive_if_wanted(cx, key);
        }
    }

    /// Let go of `key` if the primitive `holder` no longer refers to it.
    pub(super) fn drop_holder_if_unused(&mut self, cx: &mut Cx, holder: &Holder, key: &Key) {
        let still = match holder {
            Holder::Variable(name) => self.state.variable(name).and_then(StoredValue::key) == Some(key),
            Holder::Queue(name) => self.state.queue(name).is_some_and(|q| q.holds_key(key)),
            Holder::Dataset(name) => self.state.dataset(name) == Some(key),
            Holder::FireAndForget => true,
        };
        if !still && self.state.task(key).is_some_and(|t| t.holders().contains(holder)) {
            self.emit(cx, Event::HolderRemoved { holder: holder.clone(), key: key.clone() });
            cx.to_settle.insert(key.clone());
        }
    }
}
