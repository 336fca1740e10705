//! Blocked requests (acquire, get, wait, put on a full queue): volatile
//! session data, FIFO per primitive. None of it is durable: after a restart
//! the clients resend what they still wait for.
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use reprise_proto::{ClientId, OpId, RequestId, StoredValue};

use crate::core::Millis;

/// What a request waits on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum WaitOn {
    Lock(String),
    Semaphore(String),
    Event(String),
    Variable(String),
    /// A get on an empty queue.
    QueueGet(String),
    /// A put on a full queue.
    QueuePut(String),
}

/// What a waiter carries until it is served.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Payload {
    Nothing,
    /// The item a blocked put adds, and the bound it was asked with.
    Put { value: StoredValue, maxsize: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Waiting {
    pub(crate) on: WaitOn,
    pub(crate) deadline: Option<Millis>,
    pub(crate) payload: Payload,
}

/// How many requests answered `Timeout` are remembered (the oldest are
/// forgotten first), so that a resend that crossed the answer times out
/// again instead of acting after the client was told it did not.
pub(crate) const TIMED_OUT_MAX: usize = 4_096;

/// Every blocked request, by request and by primitive, and the requests
/// that recently timed out.
#[derive(Clone, Debug, Default)]
pub(crate) struct Waiters {
    lines: BTreeMap<WaitOn, VecDeque<OpId>>,
    waiting: BTreeMap<OpId, Waiting>,
    deadlines: BTreeSet<(Millis, OpId)>,
    timed_out: BTreeSet<OpId>,
    timed_out_order: VecDeque<OpId>,
}

impl Waiters {
    pub(crate) fn contains(&self, op: &OpId) -> bool {
        self.waiting.contains_key(op)
    }

    /// The request was answered `Timeout`.
    pub(crate) fn timed_out(&mut self, op: &OpId) {
        if self.timed_out.insert(op.clone()) {
            self.timed_out_order.push_back(op.clone());
        }
        while self.timed_out_order.len() > TIMED_OUT_MAX {
            if let Some(old) = self.timed_out_order.pop_front() {
                self.timed_out.remove(&old);
            }
        }
    }

    /// Whether the request was answered `Timeout` recently.
    pub(crate) fn has_timed_out(&self, op: &OpId) -> bool {
        self.timed_out.contains(op)
    }

    /// Join the end of the line for `waiting.on`.
    pub(crate) fn push(&mut self, op: OpId, waiting: Waiting) {
        if let Some(deadline) = waiting.deadline {
            self.deadlines.insert((deadline, op.clone()));
        }
        self.lines.entry(waiting.on.clone()).or_default().push_back(op.clone());
        self.waiting.insert(op, waiting);
    }

    /// The first in line for `on`.
    pub(crate) fn front(&self, on: &WaitOn) -> Option<(&OpId, &Waiting)> {
        let op = self.lines.get(on)?.front()?;
        self.waiting.get(op).map(|w| (op, w))
    }

    pub(crate) fn has_line(&self, on: &WaitOn) -> bool {
        self.lines.get(on).is_some_and(|l| !l.is_empty())
    }

    /// Take the first in line for `on`.
    pub(crate) fn pop(&mut self, on: &WaitOn) -> Option<(OpId, Waiting)> {
        let op = self.lines.get(on)?.front()?.clone();
        self.remove(&op).map(|w| (op, w))
    }

    /// Take everyone in line for `on`, in order.
    pub(crate) fn drain(&mut self, on: &WaitOn) -> Vec<(OpId, Waiting)> {
        let ops: Vec<OpId> = self.lines.get(on).map(|l| l.iter().cloned().collect()).unwrap_or_default();
        ops.into_iter().filter_map(|op| self.remove(&op).map(|w| (op, w))).collect()
    }

    pub(crate) fn remove(&mut self, op: &OpId) -> Option<Waiting> {
        let waiting = self.waiting.remove(op)?;
        if let Some(deadline) = waiting.deadline {
            self.deadlines.remove(&(deadline, op.clone()));
        }
        if let Some(line) = self.lines.get_mut(&waiting.on) {
            line.retain(|o| o != op);
            if line.is_empty() {
                self.lines.remove(&waiting.on);
            }
        }
        Some(waiting)
    }

    /// Every request of `client` that waits.
    pub(crate) fn of_client(&self, client: &ClientId) -> Vec<OpId> {
        let from = OpId { client: client.clone(), req: RequestId(0) };
        let to = OpId { client: client.clone(), req: RequestId(u64::MAX) };
        self.waiting.range(from..=to).map(|(op, _)| op.clone()).collect()
    }

    /// Requests whose deadline is `now` or earlier, earliest first.
    pub(crate) fn due(&self, now: Millis) -> Vec<OpId> {
        self.deadlines.iter().take_while(|(d, _)| *d <= now).map(|(_, op)| op.clone()).collect()
    }

    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Every line, for the invariant checks.
    pub(crate) fn lines(&self) -> impl Iterator<Item = (&WaitOn, &VecDeque<OpId>)> {
        self.lines.iter()
    }

    /// Lines, requests and deadlines agree.
    pub(crate) fn check(&self) -> Result<(), String> {
        let in_lines: usize = self.lines.values().map(VecDeque::len).sum();
        if in_lines != self.waiting.len() || self.lines.values().any(VecDeque::is_empty) {
            return Err("waiter lines disagree with the waiting requests".to_owned());
        }
        for (on, line) in &self.lines {
            if line.iter().any(|op| self.waiting.get(op).map(|w| &w.on) != Some(on)) {
                return Err(format!("a waiter in line for {on:?} waits on something else"));
            }
        }
        let n_deadlines = self.waiting.values().filter(|w| w.deadline.is_some()).count();
        if n_deadlines != self.deadlines.len() {
            return Err("waiter deadlines disagree with the waiting requests".to_owned());
        }
        if self.timed_out.len() != self.timed_out_order.len() || self.timed_out.len() > TIMED_OUT_MAX {
            return Err("the timed-out requests disagree with their order".to_owned());
        }
        if let Some(op) = self.waiting.keys().find(|op| self.timed_out.contains(*op)) {
            return Err(format!("{}#{} waits although it timed out", op.client, op.req.0));
        }
        Ok(())
    }
}
