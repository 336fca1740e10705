//! `reprise log inspect DIR`: a scheduler's log, human-readable.
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use reprise_log::{LogError, LogStore, SledLog};
use reprise_proto::{Event, Holder, LeaseOn, OpId, StoredValue};
use reprise_scheduler::core::State;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Print the snapshot's sequence number, the events after it, and a summary.
    Inspect(InspectArgs),
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The scheduler's data dir (its --data-dir).
    dir: PathBuf,
    /// Print only the last N events (the summary still covers all of them).
    #[arg(long)]
    tail: Option<usize>,
    /// Print only the summary.
    #[arg(long)]
    summary: bool,
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect(args) => tokio::task::spawn_blocking(move || inspect(args)).await?,
    }
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let log = SledLog::open_read_only(&args.dir)
        .with_context(|| format!("opening the log in {} read-only", args.dir.display()))?;
    let (mut state, after) = match log.snapshot()? {
        Some((seq, bytes)) => {
            let state: State = reprise_proto::decode(&bytes)
                .with_context(|| format!("the snapshot at seq {seq} does not decode"))?;
            println!("snapshot: seq {seq} ({} bytes)", bytes.len());
            (state, seq)
        }
        None => {
            println!("snapshot: none");
            (State::default(), Default::default())
        }
    };
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut n_events = 0u64;
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let keep = if args.summary { Some(0) } else { args.tail };
    if !args.summary {
        println!("events after seq {after}:");
    }
    log.replay(after, &mut |seq, event| {
        *by_kind.entry(format!("{:?}", event.kind())).or_default() += 1;
        n_events += 1;
        let line = format!("{seq:>10}  {}", describe(&event));
        match keep {
            None => println!("{line}"),
            Some(n) if n > 0 => {
                if tail.len() == n {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Some(_) => {}
        }
        state.apply(&event);
        Ok::<(), LogError>(())
    })?;
    for line in tail {
        println!("{line}");
    }
    print_summary(&state, n_events, &by_kind);
    Ok(())
}

fn print_summary(state: &State, n_events: u64, by_kind: &BTreeMap<String, u64>) {
    println!("\nsummary:");
    println!("  events after the snapshot: {n_events}");
    for (kind, n) in by_kind {
        println!("    {kind:<18} {n}");
    }
    let live: Vec<String> =
        state.counts_by_state().into_iter().filter(|(_, n)| *n > 0).map(|(s, n)| format!("{s}={n}")).collect();
    println!("  live tasks: {}  ({})", state.n_tasks(), if live.is_empty() { "none".into() } else { live.join(" ") });
    println!("  workers known: {}", state.workers().count());
    for (id, worker) in state.workers() {
        println!(
            "    {id:<20} nthreads={} processing={} keys={} {}",
            worker.nthreads(),
            worker.processing().len(),
            worker.has_what().len(),
            worker.address()
        );
    }
    println!("  clients known: {}", state.clients().count());
    for client in state.clients() {
        println!("    {client:<20} wants {} keys", state.client_wants(client).map_or(0, |w| w.len()));
    }
    print_primitives(state);
}

/// Every primitive with its holders: who holds each lock and lease, what
/// each variable, queue and dataset keeps (and so keeps alive).
fn print_primitives(state: &State) {
    let locks: Vec<_> = state.locks().collect();
    let semaphores: Vec<_> = state.semaphores().collect();
    let variables: Vec<_> = state.variables().collect();
    let queues: Vec<_> = state.queues().collect();
    let datasets: Vec<_> = state.datasets().collect();
    let events: Vec<&String> = state.set_events().collect();
    let n = locks.len() + semaphores.len() + variables.len() + queues.len() + datasets.len() + events.len();
    println!("  primitives: {n}");
    for (name, lease) in locks {
        println!("    lock {name:?}: held by {}", op(lease));
    }
    for (name, sem) in semaphores {
        let holders: Vec<String> = sem.leases().iter().map(op).collect();
        let closed = if sem.is_closed() { ", closed" } else { "" };
        println!(
            "    semaphore {name:?}: {} of {} leases held{closed}{}",
            holders.len(),
            sem.max_leases(),
            if holders.is_empty() { String::new() } else { format!(" by {}", holders.join(", ")) }
        );
    }
    for name in events {
        println!("    event {name:?}: set");
    }
    for (name, value) in variables {
        println!("    variable {name:?}: {}", stored(value));
    }
    for (name, queue) in queues {
        let items: Vec<String> = queue.items().map(stored).collect();
        println!("    queue {name:?}: {} items: {}", queue.len(), items.join(", "));
    }
    for (name, key) in datasets {
        println!("    dataset {name:?}: future {key}");
    }
}

/// A lease or request: `client#request`.
fn op(op: &OpId) -> String {
    format!("{}#{}", op.client, op.req.0)
}

/// A value kept by a primitive, without its bytes.
fn stored(value: &StoredValue) -> String {
    match value {
        StoredValue::Inline(bytes) => format!("a value ({} bytes)", bytes.len()),
        StoredValue::Future(key) => format!("future {key}"),
    }
}

fn holder(holder: &Holder) -> String {
    match holder {
        Holder::FireAndForget => "fire-and-forget".to_owned(),
        Holder::Variable(name) => format!("variable {name:?}"),
        Holder::Queue(name) => format!("queue {name:?}"),
        Holder::Dataset(name) => format!("dataset {name:?}"),
    }
}

fn lease_on(on: &LeaseOn) -> String {
    match on {
        LeaseOn::Lock(name) => format!("lock {name:?}"),
        LeaseOn::Semaphore(name) => format!("semaphore {name:?}"),
    }
}

fn by(op_id: &Option<OpId>) -> String {
    op_id.as_ref().map_or_else(|| "by a forced cancel".to_owned(), |o| format!("by {}", op(o)))
}

fn inline_note(inline: &Option<Vec<u8>>) -> &'static str {
    if inline.is_some() {
        ", kept inline"
    } else {
        ""
    }
}

/// One event on one line: ids and sizes, not payload bytes.
fn describe(event: &Event) -> String {
    match event {
        Event::ClientJoined { client } => format!("client {client} joined"),
        Event::ClientRemoved { client } => format!("client {client} removed"),
        Event::TaskSubmitted { spec } => {
            let deps: Vec<&str> = spec.deps.iter().map(|k| k.as_str()).collect();
            let mut line = format!("task {} submitted: {}({} arg bytes)", spec.key, spec.func, spec.args.len());
            if !deps.is_empty() {
                line.push_str(&format!(" deps [{}]", deps.join(", ")));
            }
            if spec.priority != 0 {
                line.push_str(&format!(" priority {}", spec.priority));
            }
            if spec.retries != 0 {
                line.push_str(&format!(" retries {}", spec.retries));
            }
            line
        }
        Event::ClientWants { client, key } => format!("client {client} wants {key}"),
        Event::ClientReleased { client, key } => format!("client {client} released {key}"),
        Event::HolderAdded { holder: h, key } => format!("{} holds {key}", holder(h)),
        Event::HolderRemoved { holder: h, key } => format!("{} let go of {key}", holder(h)),
        Event::TaskQueued { key } => format!("task {key} queued"),
        Event::TaskNoWorker { key } => format!("task {key} has no worker that fits"),
        Event::TaskAssigned { key, worker, attempt } => format!("task {key} assigned to {worker} (attempt {})", attempt.0),
        Event::TaskFinished { key, worker, attempt, nbytes, inline } => {
            format!("task {key} finished on {worker} (attempt {}): {nbytes} bytes{}", attempt.0, inline_note(inline))
        }
        Event::DataScattered { key, worker, nbytes, inline } => {
            format!("data {key} scattered to {worker}: {nbytes} bytes{}", inline_note(inline))
        }
        Event::ReplicaAdded { key, worker } => format!("{worker} holds a copy of {key}"),
        Event::ReplicaRemoved { key, worker } => format!("{worker} no longer holds {key}"),
        Event::TaskRetried { key } => format!("task {key} retried"),
        Event::TaskErred { key, error } => {
            format!("task {key} erred ({:?}): {:?} (failed first: {})", error.kind, error.message, error.key)
        }
        Event::TaskRescheduled { key } => format!("task {key} rescheduled: its worker left"),
        Event::TaskLost { key } => format!("task {key} lost its data: recomputed from lineage"),
        Event::TaskCancelled { key } => format!("task {key} cancelled"),
        Event::TaskForgotten { key } => format!("task {key} forgotten"),
        Event::WorkerJoined { worker, nthreads, address, functions, resources } => {
            let mut line = format!("worker {worker} joined: {nthreads} threads at {address}, {} functions", functions.len());
            if !resources.is_empty() {
                let r: Vec<String> = resources.iter().map(|(n, a)| format!("{n}={a}")).collect();
                line.push_str(&format!(", resources {}", r.join(" ")));
            }
            line
        }
        Event::WorkerRemoved { worker } => format!("worker {worker} removed"),
        Event::VariableSet { name, value, op: o } => format!("variable {name:?} set to {} by {}", stored(value), op(o)),
        Event::VariableDeleted { name, op: o } => format!("variable {name:?} deleted {}", by(o)),
        Event::QueuePut { name, item, op: o } => format!("queue {name:?} got {} from {}", stored(item), op(o)),
        Event::QueueTaken { name, items, op: o } => format!("queue {name:?} gave up items {items:?} {}", by(o)),
        Event::LockAcquired { lock, lease } => format!("lock {lock:?} acquired by {}", op(lease)),
        Event::LockReleased { lock, lease } => format!("lock {lock:?} released by {}", op(lease)),
        Event::SemaphoreCreated { semaphore, max_leases } => format!("semaphore {semaphore:?} created: {max_leases} leases"),
        Event::LeaseGranted { semaphore, lease } => format!("semaphore {semaphore:?} lease granted to {}", op(lease)),
        Event::LeaseReleased { semaphore, lease } => format!("semaphore {semaphore:?} lease released by {}", op(lease)),
        Event::LeaseExpired { on, lease } => format!("{} lease of {} expired", lease_on(on), op(lease)),
        Event::SemaphoreClosed { semaphore } => format!("semaphore {semaphore:?} closed"),
        Event::EventSet { name } => format!("event {name:?} set"),
        Event::EventCleared { name } => format!("event {name:?} cleared"),
        Event::DatasetPublished { name, key, op: o } => format!("dataset {name:?} published as {key} by {}", op(o)),
        Event::DatasetUnpublished { name, op: o } => format!("dataset {name:?} unpublished {}", by(o)),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use reprise_proto::{ClientId, Key, RequestId, TaskSpec, WorkerId};

    use super::*;

    fn lease(client: &str, req: u64) -> OpId {
        OpId { client: ClientId::from(client), req: RequestId(req) }
    }

    #[test]
    fn events_read_as_one_plain_line_without_payload_bytes() {
        let spec = TaskSpec::new(Key::from("add-1"), "add", vec![0; 40], vec![Key::from("inc-1"), Key::from("inc-2")]);
        assert_eq!(describe(&Event::TaskSubmitted { spec }), "task add-1 submitted: add(40 arg bytes) deps [inc-1, inc-2]");
        let finished = Event::TaskFinished {
            key: Key::from("inc-1"),
            worker: WorkerId::from("w0"),
            attempt: reprise_proto::Attempt(3),
            nbytes: 9,
            inline: Some(vec![1; 9]),
        };
        assert_eq!(describe(&finished), "task inc-1 finished on w0 (attempt 3): 9 bytes, kept inline");
        let acquired = Event::LockAcquired { lock: "jobs".into(), lease: lease("c1", 5) };
        assert_eq!(describe(&acquired), "lock \"jobs\" acquired by c1#5");
        let put = Event::QueuePut { name: "q".into(), item: StoredValue::Inline(vec![0; 1000]), op: lease("c1", 6) };
        assert_eq!(describe(&put), "queue \"q\" got a value (1000 bytes) from c1#6");
        let expired = Event::LeaseExpired { on: LeaseOn::Semaphore("s".into()), lease: lease("c2", 1) };
        assert_eq!(describe(&expired), "semaphore \"s\" lease of c2#1 expired");
        assert_eq!(describe(&Event::VariableDeleted { name: "v".into(), op: None }), "variable \"v\" deleted by a forced cancel");
    }
}
