//! The core thread: drain, decide, append, flush once, then send.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reprise_log::{LogStore, SledLog};
use reprise_proto::{encode_frame, Event, KeyState, KeyUpdate, ToClient, ToWorker};

use super::net::{client_identity, worker_identity, Outbound};
use super::recover::Recovered;
use super::{Metrics, SchedulerConfig, ServiceError};
use crate::core::{Effect, Input, Millis, Scheduler};

/// Inputs handled in one commit batch at most: bounds a batch's latency.
const BATCH_INPUTS_MAX: usize = 16_384;

/// How long the core sleeps when no timer is armed.
const IDLE_WAKE: Duration = Duration::from_secs(1);

pub(super) struct CoreLoop {
    pub runtime: tokio::runtime::Handle,
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

pub(super) fn run(mut lp: CoreLoop) -> Result<(), ServiceError> {
    let origin = Instant::now();
    let now_ms = |origin: Instant| -> Millis { origin.elapsed().as_millis() as Millis };
    let (mut log, recovered) = lp.opened;
    let mut scheduler = Scheduler::from_state(lp.config.core.clone(), recovered.state, now_ms(origin));
    scheduler.set_last_seq(recovered.last_seq.0);
    let mut events_since_snapshot = recovered.n_replayed;
    loop {
        let wake = wait(&lp.runtime, &mut lp.inbound, &mut lp.stop, &scheduler, origin);
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
            commit(&mut log, &events, &lp.metrics)?;
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
            lp.runtime.block_on(tokio::time::sleep(SHUTDOWN_FLUSH_GRACE));
            return Ok(());
        }
    }
}

/// How long a requested shutdown lets the last effects leave.
const SHUTDOWN_FLUSH_GRACE: Duration = Duration::from_millis(300);

fn wait(
    runtime: &tokio::runtime::Handle,
    inbound: &mut tokio::sync::mpsc::Receiver<Vec<Input>>,
    stop: &mut tokio::sync::oneshot::Receiver<()>,
    scheduler: &Scheduler,
    origin: Instant,
) -> Wake {
    let deadline = match scheduler.next_deadline() {
        Some(ms) => origin + Duration::from_millis(ms),
        None => Instant::now() + IDLE_WAKE,
    };
    runtime.block_on(async {
        tokio::select! {
            biased;
            _ = &mut *stop => Wake::Stop,
            inputs = inbound.recv() => match inputs {
                Some(inputs) => Wake::Inputs(inputs),
                None => Wake::Stop,
            },
            _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
        }
    })
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
