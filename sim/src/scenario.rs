//! A run as data: the cluster's shape, the network's and the log's timing,
//! and a list of timed operations mixing workload (submit, release, cancel,
//! …) and faults (crashes, dropped connections, partitions, clients that
//! vanish). Proptest strategies generate it, so a failing scenario shrinks
//! by dropping and simplifying operations; [`generate`] draws one from a seed.
//!
//! Operations name clients and workers by index modulo the cluster size and
//! pick keys by position among what the client holds (0 = the newest), so
//! every operation still means something after shrinking removed others.
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union, ValueTree};
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

use crate::funcs::Fail;
use crate::rng::splitmix64;
use crate::SimOptions;

/// One simulated run.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Seeds the world's own randomness: message delays, flush times, …
    pub rng_seed: u64,
    pub params: Params,
    /// The swarm weights the operations were drawn with (for the record).
    pub mix: Mix,
    pub ops: Vec<TimedOp>,
}

/// The cluster and its timing.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Task threads of each worker; its length is the number of workers.
    pub workers: Vec<u8>,
    pub n_clients: u8,
    /// Each message takes 0..=this many ms (per connection order is kept).
    pub delay_ms_max: u16,
    /// A commit's flush takes 0..=this many ms.
    pub flush_ms_max: u8,
    /// The scheduler keeps results inline up to this many bytes.
    pub inline_bytes_max: usize,
    pub allowed_failures: u8,
    pub prefetch: u8,
    /// The scheduler node snapshots after this many events.
    pub snapshot_every: u16,
    /// Chance (per mille) that a peer hears at once that its connection
    /// died; otherwise it notices only by silence.
    pub notify_per_mille: u16,
    /// A Lock or Semaphore lease expires after this long without a word
    /// from its client.
    pub lease_timeout_ms: u32,
}

/// How often each kind of operation is drawn (swarm testing: a weight of 0
/// leaves that kind out of the run entirely).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mix {
    pub submit: u32,
    pub share: u32,
    pub add_ref: u32,
    pub release: u32,
    pub cancel: u32,
    pub fire_and_forget: u32,
    pub retry: u32,
    pub scatter: u32,
    pub info: u32,
    pub lock: u32,
    pub semaphore: u32,
    pub variable: u32,
    pub queue: u32,
    pub event: u32,
    pub dataset: u32,
    pub crash_scheduler: u32,
    pub crash_worker: u32,
    pub drop_link: u32,
    pub partition: u32,
    pub vanish: u32,
    pub goodbye: u32,
    /// Only with [`SimOptions::one_way_stalls`] (the default).
    pub stall: u32,
}

/// An operation and the simulated time before it.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedOp {
    pub gap_ms: u16,
    pub op: Op,
}

/// One workload step or fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The client submits new tasks (one message), holding one handle to each.
    Submit {
        client: u8,
        tasks: Vec<TaskDef>,
    },
    /// The client submits the spec of a key another client holds: the two
    /// share the key (as with a future obtained from a dataset).
    Share {
        client: u8,
        from: u8,
        pick: u16,
    },
    /// The client clones a handle.
    AddRef {
        client: u8,
        pick: u16,
    },
    /// The client drops a handle.
    Release {
        client: u8,
        pick: u16,
    },
    Cancel {
        client: u8,
        pick: u16,
    },
    /// `fire_and_forget`, then (if `drop`) the handle is dropped.
    FireAndForget {
        client: u8,
        pick: u16,
        drop: bool,
    },
    Retry {
        client: u8,
        pick: u16,
    },
    /// The client puts a value on a worker's peer socket and registers it.
    Scatter {
        client: u8,
        worker: u8,
        big: bool,
    },
    Info {
        client: u8,
        what: u8,
    },
    /// The client acquires Lock `lock{name % 2}` (waiting at most
    /// `timeout_ms` when set) and releases it `hold_ms` after it is granted.
    Lock {
        client: u8,
        name: u8,
        hold_ms: u16,
        timeout_ms: Option<u16>,
    },
    /// The same with a lease on Semaphore `sem{n}` (n = `name % 2`), which
    /// allows n + 1 leases.
    Semaphore {
        client: u8,
        name: u8,
        hold_ms: u16,
        timeout_ms: Option<u16>,
    },
    /// A request on Variable `var{name % 2}`.
    Variable {
        client: u8,
        name: u8,
        act: VariableAct,
    },
    /// A request on Queue `q{name % 2}`.
    Queue {
        client: u8,
        name: u8,
        act: QueueAct,
    },
    /// A request on Event `ev{name % 2}`.
    Event {
        client: u8,
        name: u8,
        act: EventAct,
    },
    /// A request on dataset `ds{name % 2}`.
    Dataset {
        client: u8,
        name: u8,
        act: DatasetAct,
    },
    /// The scheduler process dies at `at`, its unflushed tail meeting `tail`,
    /// and starts again `down_ms` later.
    CrashScheduler {
        at: CrashPoint,
        tail: TailFate,
        down_ms: u16,
    },
    /// A worker process dies (its data with it) and starts afresh later.
    CrashWorker {
        worker: u8,
        down_ms: u16,
    },
    /// A connection to the scheduler breaks; messages in flight are lost.
    DropLink {
        peer: PeerRef,
        notify: bool,
    },
    /// A peer's connection stalls for `ms` (messages wait, none is lost).
    Partition {
        peer: PeerRef,
        ms: u16,
    },
    /// Only the peer's messages to the scheduler stall for `ms`; the
    /// scheduler's still reach it.
    Stall {
        peer: PeerRef,
        ms: u16,
    },
    /// The client process dies without a word; a fresh client takes its slot.
    Vanish {
        client: u8,
    },
    /// The client says goodbye; a fresh client takes its slot.
    Goodbye {
        client: u8,
    },
}

/// What a Variable or a Queue is given to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueSrc {
    /// A fresh plain value (unique in the run, so the checks can follow it).
    Inline,
    /// A future the client holds, picked like keys are (0 = the newest);
    /// a plain value when it holds none.
    Future(u16),
}

/// A Variable request. Timeouts are in ms; `None` waits for ever (the
/// liveness phase sets what is still waited for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariableAct {
    Set(ValueSrc),
    Get { timeout_ms: Option<u16> },
    Delete,
}

/// A Queue request; a put with `maxsize` > 0 waits while the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueAct {
    Put { value: ValueSrc, maxsize: u8, timeout_ms: Option<u16> },
    Get { timeout_ms: Option<u16> },
    GetBatch { n: u8 },
    Size,
}

/// An Event request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAct {
    Set,
    Clear,
    IsSet,
    Wait { timeout_ms: Option<u16> },
}

/// A published-dataset request; `Publish` names a future the client holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetAct {
    Publish { pick: u16 },
    Get,
    List,
    Unpublish,
}

/// Where in its commit cycle the scheduler dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Whenever the operation comes (between commits, or mid-flush).
    Now,
    /// In the next commit, after the append and before the flush.
    BeforeFlush,
    /// In the next commit, after the flush and before any effect is sent.
    BeforeSend,
}

/// What a crash leaves of the unflushed tail of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailFate {
    Lost,
    /// The last unflushed record reached the disk whole.
    Kept,
    /// It reached the disk torn; recovery must cut it.
    Torn,
}

/// A peer of the scheduler, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRef {
    Worker(u8),
    Client(u8),
}

/// A task of the workload.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskDef {
    /// Inputs, each picked among the keys the client holds (0 = newest).
    pub deps: Vec<u16>,
    pub dur_ms: u16,
    pub fail: Fail,
    pub retries: u8,
    pub priority: i8,
    /// Restrict the task to this worker.
    pub restrict: Option<u8>,
    pub gpu: bool,
    pub func: FuncKind,
    pub big: bool,
}

/// Which function a task calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuncKind {
    Common,
    Rare,
    Missing,
}

/// How heavily faults are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FaultProfile {
    /// No faults at all: the workload alone.
    None,
    Light,
    /// Each kind of fault weighted 0..=3 per seed (the default).
    #[default]
    Swarm,
    Heavy,
}

impl std::str::FromStr for FaultProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(FaultProfile::None),
            "light" => Ok(FaultProfile::Light),
            "swarm" => Ok(FaultProfile::Swarm),
            "heavy" => Ok(FaultProfile::Heavy),
            other => Err(format!("unknown fault profile '{other}' (none, light, swarm, heavy)")),
        }
    }
}

fn params_strategy(opts: &SimOptions) -> impl Strategy<Value = Params> {
    let workers = vec(1u8..=3, 1..=usize::from(opts.workers_max.max(1)));
    let clients = 1u8..=opts.clients_max.max(1);
    let inline = prop_oneof![Just(reprise_proto::INLINE_BYTES_MAX), Just(16usize), Just(0usize)];
    let lease = prop_oneof![Just(2_000u32), Just(5_000u32), Just(30_000u32)];
    let timing = (0u16..=40, 0u8..=4, 5u16..=200, 0u16..=1000, lease);
    (workers, clients, inline, 0u8..=3, 0u8..=2, timing).prop_map(
        |(workers, n_clients, inline_bytes_max, allowed_failures, prefetch, timing)| {
            let (delay_ms_max, flush_ms_max, snapshot_every, notify_per_mille, lease_timeout_ms) = timing;
            Params {
                workers,
                n_clients,
                delay_ms_max,
                flush_ms_max,
                inline_bytes_max,
                allowed_failures,
                prefetch,
                snapshot_every,
                notify_per_mille,
                lease_timeout_ms,
            }
        },
    )
}

fn mix_strategy(faults: FaultProfile, one_way_stalls: bool) -> impl Strategy<Value = Mix> {
    (vec(0u32..=3, 15), vec(0u32..=3, 6)).prop_map(move |(w, f)| {
        let fault = |x: u32| match faults {
            FaultProfile::None => 0,
            FaultProfile::Light => x / 2,
            FaultProfile::Swarm => x,
            FaultProfile::Heavy => 2 + 2 * x,
        };
        Mix {
            submit: 5 + w[0],
            share: w[1] / 2,
            add_ref: w[2] / 2,
            release: 1 + w[3],
            cancel: w[4] / 2,
            fire_and_forget: w[5] / 2,
            retry: w[6] / 2,
            scatter: w[7] / 2,
            info: w[8] / 3,
            lock: w[9],
            semaphore: w[10],
            variable: w[11],
            queue: w[12],
            event: w[13],
            dataset: w[14] / 2,
            crash_scheduler: fault(f[0]),
            crash_worker: fault(f[1]),
            drop_link: fault(f[2]),
            partition: fault(f[3]),
            vanish: fault(f[4]) / 2,
            goodbye: fault(f[5]) / 3,
            stall: if one_way_stalls { fault(f[3]) } else { 0 },
        }
    })
}

fn task_strategy() -> impl Strategy<Value = TaskDef> {
    let fail = prop_oneof![8 => Just(Fail::Never), 2 => (1u8..=2).prop_map(Fail::First), 1 => Just(Fail::Always)];
    let func = prop_oneof![20 => Just(FuncKind::Common), 1 => Just(FuncKind::Rare), 1 => Just(FuncKind::Missing)];
    (
        vec(0u16..6, 0..=3),
        0u16..=150,
        fail,
        0u8..=2,
        -2i8..=2,
        proptest::option::weighted(0.1, any::<u8>()),
        proptest::bool::weighted(0.1),
        func,
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(deps, dur_ms, fail, retries, priority, restrict, gpu, func, big)| TaskDef {
            deps,
            dur_ms,
            fail,
            retries,
            priority,
            restrict,
            gpu,
            func,
            big,
        })
}

/// A wait's timeout: for ever (`None`) or up to 3 s.
fn timeout_strategy() -> impl Strategy<Value = Option<u16>> {
    proptest::option::weighted(0.6, 0u16..=3000)
}

fn value_strategy() -> impl Strategy<Value = ValueSrc> {
    prop_oneof![3 => Just(ValueSrc::Inline), 2 => (0u16..8).prop_map(ValueSrc::Future)]
}

fn variable_strategy() -> impl Strategy<Value = VariableAct> {
    prop_oneof![
        3 => value_strategy().prop_map(VariableAct::Set),
        3 => timeout_strategy().prop_map(|timeout_ms| VariableAct::Get { timeout_ms }),
        1 => Just(VariableAct::Delete),
    ]
}

fn queue_strategy() -> impl Strategy<Value = QueueAct> {
    prop_oneof![
        4 => (value_strategy(), 0u8..=3, timeout_strategy())
            .prop_map(|(value, maxsize, timeout_ms)| QueueAct::Put { value, maxsize, timeout_ms }),
        3 => timeout_strategy().prop_map(|timeout_ms| QueueAct::Get { timeout_ms }),
        1 => (1u8..=4).prop_map(|n| QueueAct::GetBatch { n }),
        1 => Just(QueueAct::Size),
    ]
}

fn event_strategy() -> impl Strategy<Value = EventAct> {
    prop_oneof![
        2 => Just(EventAct::Set),
        1 => Just(EventAct::Clear),
        1 => Just(EventAct::IsSet),
        4 => timeout_strategy().prop_map(|timeout_ms| EventAct::Wait { timeout_ms }),
    ]
}

fn dataset_strategy() -> impl Strategy<Value = DatasetAct> {
    prop_oneof![
        3 => (0u16..8).prop_map(|pick| DatasetAct::Publish { pick }),
        3 => Just(DatasetAct::Get),
        1 => Just(DatasetAct::List),
        2 => Just(DatasetAct::Unpublish),
    ]
}

fn peer_strategy() -> impl Strategy<Value = PeerRef> {
    prop_oneof![any::<u8>().prop_map(PeerRef::Worker), any::<u8>().prop_map(PeerRef::Client)]
}

fn op_strategy(mix: Mix) -> BoxedStrategy<Op> {
    let c = any::<u8>;
    let pick = || 0u16..8;
    let crash_point = prop_oneof![Just(CrashPoint::Now), Just(CrashPoint::BeforeFlush), Just(CrashPoint::BeforeSend)];
    let tail = prop_oneof![2 => Just(TailFate::Lost), 1 => Just(TailFate::Kept), 1 => Just(TailFate::Torn)];
    let options: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (
            mix.submit,
            (c(), vec(task_strategy(), 1..=4)).prop_map(|(client, tasks)| Op::Submit { client, tasks }).boxed(),
        ),
        (mix.share, (c(), c(), pick()).prop_map(|(client, from, pick)| Op::Share { client, from, pick }).boxed()),
        (mix.add_ref, (c(), pick()).prop_map(|(client, pick)| Op::AddRef { client, pick }).boxed()),
        (mix.release, (c(), pick()).prop_map(|(client, pick)| Op::Release { client, pick }).boxed()),
        (mix.cancel, (c(), pick()).prop_map(|(client, pick)| Op::Cancel { client, pick }).boxed()),
        (
            mix.fire_and_forget,
            (c(), pick(), any::<bool>())
                .prop_map(|(client, pick, drop)| Op::FireAndForget { client, pick, drop })
                .boxed(),
        ),
        (mix.retry, (c(), pick()).prop_map(|(client, pick)| Op::Retry { client, pick }).boxed()),
        (
            mix.scatter,
            (c(), any::<u8>(), any::<bool>())
                .prop_map(|(client, worker, big)| Op::Scatter { client, worker, big })
                .boxed(),
        ),
        (mix.info, (c(), 0u8..5).prop_map(|(client, what)| Op::Info { client, what }).boxed()),
        (
            mix.lock,
            (c(), any::<u8>(), 0u16..=3000, proptest::option::weighted(0.3, 0u16..=2000))
                .prop_map(|(client, name, hold_ms, timeout_ms)| Op::Lock { client, name, hold_ms, timeout_ms })
                .boxed(),
        ),
        (
            mix.semaphore,
            (c(), any::<u8>(), 0u16..=3000, proptest::option::weighted(0.3, 0u16..=2000))
                .prop_map(|(client, name, hold_ms, timeout_ms)| Op::Semaphore { client, name, hold_ms, timeout_ms })
                .boxed(),
        ),
        (
            mix.variable,
            (c(), any::<u8>(), variable_strategy())
                .prop_map(|(client, name, act)| Op::Variable { client, name, act })
                .boxed(),
        ),
        (
            mix.queue,
            (c(), any::<u8>(), queue_strategy())
                .prop_map(|(client, name, act)| Op::Queue { client, name, act })
                .boxed(),
        ),
        (
            mix.event,
            (c(), any::<u8>(), event_strategy())
                .prop_map(|(client, name, act)| Op::Event { client, name, act })
                .boxed(),
        ),
        (
            mix.dataset,
            (c(), any::<u8>(), dataset_strategy())
                .prop_map(|(client, name, act)| Op::Dataset { client, name, act })
                .boxed(),
        ),
        (
            mix.crash_scheduler,
            (crash_point, tail, 0u16..=3000)
                .prop_map(|(at, tail, down_ms)| Op::CrashScheduler { at, tail, down_ms })
                .boxed(),
        ),
        (
            mix.crash_worker,
            (any::<u8>(), 0u16..=5000).prop_map(|(worker, down_ms)| Op::CrashWorker { worker, down_ms }).boxed(),
        ),
        (
            mix.drop_link,
            (peer_strategy(), any::<bool>()).prop_map(|(peer, notify)| Op::DropLink { peer, notify }).boxed(),
        ),
        (mix.partition, (peer_strategy(), 0u16..=15_000).prop_map(|(peer, ms)| Op::Partition { peer, ms }).boxed()),
        (mix.stall, (peer_strategy(), 0u16..=15_000).prop_map(|(peer, ms)| Op::Stall { peer, ms }).boxed()),
        (mix.vanish, c().prop_map(|client| Op::Vanish { client }).boxed()),
        (mix.goodbye, c().prop_map(|client| Op::Goodbye { client }).boxed()),
    ];
    let options: Vec<(u32, BoxedStrategy<Op>)> = options.into_iter().filter(|(w, _)| *w > 0).collect();
    Union::new_weighted(options).boxed()
}

/// Scenarios of at most `opts.ops_max` operations, with the swarm mix and
/// cluster drawn first.
pub fn scenario_strategy(opts: &SimOptions) -> BoxedStrategy<Scenario> {
    let ops_max = opts.ops_max.max(1);
    (any::<u64>(), params_strategy(opts), mix_strategy(opts.faults, opts.one_way_stalls))
        .prop_flat_map(move |(rng_seed, params, mix)| {
            let op = (0u16..=250, op_strategy(mix)).prop_map(|(gap_ms, op)| TimedOp { gap_ms, op });
            (Just(rng_seed), Just(params), Just(mix), vec(op, 1..=ops_max))
        })
        .prop_map(|(rng_seed, params, mix, ops)| Scenario { rng_seed, params, mix, ops })
        .boxed()
}

/// A proptest runner whose randomness comes from `seed` alone.
pub fn seeded_runner(seed: u64) -> TestRunner {
    let mut state = seed;
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    TestRunner::new_with_rng(RunnerConfig::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// The value tree of `seed`'s scenario: its current value is what
/// [`generate`] returns, and it can be shrunk.
pub fn scenario_tree(seed: u64, opts: &SimOptions) -> Box<dyn ValueTree<Value = Scenario>> {
    let mut runner = seeded_runner(seed);
    let strategy = scenario_strategy(opts);
    loop {
        // The strategy has no filter, so it never rejects; loop regardless.
        if let Ok(tree) = strategy.new_tree(&mut runner) {
            return Box::new(tree);
        }
    }
}

/// The scenario of `seed`: the same seed and options always give the same one.
pub fn generate(seed: u64, opts: &SimOptions) -> Scenario {
    scenario_tree(seed, opts).current()
}
