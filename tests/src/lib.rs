//! Helpers for the end-to-end tests: start the real `reprise` binary (and the
//! test worker binary) as separate processes on free loopback ports, wait
//! for them with timeouts, and kill every process on drop.
//!
//! - [`Proc`]: one child process; killed (and reaped) when dropped, so a
//!   panicking test still cleans up. Its stdout and stderr are echoed to the
//!   test's output (shown when a test fails) and kept for assertions.
//! - [`Cluster`]: a scheduler process with its own temporary data dir and N
//!   worker processes; [`SharedCluster`] lends one to every test of a file
//!   that runs while it is alive, and kills it when the last one is done.
//! - [`within`] and [`eventually`]: every wait on the cluster is bounded.
use std::future::{Future, IntoFuture};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// How long any process gets to print that it is ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The bound on any single wait on the cluster (a result, a gather, a
/// condition polled with [`eventually`]). Generous, because these tests run
/// unoptimized on two shared cores; a hang fails after this instead of never.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// How often [`eventually`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The `reprise` binary of this workspace, built (once per test process) in
/// the same profile and target dir as the tests, so it is never stale.
pub fn reprise_bin() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| build_reprise().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

fn build_reprise() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>
    let profile_dir = exe.parent().and_then(Path::parent).context("unexpected test executable location")?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "reprise", "--bin", "reprise"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build -p reprise")?;
    if !status.success() {
        bail!("cargo build -p reprise failed");
    }
    let bin = profile_dir.join(format!("reprise{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        bail!("built reprise but cannot find it at {}", bin.display());
    }
    Ok(bin)
}

/// Everything a process printed so far, line by line.
#[derive(Debug, Default)]
struct Output {
    stdout: Vec<String>,
    stderr: Vec<String>,
}

/// A child process that is killed (and reaped) when dropped.
pub struct Proc {
    pub name: String,
    child: Mutex<Child>,
    /// Stdout lines not yet looked at by [`Proc::wait_for_line`].
    lines: Mutex<mpsc::Receiver<String>>,
    output: Arc<Mutex<Output>>,
    readers: Mutex<Vec<JoinHandle<()>>>,
}

impl Proc {
    /// Start `program args…`.
    pub fn spawn(name: &str, program: &Path, args: &[&str]) -> anyhow::Result<Proc> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        Proc::spawn_command(name, cmd)
    }

    /// Start `cmd`, capturing its stdout and stderr. The auth token variable
    /// is removed from its environment, so that only what a test passes counts.
    pub fn spawn_command(name: &str, mut cmd: Command) -> anyhow::Result<Proc> {
        cmd.env_remove("REPRISE_AUTH_TOKEN").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {name}: {cmd:?}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let output = Arc::new(Mutex::new(Output::default()));
        let (tx, lines) = mpsc::channel();
        let readers = vec![
            spawn_reader(name.to_owned(), stdout, output.clone(), Some(tx), |o| &mut o.stdout),
            spawn_reader(format!("{name} stderr"), stderr, output.clone(), None, |o| &mut o.stderr),
        ];
        Ok(Proc { name: name.to_owned(), child: Mutex::new(child), lines: Mutex::new(lines), output, readers: Mutex::new(readers) })
    }

    /// Wait for a stdout line containing `needle`; returns the line. Fails
    /// early, with what the process printed, if it exits first.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let lines = lock(&self.lines);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("{} did not print {needle:?} within {timeout:?}; stderr:\n{}", self.name, self.stderr())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(5)).map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    bail!("{} closed its stdout ({status}) without printing {needle:?}; stderr:\n{}", self.name, self.stderr())
                }
            }
        }
    }

    /// Wait (polling) until the process exits; its exit status. Once it has,
    /// everything it printed is in [`Proc::stdout`] and [`Proc::stderr`].
    pub fn wait_exit(&self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = lock(&self.child).try_wait()? {
                // The pipes close with the process: the readers end at once.
                for reader in lock(&self.readers).drain(..) {
                    let _ = reader.join();
                }
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("{} still runs after {timeout:?}", self.name);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Everything the process printed on stdout so far.
    pub fn stdout(&self) -> String {
        lock(&self.output).stdout.join("\n")
    }

    /// Everything the process printed on stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.output).stderr.join("\n")
    }

    pub fn pid(&self) -> u32 {
        lock(&self.child).id()
    }

    /// `kill -9`: the process gets no chance to clean up.
    pub fn kill(&self) {
        let mut child = lock(&self.child);
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn is_running(&self) -> bool {
        matches!(lock(&self.child).try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Read `stream` line by line until it closes: echo each line to the test's
/// output, keep it, and pass stdout lines on. It keeps reading after the
/// receiver is gone, so that the child never blocks on a full pipe.
fn spawn_reader(
    tag: String,
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<Output>>,
    tx: Option<mpsc::Sender<String>>,
    select: fn(&mut Output) -> &mut Vec<String>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("[{tag}] {line}");
            select(&mut lock(&output)).push(line.clone());
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A scheduler process on a free loopback port with its own data dir.
pub struct SchedulerProc {
    pub proc: Proc,
    pub address: String,
}

/// Start `reprise scheduler` on `listen` (use `tcp://127.0.0.1:0` for a free
/// port) and wait until it prints its address.
pub fn start_scheduler(data_dir: &Path, listen: &str, extra: &[&str]) -> anyhow::Result<SchedulerProc> {
    let bin = reprise_bin()?;
    let dir = data_dir.to_str().context("data dir is not UTF-8")?;
    let mut args = vec!["scheduler", "--listen", listen, "--data-dir", dir];
    args.extend_from_slice(extra);
    let proc = Proc::spawn("scheduler", &bin, &args)?;
    let line = proc.wait_for_line("listening on ", START_TIMEOUT)?;
    let address = line.rsplit("listening on ").next().context("no address")?.trim().to_owned();
    Ok(SchedulerProc { proc, address })
}

/// Start a worker process (`reprise worker` or a custom worker binary that
/// takes the same flags) without waiting for it.
pub fn spawn_worker(program: &Path, scheduler: &str, name: &str, nthreads: u32, extra: &[&str]) -> anyhow::Result<Proc> {
    let n = nthreads.to_string();
    let mut args: Vec<&str> = Vec::new();
    if program.file_stem().is_some_and(|s| s == "reprise") {
        args.push("worker");
    }
    args.extend_from_slice(&["--scheduler", scheduler, "--name", name, "--nthreads", &n]);
    args.extend_from_slice(extra);
    Proc::spawn(name, program, &args)
}

/// Start a worker process and wait until it has registered.
pub fn start_worker(program: &Path, scheduler: &str, name: &str, nthreads: u32, extra: &[&str]) -> anyhow::Result<Proc> {
    let proc = spawn_worker(program, scheduler, name, nthreads, extra)?;
    proc.wait_for_line("registered", START_TIMEOUT)?;
    Ok(proc)
}

/// What [`Cluster::start`] starts.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Worker processes, named `e2e-w0`, `e2e-w1`, …
    pub workers: usize,
    pub nthreads: u32,
    /// The worker binary (default: `reprise worker`).
    pub worker_program: Option<PathBuf>,
    /// Extra `reprise scheduler` flags.
    pub scheduler_args: Vec<String>,
    /// A shared token the scheduler demands; the workers are given it.
    pub auth_token: Option<String>,
}

impl ClusterSpec {
    /// `workers` stock workers (`reprise worker`) of `nthreads` threads each.
    pub fn new(workers: usize, nthreads: u32) -> ClusterSpec {
        ClusterSpec { workers, nthreads, worker_program: None, scheduler_args: Vec::new(), auth_token: None }
    }

    /// Demand this token of every client and worker (`--auth-token-file`).
    pub fn auth_token(mut self, token: impl Into<String>) -> ClusterSpec {
        self.auth_token = Some(token.into());
        self
    }

    /// Run this worker binary (it takes `reprise worker`'s flags) instead.
    pub fn worker_program(mut self, program: impl Into<PathBuf>) -> ClusterSpec {
        self.worker_program = Some(program.into());
        self
    }
}

/// A scheduler process and worker processes; all killed on drop, then the
/// data dir is removed.
pub struct Cluster {
    // Fields drop in order: the workers, the scheduler, then the data dir.
    workers: Vec<Proc>,
    scheduler: SchedulerProc,
    worker_names: Vec<String>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Start the scheduler on a free loopback port with a fresh data dir,
    /// then the workers (all at once), and wait until each has registered.
    /// Blocking; from async code use [`Cluster::start_async`].
    pub fn start(spec: &ClusterSpec) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("reprise-e2e-").tempdir()?;
        let mut scheduler_args = spec.scheduler_args.clone();
        let mut worker_args = Vec::new();
        if let Some(token) = &spec.auth_token {
            let path = dir.path().join("auth-token");
            std::fs::write(&path, format!("{token}\n"))?;
            let path = path.to_str().context("data dir is not UTF-8")?.to_owned();
            scheduler_args.extend(["--auth-token-file".to_owned(), path.clone()]);
            worker_args.extend(["--auth-token-file".to_owned(), path]);
        }
        let extra: Vec<&str> = scheduler_args.iter().map(String::as_str).collect();
        let worker_extra: Vec<&str> = worker_args.iter().map(String::as_str).collect();
        let scheduler = start_scheduler(&dir.path().join("scheduler"), "tcp://127.0.0.1:0", &extra)?;
        let program = match &spec.worker_program {
            Some(p) => p.clone(),
            None => reprise_bin()?,
        };
        let worker_names: Vec<String> = (0..spec.workers).map(|i| format!("e2e-w{i}")).collect();
        let workers = worker_names
            .iter()
            .map(|name| spawn_worker(&program, &scheduler.address, name, spec.nthreads, &worker_extra))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for worker in &workers {
            worker.wait_for_line("registered", START_TIMEOUT)?;
        }
        Ok(Cluster { workers, scheduler, worker_names, dir })
    }

    /// [`Cluster::start`] off the async runtime's threads.
    pub async fn start_async(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        tokio::task::spawn_blocking(move || Cluster::start(&spec)).await?
    }

    /// The scheduler's address (`tcp://127.0.0.1:<port>`).
    pub fn address(&self) -> &str {
        &self.scheduler.address
    }

    pub fn scheduler(&self) -> &Proc {
        &self.scheduler.proc
    }

    pub fn workers(&self) -> &[Proc] {
        &self.workers
    }

    pub fn worker_names(&self) -> &[String] {
        &self.worker_names
    }

    /// A directory for files the test's tasks write; removed with the cluster.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new client of this cluster (bounded by [`STEP_TIMEOUT`]).
    pub async fn client(&self) -> anyhow::Result<reprise::Client> {
        connect(self.address(), None).await
    }
}

/// Connect a client to `address` (with `token`, if given), bounded by [`STEP_TIMEOUT`].
pub async fn connect(address: &str, token: Option<&str>) -> anyhow::Result<reprise::Client> {
    let mut builder = reprise::Client::builder().address(address).name("e2e").timeout(Duration::from_secs(20));
    if let Some(token) = token {
        builder = builder.auth_token(token);
    }
    within("connecting a client", builder.connect()).await?.with_context(|| format!("connecting to {address}"))
}

/// One cluster for the tests of a file: `static CLUSTER: SharedCluster =
/// SharedCluster::new();` then `CLUSTER.get(spec).await?` in each test. The
/// cluster lives while any test holds it and is killed when the last one
/// lets go (a `static` is never dropped, so it holds only a `Weak`); a test
/// that starts after that gets a fresh one.
pub struct SharedCluster {
    slot: Mutex<Weak<Cluster>>,
}

impl SharedCluster {
    pub const fn new() -> SharedCluster {
        SharedCluster { slot: Mutex::new(Weak::new()) }
    }

    /// The live cluster, or a new one started from `spec`.
    pub async fn get(&'static self, spec: ClusterSpec) -> anyhow::Result<Arc<Cluster>> {
        tokio::task::spawn_blocking(move || {
            let mut slot = lock(&self.slot);
            if let Some(cluster) = slot.upgrade() {
                return Ok(cluster);
            }
            let cluster = Arc::new(Cluster::start(&spec)?);
            *slot = Arc::downgrade(&cluster);
            Ok(cluster)
        })
        .await?
    }
}

impl Default for SharedCluster {
    fn default() -> Self {
        SharedCluster::new()
    }
}

/// Await `fut`, failing (naming `what`) after [`STEP_TIMEOUT`].
pub async fn within<F: IntoFuture>(what: &str, fut: F) -> anyhow::Result<F::Output> {
    within_for(what, STEP_TIMEOUT, fut).await
}

/// Await `fut`, failing (naming `what`) after `limit`.
pub async fn within_for<F: IntoFuture>(what: &str, limit: Duration, fut: F) -> anyhow::Result<F::Output> {
    let started = Instant::now();
    let result = tokio::time::timeout(limit, fut).await.map_err(|_| anyhow!("{what} did not finish within {limit:?}"));
    note_if_slow(what, started);
    result
}

/// Waits that take long are worth a line in the test's output (shown when
/// it fails, or with `--nocapture`): they point at a slow path even when
/// the test passes.
fn note_if_slow(what: &str, started: Instant) {
    let elapsed = started.elapsed();
    if elapsed >= SLOW_WAIT {
        eprintln!("slow wait: {what} took {elapsed:.2?}");
    }
}

/// What [`note_if_slow`] calls slow.
const SLOW_WAIT: Duration = Duration::from_secs(3);

/// Poll `check` until it says `true`, failing (naming `what`) after
/// [`STEP_TIMEOUT`]; an `Err` from `check` fails at once.
pub async fn eventually<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, check()).await {
            Ok(Ok(true)) => {
                note_if_slow(what, started);
                return Ok(());
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => return Err(e.context(format!("while waiting until {what}"))),
            Err(_) => bail!("{what}: not so within {STEP_TIMEOUT:?}"),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{what}: not so within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

// ---------------------------------------------------------------------------
// Restarts: a scheduler killed with `kill -9` and started again on the same
// address and data dir, and the test worker's execution log.
// ---------------------------------------------------------------------------

/// [`start_scheduler`] off the async runtime's threads.
pub async fn start_scheduler_async(data_dir: &Path, listen: &str, extra: &[&str]) -> anyhow::Result<SchedulerProc> {
    let (dir, listen) = (data_dir.to_path_buf(), listen.to_owned());
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        start_scheduler(&dir, &listen, &extra)
    })
    .await?
}

/// Start worker processes named `names` of `nthreads` threads each (all at
/// once, off the async runtime's threads) and wait until each registered.
pub async fn start_workers_async(program: &Path, scheduler: &str, names: &[&str], nthreads: u32) -> anyhow::Result<Vec<Proc>> {
    let (program, scheduler) = (program.to_path_buf(), scheduler.to_owned());
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let workers =
            names.iter().map(|n| spawn_worker(&program, &scheduler, n, nthreads, &[])).collect::<anyhow::Result<Vec<_>>>()?;
        for worker in &workers {
            worker.wait_for_line("registered", START_TIMEOUT)?;
        }
        Ok(workers)
    })
    .await?
}

/// The executions the test worker's `counted` function recorded in `path`:
/// for each label, the names of the workers that ran it, in order. A
/// missing file means nothing ran yet.
pub fn read_executions(path: &Path) -> anyhow::Result<std::collections::BTreeMap<String, Vec<String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut runs: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for line in text.lines() {
        let (label, worker) = line.split_once(' ').with_context(|| format!("malformed execution line {line:?}"))?;
        runs.entry(label.to_owned()).or_default().push(worker.to_owned());
    }
    Ok(runs)
}

/// The number of lines in `path` (0 when it does not exist yet): how many
/// executions the test worker's `counted` recorded so far.
pub fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|b| **b == b'\n').count())
}

/// A small random generator (SplitMix64) for where tests kill things. It is
/// seeded from `$REPRISE_TEST_SEED` if set, else from the clock; tests print
/// the seed, so that a failing run can be repeated with it.
pub struct TestRng(u64);

impl TestRng {
    /// A generator and its seed.
    pub fn from_env_or_clock() -> (TestRng, u64) {
        let seed = std::env::var("REPRISE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        });
        (TestRng(seed), seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }
}

/// Submit `n` leaves `counted(log, "<tag>leaf-<i>", [i])` (= `i + 1`) and
/// `n` pairs `counted(log, "<tag>pair-<i>", [leaf i, leaf (i+1) % n])`, each
/// sleeping `sleep_ms`, to a cluster of test workers. Returns the futures,
/// leaves first, and the value each must come to.
pub fn submit_counted_graph(
    client: &reprise::Client,
    log: &Path,
    n: usize,
    sleep_ms: u64,
    tag: &str,
) -> anyhow::Result<(Vec<reprise::Future<i64>>, Vec<i64>)> {
    let log = log.to_str().context("the execution log path is not UTF-8")?.to_owned();
    let mut futures = Vec::with_capacity(2 * n);
    let mut expected = Vec::with_capacity(2 * n);
    for i in 0..n as i64 {
        futures.push(client.submit("counted", (&log, format!("{tag}leaf-{i}"), vec![i], sleep_ms))?);
        expected.push(i + 1);
    }
    for i in 0..n {
        let j = (i + 1) % n;
        let inputs = vec![&futures[i], &futures[j]];
        let pair: reprise::Future<i64> = client.submit("counted", (&log, format!("{tag}pair-{i}"), inputs, sleep_ms))?;
        expected.push(1 + expected[i] + expected[j]);
        futures.push(pair);
    }
    Ok((futures, expected))
}
