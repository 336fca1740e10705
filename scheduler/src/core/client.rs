//! Reactions to client messages.
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use reprise_proto::{
    ClientId, ClientMsg, Event, Holder, Key, KeyState, KeyUpdate, ScatteredItem, TaskSpec, ToClient, WorkerId,
    HELLO_FIRST,
};

use super::scheduler::{Cx, Scheduler};
use super::state::{Origin, TaskState};
use super::Millis;

/// Compare two secrets in time independent of where they differ.
pub(crate) fn token_matches(expected: &str, got: Option<&str>) -> bool {
    let Some(got) = got else { return false };
    let (a, b) = (expected.as_bytes(), got.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a submitted spec cannot be accepted as it stands, if it cannot.
fn invalid_spec(spec: &TaskSpec) -> Option<String> {
    spec.resources.iter().find(|(_, amount)| !amount.is_finite() || *amount < 0.0).map(|(name, amount)| {
        format!("task {} asks for {amount} of resource '{name}': amounts must be finite and not negative", spec.key)
    })
}

impl Scheduler {
    pub(crate) fn handle_client(&mut self, cx: &mut Cx, client: &ClientId, msg: ClientMsg, now: Millis) {
        if let ClientMsg::Hello { client: claimed, name: _, token } = &msg {
            self.hello(cx, client, claimed, token.as_deref(), now);
            return;
        }
        if !self.state.has_client(client) {
            // The session takes this exact message as "say Hello again and
            // resend" (it was removed while its connection stayed up).
            cx.send_client(client, ToClient::Error { message: HELLO_FIRST.to_owned() });
            return;
        }
        self.sessions.seen_client(client, now);
        match msg {
            ClientMsg::Hello { .. } => {}
            ClientMsg::Submit { tasks } => self.submit(cx, client, tasks),
            ClientMsg::Release { keys } => self.release(cx, client, keys),
            ClientMsg::Cancel { keys, force } => self.cancel(cx, client, &keys, force),
            ClientMsg::FireAndForget { keys } => self.fire_and_forget(cx, &keys),
            ClientMsg::Retry { keys } => self.retry(cx, &keys),
            ClientMsg::Scattered { worker, items } => self.scattered(cx, client, &worker, items),
            ClientMsg::Info { req, what } => self.handle_info(cx, client, req, what),
            ClientMsg::Primitive { req, op } => self.primitive(cx, client, req, op, now),
            ClientMsg::Heartbeat => cx.send_client(client, ToClient::Heartbeat),
            ClientMsg::Goodbye => self.remove_client(cx, client),
        }
    }

    /// A new session joins; a known one re-attaches and hears again about
    /// every wanted key that already reached a final state, in case the
    /// update was lost with the connection.
    fn hello(&mut self, cx: &mut Cx, client: &ClientId, claimed: &ClientId, token: Option<&str>, now: Millis) {
        if let Some(expected) = &self.config.auth_token {
            if !token_matches(expected, token) {
                cx.send_client(client, ToClient::Refused { reason: "invalid auth token".to_owned() });
                return;
            }
        }
        if claimed != client {
            let reason = format!("Hello names client {claimed} but the connection belongs to {client}");
            cx.send_client(client, ToClient::Refused { reason });
            return;
        }
        let known = self.state.has_client(client);
        if !known {
            self.emit(cx, Event::ClientJoined { client: client.clone() });
        }
        self.sessions.seen_client(client, now);
        cx.send_client(client, ToClient::Welcome { scheduler: self.config.scheduler_name.clone() });
        if known {
            let wants: Vec<Key> = self.state.client_wants(client).into_iter().flatten().cloned().collect();
            for key in wants {
                if let Some(state) = self.final_update(&key) {
                    cx.send_client(client, ToClient::Update(KeyUpdate { key, state }));
                }
            }
        }
    }

    /// New keys enter the graph (inputs first, whatever the message order);
    /// known keys are simply wanted. A spec depending on a key the scheduler
    /// does not know is refused as `Cancelled` (Dask's "lost dependencies").
    fn submit(&mut self, cx: &mut Cx, client: &ClientId, tasks: Vec<TaskSpec>) {
        let acked: Vec<Key> = tasks.iter().map(|s| s.key.clone()).collect();
        let (fresh, known) = self.split_fresh(tasks);
        let (accepted, refused) = self.order_fresh(fresh);
        for (spec, why) in refused {
            if let Some(message) = why {
                cx.send_client(client, ToClient::Error { message });
            }
            let update = KeyUpdate { key: spec.key, state: KeyState::Cancelled };
            cx.send_client(client, ToClient::Update(update));
        }
        for spec in accepted {
            let key = spec.key.clone();
            self.emit(cx, Event::TaskSubmitted { spec });
            self.emit(cx, Event::ClientWants { client: client.clone(), key: key.clone() });
            cx.to_advance.insert(key);
        }
        for key in known {
            self.want(cx, client, &key);
        }
        cx.send_client(client, ToClient::Acked { keys: acked });
    }

    /// Split a submission into new specs (first one per key) and keys that
    /// are already known or repeated.
    fn split_fresh(&self, tasks: Vec<TaskSpec>) -> (Vec<TaskSpec>, Vec<Key>) {
        let mut seen = BTreeSet::new();
        let mut fresh = Vec::new();
        let mut known = Vec::new();
        for spec in tasks {
            if self.state.task(&spec.key).is_some() || !seen.insert(spec.key.clone()) {
                known.push(spec.key);
            } else {
                fresh.push(spec);
            }
        }
        (fresh, known)
    }

    /// Order new specs so each comes after its inputs (Kahn's algorithm over
    /// the message; message order breaks ties). Specs with an invalid field,
    /// an unknown input, or an input among the refused, are refused.
    fn order_fresh(&self, fresh: Vec<TaskSpec>) -> (Vec<TaskSpec>, Vec<(TaskSpec, Option<String>)>) {
        let index: BTreeMap<Key, usize> = fresh.iter().enumerate().map(|(i, s)| (s.key.clone(), i)).collect();
        let mut blocked_by = vec![0usize; fresh.len()];
        let mut unblocks: Vec<Vec<usize>> = vec![Vec::new(); fresh.len()];
        let mut why: Vec<Option<String>> = fresh.iter().map(invalid_spec).collect();
        let mut refused = vec![false; fresh.len()];
        for (i, spec) in fresh.iter().enumerate() {
            refused[i] = why[i].is_some();
            let deps: BTreeSet<&Key> = spec.deps.iter().collect();
            for dep in deps {
                if self.state.task(dep).is_some() {
                    continue;
                }
                match index.get(dep) {
                    Some(&j) if j != i => {
                        blocked_by[i] += 1;
                        unblocks[j].push(i);
                    }
                    _ => refused[i] = true,
                }
            }
        }
        let mut queue: VecDeque<usize> = (0..fresh.len()).filter(|&i| blocked_by[i] == 0 && !refused[i]).collect();
        let mut accepted_idx = Vec::new();
        while let Some(i) = queue.pop_front() {
            accepted_idx.push(i);
            for &j in &unblocks[i] {
                blocked_by[j] -= 1;
                if blocked_by[j] == 0 && !refused[j] {
                    queue.push_back(j);
                }
            }
        }
        let mut is_accepted = vec![false; fresh.len()];
        for &i in &accepted_idx {
            is_accepted[i] = true;
        }
        let mut slots: Vec<Option<TaskSpec>> = fresh.into_iter().map(Some).collect();
        let accepted = accepted_idx.iter().filter_map(|&i| slots[i].take()).collect();
        let refused = slots
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !is_accepted[*i])
            .filter_map(|(i, s)| s.map(|s| (s, why[i].take())))
            .collect();
        (accepted, refused)
    }

    /// The client wants a known key: a final state is reported at once, a
    /// released key is recomputed.
    fn want(&mut self, cx: &mut Cx, client: &ClientId, key: &Key) {
        let Some(task) = self.state.task(key) else { return };
        if !task.wanted_by().contains(client) {
            self.emit(cx, Event::ClientWants { client: client.clone(), key: key.clone() });
        }
        if let Some(state) = self.final_update(key) {
            cx.send_client(client, ToClient::Update(KeyUpdate { key: key.clone(), state }));
        }
        self.revive_if_wanted(cx, key);
    }

    fn release(&mut self, cx: &mut Cx, client: &ClientId, keys: Vec<Key>) {
        for key in keys {
            if self.state.task(&key).is_some_and(|t| t.wanted_by().contains(client)) {
                self.emit(cx, Event::ClientReleased { client: client.clone(), key: key.clone() });
                cx.to_settle.insert(key);
            }
        }
    }

    /// The session ends: its references go (and whatever only they kept
    /// alive), then the client itself.
    pub(crate) fn remove_client(&mut self, cx: &mut Cx, client: &ClientId) {
        let wants: Vec<Key> = self.state.client_wants(client).into_iter().flatten().cloned().collect();
        self.release(cx, client, wants);
        self.remove_client_primitives(cx, client);
        self.run_cascades(cx);
        self.sessions.drop_client(client);
        if self.state.has_client(client) {
            self.emit(cx, Event::ClientRemoved { client: client.clone() });
        }
    }

    /// Cancel keys (with `force`, or when this client is their sole wanter)
    /// and, recursively, everything that depends on them; then let go of
    /// them entirely, so a later submission of the same key starts afresh.
    fn cancel(&mut self, cx: &mut Cx, client: &ClientId, keys: &[Key], force: bool) {
        for key in keys {
            let Some(task) = self.state.task(key) else { continue };
            let sole = task.holders().is_empty() && task.wanted_by().len() == 1 && task.wanted_by().contains(client);
            if force || sole {
                self.cancel_closure(cx, key);
            }
        }
    }

    fn cancel_closure(&mut self, cx: &mut Cx, key: &Key) {
        // The key and its dependents, in topological (submission) order.
        let mut closure: BTreeMap<u64, Key> = BTreeMap::new();
        let mut stack = vec![key.clone()];
        while let Some(k) = stack.pop() {
            let Some(task) = self.state.task(&k) else { continue };
            if closure.insert(task.order(), k.clone()).is_none() {
                stack.extend(task.dependents().iter().cloned());
            }
        }
        // Look at every attempt and replica before any state changes: a
        // cancelled input sends its running dependents back to waiting.
        for k in closure.values() {
            match self.state.task_state(k) {
                Some(TaskState::Processing { worker, attempt }) => {
                    cx.send_worker(worker, reprise_proto::ToWorker::Cancel { key: k.clone(), attempt: *attempt });
                }
                Some(TaskState::Memory { who_has, .. }) => {
                    for w in who_has.clone() {
                        cx.free(&w, k);
                    }
                }
                _ => {}
            }
        }
        for k in closure.values() {
            self.emit(cx, Event::TaskCancelled { key: k.clone() });
            self.notify(cx, k, KeyState::Cancelled);
        }
        for k in closure.values().rev() {
            let Some(task) = self.state.task(k) else { continue };
            let clients: Vec<ClientId> = task.wanted_by().iter().cloned().collect();
            let holders: Vec<Holder> = task.holders().iter().cloned().collect();
            let deps: Vec<Key> = task.deps().iter().cloned().collect();
            self.purge_primitive_refs(cx, k);
            for client in clients {
                self.emit(cx, Event::ClientReleased { client, key: k.clone() });
            }
            for holder in holders {
                self.emit(cx, Event::HolderRemoved { holder, key: k.clone() });
            }
            self.emit(cx, Event::TaskForgotten { key: k.clone() });
            cx.to_settle.extend(deps);
        }
    }

    /// Keep unfinished keys alive after their clients let go, until they
    /// finish; finished ones need nothing.
    fn fire_and_forget(&mut self, cx: &mut Cx, keys: &[Key]) {
        for key in keys {
            let Some(task) = self.state.task(key) else { continue };
            if task.state().is_pending() && !task.holders().contains(&Holder::FireAndForget) {
                self.emit(cx, Event::HolderAdded { holder: Holder::FireAndForget, key: key.clone() });
            }
        }
    }

    /// Re-run erred keys: find their erred roots (erred tasks whose inputs
    /// did not err), and send those and every erred task downstream of
    /// them back to waiting.
    fn retry(&mut self, cx: &mut Cx, keys: &[Key]) {
        let erred = |s: &Self, k: &Key| matches!(s.state.task_state(k), Some(TaskState::Erred { .. }));
        let mut roots = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Key> = keys.iter().filter(|k| erred(self, k)).cloned().collect();
        while let Some(k) = stack.pop() {
            if !seen.insert(k.clone()) {
                continue;
            }
            let Some(task) = self.state.task(&k) else { continue };
            let erred_deps: Vec<Key> = task.deps().iter().filter(|d| erred(self, d)).cloned().collect();
            if erred_deps.is_empty() {
                roots.insert(k);
            } else {
                stack.extend(erred_deps);
            }
        }
        let mut closure: BTreeMap<u64, Key> = BTreeMap::new();
        let mut stack: Vec<Key> = roots.into_iter().collect();
        while let Some(k) = stack.pop() {
            let Some(task) = self.state.task(&k) else { continue };
            if erred(self, &k) && closure.insert(task.order(), k.clone()).is_none() {
                stack.extend(task.dependents().iter().cloned());
            }
        }
        for k in closure.into_values() {
            self.emit(cx, Event::TaskRetried { key: k.clone() });
            cx.to_advance.insert(k);
        }
    }

    /// Register data the client put on a worker. A key that exists as a
    /// computed task cannot be overwritten; the worker's copy is freed.
    fn scattered(&mut self, cx: &mut Cx, client: &ClientId, worker: &WorkerId, items: Vec<ScatteredItem>) {
        if self.state.worker(worker).is_none() {
            self.scattered_on_unknown_worker(cx, client, worker, items);
            return;
        }
        let acked: Vec<Key> = items.iter().map(|i| i.key.clone()).collect();
        for item in items {
            let inline = item.inline.filter(|b| b.len() <= self.config.inline_bytes_max);
            let state = self.state.task(&item.key).map(|t| (t.origin().clone(), t.state().clone()));
            match state {
                None | Some((Origin::Scattered, TaskState::Lost)) => {
                    let key = item.key.clone();
                    let ev =
                        Event::DataScattered { key: key.clone(), worker: worker.clone(), nbytes: item.nbytes, inline };
                    self.emit(cx, ev);
                    // Whoever heard the key was lost hears it is back.
                    if let Some(state) = self.final_update(&key) {
                        self.notify(cx, &key, state);
                    }
                    if !self.state.task(&key).is_some_and(|t| t.wanted_by().contains(client)) {
                        self.emit(cx, Event::ClientWants { client: client.clone(), key });
                    }
                    continue;
                }
                Some((Origin::Scattered, TaskState::Memory { who_has, .. })) => {
                    if !who_has.contains(worker) {
                        self.emit(cx, Event::ReplicaAdded { key: item.key.clone(), worker: worker.clone() });
                    }
                }
                Some(_) => {
                    let message =
                        format!("key {} already names a computed task; the scattered copy is dropped", item.key);
                    cx.send_client(client, ToClient::Error { message });
                    cx.free(worker, &item.key);
                    continue;
                }
            }
            self.want(cx, client, &item.key);
        }
        cx.send_client(client, ToClient::Acked { keys: acked });
    }

    /// Data registered on a worker the scheduler does not know (it left, and
    /// was removed, before the registration arrived): the data went with the
    /// worker, so each new key is answered `Lost` at once, and the
    /// registration is acknowledged all the same, so that the session stops
    /// resending it. A key already known as scattered data is simply wanted.
    /// Nothing is logged for the lost keys: like a submission refused for a
    /// lost input, the answer is final and a resend gets it again.
    fn scattered_on_unknown_worker(
        &mut self,
        cx: &mut Cx,
        client: &ClientId,
        worker: &WorkerId,
        items: Vec<ScatteredItem>,
    ) {
        let acked: Vec<Key> = items.iter().map(|i| i.key.clone()).collect();
        let mut lost = Vec::new();
        for item in items {
            match self.state.task(&item.key).map(|t| t.origin()) {
                Some(Origin::Scattered) => self.want(cx, client, &item.key),
                Some(Origin::Computed(_)) => {
                    let message =
                        format!("key {} already names a computed task; the scattered copy is dropped", item.key);
                    cx.send_client(client, ToClient::Error { message });
                }
                None => lost.push(item.key),
            }
        }
        if !lost.is_empty() {
            let names: Vec<&str> = lost.iter().map(|k| k.as_str()).collect();
            let message = format!(
                "cannot register scattered data on worker {worker}, which left: {} lost with it",
                names.join(", ")
            );
            cx.send_client(client, ToClient::Error { message });
        }
        for key in lost {
            cx.send_client(client, ToClient::Update(KeyUpdate { key, state: KeyState::Lost }));
        }
        cx.send_client(client, ToClient::Acked { keys: acked });
    }
}

#[cfg(test)]
mod tests;
