//! Client nodes: the real client `Session`, plus the user holding handles
//! (futures) to keys. A client slot that vanishes or says goodbye is taken
//! over at once by a fresh client with a new id.
use std::collections::{BTreeMap, BTreeSet};

use reprise_client::session::{KeyStatus, Output, Session, Timing};
use reprise_proto::{ClientId, Key};

use super::net::PeerId;
use super::{Ev, Inbound, World};
use crate::invariants::{check, ensure, Invariant, Violation};

pub(crate) struct ClientNode {
    pub(crate) incarnation: u64,
    pub(crate) id: ClientId,
    /// `None` only between a client's end and its successor's start.
    pub(crate) session: Option<Session>,
    pub(crate) link: Option<u64>,
    /// A connection attempt is scheduled.
    pub(crate) connecting: bool,
    timer_at: Option<u64>,
    /// The user's handles: keys in first-held order, with how many.
    pub(crate) handles: Vec<(Key, u32)>,
    /// Acquire requests that were granted (a resend may be granted again).
    pub(crate) granted: BTreeSet<reprise_proto::RequestId>,
    /// Primitive requests not answered yet, each with the future it keeps
    /// alive until then.
    pub(crate) open: BTreeMap<reprise_proto::RequestId, Option<Key>>,
}

impl ClientNode {
    pub(crate) fn new(slot: usize) -> ClientNode {
        ClientNode {
            incarnation: 0,
            id: ClientId(format!("c{slot}.0")),
            session: None,
            link: None,
            connecting: false,
            timer_at: None,
            handles: Vec::new(),
            granted: BTreeSet::new(),
            open: BTreeMap::new(),
        }
    }

    /// The key `pick` positions back from the newest handle.
    pub(crate) fn pick(&self, pick: u16) -> Option<Key> {
        let n = self.handles.len();
        (n > 0).then(|| self.handles[n - 1 - usize::from(pick) % n].0.clone())
    }

    pub(crate) fn add_handle(&mut self, key: &Key) {
        match self.handles.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => self.handles.push((key.clone(), 1)),
        }
    }

    /// Drop one handle; returns whether there was one.
    pub(crate) fn drop_handle(&mut self, key: &Key) -> bool {
        let Some(i) = self.handles.iter().position(|(k, _)| k == key) else { return false };
        self.handles[i].1 -= 1;
        if self.handles[i].1 == 0 {
            self.handles.remove(i);
        }
        true
    }
}

impl World<'_> {
    /// A fresh client process in slot `c`, with a new id.
    pub(super) fn start_client(&mut self, c: usize) {
        let node = &mut self.clients[c];
        node.incarnation += 1;
        node.id = ClientId(format!("c{c}.{}", node.incarnation));
        node.session = Some(Session::new(node.id.clone(), "sim", None, Timing::default()));
        node.link = None;
        node.connecting = false;
        node.timer_at = None;
        node.handles.clear();
        node.granted.clear();
        node.open.clear();
        self.reconnect_client(c);
    }

    pub(super) fn reconnect_client(&mut self, c: usize) {
        let node = &mut self.clients[c];
        if node.connecting {
            return;
        }
        node.connecting = true;
        let inc = node.incarnation;
        let when = self.now + self.rng_of(PeerId::Client(c)).between(20, 200);
        self.schedule(when, Ev::Connect { peer: PeerId::Client(c), inc });
    }

    /// The client process dies without a word; a new one takes the slot.
    pub(super) fn vanish_client(&mut self, c: usize) {
        if let Some(gen) = self.clients[c].link.take() {
            self.net.close(gen);
        }
        let old = self.clients[c].id.clone();
        self.trace(|| format!("!! {old} vanishes"));
        self.stats.clients_lost += 1;
        self.start_client(c);
    }

    /// The client says goodbye (the message goes out on its link if it is
    /// up); a new one takes the slot.
    pub(super) fn goodbye_client(&mut self, c: usize) -> Result<(), Violation> {
        if let Some(session) = self.clients[c].session.as_mut() {
            session.goodbye();
        }
        let old = self.clients[c].id.clone();
        self.trace(|| format!("{old} says goodbye"));
        self.send_client_batches(c)?;
        self.start_client(c);
        Ok(())
    }

    fn send_client_batches(&mut self, c: usize) -> Result<(), Violation> {
        loop {
            let node = &mut self.clients[c];
            let Some(batch) = node.session.as_mut().and_then(|s| s.poll_transmit(self.now)) else { return Ok(()) };
            if let Some(gen) = node.link {
                let id = node.id.clone();
                self.send_up(gen, Inbound::Client(id, batch))?;
            }
        }
    }

    /// Send the session's batches, act on its outputs and answers (which
    /// may queue more to send), check it, re-arm.
    pub(super) fn pump_client(&mut self, c: usize) -> Result<(), Violation> {
        loop {
            self.send_client_batches(c)?;
            if !self.client_outputs(c)? {
                break;
            }
        }
        self.check_client(c)?;
        self.arm_client_timer(c);
        Ok(())
    }

    /// Act on the session's outputs and primitive answers; whether there were any.
    fn client_outputs(&mut self, c: usize) -> Result<bool, Violation> {
        let mut any = false;
        while let Some(output) = self.clients[c].session.as_mut().and_then(|s| s.poll_output()) {
            any = true;
            match output {
                Output::ConnectionLost => {
                    if let Some(gen) = self.clients[c].link.take() {
                        self.net.close(gen);
                    }
                    self.trace(|| format!("c{c} hears nothing: connection lost"));
                    self.reconnect_client(c);
                }
                Output::Refused { reason } => {
                    return Err(Violation::new(Invariant::ClientSession, format!("c{c} was refused: {reason}")));
                }
                Output::Status { key, status } => self.check_status(c, &key, &status)?,
                Output::SchedulerError { message } => {
                    self.stats.scheduler_errors += 1;
                    self.trace(|| format!("c{c} hears an error: {message}"));
                }
                Output::Welcome { .. } | Output::Acked { .. } | Output::Forgotten { .. } | Output::Reply { .. } => {}
            }
        }
        while let Some((req, result)) = self.clients[c].session.as_mut().and_then(|s| s.poll_primitive_reply()) {
            any = true;
            self.primitive_reply(c, req, result)?;
        }
        Ok(any)
    }

    /// A finished key's inline value is the one its producer computes.
    fn check_status(&self, c: usize, key: &Key, status: &KeyStatus) -> Result<(), Violation> {
        if let KeyStatus::Finished { inline: Some(bytes), .. } = status {
            let right = self.model.expected.get(key).is_some_and(|e| e.as_ref() == bytes.as_ref());
            ensure(Invariant::CorrectValues, right, || format!("c{c} got a wrong value for {key}"))?;
        }
        Ok(())
    }

    fn check_client(&self, c: usize) -> Result<(), Violation> {
        let node = &self.clients[c];
        let Some(session) = node.session.as_ref() else { return Ok(()) };
        check(Invariant::ClientSession, session.check_invariants().map_err(|e| format!("{}: {e}", node.id)))?;
        for (key, n) in &node.handles {
            let refs = session.refs(key);
            ensure(Invariant::ClientSession, refs >= *n, || {
                format!("{} holds {n} handles to {key} but its session counts {refs} references", node.id)
            })?;
        }
        Ok(())
    }

    fn arm_client_timer(&mut self, c: usize) {
        let node = &mut self.clients[c];
        let Some(deadline) = node.session.as_ref().and_then(|s| s.poll_timeout()) else { return };
        let when = deadline.max(self.now);
        if node.timer_at.is_none_or(|t| when < t) {
            node.timer_at = Some(when);
            self.schedule(when, Ev::ClientTimer { c, at: when });
        }
    }

    pub(super) fn client_timer(&mut self, c: usize, when: u64) -> Result<(), Violation> {
        if self.clients[c].timer_at != Some(when) {
            return Ok(());
        }
        self.clients[c].timer_at = None;
        if let Some(session) = self.clients[c].session.as_mut() {
            session.handle_timeout(self.now);
        }
        self.pump_client(c)
    }

    /// Drop every handle the client holds.
    pub(super) fn release_everything(&mut self, c: usize) -> Result<(), Violation> {
        let handles = std::mem::take(&mut self.clients[c].handles);
        if let Some(session) = self.clients[c].session.as_mut() {
            for (key, n) in handles {
                for _ in 0..n {
                    session.release_ref(&key, self.now);
                }
            }
        }
        self.pump_client(c)
    }

    /// Held keys whose future has not resolved, by client; `None` for a
    /// client with primitive requests not answered.
    pub(super) fn unresolved(&self) -> Vec<(ClientId, Option<Key>)> {
        let mut out = Vec::new();
        for node in &self.clients {
            let Some(session) = node.session.as_ref().filter(|s| !s.is_closed()) else { continue };
            for (key, _) in &node.handles {
                if !session.status(key).is_some_and(KeyStatus::is_done) {
                    out.push((node.id.clone(), Some(key.clone())));
                }
            }
            if session.n_pending_primitives() > 0 {
                out.push((node.id.clone(), None));
            }
        }
        out
    }

    /// What is pending, for a report.
    pub(super) fn describe(&self, client: &ClientId, key: Option<&Key>) -> String {
        match key {
            Some(key) => self.describe_key(client, key),
            None => {
                let session = self.clients.iter().find(|n| &n.id == client).and_then(|n| n.session.as_ref());
                let n = session.map_or(0, |s| s.n_pending_primitives());
                format!("{client}: {n} primitive requests unanswered")
            }
        }
    }

    /// A key as the client and the scheduler see it, for reports.
    pub(super) fn describe_key(&self, client: &ClientId, key: &Key) -> String {
        let session = self.clients.iter().find(|n| &n.id == client).and_then(|n| n.session.as_ref());
        let status =
            session.and_then(|s| s.status(key)).map_or("none".to_owned(), |s| format!("{:?}", s.future_status()));
        let ready = session.is_some_and(|s| s.is_ready());
        let sched = match self.sched.core.as_ref() {
            None => "scheduler down".to_owned(),
            Some(s) => match s.state().task(key) {
                None => "unknown to the scheduler".to_owned(),
                Some(t) => format!(
                    "{} at the scheduler, wanted by [{}]",
                    t.state().name(),
                    t.wanted_by().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
                ),
            },
        };
        format!("{client} {key}: {status} (session {}), {sched}", if ready { "ready" } else { "not ready" })
    }
}
