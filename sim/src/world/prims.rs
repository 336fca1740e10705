//! The coordination primitives from the clients' side: what an answer must
//! look like and what it must show (fresh reads, each queue item handed out
//! once), what the liveness phase sets so that no request waits for ever,
//! and what the quiescence phase empties so that nothing holds a future.
use std::collections::BTreeSet;

use reprise_proto::{OpId, PrimitiveOp, PrimitiveResult, ReplyValue, RequestId, StoredValue};

use super::model::{PrimReq, Register};
use super::{Ev, Phase, World};
use crate::invariants::{ensure, Invariant, Violation};

/// How often the liveness phase looks for requests still waiting.
const UNBLOCK_EVERY_MS: u64 = 500;
/// The suffixes of the primitive names the workload uses (`name % 2`).
const NAMES: [&str; 2] = ["0", "1"];

/// The value an answer hands out, as the primitive stored it.
fn stored(value: &ReplyValue) -> StoredValue {
    match value {
        ReplyValue::Inline(bytes) => StoredValue::Inline(bytes.clone()),
        ReplyValue::Future { key, .. } => StoredValue::Future(key.clone()),
    }
}

/// Whether `result` is an answer `request` can get at all.
fn fits(request: &PrimReq, result: &PrimitiveResult) -> bool {
    use PrimitiveResult as R;
    match request {
        PrimReq::Acquire { .. } => matches!(result, R::Granted | R::Timeout),
        PrimReq::Release | PrimReq::VarDelete { .. } | PrimReq::EventSet { .. } => matches!(result, R::Done),
        PrimReq::VarSet { .. } => matches!(result, R::Done | R::Cancelled { .. }),
        PrimReq::VarGet { .. } => matches!(result, R::Values(v) if v.len() == 1) || matches!(result, R::Timeout),
        PrimReq::QueuePut { .. } => matches!(result, R::Done | R::Timeout | R::Cancelled { .. }),
        PrimReq::QueueGet { batch: false, .. } => {
            matches!(result, R::Values(v) if v.len() == 1) || matches!(result, R::Timeout)
        }
        PrimReq::QueueGet { batch: true, .. } => matches!(result, R::Values(_)),
        PrimReq::QueueSize => matches!(result, R::Count(_)),
        PrimReq::EventWait { .. } => matches!(result, R::Bool(_)),
        PrimReq::EventOther => matches!(result, R::Done | R::Bool(_)),
        // Invalid: another future is published under the name.
        PrimReq::DsPublish { .. } => matches!(result, R::Done | R::Invalid { .. } | R::Cancelled { .. }),
        PrimReq::DsUnpublish { .. } => matches!(result, R::Done | R::NotFound { .. }),
        PrimReq::DsGet { .. } => {
            matches!(result, R::Values(v) if matches!(v[..], [ReplyValue::Future { .. }]))
                || matches!(result, R::NotFound { .. })
        }
        PrimReq::DsList { .. } => matches!(result, R::Names(_)),
    }
}

impl World<'_> {
    /// Client `c` hears the answer to its request `req`: the future it kept
    /// alive goes, the futures handed out become its handles, and the
    /// answer is checked against what the durable log says.
    pub(super) fn primitive_reply(
        &mut self,
        c: usize,
        req: RequestId,
        result: PrimitiveResult,
    ) -> Result<(), Violation> {
        let id = self.clients[c].id.clone();
        self.trace(|| format!("{id} request #{} answered {result:?}", req.0));
        self.stats.primitive_answers += 1;
        let request = self.model.prim_requests.get(&(id.clone(), req)).cloned();
        if let Some(Some(key)) = self.clients[c].open.remove(&req) {
            let now = self.now;
            if let Some(s) = self.clients[c].session.as_mut() {
                s.release_ref(&key, now);
            }
        }
        if let PrimitiveResult::Values(values) = &result {
            for value in values {
                if let ReplyValue::Future { key, .. } = value {
                    self.clients[c].add_handle(key);
                    // Once everything is let go, so is what comes in.
                    if matches!(self.phase, Phase::Quiescence | Phase::Done) {
                        self.drop_one(c, key);
                    }
                }
            }
        }
        let Some(request) = request else { return Ok(()) };
        ensure(Invariant::ClientSession, fits(&request, &result), || {
            format!("{id}'s request #{} ({request:?}) was answered {result:?}", req.0)
        })?;
        let op = OpId { client: id, req };
        self.check_answer(c, &op, &request, &result)
    }

    fn check_answer(
        &mut self,
        c: usize,
        op: &OpId,
        request: &PrimReq,
        result: &PrimitiveResult,
    ) -> Result<(), Violation> {
        let who = format!("{}#{}", op.client, op.req.0);
        match (request, result) {
            (PrimReq::Acquire { hold_ms, .. }, PrimitiveResult::Granted) => {
                let node = &mut self.clients[c];
                if node.granted.insert(op.req) {
                    let (inc, req) = (node.incarnation, op.req);
                    self.schedule(self.now + hold_ms, Ev::PrimRelease { c, inc, req });
                }
            }
            (PrimReq::VarSet { name, .. } | PrimReq::VarDelete { name }, PrimitiveResult::Done) => {
                self.model.acknowledged(true, name, op);
            }
            (PrimReq::DsPublish { name, .. } | PrimReq::DsUnpublish { name }, PrimitiveResult::Done) => {
                self.model.acknowledged(false, name, op);
            }
            (PrimReq::VarGet { name, floor }, _) => {
                let got = match result {
                    PrimitiveResult::Values(values) => values.first().map(stored),
                    _ => None,
                };
                let reg = self.model.variables.get(name).cloned().unwrap_or_default();
                fresh(&reg, *floor, |v| *v == got, || format!("{who}'s get of variable {name} got {got:?}"))?;
            }
            (PrimReq::DsGet { name, floor }, _) => {
                let got = match result {
                    PrimitiveResult::Values(values) => values.first().map(stored),
                    _ => None,
                };
                let reg = self.model.datasets.get(name).cloned().unwrap_or_default();
                fresh(&reg, *floor, |v| *v == got, || format!("{who}'s get of dataset {name} got {got:?}"))?;
            }
            (PrimReq::DsList { floors }, PrimitiveResult::Names(names)) => {
                for name in names {
                    let published = self.model.datasets.get(name).is_some_and(|r| r.since(0, Option::is_some));
                    ensure(Invariant::FreshReads, published, || {
                        format!("{who} lists dataset {name}, never published")
                    })?;
                }
                for (name, floor) in floors {
                    let listed = names.contains(name);
                    let reg = self.model.datasets.get(name).cloned().unwrap_or_default();
                    let what = || format!("{who}'s list {} dataset {name}", if listed { "shows" } else { "misses" });
                    fresh(&reg, *floor, |v| v.is_some() == listed, what)?;
                }
            }
            (PrimReq::QueueGet { .. }, PrimitiveResult::Values(values)) => {
                for value in values {
                    let ReplyValue::Inline(bytes) = value else { continue };
                    self.stats.items_delivered += 1;
                    let text = String::from_utf8_lossy(bytes).into_owned();
                    let Some(item) = self.model.items.get_mut(bytes) else {
                        return Err(Violation::new(
                            Invariant::QueueExactlyOnce,
                            format!("{who} got item {text}, which nobody put"),
                        ));
                    };
                    if let Some(first) = item.delivered.as_ref().filter(|d| *d != op) {
                        return Err(Violation::new(
                            Invariant::QueueExactlyOnce,
                            format!(
                                "{who} got item {text} of queue {}, already handed to {}#{}",
                                item.queue, first.client, first.req.0
                            ),
                        ));
                    }
                    if item.taken_by.as_ref() != Some(op) {
                        let by = item.taken_by.as_ref().map(|o| format!("{}#{}", o.client, o.req.0));
                        return Err(Violation::new(
                            Invariant::QueueExactlyOnce,
                            format!(
                                "{who} got item {text} of queue {}, which the durable log has taken by {by:?}",
                                item.queue
                            ),
                        ));
                    }
                    item.delivered = Some(op.clone());
                }
            }
            (PrimReq::EventWait { .. }, PrimitiveResult::Bool(true)) => self.stats.event_wakeups += 1,
            _ => {}
        }
        Ok(())
    }

    /// Faults stopped: set what requests still wait for (a variable, an
    /// event, a queue item, or room in a queue), every so often, until
    /// every request is answered.
    pub(super) fn unblock(&mut self, emptying: bool) -> Result<(), Violation> {
        match (self.phase, emptying) {
            (Phase::Liveness, false) => {}
            (Phase::Quiescence, true) => return self.empty_again(),
            _ => return Ok(()),
        }
        let mut any_open = false;
        for c in 0..self.clients.len() {
            let node = &self.clients[c];
            if node.session.as_ref().is_none_or(|s| s.is_closed()) || node.open.is_empty() {
                continue;
            }
            any_open = true;
            // A client still reconnecting has its requests in flight, not waiting.
            if !node.session.as_ref().is_some_and(|s| s.is_ready()) {
                continue;
            }
            // (what to do, on which name): 0 set the variable, 1 put an
            // item, 2 take items, 3 set the event.
            let mut wanted: BTreeSet<(u8, String)> = BTreeSet::new();
            let mut in_flight: BTreeSet<(u8, String)> = BTreeSet::new();
            for req in node.open.keys() {
                match self.model.prim_requests.get(&(node.id.clone(), *req)) {
                    Some(PrimReq::VarGet { name, .. }) => wanted.insert((0, name.clone())),
                    Some(PrimReq::VarSet { name, .. }) => in_flight.insert((0, name.clone())),
                    Some(PrimReq::QueueGet { name, batch: false }) => wanted.insert((1, name.clone())),
                    Some(PrimReq::QueuePut { name, bounded, .. }) => {
                        in_flight.insert((1, name.clone()));
                        *bounded && wanted.insert((2, name.clone()))
                    }
                    Some(PrimReq::QueueGet { name, batch: true }) => in_flight.insert((2, name.clone())),
                    Some(PrimReq::EventWait { name }) => wanted.insert((3, name.clone())),
                    Some(PrimReq::EventSet { name }) => in_flight.insert((3, name.clone())),
                    _ => false,
                };
            }
            for (what, name) in wanted.difference(&in_flight).cloned().collect::<Vec<_>>() {
                match what {
                    0 => {
                        let value = self.fresh_value(None);
                        let op = PrimitiveOp::VariableSet { name: name.clone(), value: value.clone() };
                        self.request(c, op, PrimReq::VarSet { name, value }, None)?;
                    }
                    1 => {
                        let value = self.fresh_value(Some(&name));
                        let op = PrimitiveOp::QueuePut {
                            name: name.clone(),
                            value: value.clone(),
                            maxsize: 0,
                            timeout_ms: None,
                        };
                        self.request(c, op, PrimReq::QueuePut { name, value, bounded: false }, None)?;
                    }
                    2 => {
                        let op = PrimitiveOp::QueueGetBatch { name: name.clone(), n: 4 };
                        self.request(c, op, PrimReq::QueueGet { name, batch: true }, None)?;
                    }
                    _ => {
                        self.request(c, PrimitiveOp::EventSet { name: name.clone() }, PrimReq::EventSet { name }, None)?
                    }
                }
            }
        }
        if any_open {
            self.schedule(self.now + UNBLOCK_EVERY_MS, Ev::Unblock { emptying: false });
        }
        Ok(())
    }

    /// Every handle is dropped: client `c` also empties every variable,
    /// queue and dataset, so that none keeps a future alive.
    pub(super) fn empty_primitives(&mut self, c: usize) -> Result<(), Violation> {
        for n in NAMES {
            let name = format!("var{n}");
            self.request(c, PrimitiveOp::VariableDelete { name: name.clone() }, PrimReq::VarDelete { name }, None)?;
            let name = format!("ds{n}");
            self.request(c, PrimitiveOp::DatasetUnpublish { name: name.clone() }, PrimReq::DsUnpublish { name }, None)?;
            let name = format!("q{n}");
            let op = PrimitiveOp::QueueGetBatch { name: name.clone(), n: 1_000 };
            self.request(c, op, PrimReq::QueueGet { name, batch: true }, None)?;
        }
        if self.phase == Phase::Quiescence {
            self.schedule(self.now + UNBLOCK_EVERY_MS, Ev::Unblock { emptying: true });
        }
        Ok(())
    }

    /// Quiescence: empty the primitives again once the last round is
    /// answered, for what came in since (a put that waited for room, from a
    /// client that vanished but is not timed out yet, goes in when the
    /// queue is emptied).
    fn empty_again(&mut self) -> Result<(), Violation> {
        if self.quiet() {
            return Ok(());
        }
        let holding = self.sched.core.as_ref().is_some_and(|s| !World::primitives_empty(s.state()));
        if holding && self.clients[0].open.is_empty() {
            self.empty_primitives(0)?;
        } else {
            self.schedule(self.now + UNBLOCK_EVERY_MS, Ev::Unblock { emptying: true });
        }
        Ok(())
    }

    /// Whether the scheduler holds nothing in a variable, queue or dataset.
    pub(super) fn primitives_empty(state: &reprise_scheduler::core::State) -> bool {
        state.variables().next().is_none() && state.queues().next().is_none() && state.datasets().next().is_none()
    }
}

/// A read sent when `floor` was the newest change some client had heard
/// acknowledged sees that change or a later one: some history entry from
/// `floor` on satisfies `matches`.
fn fresh(
    reg: &Register,
    floor: usize,
    matches: impl Fn(&Option<StoredValue>) -> bool,
    what: impl FnOnce() -> String,
) -> Result<(), Violation> {
    ensure(Invariant::FreshReads, reg.since(floor, matches), || {
        let since: Vec<String> = reg.history.iter().skip(floor).map(|v| format!("{v:?}")).collect();
        format!(
            "{}, but a change to index {floor} had been acknowledged, and from there the log holds only [{}]",
            what(),
            since.join(", ")
        )
    })
}
