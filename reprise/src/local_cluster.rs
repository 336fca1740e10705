//! An embedded cluster: a scheduler with its own temporary data dir and N
//! stock workers, all in this process.
use std::path::PathBuf;
use std::time::Duration;

use reprise_client::{Client, Error, Result};
use reprise_log::Durability;
use reprise_scheduler::service::{self, SchedulerConfig, SchedulerHandle};
use reprise_worker::{Worker, WorkerHandle};

/// How long `start` and `add_worker` wait for workers to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a [`LocalCluster`]; see [`LocalCluster::builder`].
#[derive(Clone, Debug)]
pub struct LocalClusterBuilder {
    n_workers: usize,
    threads_per_worker: usize,
    data_dir: Option<PathBuf>,
    listen: String,
    durability: Durability,
    heartbeat_timeout: Option<Duration>,
}

/// A scheduler and stock workers in this process.
///
/// ```no_run
/// # async fn demo() -> reprise::Result<()> {
/// let cluster = reprise::LocalCluster::builder().workers(2).threads_per_worker(1).start().await?;
/// let client = cluster.client().await?;
/// cluster.stop_worker("worker-1").await?;
/// let name = cluster.add_worker().await?;
/// # Ok(()) }
/// ```
pub struct LocalCluster {
    scheduler: Option<SchedulerHandle>,
    address: String,
    workers: Vec<WorkerHandle>,
    next_worker: usize,
    threads_per_worker: usize,
    data_dir: PathBuf,
    _temp_dir: Option<tempfile::TempDir>,
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
        let mut config = SchedulerConfig::new(self.listen.clone(), data_dir.clone());
        config.log.durability = self.durability;
        if let Some(timeout) = self.heartbeat_timeout {
            config.core.heartbeat_timeout_ms = timeout.as_millis() as u64;
        }
        let scheduler = service::start(config).await.map_err(|e| Error::Cluster(e.to_string()))?;
        let address = scheduler.address().to_owned();
        let mut cluster = LocalCluster {
            scheduler: Some(scheduler),
            address,
            workers: Vec::new(),
            next_worker: 0,
            threads_per_worker: self.threads_per_worker,
            data_dir,
            _temp_dir: temp_dir,
        };
        for _ in 0..self.n_workers {
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

    /// Stop the workers, then the scheduler.
    pub async fn close(mut self) -> Result<()> {
        for worker in self.workers.drain(..) {
            let _ = worker.shutdown().await;
        }
        if let Some(scheduler) = self.scheduler.take() {
            scheduler.stop().await.map_err(|e| Error::Cluster(e.to_string()))?;
        }
        Ok(())
    }

    async fn spawn_worker(&mut self) -> Result<String> {
        let name = format!("worker-{}", self.next_worker);
        self.next_worker += 1;
        let worker = reprise_worker::stock::register(Worker::builder())
            .scheduler(self.address.clone())
            .name(name.clone())
            .nthreads(self.threads_per_worker)
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
