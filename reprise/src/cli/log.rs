//! `reprise log inspect DIR`: a scheduler's log, human-readable.
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use reprise_log::{LogError, LogStore, SledLog};
use reprise_proto::Event;
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
    let live: Vec<String> = state.counts_by_state().into_iter().filter(|(_, n)| *n > 0).map(|(s, n)| format!("{s}={n}")).collect();
    println!("  live tasks: {}  ({})", state.n_tasks(), if live.is_empty() { "none".into() } else { live.join(" ") });
    println!("  workers known: {}", state.workers().count());
    for (id, worker) in state.workers() {
        println!("    {id:<20} nthreads={} processing={} keys={} {}", worker.nthreads(), worker.processing().len(), worker.has_what().len(), worker.address());
    }
    println!("  clients known: {}", state.clients().count());
    for client in state.clients() {
        println!("    {client:<20} wants {} keys", state.client_wants(client).map_or(0, |w| w.len()));
    }
}

/// One event on one line: ids and sizes, not payload bytes.
fn describe(event: &Event) -> String {
    match event {
        Event::TaskSubmitted { spec } => format!(
            "TaskSubmitted {} = {}(…{} arg bytes) deps={:?} priority={} retries={}",
            spec.key, spec.func, spec.args.len(), spec.deps.iter().map(|k| k.as_str()).collect::<Vec<_>>(), spec.priority, spec.retries
        ),
        Event::TaskFinished { key, worker, attempt, nbytes, inline } => format!(
            "TaskFinished {key} on {worker} attempt {} ({nbytes} bytes{})",
            attempt.0,
            if inline.is_some() { ", inline" } else { "" }
        ),
        Event::DataScattered { key, worker, nbytes, inline } => {
            format!("DataScattered {key} on {worker} ({nbytes} bytes{})", if inline.is_some() { ", inline" } else { "" })
        }
        Event::TaskErred { key, error } => format!("TaskErred {key}: {:?} {:?} (failed first: {})", error.kind, error.message, error.key),
        Event::TaskAssigned { key, worker, attempt } => format!("TaskAssigned {key} to {worker} attempt {}", attempt.0),
        other => format!("{other:?}"),
    }
}
