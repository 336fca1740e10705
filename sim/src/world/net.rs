//! The simulated network between the scheduler and its peers.
//!
//! Each connection (a *link*, numbered by a generation that is never
//! reused) delivers in order in each direction, every message after a
//! random delay. A link dies when the scheduler crashes, when a fault
//! breaks it, or when its peer drops it to connect afresh; its messages in
//! flight die with it (the connection is reset). A partition stalls a
//! peer's traffic until it heals, as TCP does; peers notice by silence.
//! Workers fetch from each other over a separate, reliable peer network
//! that only fails when the peer is down.
use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use reprise_proto::{ClientId, Key, PeerRequest, RequestId, ToClient, ToWorker, WorkerId};

use super::{Ev, Inbound, World};
use crate::invariants::{Invariant, Violation};
use crate::trace;

/// A peer of the scheduler, by its slot in the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PeerId {
    Worker(usize),
    Client(usize),
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerId::Worker(w) => write!(f, "w{w}"),
            PeerId::Client(c) => write!(f, "c{c}"),
        }
    }
}

/// One live connection.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) peer: PeerId,
    /// The incarnation of the peer process that opened it.
    pub(crate) peer_inc: u64,
    /// The incarnation of the scheduler process it reaches.
    pub(crate) sched_inc: u64,
    /// Arrival time of the last message each way, to keep the order.
    last_up: u64,
    last_down: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Net {
    /// Live links only: a message whose link is gone is lost.
    links: BTreeMap<u64, Link>,
    next_gen: u64,
    /// Until when each partitioned peer's traffic stalls.
    partitions: BTreeMap<PeerId, u64>,
    /// Until when only each peer's traffic to the scheduler stalls.
    one_way: BTreeMap<PeerId, u64>,
    /// Messages sent during a partition, in order, with their link and
    /// direction: they travel when it heals.
    stalled: BTreeMap<PeerId, Vec<(u64, bool, Ev)>>,
}

impl Net {
    pub(crate) fn open(&mut self, peer: PeerId, peer_inc: u64, sched_inc: u64) -> u64 {
        self.next_gen += 1;
        self.links.insert(self.next_gen, Link { peer, peer_inc, sched_inc, last_up: 0, last_down: 0 });
        self.next_gen
    }

    pub(crate) fn close(&mut self, gen: u64) {
        self.links.remove(&gen);
    }

    pub(crate) fn link(&self, gen: u64) -> Option<&Link> {
        self.links.get(&gen)
    }

    /// Close every link (the scheduler died); returns who was connected.
    pub(crate) fn close_all(&mut self) -> Vec<(PeerId, u64)> {
        let all = self.links.iter().map(|(gen, l)| (l.peer, *gen)).collect();
        self.links.clear();
        all
    }

    pub(crate) fn is_partitioned(&self, peer: PeerId, now: u64) -> bool {
        self.partitions.get(&peer).is_some_and(|until| *until > now)
    }

    pub(crate) fn partition(&mut self, peer: PeerId, until: u64) {
        let entry = self.partitions.entry(peer).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Stall only `peer`'s messages to the scheduler until `until`.
    pub(crate) fn stall_up(&mut self, peer: PeerId, until: u64) {
        let entry = self.one_way.entry(peer).or_insert(until);
        *entry = (*entry).max(until);
    }

    fn is_stalled(&self, peer: PeerId, up: bool, now: u64) -> bool {
        self.is_partitioned(peer, now) || (up && self.one_way.get(&peer).is_some_and(|until| *until > now))
    }

    /// End every partition; returns the stalled messages, in order.
    pub(crate) fn heal_all(&mut self) -> Vec<(u64, bool, Ev)> {
        self.partitions.clear();
        self.one_way.clear();
        std::mem::take(&mut self.stalled).into_values().flatten().collect()
    }

    /// End `peer`'s partition if it is over; returns its stalled messages.
    pub(crate) fn heal(&mut self, peer: PeerId, now: u64) -> Vec<(u64, bool, Ev)> {
        if self.is_stalled(peer, true, now) {
            return Vec::new();
        }
        self.partitions.remove(&peer);
        self.one_way.remove(&peer);
        self.stalled.remove(&peer).unwrap_or_default()
    }

    /// When a message sent at `now` on `gen` arrives (`up`: to the
    /// scheduler), or `None` if the link is gone.
    fn arrival(&mut self, gen: u64, up: bool, now: u64, delay: u64) -> Option<u64> {
        let link = self.links.get_mut(&gen)?;
        let last = if up { &mut link.last_up } else { &mut link.last_down };
        let at = (now + delay).max(*last);
        *last = at;
        Some(at)
    }
}

/// Round-trip messages through the wire codec, as the real shells do.
fn through_codec<M: serde::Serialize + serde::de::DeserializeOwned>(msgs: Vec<M>) -> Result<Vec<M>, Violation> {
    let bytes = reprise_proto::encode_frame(&msgs).map_err(|e| Violation::new(Invariant::Crash, e.to_string()))?;
    reprise_proto::decode_frame(&bytes).map_err(|e| Violation::new(Invariant::Crash, e.to_string()))
}

impl World<'_> {
    /// A message delay on `peer`'s connections.
    pub(super) fn delay(&mut self, peer: PeerId) -> u64 {
        let max = u64::from(self.params.delay_ms_max);
        self.rng_of(peer).between(0, max)
    }

    /// Put a message on link `gen`: it arrives after a random delay, in
    /// order; during a partition it waits for the heal.
    fn transmit(&mut self, gen: u64, up: bool, ev: Ev) {
        let Some(peer) = self.net.link(gen).map(|l| l.peer) else { return };
        if self.net.is_stalled(peer, up, self.now) {
            self.net.stalled.entry(peer).or_default().push((gen, up, ev));
            return;
        }
        let delay = self.delay(peer);
        if let Some(at) = self.net.arrival(gen, up, self.now, delay) {
            self.schedule(at, ev);
        }
    }

    /// Send what a partition held back, in order.
    pub(super) fn release_stalled(&mut self, stalled: Vec<(u64, bool, Ev)>) {
        for (gen, up, ev) in stalled {
            self.transmit(gen, up, ev);
        }
    }

    /// A peer sends a batch on its link `gen`.
    pub(super) fn send_up(&mut self, gen: u64, msgs: Inbound) -> Result<(), Violation> {
        let msgs = match msgs {
            Inbound::Client(c, m) if self.opts.codec => Inbound::Client(c, through_codec(m)?),
            Inbound::Worker(w, m) if self.opts.codec => Inbound::Worker(w, through_codec(m)?),
            other => other,
        };
        self.transmit(gen, true, Ev::ToSched { gen, msgs });
        Ok(())
    }

    /// The scheduler sends a batch to a client, on its latest link.
    pub(super) fn send_to_client(&mut self, client: &ClientId, msgs: Vec<ToClient>) -> Result<(), Violation> {
        let Some(gen) = self.sched.client_routes.get(client).copied() else { return Ok(()) };
        let msgs = if self.opts.codec { through_codec(msgs)? } else { msgs };
        self.transmit(gen, false, Ev::ToClient { gen, msgs });
        Ok(())
    }

    /// The scheduler sends a batch to a worker, on its latest link.
    pub(super) fn send_to_worker(&mut self, worker: &WorkerId, msgs: Vec<ToWorker>) -> Result<(), Violation> {
        let Some(gen) = self.sched.worker_routes.get(worker).copied() else { return Ok(()) };
        let msgs = if self.opts.codec { through_codec(msgs)? } else { msgs };
        self.transmit(gen, false, Ev::ToWorker { gen, msgs });
        Ok(())
    }

    pub(super) fn deliver_to_sched(&mut self, gen: u64, msgs: Inbound) -> Result<(), Violation> {
        let Some(link) = self.net.link(gen) else { return Ok(()) };
        if link.sched_inc != self.sched.incarnation || !self.sched.is_up() {
            return Ok(());
        }
        let peer = link.peer;
        if self.trace.is_on() {
            let text = match &msgs {
                Inbound::Client(_, m) => trace::batch(m, trace::client_msg),
                Inbound::Worker(_, m) => trace::batch(m, trace::worker_msg),
            };
            self.trace(|| format!("{peer} -> s  {text}"));
        }
        self.sched.receive(msgs);
        self.wake_sched();
        Ok(())
    }

    pub(super) fn deliver_to_worker(&mut self, gen: u64, msgs: Vec<ToWorker>) -> Result<(), Violation> {
        let Some(&super::net::Link { peer: PeerId::Worker(w), peer_inc, .. }) = self.net.link(gen) else {
            return Ok(());
        };
        let node = &mut self.workers[w];
        if node.incarnation != peer_inc || node.link != Some(gen) {
            return Ok(());
        }
        let Some(core) = node.core.as_mut() else { return Ok(()) };
        let text = if self.trace.is_on() { trace::batch(&msgs, trace::to_worker) } else { String::new() };
        let now = std::time::Duration::from_millis(self.now);
        for msg in msgs {
            core.handle_message(msg, now);
        }
        self.trace(|| format!("s  -> w{w} {text}"));
        self.pump_worker(w)
    }

    pub(super) fn deliver_to_client(&mut self, gen: u64, msgs: Vec<ToClient>) -> Result<(), Violation> {
        let Some(&super::net::Link { peer: PeerId::Client(c), peer_inc, .. }) = self.net.link(gen) else {
            return Ok(());
        };
        let node = &mut self.clients[c];
        if node.incarnation != peer_inc || node.link != Some(gen) {
            return Ok(());
        }
        let Some(session) = node.session.as_mut() else { return Ok(()) };
        let text = if self.trace.is_on() { trace::batch(&msgs, trace::to_client) } else { String::new() };
        for msg in msgs {
            session.handle_message(msg, self.now);
        }
        self.trace(|| format!("s  -> c{c} {text}"));
        self.pump_client(c)
    }

    /// A connection attempt: it succeeds when the scheduler is up and the
    /// peer is not partitioned; otherwise the peer tries again later.
    pub(super) fn connect(&mut self, peer: PeerId, inc: u64) -> Result<(), Violation> {
        let current = match peer {
            PeerId::Worker(w) => self.workers[w].incarnation == inc && self.workers[w].core.is_some(),
            PeerId::Client(c) => self.clients[c].incarnation == inc && self.clients[c].session.is_some(),
        };
        if !current {
            return Ok(());
        }
        if !self.sched.is_up() || self.net.is_partitioned(peer, self.now) {
            let retry = self.now + self.rng_of(peer).between(100, 500);
            self.schedule(retry, Ev::Connect { peer, inc });
            return Ok(());
        }
        let gen = self.net.open(peer, inc, self.sched.incarnation);
        self.trace(|| format!("{peer} connected (link {gen})"));
        match peer {
            PeerId::Worker(w) => {
                let node = &mut self.workers[w];
                node.link = Some(gen);
                self.sched.worker_routes.insert(node.id.clone(), gen);
                if let Some(core) = node.core.as_mut() {
                    core.handle_connected(std::time::Duration::from_millis(self.now));
                }
                self.pump_worker(w)
            }
            PeerId::Client(c) => {
                let node = &mut self.clients[c];
                node.link = Some(gen);
                node.connecting = false;
                self.sched.client_routes.insert(node.id.clone(), gen);
                if let Some(session) = node.session.as_mut() {
                    session.handle_connected(self.now);
                }
                self.pump_client(c)
            }
        }
    }

    /// The peer's socket reports that link `gen` is gone.
    pub(super) fn disconnected(&mut self, peer: PeerId, gen: u64) -> Result<(), Violation> {
        match peer {
            PeerId::Worker(w) => {
                let node = &mut self.workers[w];
                if node.link != Some(gen) {
                    return Ok(());
                }
                node.link = None;
                if let Some(core) = node.core.as_mut() {
                    core.handle_disconnected(std::time::Duration::from_millis(self.now));
                }
                self.trace(|| format!("{peer} notices its link {gen} is gone"));
                self.pump_worker(w)
            }
            PeerId::Client(c) => {
                let node = &mut self.clients[c];
                if node.link != Some(gen) {
                    return Ok(());
                }
                node.link = None;
                if let Some(session) = node.session.as_mut() {
                    session.handle_disconnected();
                }
                self.trace(|| format!("{peer} notices its link {gen} is gone"));
                self.reconnect_client(c);
                self.pump_client(c)
            }
        }
    }

    /// Break link `gen` (a fault or a crash): the peer hears of it soon
    /// with the scenario's probability, or else notices by silence.
    pub(super) fn break_link(&mut self, peer: PeerId, gen: u64, notify: bool) {
        self.net.close(gen);
        if notify {
            let at = self.now + self.rng_of(peer).between(1, 50);
            self.schedule(at, Ev::Disconnected { peer, gen });
        }
    }

    /// The peer asked for a key on worker `to`'s peer socket.
    pub(super) fn peer_get(
        &mut self,
        from: usize,
        from_inc: u64,
        to: usize,
        address: String,
        keys: Vec<Key>,
    ) -> Result<(), Violation> {
        let delay = self.delay(PeerId::Worker(from));
        let Some(core) = self.workers.get_mut(to).and_then(|n| n.core.as_mut()) else {
            let at = self.now + delay + 100;
            self.schedule(at, Ev::FetchFailed { w: from, inc: from_inc, address, keys });
            return Ok(());
        };
        let items = match core.handle_peer_request(PeerRequest::Get { req: RequestId(1), keys: keys.clone() }) {
            reprise_proto::PeerReply::Data { items, .. } => {
                items.into_iter().map(|(k, d)| (k, d.map(|b| Bytes::from(b.into_vec())))).collect()
            }
            other => {
                return Err(Violation::new(Invariant::WorkerCore, format!("w{to} answered a Get with {other:?}")));
            }
        };
        self.schedule(self.now + delay, Ev::PeerData { w: from, inc: from_inc, address, items });
        Ok(())
    }
}
