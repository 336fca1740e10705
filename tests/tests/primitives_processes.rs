//! Coordination primitives over real processes: a scheduler process, worker
//! processes, and client processes that contend, wait, pass futures and die.
//!
//! A second client process is this very test binary, run again with
//! `--exact child_process_role` and the role in `REPRISE_PRIM_ROLE`: the
//! test `child_process_role` then plays that role (printing what it saw on
//! stdout) instead of its own checks. Run normally, it plays every role
//! briefly against an in-process cluster, so the roles are tested too.
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use reprise::{Client, Error, Event, Future, Lock, Queue, Semaphore, Variable};
use reprise_tests::{connect, eventually, within, Cluster, ClusterSpec, Proc, SharedCluster, START_TIMEOUT, STEP_TIMEOUT};

const ROLE_ENV: &str = "REPRISE_PRIM_ROLE";
const ADDR_ENV: &str = "REPRISE_PRIM_ADDR";
const ARG_ENV: &str = "REPRISE_PRIM_ARG";
/// Marks a role's report in a child's stdout, where libtest's own
/// `test child_process_role ... ` may share the line.
const REPORT_MARK: &str = "@role@ ";

/// One worker, default lease timeout.
static CLUSTER: SharedCluster = SharedCluster::new();

fn spec() -> ClusterSpec {
    ClusterSpec::new(1, 2)
}

/// Nanoseconds since the epoch: one clock for every process on the machine.
fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The roles a client process plays. Each reports lines through `out`.
// ---------------------------------------------------------------------------

/// Take the lock `name` `cycles` times, holding it a few milliseconds;
/// report `interval <enter_ns> <exit_ns>` for each hold.
async fn role_lock_cycles(client: &Client, name: &str, cycles: u32, out: &mut (dyn FnMut(String) + Send)) -> anyhow::Result<()> {
    let lock = Lock::new(client, name);
    for _ in 0..cycles {
        let guard = within("acquiring the lock", lock.acquire()).await??;
        let enter = now_ns();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let exit = now_ns();
        out(format!("interval {enter} {exit}"));
        within("releasing the lock", guard.release()).await??;
    }
    Ok(())
}

/// Take a lease of the semaphore `name` (2 leases) `cycles` times.
async fn role_sem_holder(client: &Client, name: &str, cycles: u32, out: &mut (dyn FnMut(String) + Send)) -> anyhow::Result<()> {
    let sem = Semaphore::new(client, name, 2);
    for _ in 0..cycles {
        let guard = within("acquiring a lease", sem.acquire()).await??;
        let enter = now_ns();
        tokio::time::sleep(Duration::from_millis(15)).await;
        let exit = now_ns();
        out(format!("interval {enter} {exit}"));
        drop(guard); // release on drop
    }
    Ok(())
}

/// Wait on the event `name`: report `blocked` once the wait has been
/// pending a while (so the scheduler surely has it), then `woke <ns> <bool>`.
async fn role_event_waiter(client: &Client, name: &str, out: &mut (dyn FnMut(String) + Send)) -> anyhow::Result<()> {
    let event = Event::new(client, name);
    ensure!(!within("a short wait", event.wait(Some(Duration::from_millis(50)))).await??, "the event was set early");
    let waiter = {
        let event = event.clone();
        tokio::spawn(async move { event.wait(None).await })
    };
    // Long enough for the request to reach the scheduler many times over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(!waiter.is_finished(), "wait(None) returned before anyone set the event");
    out("blocked".to_owned());
    let woke = within("waiting for the set", waiter).await???;
    out(format!("woke {} {woke}", now_ns()));
    Ok(())
}

/// Submit a slow task, put its future in the queue `name`, drop every
/// reference and close: only the queue keeps it alive.
async fn role_queue_putter(client: &Client, name: &str, out: &mut (dyn FnMut(String) + Send)) -> anyhow::Result<()> {
    let fut: Future<i64> = client.task("slowinc").args((41, 1.0)).pure(false).submit()?;
    within("putting the future", Queue::new(client, name).put_future(&fut)).await??;
    out(format!("put {}", fut.key()));
    drop(fut);
    within("closing the client", client.close()).await??;
    Ok(())
}

/// Take the lock `name` and report `holding`; keep it for `hold`.
async fn role_hold_lock(client: &Client, name: &str, hold: Duration, out: &mut (dyn FnMut(String) + Send)) -> anyhow::Result<()> {
    let guard = within("acquiring the lock", Lock::new(client, name).acquire()).await??;
    out("holding".to_owned());
    tokio::time::sleep(hold).await;
    drop(guard);
    Ok(())
}

/// Play `role` (with its argument `arg`) against the scheduler at `address`.
async fn play(role: &str, address: &str, arg: &str, out: &mut (dyn FnMut(String) + Send)) -> anyhow::Result<()> {
    let client = connect(address, None).await?;
    let (name, n) = arg.split_once(':').unwrap_or((arg, "1"));
    let n: u32 = n.parse().with_context(|| format!("bad role argument {arg:?}"))?;
    match role {
        "lock-cycles" => role_lock_cycles(&client, name, n, out).await?,
        "sem-holder" => role_sem_holder(&client, name, n, out).await?,
        "event-waiter" => role_event_waiter(&client, name, out).await?,
        "queue-putter" => role_queue_putter(&client, name, out).await?,
        "hold-lock" => role_hold_lock(&client, name, Duration::from_secs(u64::from(n)), out).await?,
        other => bail!("unknown role {other:?}"),
    }
    // A clean exit says goodbye (and so gives back any lease at once); a
    // process that just exits is noticed by heartbeats and lease timeouts.
    within("closing the client", client.close()).await??;
    Ok(())
}

/// Start this test binary as a client process playing `role`.
fn spawn_role(label: &str, role: &str, address: &str, arg: &str) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--exact", "child_process_role", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(ADDR_ENV, address)
        .env(ARG_ENV, arg);
    Proc::spawn_command(label, cmd)
}

/// Wait for the process to exit successfully; the reports of its role.
async fn finished_ok(proc: &Proc) -> anyhow::Result<Vec<String>> {
    let status = tokio::task::block_in_place(|| proc.wait_exit(STEP_TIMEOUT))?;
    ensure!(status.success(), "{} failed ({status}); stderr:\n{}", proc.name, proc.stderr());
    Ok(proc.stdout().lines().filter_map(|l| l.split_once(REPORT_MARK)).map(|(_, report)| report.to_owned()).collect())
}

/// The `interval <enter> <exit>` lines among `lines`.
fn intervals(lines: &[String]) -> anyhow::Result<Vec<(u128, u128)>> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("interval "))
        .map(|rest| {
            let (a, b) = rest.split_once(' ').context("malformed interval")?;
            Ok((a.trim().parse()?, b.trim().parse()?))
        })
        .collect()
}

/// The most intervals open at one instant (an exit at the same instant as
/// an enter counts as before it).
fn max_overlap(intervals: &[(u128, u128)]) -> usize {
    let mut edges: Vec<(u128, i32)> = intervals.iter().flat_map(|(a, b)| [(*a, 1), (*b, -1)]).collect();
    edges.sort();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        open += step;
        most = most.max(open);
    }
    usize::try_from(most).unwrap_or(0)
}

#[test]
fn child_process_role() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let address = std::env::var(ADDR_ENV).context("no scheduler address")?;
        let arg = std::env::var(ARG_ENV).unwrap_or_default();
        let mut print = |line: String| {
            use std::io::Write;
            println!("{REPORT_MARK}{line}");
            let _ = std::io::stdout().flush();
        };
        return runtime.block_on(play(&role, &address, &arg, &mut print));
    }
    // Run normally: every role briefly, in-process, with what it reports checked.
    runtime.block_on(async {
        let cluster = reprise::LocalCluster::builder().workers(1).start().await?;
        let address = cluster.scheduler_address().to_owned();
        let mut lines = Vec::new();
        play("lock-cycles", &address, "self-lock:3", &mut |l| lines.push(l)).await?;
        play("sem-holder", &address, "self-sem:2", &mut |l| lines.push(l)).await?;
        assert_eq!(intervals(&lines)?.len(), 5);
        lines.clear();
        play("queue-putter", &address, "self-queue", &mut |l| lines.push(l)).await?;
        let client = cluster.client().await?;
        let fut: Future<i64> = Queue::new(&client, "self-queue").get_future(Some(STEP_TIMEOUT)).await?;
        assert_eq!(lines, vec![format!("put {}", fut.key())]);
        assert_eq!(within("the queued result", fut.result()).await??, 42);
        lines.clear();
        play("hold-lock", &address, "self-hold:0", &mut |l| lines.push(l)).await?;
        assert_eq!(lines, vec!["holding".to_owned()]);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let waiter = tokio::spawn({
            let address = address.clone();
            async move { play("event-waiter", &address, "self-event", &mut |l| drop(tx.send(l))).await }
        });
        assert_eq!(within("blocked", rx.recv()).await?.as_deref(), Some("blocked"));
        Event::new(&client, "self-event").set().await?;
        within("the waiter", waiter).await???;
        let woke = within("woke", rx.recv()).await?.unwrap_or_default();
        assert!(woke.starts_with("woke ") && woke.ends_with(" true"), "{woke:?}");
        client.close().await?;
        cluster.close().await?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// The end-to-end checks.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_client_processes_contending_on_a_lock_never_overlap() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let name = format!("e2e-lock-{}", now_ns());
    let arg = format!("{name}:40");
    let procs = [
        spawn_role("lock-a", "lock-cycles", cluster.address(), &arg)?,
        spawn_role("lock-b", "lock-cycles", cluster.address(), &arg)?,
    ];
    let mut all = Vec::new();
    for proc in &procs {
        let mine = intervals(&finished_ok(proc).await?)?;
        ensure!(mine.len() == 40, "{} held the lock {} times, not 40", proc.name, mine.len());
        all.extend(mine);
    }
    all.sort();
    for pair in all.windows(2) {
        let ((_, exit), (enter, _)) = (pair[0], pair[1]);
        ensure!(exit <= enter, "two holders overlapped: one left at {exit}, the next entered at {enter}");
    }
    assert_eq!(max_overlap(&all), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_of_two_never_admits_a_third_of_ten_holder_processes() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let name = format!("e2e-sem-{}", now_ns());
    let arg = format!("{name}:4");
    let procs: Vec<Proc> = (0..10)
        .map(|i| spawn_role(&format!("sem-{i}"), "sem-holder", cluster.address(), &arg))
        .collect::<anyhow::Result<_>>()?;
    let mut all = Vec::new();
    for proc in &procs {
        all.extend(intervals(&finished_ok(proc).await?)?);
    }
    ensure!(all.len() == 40, "{} holds, not 40", all.len());
    let most = max_overlap(&all);
    ensure!(most <= 2, "{most} holders were inside a semaphore of 2");
    ensure!(most == 2, "ten contending holders never held both leases at once");
    // Every lease is back: released, and given back with each client's
    // goodbye at the latest; well before the heartbeat timeout (10 s) would.
    let client = cluster.client().await?;
    let sem = Semaphore::new(&client, &name, 2);
    let started = Instant::now();
    eventually("every lease is back", || async { Ok(within("get_value", sem.get_value()).await?? == 0) }).await?;
    let took = started.elapsed();
    ensure!(took < Duration::from_secs(5), "leases came back only after {took:?}: a closing client's goodbye was lost");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_waiter_processes_all_return_after_one_event_set() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let name = format!("e2e-event-{}", now_ns());
    let procs: Vec<Proc> = (0..10)
        .map(|i| spawn_role(&format!("waiter-{i}"), "event-waiter", cluster.address(), &name))
        .collect::<anyhow::Result<_>>()?;
    for proc in &procs {
        tokio::task::block_in_place(|| proc.wait_for_line("blocked", START_TIMEOUT))?;
    }
    let client = cluster.client().await?;
    let before_set = now_ns();
    within("set", Event::new(&client, &name).set()).await??;
    for proc in &procs {
        let lines = finished_ok(proc).await?;
        let woke = lines.iter().find_map(|l| l.strip_prefix("woke ")).context("no woke line")?;
        let (at, result) = woke.split_once(' ').context("malformed woke line")?;
        ensure!(result == "true", "{} woke with {result}", proc.name);
        ensure!(at.parse::<u128>()? >= before_set, "{} returned before the set", proc.name);
    }
    assert!(within("is_set", Event::new(&client, &name).is_set()).await??);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_passed_through_a_queue_outlives_the_process_that_put_it() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let name = format!("e2e-queue-{}", now_ns());
    let putter = spawn_role("putter", "queue-putter", cluster.address(), &name)?;
    let lines = finished_ok(&putter).await?;
    let key = lines.iter().find_map(|l| l.strip_prefix("put ")).context("no put line")?.to_owned();
    // The putter has exited: only the queue holds the (still running) task.
    let client = cluster.client().await?;
    let queue = Queue::new(&client, &name);
    assert_eq!(within("qsize", queue.qsize()).await??, 1);
    let fut: Future<i64> = within("get_future", queue.get_future(Some(STEP_TIMEOUT))).await??;
    assert_eq!(fut.key(), key);
    assert_eq!(within("the result", fut.result()).await??, 42);
    assert_eq!(within("qsize", queue.qsize()).await??, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_get_on_an_unset_variable_times_out_in_time() -> anyhow::Result<()> {
    let cluster = CLUSTER.get(spec()).await?;
    let client = cluster.client().await?;
    let var = Variable::new_unique(&client);
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let got = within("get", var.get::<i64>(Some(timeout))).await?;
    let took = started.elapsed();
    ensure!(matches!(got, Err(Error::Timeout)), "expected Error::Timeout, got {got:?}");
    ensure!(took >= timeout, "timed out early, after {took:?}");
    ensure!(took < timeout + Duration::from_secs(2), "timed out late, after {took:?}");
    // A value of another type is a decoding error, not a panic.
    var.set(&"text").await?;
    assert!(matches!(var.get::<i64>(None).await, Err(Error::Codec(_))));
    assert_eq!(var.get::<String>(None).await?, "text");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lock_holder_blocks_the_next_acquirer_only_until_its_lease_expires() -> anyhow::Result<()> {
    // Leases expire after 2 s of silence; clients are removed only after
    // 10 s (the default heartbeat timeout), so the lease is what frees the lock.
    let mut spec = ClusterSpec::new(0, 1);
    spec.scheduler_args = vec!["--lease-timeout".into(), "2".into()];
    let cluster = Cluster::start_async(spec).await?;
    let holder = spawn_role("holder", "hold-lock", cluster.address(), "e2e-killed:3600")?;
    tokio::task::block_in_place(|| holder.wait_for_line("holding", START_TIMEOUT))?;
    let client = cluster.client().await?;
    let lock = Lock::new(&client, "e2e-killed");
    assert!(within("try_acquire", lock.try_acquire(Duration::ZERO)).await??.is_none(), "the holder has it");
    holder.kill();
    let killed = Instant::now();
    let guard = within("acquiring after the kill", lock.try_acquire(Duration::from_secs(9))).await??;
    let waited = killed.elapsed();
    ensure!(guard.is_some(), "the lock did not come back within 9 s of its holder's death");
    // The holder's last heartbeat (one a second) came at most ~1 s before
    // the kill, so the 2 s lease ends 1 to 2 s after it (plus slack here).
    ensure!(waited >= Duration::from_millis(900), "came back after {waited:?}: before its lease could expire");
    ensure!(waited <= Duration::from_millis(2_000 + 2_500), "came back only after {waited:?}");
    Ok(())
}

/// A free loopback port, for a scheduler that must come back at the same address.
fn free_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(format!("tcp://127.0.0.1:{}", listener.local_addr()?.port()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primitives_survive_a_scheduler_kill_and_restart_exactly() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("reprise-e2e-prims-").tempdir()?;
    let data = dir.path().join("scheduler");
    let address = free_address()?;
    let start = || tokio::task::block_in_place(|| reprise_tests::start_scheduler(&data, &address, &[]));
    let scheduler = start()?;
    let holder = connect(&address, None).await?;
    let other = connect(&address, None).await?;
    let guard = within("acquire", Lock::new(&holder, "r-lock").acquire()).await??;
    let lease = within("a lease", Semaphore::new(&holder, "r-sem", 2).acquire()).await??;
    let queue = Queue::new(&holder, "r-queue");
    for i in 0..3i64 {
        within("put", queue.put(&i)).await??;
    }
    within("set", Variable::new(&holder, "r-var").set(&"kept")).await??;
    within("set", Event::new(&holder, "r-event").set()).await??;
    // A blocked acquire of the other client, in flight across the restart.
    let waiting = tokio::spawn({
        let lock = Lock::new(&other, "r-lock");
        async move { lock.acquire().await }
    });

    scheduler.proc.kill();
    let _scheduler = start()?;

    // Everything is as it was: the lock held, one lease out, the items in order.
    assert!(within("locked", Lock::new(&other, "r-lock").locked()).await??);
    assert_eq!(within("get_value", Semaphore::new(&other, "r-sem", 2).get_value()).await??, 1);
    assert_eq!(within("qsize", Queue::new(&other, "r-queue").qsize()).await??, 3);
    assert_eq!(within("get", Queue::new(&other, "r-queue").get::<i64>(None)).await??, 0);
    assert_eq!(within("get", Variable::new(&other, "r-var").get::<String>(None)).await??, "kept");
    assert!(within("is_set", Event::new(&other, "r-event").is_set()).await??);
    ensure!(!waiting.is_finished(), "the other client got the lock while the holder still held it");
    // The holder, reconnected, releases; the waiter resent its acquire and gets it.
    within("release", guard.release()).await??;
    let got = within("the waiting acquire", waiting).await???;
    within("release", got.release()).await??;
    drop(lease);
    within("close", holder.close()).await??;
    within("close", other.close()).await??;
    Ok(())
}
