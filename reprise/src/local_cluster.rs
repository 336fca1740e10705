//! An embedded cluster: a scheduler with its own temporary data dir and N
//! stock workers, all in this process — or, with
//! [`LocalClusterBuilder::scheduler_process`], the scheduler in a child
//! process, which [`LocalCluster::kill_scheduler`] kills with `SIGKILL`.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reprise_client::{Client, Error, Result};
use reprise_log::Durability;
use reprise_scheduler::service::{self, SchedulerConfig, SchedulerHandle, ServiceError};
use reprise_worker::{Worker, WorkerHandle};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long `start` and `add_worker` wait for workers to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a scheduler (re)start may take, child process or embedded.
const SCHEDULER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restart keeps trying to bind the address the killed
/// scheduler held: a listener closes a moment after its socket is dropped.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of a child scheduler's stderr kept for error messages.
const STDERR_LINES_KEPT: usize = 20;

/// Settings of a [`LocalCluster`]; see [`LocalCluster::builder`].
#[derive(Clone, Debug)]
pub struct LocalClusterBuilder {
    n_workers: usize,
    threads_per_worker: usize,
    data_dir: Option<PathBuf>,
    listen: String,
    durability: Durability,
    heartbeat_timeout: Option<Duration>,
    lease_timeout: Option<Duration>,
    reconnect_grace: Option<Duration>,
    scheduler_program: Option<PathBuf>,
}

/// A scheduler and stock workers in this process (or the scheduler in a
/// child process).
///
/// ```no_run
/// # async fn demo() -> reprise::Result<()> {
/// let mut cluster = reprise::LocalCluster::builder().workers(2).threads_per_worker(1).start().await?;
/// let client = cluster.client().await?;
/// cluster.stop_worker("worker-1").await?;
/// let name = cluster.add_worker().await?;
/// // The scheduler dies without warning and comes back on its log.
/// cluster.kill_scheduler().await?;
/// cluster.restart_scheduler().await?;
/// # Ok(()) }
/// ```
pub struct LocalCluster {
    scheduler: Option<SchedulerRun>,
    settings: LocalClusterBuilder,
    address: String,
    workers: Vec<WorkerHandle>,
    next_worker: usize,
    data_dir: PathBuf,
    /// What the last scheduler start read from the log, in words.
    last_recovery: Option<String>,
    _temp_dir: Option<tempfile::TempDir>,
}

/// The running scheduler.
enum SchedulerRun {
    Embedded(SchedulerHandle),
    Child(ChildScheduler),
}

impl Default for LocalClusterBuilder {
    fn default() -> Self {
        LocalClusterBuilder {
            n_workers: 2,
            threads_per_worker: 1,
            data_dir: None,
            listen: "tcp://127.0.0.1:0".into(),
            durability: Durability::Power,
            heartbeat_timeout: None,
            lease_timeout: None,
            reconnect_grace: None,
            scheduler_program: None,
        }
    }
}

impl LocalClusterBuilder {
    /// How many stock workers to start (default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.n_workers = n;
        self
    }

    /// Task slots per worker (default 1).
    pub fn threads_per_worker(mut self, n: usize) -> Self {
        self.threads_per_worker = n.max(1);
        self
    }

    /// Keep the log here instead of in a temporary directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The scheduler's bind address (default a free loopback port).
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = address.into();
        self
    }

    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long the scheduler waits for a silent client or worker before removing it.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }

    /// How long a Lock or Semaphore lease outlives its client's last
    /// heartbeat (default 30 s).
    pub fn lease_timeout(mut self, timeout: Duration) -> Self {
        self.lease_timeout = Some(timeout);
        self
    }

    /// How long, after a restart, workers and clients known from the log
    /// have to come back (default 10 s).
    pub fn reconnect_grace(mut self, grace: Duration) -> Self {
        self.reconnect_grace = Some(grace);
        self
    }

    /// Run the scheduler as a child process: `program scheduler --listen …
    /// --data-dir …` (the `reprise` binary, e.g. `std::env::current_exe()`
    /// from inside it), so that [`LocalCluster::kill_scheduler`] is a real
    /// `kill -9`. The workers still run in this process.
    pub fn scheduler_process(mut self, program: impl Into<PathBuf>) -> Self {
        self.scheduler_program = Some(program.into());
        self
    }

    pub async fn start(self) -> Result<LocalCluster> {
        let (temp_dir, data_dir) = match &self.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("reprise-local-")
                    .tempdir()
                    .map_err(|e| Error::Cluster(format!("cannot create a temporary data dir: {e}")))?;
                let path = temp.path().to_path_buf();
                (Some(temp), path)
            }
        };
        let mut cluster = LocalCluster {
            scheduler: None,
            address: self.listen.clone(),
            settings: self,
            workers: Vec::new(),
            next_worker: 0,
            data_dir,
            last_recovery: None,
            _temp_dir: temp_dir,
        };
        let listen = cluster.settings.listen.clone();
        cluster.start_scheduler(&listen).await?;
        for _ in 0..cluster.settings.n_workers {
            cluster.spawn_worker().await?;
        }
        cluster.wait_for_workers().await?;
        Ok(cluster)
    }
}

impl LocalCluster {
    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder::default()
    }

    /// A new client of this cluster.
    pub async fn client(&self) -> Result<Client> {
        Client::builder().address(self.address.clone()).name("local").connect().await
    }

    /// The scheduler's address, for a custom worker or a second client.
    pub fn scheduler_address(&self) -> &str {
        &self.address
    }

    /// The directory holding the scheduler's log.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The scheduler's process id, when it runs as a child process.
    pub fn scheduler_pid(&self) -> Option<u32> {
        match &self.scheduler {
            Some(SchedulerRun::Child(child)) => child.pid,
            _ => None,
        }
    }

    /// What the last scheduler start read from its log, in words (`None`
    /// for a start on an empty log).
    pub fn scheduler_recovery(&self) -> Option<&str> {
        self.last_recovery.as_deref()
    }

    /// The names of the running workers.
    pub fn worker_names(&self) -> Vec<String> {
        self.workers.iter().map(|w| w.name().to_owned()).collect()
    }

    /// Stop a worker as if it died: no goodbye, its data gone.
    pub async fn stop_worker(&mut self, name: &str) -> Result<()> {
        let idx = self
            .workers
            .iter()
            .position(|w| w.name() == name)
            .ok_or_else(|| Error::Cluster(format!("no worker named {name:?} in this cluster")))?;
        self.workers.swap_remove(idx).kill().await;
        Ok(())
    }

    /// Start one more stock worker; returns its name once it has registered.
    pub async fn add_worker(&mut self) -> Result<String> {
        let name = self.spawn_worker().await?;
        self.wait_for_workers().await?;
        Ok(name)
    }

    /// Kill the scheduler without warning: `SIGKILL` for a child process;
    /// for an embedded one, its socket closes at once and its core stops
    /// without handling what is queued ([`SchedulerHandle::kill`]).
    /// Clients and workers stay up and reconnect once it is back.
    pub async fn kill_scheduler(&mut self) -> Result<()> {
        match self.scheduler.take() {
            Some(SchedulerRun::Embedded(handle)) => handle.kill().await.map_err(|e| Error::Cluster(e.to_string())),
            Some(SchedulerRun::Child(child)) => child.kill().await,
            None => Err(Error::Cluster("the scheduler is not running".into())),
        }
    }

    /// Start the scheduler again on the same address and data dir, after
    /// [`LocalCluster::kill_scheduler`]; returns how long it took to serve.
    pub async fn restart_scheduler(&mut self) -> Result<Duration> {
        if self.scheduler.is_some() {
            return Err(Error::Cluster("the scheduler is running: kill it first".into()));
        }
        let started = Instant::now();
        let address = self.address.clone();
        self.start_scheduler(&address).await?;
        Ok(started.elapsed())
    }

    /// Stop the workers, then the scheduler.
    pub async fn close(mut self) -> Result<()> {
        for worker in self.workers.drain(..) {
            let _ = worker.shutdown().await;
        }
        match self.scheduler.take() {
            Some(SchedulerRun::Embedded(handle)) => handle.stop().await.map_err(|e| Error::Cluster(e.to_string())),
            Some(SchedulerRun::Child(child)) => child.stop().await,
            None => Ok(()),
        }
    }

    /// Start the scheduler on `listen`; remember its address and what it recovered.
    async fn start_scheduler(&mut self, listen: &str) -> Result<()> {
        let settings = &self.settings;
        let (run, address, recovery) = match settings.scheduler_program.clone() {
            Some(program) => {
                let (child, address, recovery) = ChildScheduler::start(&program, listen, &self.data_dir, settings).await?;
                (SchedulerRun::Child(child), address, recovery)
            }
            None => {
                let handle = start_embedded(self.config(listen)).await?;
                let address = handle.address().to_owned();
                let r = handle.recovery();
                let recovery = (r.last_seq > 0).then(|| {
                    let snapshot = r.snapshot_seq.map_or("no snapshot".to_owned(), |s| format!("the snapshot at seq {s}"));
                    format!(
                        "recovered the log up to seq {} from {snapshot} and {} events after it in {:.3} s",
                        r.last_seq,
                        r.n_replayed,
                        r.took.as_secs_f64()
                    )
                });
                (SchedulerRun::Embedded(handle), address, recovery)
            }
        };
        self.scheduler = Some(run);
        self.address = address;
        self.last_recovery = recovery;
        Ok(())
    }

    fn config(&self, listen: &str) -> SchedulerConfig {
        let s = &self.settings;
        let mut config = SchedulerConfig::new(listen.to_owned(), self.data_dir.clone());
        config.log.durability = s.durability;
        if let Some(timeout) = s.heartbeat_timeout {
            config.core.heartbeat_timeout_ms = millis(timeout);
        }
        if let Some(timeout) = s.lease_timeout {
            config.core.lease_timeout_ms = millis(timeout);
        }
        if let Some(grace) = s.reconnect_grace {
            config.core.reconnect_grace_ms = millis(grace);
        }
        config
    }

    async fn spawn_worker(&mut self) -> Result<String> {
        let name = format!("worker-{}", self.next_worker);
        self.next_worker += 1;
        let worker = reprise_worker::stock::register(Worker::builder())
            .scheduler(self.address.clone())
            .name(name.clone())
            .nthreads(self.settings.threads_per_worker)
            .build()
            .map_err(|e| Error::Cluster(e.to_string()))?;
        let handle = worker.spawn();
        handle.ready().await.map_err(|e| Error::Cluster(format!("worker {name} did not start: {e}")))?;
        self.workers.push(handle);
        Ok(name)
    }

    /// Until every worker of ours is known to the scheduler.
    async fn wait_for_workers(&self) -> Result<()> {
        let client = self.client().await?;
        let wanted = self.worker_names();
        let waited = tokio::time::timeout(REGISTER_TIMEOUT, async {
            loop {
                let cores = client.ncores().await?;
                if wanted.iter().all(|w| cores.keys().any(|k| k.as_str() == w)) {
                    return Ok::<(), Error>(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let _ = client.close().await;
        match waited {
            Ok(result) => result,
            Err(_) => Err(Error::Cluster(format!("workers {wanted:?} did not register within {REGISTER_TIMEOUT:?}"))),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Start an embedded scheduler; a restart retries binding for a moment,
/// while the killed scheduler's listener closes.
async fn start_embedded(config: SchedulerConfig) -> Result<SchedulerHandle> {
    let deadline = Instant::now() + REBIND_TIMEOUT;
    loop {
        match service::start(config.clone()).await {
            Ok(handle) => return Ok(handle),
            Err(ServiceError::Bind { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(Error::Cluster(e.to_string())),
        }
    }
}

/// A scheduler in a child process.
struct ChildScheduler {
    child: tokio::process::Child,
    pid: Option<u32>,
    /// The last lines it wrote to stderr, for error messages.
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl ChildScheduler {
    /// Start `program scheduler` on `listen`; wait until it prints its
    /// address. Returns it, the address, and its line about what it recovered.
    async fn start(
        program: &std::path::Path,
        listen: &str,
        data_dir: &std::path::Path,
        s: &LocalClusterBuilder,
    ) -> Result<(ChildScheduler, String, Option<String>)> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg("scheduler").arg("--listen").arg(listen).arg("--data-dir").arg(data_dir);
        cmd.arg("--durability").arg(match s.durability {
            Durability::Power => "power",
            Durability::Process => "process",
        });
        let seconds = |d: Duration| format!("{}", d.as_secs_f64());
        if let Some(t) = s.heartbeat_timeout {
            cmd.arg("--heartbeat-timeout").arg(seconds(t));
        }
        if let Some(t) = s.lease_timeout {
            cmd.arg("--lease-timeout").arg(seconds(t));
        }
        if let Some(t) = s.reconnect_grace {
            cmd.arg("--grace").arg(seconds(t));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child =
            cmd.spawn().map_err(|e| Error::Cluster(format!("cannot start the scheduler {}: {e}", program.display())))?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let kept = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                    if kept.len() == STDERR_LINES_KEPT {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            });
        }
        let out = child.stdout.take().ok_or_else(|| Error::Cluster("the scheduler's stdout is not piped".into()))?;
        let pid = child.id();
        let mut me = ChildScheduler { child, pid, stderr };
        let mut lines = BufReader::new(out).lines();
        let mut recovery = None;
        let waited = tokio::time::timeout(SCHEDULER_START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("recovered ") {
                    recovery = Some(line);
                } else if let Some((_, address)) = line.rsplit_once("listening on ") {
                    return Some(address.trim().to_owned());
                }
            }
            None
        })
        .await;
        let address = match waited {
            Ok(Some(address)) => address,
            Ok(None) => {
                let _ = me.child.wait().await;
                return Err(Error::Cluster(format!("the scheduler process exited: {}", me.stderr_tail())));
            }
            Err(_) => return Err(Error::Cluster(format!("the scheduler did not start within {SCHEDULER_START_TIMEOUT:?}"))),
        };
        // Keep reading, so that the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok((me, address, recovery))
    }

    fn stderr_tail(&self) -> String {
        let kept = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// `SIGKILL`, then reap it.
    async fn kill(mut self) -> Result<()> {
        self.child.kill().await.map_err(|e| Error::Cluster(format!("cannot kill the scheduler process: {e}")))
    }

    /// Stop it at the end of the cluster's life. `SIGKILL` is enough: every
    /// batch is flushed before anything it decided is revealed, which is
    /// what lets the scheduler survive `kill -9` in the first place.
    async fn stop(self) -> Result<()> {
        self.kill().await
    }
}
