//! Property tests over random, state-aware input sequences:
//! 1. the scheduler's state equals a replay of the events it emitted, and a
//!    CBOR snapshot taken midway plus the tail of the log; every event kind
//!    occurs across the run; invariants hold after every step;
//! 2. the same inputs always give the same decisions.
use std::cell::RefCell;
use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use reprise_proto::{
    Attempt, ClientId, ClientMsg, Event, EventKind, InfoRequest, Key, LeaseOn, OpId, PrimitiveOp, RequestId,
    ScatteredItem, StoredValue, TaskError, TaskErrorKind, TaskSpec, WorkerId, WorkerMsg,
};
use reprise_scheduler::core::{Config, Decision, Input, Millis, Scheduler, State, TaskState};

const N_CLIENTS: u8 = 3;
const N_WORKERS: u8 = 4;
const KEY_SPACE: u8 = 40;
const TOKEN: &str = "tok";
const FUNCS: [&str; 4] = ["inc", "add", "sum", "fail"];
const HEARTBEAT_TIMEOUT_MS: u64 = 2_000;
/// Shorter than the heartbeat timeout, so that leases expire before their
/// silent client is removed.
const LEASE_TIMEOUT_MS: u64 = 1_000;
const PRIM_NAMES: u8 = 2;

#[derive(Clone, Debug)]
struct GenTask {
    key: u8,
    /// 0..4 name a registered function; 4 names one no worker has.
    func: u8,
    deps: Vec<u16>,
    unknown_dep: bool,
    priority: i32,
    retries: u32,
    restrict: Option<u8>,
    gpu: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Hello { c: u8, good_token: bool },
    Submit { c: u8, tasks: Vec<GenTask> },
    Release { c: u8, pick: u16 },
    Cancel { c: u8, pick: u16, force: bool },
    FireAndForget { c: u8, pick: u16 },
    Retry { c: u8, pick: u16 },
    Scatter { c: u8, w: u8, key: u8, nbytes: u16, inline: bool },
    Join { w: u8, funcs: u8, nthreads: u8, gpus: u8, keep_mask: u16, steal: u16 },
    Leave { w: u8 },
    Finish { pick: u16, nbytes: u16, inline: bool },
    Fail { pick: u16 },
    Heartbeat { peer: u8 },
    Tick { advance_ms: u16 },
    Goodbye { c: u8 },
    Info { c: u8, kind: u8, pick: u16 },
    Restart,
    Raw { kind: u8, a: u8, b: u8 },
    /// A request on a primitive; `req` is drawn from a small range so that
    /// resends (and clashes) happen.
    Prim { c: u8, kind: u8, name: u8, req: u8, a: u16, timeout_ms: Option<u16> },
}

fn gen_task() -> impl Strategy<Value = GenTask> {
    (
        0..KEY_SPACE,
        0u8..5,
        prop::collection::vec(any::<u16>(), 0..3),
        prop::bool::weighted(0.05),
        -2i32..3,
        prop_oneof![4 => Just(0u32), 1 => 1u32..3],
        prop::option::weighted(0.1, 0..N_WORKERS + 1),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(key, func, deps, unknown_dep, priority, retries, restrict, gpu)| GenTask {
            key,
            func: if func == 4 && key % 3 != 0 { 0 } else { func },
            deps,
            unknown_dep,
            priority,
            retries,
            restrict,
            gpu,
        })
}

fn gen_op() -> impl Strategy<Value = Op> {
    let c = 0..N_CLIENTS;
    let w = 0..N_WORKERS;
    prop_oneof![
        4 => (c.clone(), prop::bool::weighted(0.9)).prop_map(|(c, good_token)| Op::Hello { c, good_token }),
        18 => (c.clone(), prop::collection::vec(gen_task(), 1..5)).prop_map(|(c, tasks)| Op::Submit { c, tasks }),
        7 => (c.clone(), any::<u16>()).prop_map(|(c, pick)| Op::Release { c, pick }),
        3 => (c.clone(), any::<u16>(), any::<bool>()).prop_map(|(c, pick, force)| Op::Cancel { c, pick, force }),
        3 => (c.clone(), any::<u16>()).prop_map(|(c, pick)| Op::FireAndForget { c, pick }),
        3 => (c.clone(), any::<u16>()).prop_map(|(c, pick)| Op::Retry { c, pick }),
        3 => (c.clone(), w.clone(), 0..KEY_SPACE, any::<u16>(), any::<bool>())
            .prop_map(|(c, w, key, nbytes, inline)| Op::Scatter { c, w, key, nbytes, inline }),
        8 => (w.clone(), 1u8..16, 1u8..3, 0u8..2, any::<u16>(), any::<u16>())
            .prop_map(|(w, funcs, nthreads, gpus, keep_mask, steal)| Op::Join { w, funcs, nthreads, gpus, keep_mask, steal }),
        3 => w.clone().prop_map(|w| Op::Leave { w }),
        22 => (any::<u16>(), any::<u16>(), prop::bool::weighted(0.3))
            .prop_map(|(pick, nbytes, inline)| Op::Finish { pick, nbytes, inline }),
        5 => any::<u16>().prop_map(|pick| Op::Fail { pick }),
        8 => (0..N_CLIENTS + N_WORKERS).prop_map(|peer| Op::Heartbeat { peer }),
        5 => (0u16..2_500).prop_map(|advance_ms| Op::Tick { advance_ms }),
        1 => c.clone().prop_map(|c| Op::Goodbye { c }),
        3 => (c, 0u8..9, any::<u16>()).prop_map(|(c, kind, pick)| Op::Info { c, kind, pick }),
        1 => Just(Op::Restart),
        5 => (0u8..10, any::<u8>(), any::<u8>()).prop_map(|(kind, a, b)| Op::Raw { kind, a, b }),
        30 => (
            0..N_CLIENTS,
            0u8..25,
            0..PRIM_NAMES,
            0u8..24,
            any::<u16>(),
            prop_oneof![2 => Just(None), 1 => Just(Some(0u16)), 2 => (1u16..3_000).prop_map(Some)],
        )
            .prop_map(|(c, kind, name, req, a, timeout_ms)| Op::Prim { c, kind, name, req, a, timeout_ms }),
    ]
}

fn cname(c: u8) -> ClientId {
    ClientId(format!("c{c}"))
}
fn wname(w: u8) -> WorkerId {
    WorkerId(format!("w{w}"))
}
fn kname(k: u8) -> Key {
    Key(format!("k{k}"))
}

fn pick<T: Clone>(items: &[T], pick: u16) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(pick) % items.len()].clone())
}

fn keys_where(state: &State, f: impl Fn(&TaskState) -> bool) -> Vec<Key> {
    state.tasks().filter(|(_, t)| f(t.state())).map(|(k, _)| k.clone()).collect()
}

fn processing(state: &State) -> Vec<(Key, WorkerId, Attempt)> {
    state
        .tasks()
        .filter_map(|(k, t)| match t.state() {
            TaskState::Processing { worker, attempt } => Some((k.clone(), worker.clone(), *attempt)),
            _ => None,
        })
        .collect()
}

fn build_specs(state: &State, tasks: &[GenTask]) -> Vec<TaskSpec> {
    let mut known: Vec<Key> = state.tasks().map(|(k, _)| k.clone()).collect();
    let mut out = Vec::new();
    for t in tasks {
        let key = kname(t.key);
        let func = FUNCS.get(usize::from(t.func)).copied().unwrap_or("nope");
        let mut deps: Vec<Key> = t.deps.iter().filter_map(|p| pick(&known, *p)).filter(|d| *d != key).collect();
        if t.unknown_dep {
            deps.push(Key::from("never-submitted"));
        }
        let mut spec = TaskSpec::new(key.clone(), func, vec![0x80], deps);
        spec.priority = t.priority;
        spec.retries = t.retries;
        if let Some(w) = t.restrict {
            spec.workers = vec![wname(w)];
        }
        if t.gpu {
            spec.resources = vec![("GPU".into(), 1.0)];
        }
        known.push(key);
        out.push(spec);
    }
    out
}

fn register(sched: &Scheduler, w: u8, funcs: u8, nthreads: u8, gpus: u8, keep_mask: u16, steal: u16) -> WorkerMsg {
    let state = sched.state();
    let id = wname(w);
    let functions =
        FUNCS.iter().enumerate().filter(|(i, _)| funcs & (1 << i) != 0).map(|(_, f)| f.to_string()).collect();
    let resources = if gpus > 0 { vec![("GPU".to_owned(), f64::from(gpus))] } else { Vec::new() };
    // A returning worker reports most of what the state believes, drops
    // some of it, and may claim a replica of a key held elsewhere.
    let mut held: Vec<(Key, u64)> = Vec::new();
    let mut running: Vec<(Key, Attempt)> = Vec::new();
    if let Some(record) = state.worker(&id) {
        held = record
            .has_what()
            .iter()
            .enumerate()
            .filter(|(i, _)| keep_mask & (1 << (i % 16)) != 0)
            .map(|(_, k)| (k.clone(), 8))
            .collect();
        for (i, k) in record.processing().iter().enumerate() {
            if let Some(TaskState::Processing { attempt, .. }) = state.task_state(k) {
                if keep_mask & (1 << ((i + 7) % 16)) != 0 {
                    running.push((k.clone(), *attempt));
                }
            }
        }
    }
    if steal.is_multiple_of(3) {
        let in_memory = keys_where(state, TaskState::is_memory);
        if let Some(k) = pick(&in_memory, steal) {
            held.push((k, 8));
        }
    }
    if steal % 7 == 1 {
        running.push((Key::from("ghost"), Attempt(u64::from(steal))));
    }
    WorkerMsg::Register {
        worker: id,
        nthreads: u32::from(nthreads),
        address: format!("tcp://w{w}"),
        functions,
        resources,
        token: Some(TOKEN.into()),
        held,
        running,
    }
}

fn raw(sched: &Scheduler, kind: u8, a: u8, b: u8) -> Input {
    let w = wname(a % N_WORKERS);
    let c = cname(a % N_CLIENTS);
    let key = kname(b % KEY_SPACE);
    match kind {
        0 => Input::Worker {
            worker: w,
            msg: WorkerMsg::Finished { key, attempt: Attempt(u64::from(b)), nbytes: 1, inline: None },
        },
        1 => {
            let error = TaskError::new(TaskErrorKind::Panicked, key.clone(), "stale");
            Input::Worker { worker: w, msg: WorkerMsg::Erred { key, attempt: Attempt(u64::from(b)), error } }
        }
        2 => {
            let mut spec = TaskSpec::new(key.clone(), "inc", vec![], vec![key]);
            spec.resources = vec![("GPU".into(), f64::NAN)];
            Input::Client { client: c, msg: ClientMsg::Submit { tasks: vec![spec] } }
        }
        3 => {
            let msg = WorkerMsg::Register {
                worker: w,
                nthreads: 0,
                address: String::new(),
                functions: vec![],
                resources: vec![("GPU".into(), -1.0)],
                token: Some(TOKEN.into()),
                held: vec![],
                running: vec![],
            };
            Input::Worker { worker: wname(a % N_WORKERS), msg }
        }
        4 => Input::Client { client: ClientId::from("ghost"), msg: ClientMsg::Release { keys: vec![key] } },
        5 => {
            let items = vec![ScatteredItem { key, nbytes: 1, inline: None }];
            Input::Client { client: c, msg: ClientMsg::Scattered { worker: WorkerId::from("nobody"), items } }
        }
        8 | 9 => {
            // A copy asked for (replicate, rebalance) arrives or fails; or
            // an unasked one arrives from any worker.
            let (key, worker) = pick(&sched.pending_copies(), u16::from(b)).unwrap_or((key, w));
            let msg = if kind == 8 {
                WorkerMsg::DataAdded { key, nbytes: 8 }
            } else {
                WorkerMsg::FetchFailed { key, message: "unreachable".into() }
            };
            Input::Worker { worker, msg }
        }
        6 => {
            // A finish for a key in memory, from one of its holders, with the last attempt handed out.
            let attempt = Attempt(sched.state().next_attempt().0.saturating_sub(1));
            let k = pick(&keys_where(sched.state(), TaskState::is_memory), u16::from(b)).unwrap_or(key);
            let holder = sched.state().who_has(&k).first().cloned().unwrap_or(w);
            Input::Worker { worker: holder, msg: WorkerMsg::Finished { key: k, attempt, nbytes: 1, inline: None } }
        }
        _ => Input::Client {
            client: c,
            msg: ClientMsg::Hello { client: cname(b % N_CLIENTS), name: String::new(), token: Some(TOKEN.into()) },
        },
    }
}

/// What an op means in the current state: zero or more inputs, or a restart.
enum Step {
    Inputs(Vec<Input>),
    Restart,
}

fn interpret(op: &Op, sched: &Scheduler, now: &mut Millis) -> Step {
    let state = sched.state();
    let client = |c: u8, msg: ClientMsg| Input::Client { client: cname(c), msg };
    let wants = |c: u8| -> Vec<Key> { state.client_wants(&cname(c)).into_iter().flatten().cloned().collect() };
    let inputs = match op {
        Op::Hello { c, good_token } => {
            let token = Some(if *good_token { TOKEN.to_owned() } else { "bad".to_owned() });
            vec![client(*c, ClientMsg::Hello { client: cname(*c), name: format!("client {c}"), token })]
        }
        Op::Submit { c, tasks } => vec![client(*c, ClientMsg::Submit { tasks: build_specs(state, tasks) })],
        Op::Release { c, pick: p } => {
            let keys = pick(&wants(*c), *p).map_or_else(|| vec![kname((*p % 40) as u8)], |k| vec![k]);
            vec![client(*c, ClientMsg::Release { keys })]
        }
        Op::Cancel { c, pick: p, force } => {
            let all: Vec<Key> = state.tasks().map(|(k, _)| k.clone()).collect();
            let k = if *force { pick(&all, *p) } else { pick(&wants(*c), *p) };
            vec![client(*c, ClientMsg::Cancel { keys: k.into_iter().collect(), force: *force })]
        }
        Op::FireAndForget { c, pick: p } => {
            let keys = pick(&keys_where(state, TaskState::is_pending), *p).into_iter().collect();
            vec![client(*c, ClientMsg::FireAndForget { keys })]
        }
        Op::Retry { c, pick: p } => {
            let erred = keys_where(state, |s| matches!(s, TaskState::Erred { .. }));
            vec![client(*c, ClientMsg::Retry { keys: pick(&erred, *p).into_iter().collect() })]
        }
        Op::Scatter { c, w, key, nbytes, inline } => {
            let inline = inline.then(|| vec![*key; usize::from(*nbytes % 16)]);
            let items = vec![ScatteredItem { key: kname(*key), nbytes: u64::from(*nbytes), inline }];
            vec![client(*c, ClientMsg::Scattered { worker: wname(*w), items })]
        }
        Op::Join { w, funcs, nthreads, gpus, keep_mask, steal } => {
            let msg = register(sched, *w, *funcs, *nthreads, *gpus, *keep_mask, *steal);
            vec![Input::Worker { worker: wname(*w), msg }]
        }
        Op::Leave { w } => vec![Input::Worker { worker: wname(*w), msg: WorkerMsg::Goodbye }],
        Op::Finish { pick: p, nbytes, inline } => match pick(&processing(state), *p) {
            Some((key, worker, attempt)) => {
                let inline = inline.then(|| vec![1u8; usize::from(*nbytes % 8)]);
                vec![Input::Worker {
                    worker,
                    msg: WorkerMsg::Finished { key, attempt, nbytes: u64::from(*nbytes), inline },
                }]
            }
            None => vec![],
        },
        Op::Fail { pick: p } => match pick(&processing(state), *p) {
            Some((key, worker, attempt)) => {
                let error = TaskError::new(TaskErrorKind::Raised, key.clone(), "boom");
                vec![Input::Worker { worker, msg: WorkerMsg::Erred { key, attempt, error } }]
            }
            None => vec![],
        },
        Op::Heartbeat { peer } if *peer < N_CLIENTS => vec![client(*peer, ClientMsg::Heartbeat)],
        Op::Heartbeat { peer } => vec![Input::Worker { worker: wname(*peer - N_CLIENTS), msg: WorkerMsg::Heartbeat }],
        Op::Tick { advance_ms } => {
            *now += u64::from(*advance_ms);
            vec![Input::Tick]
        }
        Op::Goodbye { c } => vec![client(*c, ClientMsg::Goodbye)],
        Op::Info { c, kind, pick: p } => {
            let keys: Vec<Key> =
                pick(&state.tasks().map(|(k, _)| k.clone()).collect::<Vec<_>>(), *p).into_iter().collect();
            let what = match kind {
                0 => InfoRequest::WhoHas { keys },
                1 => InfoRequest::HasWhat,
                2 => InfoRequest::Ncores,
                3 => InfoRequest::SchedulerInfo,
                4 => InfoRequest::Locate { keys },
                5 => {
                    let in_memory = keys_where(state, TaskState::is_memory);
                    let keys = pick(&in_memory, *p).into_iter().chain(keys).collect();
                    InfoRequest::Replicate { keys, n: u32::from(*p % 4) }
                }
                6 => InfoRequest::Rebalance,
                7 => InfoRequest::Restart,
                _ => InfoRequest::Shutdown,
            };
            vec![client(*c, ClientMsg::Info { req: RequestId(u64::from(*p)), what })]
        }
        Op::Restart => return Step::Restart,
        Op::Raw { kind, a, b } => vec![raw(sched, *kind, *a, *b)],
        Op::Prim { c, kind, name, req, a, timeout_ms } => {
            let op = primitive_op(state, cname(*c), *kind, *name, *a, timeout_ms.map(u64::from));
            vec![client(*c, ClientMsg::Primitive { req: RequestId(u64::from(*req)), op })]
        }
    };
    Step::Inputs(inputs)
}

/// A request on a primitive that makes sense in `state` most of the time:
/// futures are live keys, releases name leases the client holds.
fn primitive_op(state: &State, client: ClientId, kind: u8, name: u8, a: u16, timeout_ms: Option<u64>) -> PrimitiveOp {
    let name = format!("p{name}");
    let keys: Vec<Key> = state.tasks().map(|(k, _)| k.clone()).collect();
    let future = || StoredValue::Future(pick(&keys, a).unwrap_or_else(|| kname((a % 40) as u8)));
    let inline = || StoredValue::Inline(vec![(a % 7) as u8; usize::from(a % 5)]);
    let max_leases = if a.is_multiple_of(17) { 3 } else { 1 + u64::from(name.ends_with('1')) };
    let held = |on: LeaseOn| -> RequestId {
        let mine: Vec<RequestId> = match &on {
            LeaseOn::Lock(n) => state.lock_holder(n).filter(|l| l.client == client).map(|l| l.req).into_iter().collect(),
            LeaseOn::Semaphore(n) => state
                .semaphore(n)
                .map(|s| s.leases().iter().filter(|l| l.client == client).map(|l: &OpId| l.req).collect())
                .unwrap_or_default(),
        };
        pick(&mine, a).unwrap_or(RequestId(u64::from(a % 24)))
    };
    match kind {
        0 => PrimitiveOp::VariableSet { name, value: inline() },
        1 => PrimitiveOp::VariableSet { name, value: future() },
        2 => PrimitiveOp::VariableGet { name, timeout_ms },
        3 => PrimitiveOp::VariableDelete { name },
        4 => PrimitiveOp::QueuePut { name, value: inline(), maxsize: u64::from(a % 3), timeout_ms },
        5 => PrimitiveOp::QueuePut { name, value: future(), maxsize: u64::from(a % 3), timeout_ms },
        6 => PrimitiveOp::QueueGet { name, timeout_ms },
        7 => PrimitiveOp::QueueGetBatch { name, n: u64::from(a % 3) },
        8 => PrimitiveOp::QueueSize { name },
        9 => PrimitiveOp::LockAcquire { name, timeout_ms },
        10 => PrimitiveOp::LockRelease { lease: held(LeaseOn::Lock(name.clone())), name },
        11 => PrimitiveOp::LockLocked { name },
        12 => PrimitiveOp::SemaphoreAcquire { name, max_leases, timeout_ms },
        13 => PrimitiveOp::SemaphoreRelease { lease: held(LeaseOn::Semaphore(name.clone())), name },
        14 => PrimitiveOp::SemaphoreValue { name, max_leases },
        15 if a.is_multiple_of(4) => PrimitiveOp::SemaphoreClose { name, max_leases },
        15 => PrimitiveOp::SemaphoreAcquire { name, max_leases, timeout_ms },
        16 => PrimitiveOp::EventSet { name },
        17 => PrimitiveOp::EventClear { name },
        18 => PrimitiveOp::EventIsSet { name },
        19 => PrimitiveOp::EventWait { name, timeout_ms },
        20 => PrimitiveOp::DatasetPublish { name, key: future().key().cloned().unwrap_or_else(|| kname(0)) },
        21 => PrimitiveOp::DatasetGet { name },
        22 => PrimitiveOp::DatasetList,
        23 => PrimitiveOp::DatasetUnpublish { name },
        _ => PrimitiveOp::Abandon { req: RequestId(u64::from(a % 24)) },
    }
}

fn config() -> Config {
    Config {
        heartbeat_timeout_ms: HEARTBEAT_TIMEOUT_MS,
        lease_timeout_ms: LEASE_TIMEOUT_MS,
        auth_token: Some(TOKEN.into()),
        allowed_failures: 1,
        ..Config::default()
    }
}

/// Run the ops; return every decision, the scheduler, and the state
/// snapshot (CBOR) taken before op `snapshot_at` with the log length then.
/// A run's decisions, its final scheduler, and the CBOR snapshot with the
/// number of events emitted before it.
type Run = (Vec<Decision>, Scheduler, Option<(Vec<u8>, usize)>);

fn run(ops: &[Op], snapshot_at: usize) -> Result<Run, TestCaseError> {
    let mut sched = Scheduler::new(config());
    let mut now: Millis = 0;
    let mut decisions = Vec::new();
    let mut n_events = 0;
    let mut snapshot = None;
    let cbor = |state: &State| -> Result<Vec<u8>, TestCaseError> {
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(state, &mut bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok(bytes)
    };
    for (i, op) in ops.iter().enumerate() {
        if i == snapshot_at {
            snapshot = Some((cbor(sched.state())?, n_events));
        }
        match interpret(op, &sched, &mut now) {
            Step::Restart => sched = Scheduler::from_state(config(), sched.state().clone(), now),
            Step::Inputs(inputs) => {
                for input in inputs {
                    let d = sched.handle(input, now);
                    n_events += d.events.len();
                    decisions.push(d);
                }
            }
        }
        if let Err(e) = sched.check_invariants() {
            return Err(TestCaseError::fail(format!("after op {i} {op:?}: {e}")));
        }
        prop_assert_eq!(sched.state().n_ignored_events(), 0, "op {} {:?} emitted an event that did not fit", i, op);
    }
    if snapshot_at >= ops.len() {
        snapshot = Some((cbor(sched.state())?, n_events));
    }
    Ok((decisions, sched, snapshot))
}

fn ops_and_cut() -> impl Strategy<Value = (Vec<Op>, usize)> {
    prop::collection::vec(gen_op(), 200..=240).prop_flat_map(|ops| {
        let n = ops.len();
        (Just(ops), 0..=n)
    })
}

#[test]
fn replaying_the_log_or_a_snapshot_plus_its_tail_rebuilds_the_state() {
    let seen: RefCell<BTreeSet<EventKind>> = RefCell::new(BTreeSet::new());
    let mut runner = TestRunner::new(RunnerConfig {
        cases: RunnerConfig::default().cases.max(256),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&ops_and_cut(), |(ops, cut)| {
        let (decisions, sched, snapshot) = run(&ops, cut)?;
        let log: Vec<Event> = decisions.iter().flat_map(|d| d.events.iter().cloned()).collect();
        seen.borrow_mut().extend(log.iter().map(Event::kind));

        let mut replayed = State::default();
        for ev in &log {
            replayed.apply(ev);
        }
        prop_assert_eq!(&replayed, sched.state(), "full replay differs");

        let (bytes, at) = snapshot.ok_or_else(|| TestCaseError::fail("no snapshot taken"))?;
        let mut restored: State =
            ciborium::de::from_reader(bytes.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for ev in &log[at..] {
            restored.apply(ev);
        }
        prop_assert_eq!(&restored, sched.state(), "snapshot + tail differs");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let missing: Vec<EventKind> = EventKind::ALL.iter().copied().filter(|k| !seen.borrow().contains(k)).collect();
    assert!(missing.is_empty(), "event kinds never produced across the run: {missing:?}");
}

#[test]
fn the_same_inputs_give_the_same_decisions() {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: RunnerConfig::default().cases.max(64),
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&prop::collection::vec(gen_op(), 200..=240), |ops| {
        let (first, a, _) = run(&ops, 0)?;
        let (second, b, _) = run(&ops, 0)?;
        prop_assert_eq!(first, second);
        prop_assert_eq!(a.state(), b.state());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn every_event_round_trips_through_cbor_in_the_state() {
    // The snapshot test above depends on State surviving CBOR exactly,
    // including inline bytes and float resources.
    let mut sched = Scheduler::new(config());
    let hello = ClientMsg::Hello { client: cname(0), name: String::new(), token: Some(TOKEN.into()) };
    sched.handle(Input::Client { client: cname(0), msg: hello }, 0);
    let mut reg = register(&sched, 0, 15, 2, 1, 0, 1);
    if let WorkerMsg::Register { resources, .. } = &mut reg {
        resources.push(("RAM".into(), 0.1 + 0.2));
    }
    sched.handle(Input::Worker { worker: wname(0), msg: reg }, 0);
    let items = vec![ScatteredItem { key: kname(1), nbytes: 3, inline: Some(vec![0, 255, 7]) }];
    sched.handle(Input::Client { client: cname(0), msg: ClientMsg::Scattered { worker: wname(0), items } }, 0);
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(sched.state(), &mut bytes).expect("encodes");
    let back: State = ciborium::de::from_reader(bytes.as_slice()).expect("decodes");
    assert_eq!(&back, sched.state());
}

fn gen_event() -> impl Strategy<Value = Event> {
    let k = (0u8..6).prop_map(kname);
    let w = (0u8..3).prop_map(wname);
    let c = (0u8..2).prop_map(cname);
    let a = (0u64..6).prop_map(Attempt);
    let deps = prop::collection::vec((0u8..6).prop_map(kname), 0..3);
    let holder =
        prop_oneof![Just(reprise_proto::Holder::FireAndForget), Just(reprise_proto::Holder::Variable("v".into()))];
    let error = k.clone().prop_map(|key| TaskError::new(TaskErrorKind::Raised, key, "x"));
    prop_oneof![
        Just(Event::ClusterRestarted),
        c.clone().prop_map(|client| Event::ClientJoined { client }),
        c.clone().prop_map(|client| Event::ClientRemoved { client }),
        (k.clone(), deps, -1i32..2).prop_map(|(key, deps, priority)| {
            let mut spec = TaskSpec::new(key, "inc", vec![], deps);
            spec.priority = priority;
            Event::TaskSubmitted { spec }
        }),
        (c.clone(), k.clone()).prop_map(|(client, key)| Event::ClientWants { client, key }),
        (c, k.clone()).prop_map(|(client, key)| Event::ClientReleased { client, key }),
        (holder.clone(), k.clone()).prop_map(|(holder, key)| Event::HolderAdded { holder, key }),
        (holder, k.clone()).prop_map(|(holder, key)| Event::HolderRemoved { holder, key }),
        k.clone().prop_map(|key| Event::TaskQueued { key }),
        k.clone().prop_map(|key| Event::TaskNoWorker { key }),
        (k.clone(), w.clone(), a.clone()).prop_map(|(key, worker, attempt)| Event::TaskAssigned {
            key,
            worker,
            attempt
        }),
        (k.clone(), w.clone(), a, any::<bool>()).prop_map(|(key, worker, attempt, i)| Event::TaskFinished {
            key,
            worker,
            attempt,
            nbytes: 1,
            inline: i.then(|| vec![1])
        }),
        (k.clone(), w.clone(), any::<bool>()).prop_map(|(key, worker, i)| Event::DataScattered {
            key,
            worker,
            nbytes: 1,
            inline: i.then(|| vec![1])
        }),
        (k.clone(), w.clone()).prop_map(|(key, worker)| Event::ReplicaAdded { key, worker }),
        (k.clone(), w.clone()).prop_map(|(key, worker)| Event::ReplicaRemoved { key, worker }),
        k.clone().prop_map(|key| Event::TaskRetried { key }),
        (k.clone(), error).prop_map(|(key, error)| Event::TaskErred { key, error }),
        k.clone().prop_map(|key| Event::TaskRescheduled { key }),
        k.clone().prop_map(|key| Event::TaskLost { key }),
        k.clone().prop_map(|key| Event::TaskCancelled { key }),
        k.prop_map(|key| Event::TaskForgotten { key }),
        (w.clone(), 0u32..3).prop_map(|(worker, nthreads)| Event::WorkerJoined {
            worker,
            nthreads,
            address: String::new(),
            functions: vec!["inc".into()],
            resources: vec![("GPU".into(), 1.0)]
        }),
        w.prop_map(|worker| Event::WorkerRemoved { worker }),
        gen_primitive_event(),
    ]
}

fn gen_primitive_event() -> impl Strategy<Value = Event> {
    let name = (0u8..2).prop_map(|n| format!("p{n}"));
    let lease = (0u8..3, 0u64..3).prop_map(|(c, r)| OpId { client: cname(c), req: RequestId(r) });
    let value = prop_oneof![
        (0u8..6).prop_map(|k| StoredValue::Future(kname(k))),
        any::<u8>().prop_map(|b| StoredValue::Inline(vec![b])),
    ];
    prop_oneof![
        (name.clone(), value.clone(), lease.clone()).prop_map(|(name, value, op)| Event::VariableSet { name, value, op }),
        (name.clone(), prop::option::of(lease.clone())).prop_map(|(name, op)| Event::VariableDeleted { name, op }),
        (name.clone(), value, lease.clone()).prop_map(|(name, item, op)| Event::QueuePut { name, item, op }),
        (name.clone(), prop::collection::vec(0u64..4, 0..3), prop::option::of(lease.clone()))
            .prop_map(|(name, items, op)| Event::QueueTaken { name, items, op }),
        (name.clone(), lease.clone()).prop_map(|(lock, lease)| Event::LockAcquired { lock, lease }),
        (name.clone(), lease.clone()).prop_map(|(lock, lease)| Event::LockReleased { lock, lease }),
        (name.clone(), 0u64..3).prop_map(|(semaphore, max_leases)| Event::SemaphoreCreated { semaphore, max_leases }),
        (name.clone(), lease.clone()).prop_map(|(semaphore, lease)| Event::LeaseGranted { semaphore, lease }),
        (name.clone(), lease.clone()).prop_map(|(semaphore, lease)| Event::LeaseReleased { semaphore, lease }),
        (name.clone(), lease.clone()).prop_map(|(n, lease)| Event::LeaseExpired { on: LeaseOn::Semaphore(n), lease }),
        (name.clone(), lease.clone()).prop_map(|(n, lease)| Event::LeaseExpired { on: LeaseOn::Lock(n), lease }),
        name.clone().prop_map(|semaphore| Event::SemaphoreClosed { semaphore }),
        name.clone().prop_map(|name| Event::EventSet { name }),
        name.clone().prop_map(|name| Event::EventCleared { name }),
        (name.clone(), (0u8..6).prop_map(kname), lease.clone())
            .prop_map(|(name, key, op)| Event::DatasetPublished { name, key, op }),
        (name, prop::option::of(lease)).prop_map(|(name, op)| Event::DatasetUnpublished { name, op }),
    ]
}

proptest! {
    #![proptest_config(RunnerConfig { cases: 512, failure_persistence: None, ..RunnerConfig::default() })]

    /// `apply` is total: any sequence of events, sensible or not, is applied
    /// without a panic, and replaying it twice gives the same state.
    #[test]
    fn apply_never_panics_on_events_that_make_no_sense(events in prop::collection::vec(gen_event(), 0..120)) {
        let mut a = State::default();
        let mut b = State::default();
        for ev in &events {
            a.apply(ev);
            b.apply(ev);
            let _ = a.check_invariants();
        }
        prop_assert_eq!(a, b);
    }
}
