//! Volatile session data: who is connected and when each peer was last
//! heard from. None of it is durable. After a restart every peer known from
//! the log is *returning*: it has the reconnect grace period (not the
//! heartbeat timeout) to register or say hello again, and is removed if it
//! does not.
use std::collections::{BTreeMap, BTreeSet};

use reprise_proto::{ClientId, WorkerId};

use super::Millis;

#[derive(Clone, Debug, Default)]
pub(crate) struct Sessions {
    /// Last time each known worker was heard from.
    pub(crate) worker_seen: BTreeMap<WorkerId, Millis>,
    /// Last time each known client was heard from.
    pub(crate) client_seen: BTreeMap<ClientId, Millis>,
    /// Workers that registered with this scheduler run: only they get tasks.
    /// A worker known from the log but not back yet is not live.
    pub(crate) live_workers: BTreeSet<WorkerId>,
    /// Workers known from the log, not heard from since the restart, and
    /// the moment their grace period ends.
    returning_workers: BTreeMap<WorkerId, Millis>,
    /// Clients known from the log, not heard from since the restart, and
    /// the moment their grace period ends.
    returning_clients: BTreeMap<ClientId, Millis>,
}

impl Sessions {
    pub(crate) fn seen_worker(&mut self, worker: &WorkerId, now: Millis) {
        self.worker_seen.insert(worker.clone(), now);
        self.returning_workers.remove(worker);
    }

    pub(crate) fn seen_client(&mut self, client: &ClientId, now: Millis) {
        self.client_seen.insert(client.clone(), now);
        self.returning_clients.remove(client);
    }

    /// A worker known from the log, after a restart at `now`: it has until
    /// `now + grace_ms` to come back.
    pub(crate) fn returning_worker(&mut self, worker: &WorkerId, now: Millis, grace_ms: u64) {
        self.worker_seen.insert(worker.clone(), now);
        self.returning_workers.insert(worker.clone(), now.saturating_add(grace_ms));
    }

    /// A client known from the log, after a restart at `now`: it has until
    /// `now + grace_ms` to come back.
    pub(crate) fn returning_client(&mut self, client: &ClientId, now: Millis, grace_ms: u64) {
        self.client_seen.insert(client.clone(), now);
        self.returning_clients.insert(client.clone(), now.saturating_add(grace_ms));
    }

    pub(crate) fn drop_worker(&mut self, worker: &WorkerId) {
        self.worker_seen.remove(worker);
        self.live_workers.remove(worker);
        self.returning_workers.remove(worker);
    }

    pub(crate) fn drop_client(&mut self, client: &ClientId) {
        self.client_seen.remove(client);
        self.returning_clients.remove(client);
    }

    /// Peers not heard from for longer than `timeout_ms` at `now`, and
    /// returning peers whose grace period is over.
    pub(crate) fn expired(&self, now: Millis, timeout_ms: u64) -> (Vec<ClientId>, Vec<WorkerId>) {
        let clients = self
            .client_seen
            .iter()
            .filter(|(c, s)| now > deadline(self.returning_clients.get(*c), **s, timeout_ms))
            .map(|(c, _)| c.clone())
            .collect();
        let workers = self
            .worker_seen
            .iter()
            .filter(|(w, s)| now > deadline(self.returning_workers.get(*w), **s, timeout_ms))
            .map(|(w, _)| w.clone())
            .collect();
        (clients, workers)
    }

    /// The first time at which some peer will have been silent too long.
    pub(crate) fn next_deadline(&self, timeout_ms: u64) -> Option<Millis> {
        let clients = self.client_seen.iter().map(|(c, s)| deadline(self.returning_clients.get(c), *s, timeout_ms));
        let workers = self.worker_seen.iter().map(|(w, s)| deadline(self.returning_workers.get(w), *s, timeout_ms));
        clients.chain(workers).min().map(|d| d.saturating_add(1))
    }
}

/// The last moment a peer last heard from at `seen` still counts as
/// present: the end of its grace period while it is returning, else one
/// heartbeat timeout after it was last heard from.
fn deadline(grace_until: Option<&Millis>, seen: Millis, timeout_ms: u64) -> Millis {
    match grace_until {
        Some(until) => *until,
        None => seen.saturating_add(timeout_ms),
    }
}
