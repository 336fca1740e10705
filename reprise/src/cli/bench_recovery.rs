//! `reprise bench recovery`: how long a scheduler takes from start to
//! serving on a long log, with and without a snapshot, and how large the
//! data dir grows under a steady stream of short-lived tasks.
//!
//! The logs are written by the real scheduler core driven directly (a
//! client submitting batches of tasks, workers finishing them at once, the
//! client releasing them), appended and flushed batch by batch to a real
//! `SledLog`, with snapshots taken as the service takes them. Start-up is
//! then measured through `service::start`: open and check the log, load the
//! snapshot, replay the tail, bind the socket.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use reprise_log::{dir_size_bytes, Durability, LogOptions, LogStore, SledLog};
use reprise_proto::{ClientId, ClientMsg, Key, TaskSpec, ToWorker, WorkerId, WorkerMsg};
use reprise_scheduler::core::{Config, Decision, Effect, Input, Scheduler};
use reprise_scheduler::service::{self, SchedulerConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events in the logs whose start-up is measured (0 skips the measurement).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Short-lived tasks for the data dir size measurement (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    tasks: u64,
    /// Snapshot every this many events, as `reprise scheduler --snapshot-every`.
    #[arg(long, default_value_t = 100_000)]
    snapshot_every: u64,
    /// Start-ups measured per log; the median is printed.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[arg(long, value_enum, default_value = "power")]
    durability: super::DurabilityArg,
    /// Where the logs go (default: a temporary directory, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Tasks one client message submits.
const SUBMIT_BATCH: usize = 1_000;
/// Of the tasks, one in this many stays wanted, so that the state (and the
/// snapshot) holds live work as a running cluster's does.
const KEEP_ONE_IN: u64 = 50;
const WORKERS: usize = 4;
const WORKER_THREADS: u32 = 8;

pub async fn run(args: Args) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let temp = tempfile::Builder::new().prefix("reprise-bench-recovery-").tempdir()?;
        let base = args.dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        let durability: Durability = args.durability.into();
        println!("# reprise bench recovery: durability {durability:?}, logs in {}", base.display());
        if args.events > 0 {
            for with_snapshot in [false, true] {
                bench_startup(&args, &base, durability, with_snapshot)?;
            }
        }
        if args.tasks > 0 {
            bench_compaction(&args, &base, durability)?;
        }
        Ok(())
    })
    .await?
}

/// Write a log of `args.events` events (snapshots every
/// `args.snapshot_every` events, or none) and time start-ups on it.
fn bench_startup(args: &Args, base: &Path, durability: Durability, with_snapshot: bool) -> anyhow::Result<()> {
    let dir = base.join(if with_snapshot { "startup-snapshot" } else { "startup-no-snapshot" });
    let snapshot_every = if with_snapshot { args.snapshot_every } else { u64::MAX };
    let written = Instant::now();
    let mut driver = Driver::open(&dir, durability, snapshot_every)?;
    while driver.events < args.events {
        driver.round()?;
    }
    let (events, n_tasks) = (driver.events, driver.state_tasks());
    drop(driver);
    let took_to_write = written.elapsed();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut startups = Vec::new();
    let mut last = None;
    for _ in 0..args.repeats.max(1) {
        let config = SchedulerConfig::new("tcp://127.0.0.1:0", dir.clone());
        let started = Instant::now();
        let handle = runtime.block_on(service::start(config)).context("starting the scheduler on the log")?;
        startups.push(started.elapsed());
        last = Some(handle.recovery().clone());
        runtime.block_on(handle.stop())?;
    }
    startups.sort();
    let recovery = last.context("no start-up was measured")?;
    println!(
        "recovery events={events} snapshot={} startup_s={:.3} startup_min_s={:.3} replayed={} snapshot_seq={} live_tasks={n_tasks} data_dir_mb={:.1} (log written in {:.1} s)",
        if with_snapshot { "yes" } else { "no" },
        startups[startups.len() / 2].as_secs_f64(),
        startups[0].as_secs_f64(),
        recovery.n_replayed,
        recovery.snapshot_seq.map_or("-".to_owned(), |s| s.to_string()),
        mib(dir_size_bytes(&dir)),
        took_to_write.as_secs_f64(),
    );
    Ok(())
}

/// Run `args.tasks` short-lived tasks with snapshots every
/// `args.snapshot_every` events; print the data dir's size along the way.
fn bench_compaction(args: &Args, base: &Path, durability: Durability) -> anyhow::Result<()> {
    let dir = base.join("compaction");
    let started = Instant::now();
    let mut driver = Driver::open(&dir, durability, args.snapshot_every)?;
    driver.keep_one_in = None;
    let checkpoints: Vec<u64> =
        [100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000].into_iter().filter(|c| *c < args.tasks).collect();
    let mut sizes: Vec<(u64, f64)> = Vec::new();
    while driver.tasks < args.tasks {
        driver.round()?;
        if let Some(&next) = checkpoints.get(sizes.len()) {
            if driver.tasks >= next {
                sizes.push((next, mib(dir_size_bytes(&dir))));
            }
        }
    }
    let (tasks, events, snapshots) = (driver.tasks, driver.events, driver.snapshots);
    drop(driver);
    let along: Vec<String> = sizes.iter().map(|(n, mb)| format!("after {}k: {mb:.1}", n / 1_000)).collect();
    println!(
        "compaction tasks={tasks} events={events} snapshot_every={} snapshots={snapshots} data_dir_mb={:.1} ({}) took_s={:.1}",
        args.snapshot_every,
        mib(dir_size_bytes(&dir)),
        along.join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// The scheduler core, a client and workers that finish every task at once,
/// and the log the core's events go to.
struct Driver {
    core: Scheduler,
    log: SledLog,
    client: ClientId,
    now: u64,
    snapshot_every: u64,
    since_snapshot: u64,
    /// Tasks submitted so far.
    tasks: u64,
    /// Events logged so far.
    events: u64,
    snapshots: u64,
    /// Keep one task in this many wanted (`None`: release every task).
    keep_one_in: Option<u64>,
}

impl Driver {
    fn open(dir: &Path, durability: Durability, snapshot_every: u64) -> anyhow::Result<Driver> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        let log = SledLog::open(dir, LogOptions { durability, ..LogOptions::default() })?;
        let mut driver = Driver {
            core: Scheduler::new(Config::default()),
            log,
            client: ClientId::from("bench-client"),
            now: 0,
            snapshot_every,
            since_snapshot: 0,
            tasks: 0,
            events: 0,
            snapshots: 0,
            keep_one_in: Some(KEEP_ONE_IN),
        };
        let mut decisions = Vec::new();
        let hello = ClientMsg::Hello { client: driver.client.clone(), name: "bench".into(), token: None };
        decisions.push(driver.handle(Input::Client { client: driver.client.clone(), msg: hello }));
        for w in 0..WORKERS {
            let worker = WorkerId(format!("bench-w{w}"));
            let msg = WorkerMsg::Register {
                worker: worker.clone(),
                nthreads: WORKER_THREADS,
                address: format!("tcp://127.0.0.1:{}", 20_000 + w),
                functions: vec!["inc".into(), "add".into()],
                resources: Vec::new(),
                token: None,
                held: Vec::new(),
                running: Vec::new(),
            };
            decisions.push(driver.handle(Input::Worker { worker, msg }));
        }
        driver.commit(decisions)?;
        Ok(driver)
    }

    fn handle(&mut self, input: Input) -> Decision {
        self.core.handle(input, self.now)
    }

    /// Live tasks in the state.
    fn state_tasks(&self) -> usize {
        self.core.state().n_tasks()
    }

    /// One batch: submit, run every task to the end, release; then append,
    /// flush once, and snapshot when due.
    fn round(&mut self) -> anyhow::Result<()> {
        self.now += 1;
        let first = self.tasks;
        let specs: Vec<TaskSpec> = (first..first + SUBMIT_BATCH as u64)
            .map(|i| {
                // Half the batch depends on the task before it: lineage, as real graphs have.
                let deps = if i % 2 == 1 && i > first { vec![task_key(i - 1)] } else { Vec::new() };
                TaskSpec::new(task_key(i), if deps.is_empty() { "inc" } else { "add" }, vec![0x81, 0x01], deps)
            })
            .collect();
        self.tasks += specs.len() as u64;
        let mut decisions = vec![self.handle(Input::Client { client: self.client.clone(), msg: ClientMsg::Submit { tasks: specs } })];
        let mut computes: VecDeque<(WorkerId, Key, reprise_proto::Attempt)> = VecDeque::new();
        collect_computes(&decisions[0], &mut computes);
        while let Some((worker, key, attempt)) = computes.pop_front() {
            let msg = WorkerMsg::Finished { key, attempt, nbytes: 9, inline: Some(vec![0x1b, 0, 0, 0, 0, 0, 0, 0, 2]) };
            let d = self.handle(Input::Worker { worker, msg });
            collect_computes(&d, &mut computes);
            decisions.push(d);
        }
        let release: Vec<Key> = (first..self.tasks)
            .filter(|i| self.keep_one_in.is_none_or(|k| i % k != 0))
            .map(task_key)
            .collect();
        decisions.push(self.handle(Input::Client { client: self.client.clone(), msg: ClientMsg::Release { keys: release } }));
        self.commit(decisions)
    }

    fn commit(&mut self, decisions: Vec<Decision>) -> anyhow::Result<()> {
        let events: Vec<reprise_proto::Event> = decisions.into_iter().flat_map(|d| d.events).collect();
        if events.is_empty() {
            return Ok(());
        }
        self.log.append(&events)?;
        self.log.flush()?;
        self.events += events.len() as u64;
        self.since_snapshot += events.len() as u64;
        if self.since_snapshot >= self.snapshot_every {
            let state = reprise_proto::encode(self.core.state())?;
            self.log.write_snapshot(self.log.durable_seq(), &state)?;
            self.since_snapshot = 0;
            self.snapshots += 1;
        }
        Ok(())
    }
}

fn task_key(i: u64) -> Key {
    Key(format!("inc-{i:016x}"))
}

fn collect_computes(d: &Decision, out: &mut VecDeque<(WorkerId, Key, reprise_proto::Attempt)>) {
    for effect in &d.effects {
        if let Effect::ToWorker { worker, msg: ToWorker::Compute(task) } = effect {
            out.push_back((worker.clone(), task.key.clone(), task.attempt));
        }
    }
}
