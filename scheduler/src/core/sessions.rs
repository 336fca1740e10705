//! Volatile session data: who is connected and when each peer was last
//! heard from. None of it is durable; after a restart every known peer
//! counts as seen at the restart time and gets one heartbeat timeout to
//! come back.
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
}

impl Sessions {
    pub(crate) fn seen_worker(&mut self, worker: &WorkerId, now: Millis) {
        self.worker_seen.insert(worker.clone(), now);
    }

    pub(crate) fn seen_client(&mut self, client: &ClientId, now: Millis) {
        self.client_seen.insert(client.clone(), now);
    }

    pub(crate) fn drop_worker(&mut self, worker: &WorkerId) {
        self.worker_seen.remove(worker);
        self.live_workers.remove(worker);
    }

    pub(crate) fn drop_client(&mut self, client: &ClientId) {
        self.client_seen.remove(client);
    }

    /// Peers not heard from for longer than `timeout_ms` at `now`.
    pub(crate) fn expired(&self, now: Millis, timeout_ms: u64) -> (Vec<ClientId>, Vec<WorkerId>) {
        let late = |seen: &Millis| now.saturating_sub(*seen) > timeout_ms;
        let clients = self.client_seen.iter().filter(|(_, s)| late(s)).map(|(c, _)| c.clone()).collect();
        let workers = self.worker_seen.iter().filter(|(_, s)| late(s)).map(|(w, _)| w.clone()).collect();
        (clients, workers)
    }

    /// The first time at which some peer will have been silent too long.
    pub(crate) fn next_deadline(&self, timeout_ms: u64) -> Option<Millis> {
        let earliest = self.client_seen.values().chain(self.worker_seen.values()).min()?;
        Some(earliest.saturating_add(timeout_ms).saturating_add(1))
    }
}
