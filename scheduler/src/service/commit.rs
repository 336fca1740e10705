//! The core loop: drain, decide, append, flush once, then send. It runs on
//! a thread of its own or as a task of the service's runtime (see
//! [`super::CorePlacement`]).
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reprise_log::{LogStore, SledLog};
use reprise_proto::{encode_frame, ClientId, ClientMsg, Event, KeyState, KeyUpdate, ToClient, ToWorker};

use super::net::{client_identity, worker_identity, Outbound};
use super::recover::Recovered;
use super::{Metrics, SchedulerConfig, ServiceError};
use crate::core::{Effect, Input, Millis, Scheduler};

/// Inputs handled in one commit batch at most: bounds a batch's latency.
const BATCH_INPUTS_MAX: usize = 16_384;

/// How long the core sleeps when no timer is armed.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// The longest a commit waits for more inputs to share its flush.
const GROUP_WAIT_MAX: Duration = Duration::from_micros(500);

pub(super) struct CoreLoop {
    pub opened: (SledLog, Recovered),
    pub config: SchedulerConfig,
    pub inbound: tokio::sync::mpsc::Receiver<Vec<Input>>,
    pub outbound: tokio::sync::mpsc::UnboundedSender<Vec<Outbound>>,
    pub stop: tokio::sync::oneshot::Receiver<()>,
    pub metrics: Arc<Metrics>,
}

enum Wake {
    Inputs(Vec<Input>),
    Timer,
    Stop,
}

pub(super) async fn run(mut lp: CoreLoop) -> Result<(), ServiceError> {
    let origin = Instant::now();
    let now_ms = |origin: Instant| -> Millis { origin.elapsed().as_millis() as Millis };
    let (mut log, recovered) = lp.opened;
    let mut scheduler = Scheduler::from_state(lp.config.core.clone(), recovered.state, now_ms(origin));
    scheduler.set_last_seq(recovered.last_seq.0);
    let mut events_since_snapshot = recovered.n_replayed;
    let mut group = GroupCommit::default();
    loop {
        let wake = wait(&mut lp.inbound, &mut lp.stop, &scheduler, origin).await;
        let mut inputs = match wake {
            Wake::Stop => return Ok(()),
            Wake::Timer => vec![Input::Tick],
            Wake::Inputs(inputs) => inputs,
        };
        while inputs.len() < BATCH_INPUTS_MAX {
            match lp.inbound.try_recv() {
                Ok(more) => inputs.extend(more),
                Err(_) => break,
            }
        }
        if let Some(wait) = group.wait_for(&inputs) {
            gather_more(&mut lp.inbound, &mut inputs, &group, wait).await;
        }
        let requesters = primitive_requesters(&inputs);
        let now = now_ms(origin);
        let mut events: Vec<Event> = Vec::new();
        let mut effects: Vec<Effect> = Vec::new();
        for input in inputs {
            let decision = scheduler.handle(input, now);
            events.extend(decision.events);
            effects.extend(decision.effects);
        }
        if scheduler.next_deadline().is_some_and(|d| d <= now) {
            let decision = scheduler.handle(Input::Tick, now);
            events.extend(decision.events);
            effects.extend(decision.effects);
        }
        let (early, late) = split_early(effects);
        if !early.is_empty() && lp.outbound.send(frames_for(early)).is_err() {
            return Ok(());
        }
        let effects = late;
        if !events.is_empty() {
            let started = Instant::now();
            commit(&mut log, &events, &lp.metrics)?;
            group.committed(requesters, started.elapsed());
            scheduler.set_last_seq(log.durable_seq().0);
            events_since_snapshot += events.len() as u64;
            if events_since_snapshot >= lp.config.snapshot_every_events {
                snapshot(&mut log, &scheduler, &lp.metrics)?;
                events_since_snapshot = 0;
            }
        }
        // The rest leave only now that the events that justify them are durable.
        if !effects.is_empty() && lp.outbound.send(frames_for(effects)).is_err() {
            return Ok(()); // the send task is gone: the service is stopping
        }
        if scheduler.shutdown_requested() {
            // A client's `shutdown()`: give the send task a moment to deliver
            // the workers' `Shutdown` and the client's answer, then stop.
            tracing::info!("a client asked the cluster to shut down; stopping");
            tokio::time::sleep(SHUTDOWN_FLUSH_GRACE).await;
            return Ok(());
        }
    }
}

/// Adaptive group commit for clients in a request loop (a primitive
/// operation, wait for the reply, the next operation). Right after a flush
/// only the clients answered by the flush before it have sent their next
/// request; a commit of those alone splits the clients into two waves that
/// alternate, each paying a whole flush. So when clients of the last commit
/// have not yet sent their next primitive request, the core waits a little
/// for them (half of what a flush costs, at most [`GROUP_WAIT_MAX`]) and
/// the waves merge. A lone client never waits: its own request is there.
#[derive(Debug, Default)]
struct GroupCommit {
    /// The clients whose primitive requests the last commit answered.
    last: BTreeSet<ClientId>,
    /// What the last flush took.
    last_flush: Duration,
}

/// Below this many clients in a commit, waiting is not worth it.
const GROUP_CLIENTS_MIN: usize = 4;

impl GroupCommit {
    /// How long to wait for more, given the batch so far (None: commit now).
    fn wait_for(&self, inputs: &[Input]) -> Option<Duration> {
        if self.last.len() < GROUP_CLIENTS_MIN || self.all_back(inputs) {
            return None;
        }
        Some((self.last_flush / 2).min(GROUP_WAIT_MAX))
    }

    /// Whether every client of the last commit has a request in `inputs`.
    fn all_back(&self, inputs: &[Input]) -> bool {
        let present = primitive_requesters(inputs);
        self.last.iter().all(|c| present.contains(c))
    }

    fn committed(&mut self, inputs: BTreeSet<ClientId>, flush: Duration) {
        self.last = inputs;
        self.last_flush = flush;
    }
}

/// The clients with a primitive request among `inputs`.
fn primitive_requesters(inputs: &[Input]) -> BTreeSet<ClientId> {
    inputs
        .iter()
        .filter_map(|input| match input {
            Input::Client { client, msg: ClientMsg::Primitive { .. } } => Some(client.clone()),
            _ => None,
        })
        .collect()
}

/// Add inputs to `inputs` until `group` has every client back or `wait`
/// has passed.
async fn gather_more(
    inbound: &mut tokio::sync::mpsc::Receiver<Vec<Input>>,
    inputs: &mut Vec<Input>,
    group: &GroupCommit,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    while inputs.len() < BATCH_INPUTS_MAX && !group.all_back(inputs) {
        match tokio::time::timeout_at(deadline, inbound.recv()).await {
            Ok(Some(more)) => inputs.extend(more),
            Ok(None) | Err(_) => break,
        }
    }
}

/// How long a requested shutdown lets the last effects leave.
const SHUTDOWN_FLUSH_GRACE: Duration = Duration::from_millis(300);

async fn wait(
    inbound: &mut tokio::sync::mpsc::Receiver<Vec<Input>>,
    stop: &mut tokio::sync::oneshot::Receiver<()>,
    scheduler: &Scheduler,
    origin: Instant,
) -> Wake {
    let deadline = match scheduler.next_deadline() {
        Some(ms) => origin + Duration::from_millis(ms),
        None => Instant::now() + IDLE_WAKE,
    };
    tokio::select! {
        biased;
        _ = &mut *stop => Wake::Stop,
        inputs = inbound.recv() => match inputs {
            Some(inputs) => Wake::Inputs(inputs),
            None => Wake::Stop,
        },
        _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
    }
}

fn commit(log: &mut SledLog, events: &[Event], metrics: &Metrics) -> Result<(), ServiceError> {
    let started = Instant::now();
    log.append(events)?;
    log.flush()?;
    Metrics::add(&metrics.flush_us_total, started.elapsed().as_micros() as u64);
    Metrics::add(&metrics.events_logged, events.len() as u64);
    Metrics::add(&metrics.commits, 1);
    Ok(())
}

fn snapshot(log: &mut SledLog, scheduler: &Scheduler, metrics: &Metrics) -> Result<(), ServiceError> {
    let bytes = reprise_proto::encode(scheduler.state())
        .map_err(|e| ServiceError::Snapshot { seq: log.durable_seq().0, reason: e.to_string() })?;
    let seq = log.durable_seq();
    log.write_snapshot(seq, &bytes)?;
    Metrics::add(&metrics.snapshots, 1);
    tracing::info!("snapshot at seq {seq}: {} bytes", bytes.len());
    Ok(())
}

/// Split effects into those that may leave before the batch is durable and
/// those that must wait for the flush.
///
/// Early: a task assignment (fenced by its attempt number: if a crash loses
/// the assignment, the worker's report of an unknown attempt is ignored or
/// cancelled on re-registration) and a finished result sent to a client (a
/// replay that has not seen the finish hears it again from the worker). Both
/// are safe to repeat, and sending them early overlaps the worker's and the
/// client's work with the flush. Everything that reveals a decision recovery
/// must honour (acks, grants, cancels, frees, errors) waits.
fn split_early(effects: Vec<Effect>) -> (Vec<Effect>, Vec<Effect>) {
    effects.into_iter().partition(|effect| {
        matches!(
            effect,
            Effect::ToWorker { msg: ToWorker::Compute(_), .. }
                | Effect::ToClient { msg: ToClient::Update(KeyUpdate { state: KeyState::Finished { .. }, .. }), .. }
        )
    })
}

/// One frame per peer, messages in the order the core emitted them.
fn frames_for(effects: Vec<Effect>) -> Vec<Outbound> {
    let mut to_clients: BTreeMap<Bytes, Vec<ToClient>> = BTreeMap::new();
    let mut to_workers: BTreeMap<Bytes, Vec<ToWorker>> = BTreeMap::new();
    for effect in effects {
        match effect {
            Effect::ToClient { client, msg } => to_clients.entry(client_identity(&client)).or_default().push(msg),
            Effect::ToWorker { worker, msg } => to_workers.entry(worker_identity(&worker)).or_default().push(msg),
        }
    }
    let mut out = Vec::with_capacity(to_clients.len() + to_workers.len());
    for (identity, msgs) in to_workers {
        push_frame(&mut out, identity, &msgs);
    }
    for (identity, msgs) in to_clients {
        push_frame(&mut out, identity, &msgs);
    }
    out
}

fn push_frame<M: serde::Serialize>(out: &mut Vec<Outbound>, identity: Bytes, msgs: &[M]) {
    match encode_frame(msgs) {
        Ok(body) => out.push(Outbound { identity, body }),
        Err(e) => tracing::error!("cannot encode a frame for a peer: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reprise_proto::{PrimitiveOp, RequestId};

    fn request(client: &str) -> Input {
        Input::Client {
            client: ClientId(client.to_owned()),
            msg: ClientMsg::Primitive { req: RequestId(1), op: PrimitiveOp::VariableGet { name: "x".to_owned(), timeout_ms: None } },
        }
    }

    fn committed(names: &[&str]) -> GroupCommit {
        let mut group = GroupCommit::default();
        let inputs: Vec<Input> = names.iter().map(|n| request(n)).collect();
        group.committed(primitive_requesters(&inputs), Duration::from_micros(400));
        group
    }

    #[test]
    fn a_lone_client_or_a_few_never_wait() {
        assert_eq!(committed(&["a"]).wait_for(&[]), None);
        assert_eq!(committed(&["a", "b", "c"]).wait_for(&[request("a")]), None);
    }

    #[test]
    fn a_wave_waits_for_the_clients_of_the_last_commit_for_half_a_flush() {
        let group = committed(&["a", "b", "c", "d"]);
        let wave = [request("e"), request("f")];
        assert_eq!(group.wait_for(&wave), Some(Duration::from_micros(200)));
        let all = [request("e"), request("a"), request("b"), request("c"), request("d")];
        assert_eq!(group.wait_for(&all), None);
    }

    #[test]
    fn the_wait_is_capped() {
        let mut group = committed(&["a", "b", "c", "d"]);
        group.last_flush = Duration::from_millis(20);
        assert_eq!(group.wait_for(&[]), Some(GROUP_WAIT_MAX));
    }
}
