use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::core::CoreConfig;
use crate::actor::{Actor, ActorType};
use crate::registry::{IntoContextTask, IntoTask, Registry};
use crate::worker::{Status, Worker};
use crate::{Error, Result};

/// The environment variable read for the auth token when none is given.
pub const AUTH_TOKEN_ENV: &str = "REPRISE_AUTH_TOKEN";

/// The longest worker name: the DEALER identity `w:<name>` must fit in 255 bytes.
const NAME_BYTES_MAX: usize = 253;

/// Configures a [`Worker`]: its scheduler, threads, name, peer socket and functions.
///
/// ```
/// use reprise_worker::Worker;
///
/// fn inc(x: i64) -> i64 { x + 1 }
/// fn div(x: f64, y: f64) -> Result<f64, String> {
///     if y == 0.0 { Err("division by zero".into()) } else { Ok(x / y) }
/// }
///
/// let worker = Worker::builder()
///     .scheduler("tcp://127.0.0.1:8786")
///     .nthreads(2)
///     .name("w1")
///     .task("inc", inc)
///     .task("div", div)
///     .task("add", |x: i64, y: i64| x + y)
///     .build()?;
/// assert_eq!(worker.name(), "w1");
/// # Ok::<(), reprise_worker::Error>(())
/// ```
#[derive(Debug)]
pub struct WorkerBuilder {
    scheduler: Option<String>,
    nthreads: Option<usize>,
    name: Option<String>,
    listen: String,
    auth_token: Option<String>,
    resources: Vec<(String, f64)>,
    heartbeat_interval: Duration,
    scheduler_timeout: Duration,
    reconnect_timeout: Duration,
    fetch_timeout: Duration,
    registry: Registry,
}

/// A built worker's settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) scheduler: String,
    pub(crate) nthreads: usize,
    pub(crate) name: String,
    pub(crate) listen: String,
    pub(crate) auth_token: Option<String>,
    pub(crate) resources: Vec<(String, f64)>,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) scheduler_timeout: Duration,
    pub(crate) reconnect_timeout: Duration,
    pub(crate) fetch_timeout: Duration,
}

impl Settings {
    /// The core's configuration, once the peer socket is bound at `address`.
    pub(crate) fn core_config(&self, address: &str, functions: Vec<String>) -> CoreConfig {
        let nthreads = u32::try_from(self.nthreads).unwrap_or(u32::MAX);
        let mut config = CoreConfig::new(self.name.as_str(), nthreads, address, functions);
        config.resources = self.resources.clone();
        config.token = self.auth_token.clone();
        config.heartbeat_interval = self.heartbeat_interval;
        config.scheduler_timeout = self.scheduler_timeout;
        config.reconnect_timeout = self.reconnect_timeout;
        config.fetch_timeout = self.fetch_timeout;
        config
    }
}

impl Default for WorkerBuilder {
    fn default() -> Self {
        WorkerBuilder {
            scheduler: None,
            nthreads: None,
            name: None,
            listen: "tcp://127.0.0.1:0".to_owned(),
            auth_token: None,
            resources: Vec::new(),
            heartbeat_interval: Duration::from_secs(1),
            scheduler_timeout: Duration::from_secs(5),
            reconnect_timeout: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(30),
            registry: Registry::default(),
        }
    }
}

impl WorkerBuilder {
    /// The scheduler's address, e.g. `"tcp://127.0.0.1:8786"` or `"ipc:///tmp/reprise.sock"`. Required.
    pub fn scheduler(mut self, address: impl Into<String>) -> Self {
        self.scheduler = Some(address.into());
        self
    }

    /// Task threads (default: the machine's available cores).
    pub fn nthreads(mut self, n: usize) -> Self {
        self.nthreads = Some(n);
        self
    }

    /// The worker's unique name (default: generated, e.g. `worker-4242-1-9f3a2c`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where the peer socket binds (default `"tcp://127.0.0.1:0"`: a free loopback
    /// port). The address actually bound is what the scheduler is told.
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = address.into();
        self
    }

    /// The cluster's shared token (default: the `REPRISE_AUTH_TOKEN` environment variable, if set).
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// An abstract resource this worker offers, e.g. `.resource("GPU", 1.0)`.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.resources.push((name.into(), amount));
        self
    }

    /// Register `f` under `name`: a function or closure of 0 to 8 arguments,
    /// each `DeserializeOwned`, returning a [`TaskReturn`](crate::TaskReturn)
    /// (any common serializable type, or `Result<T, E: Display>`). A later
    /// registration of the same name replaces the earlier one.
    pub fn task<Args, F: IntoTask<Args>>(mut self, name: impl Into<String>, f: F) -> Self {
        self.registry.insert(name.into(), f.into_task());
        self
    }

    /// Register `f` as `name`, a function that also gets the running task's
    /// [`TaskContext`](crate::TaskContext) (a client of the cluster, `secede`
    /// and `rejoin`, the task's key): `|ctx: &TaskContext, a1, …| -> R` with
    /// 0 to 8 arguments after the context, returning a value or a
    /// `reprise_client::Result<T>` (see [`ContextReturn`](crate::ContextReturn)),
    /// otherwise as for [`WorkerBuilder::task`]. A closure that uses `?` on the
    /// context's calls and ends in `Ok(..)` needs no written-out return type.
    pub fn task_with_context<Args, F: IntoContextTask<Args>>(mut self, name: impl Into<String>, f: F) -> Self {
        self.registry.insert(name.into(), f.into_context_task());
        self
    }

    /// Register the actor type `A` as `name`: clients create instances with
    /// `client.submit_actor(name, args)`. The worker advertises it as the
    /// function `actor:<name>` (names starting with `actor:` are reserved
    /// for actors).
    pub fn actor<A: Actor>(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        let actor = ActorType::of::<A>(&name);
        self.registry.insert_actor(name, actor);
        self
    }

    /// How often the worker sends a heartbeat (default 1 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Silence from the scheduler for this long means it is gone, and the
    /// worker reconnects with a fresh socket (default 5 s).
    pub fn scheduler_timeout(mut self, timeout: Duration) -> Self {
        self.scheduler_timeout = timeout;
        self
    }

    /// How long the worker keeps trying to reach a lost (or not yet started)
    /// scheduler before `run` fails (default 60 s).
    pub fn reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.reconnect_timeout = timeout;
        self
    }

    /// How long the worker keeps trying to fetch a task's input from its
    /// holders before the task fails with `LostDependency` (default 30 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Check the configuration and make the worker (nothing is bound or
    /// connected until it runs).
    pub fn build(self) -> Result<Worker> {
        let scheduler = self
            .scheduler
            .ok_or_else(|| Error::Config("no scheduler address: call .scheduler(\"tcp://host:port\")".into()))?;
        check_endpoint("scheduler address", &scheduler)?;
        check_endpoint("listen address", &self.listen)?;
        let nthreads = match self.nthreads {
            Some(0) => return Err(Error::Config("nthreads must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let name = self.name.unwrap_or_else(generated_name);
        if name.is_empty() || name.len() > NAME_BYTES_MAX {
            return Err(Error::Config(format!("a worker name must have 1 to {NAME_BYTES_MAX} bytes, got {:?}", name)));
        }
        for (what, d) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("scheduler_timeout", self.scheduler_timeout),
            ("reconnect_timeout", self.reconnect_timeout),
            ("fetch_timeout", self.fetch_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{what} must be longer than zero")));
            }
        }
        let auth_token = self.auth_token.or_else(|| std::env::var(AUTH_TOKEN_ENV).ok().filter(|t| !t.is_empty()));
        let settings = Settings {
            scheduler,
            nthreads,
            name,
            listen: self.listen,
            auth_token,
            resources: self.resources,
            heartbeat_interval: self.heartbeat_interval,
            scheduler_timeout: self.scheduler_timeout,
            reconnect_timeout: self.reconnect_timeout,
            fetch_timeout: self.fetch_timeout,
        };
        let (status, _) = watch::channel(Status::default());
        Ok(Worker { settings, registry: Arc::new(self.registry), status })
    }
}

fn check_endpoint(what: &str, address: &str) -> Result<()> {
    use zeromq::TryIntoEndpoint;
    TryIntoEndpoint::try_into(address)
        .map(|_| ())
        .map_err(|e| Error::Config(format!("bad {what} {address:?}: {e} (expected tcp://host:port or ipc:///path)")))
}

/// `worker-<pid>-<n>-<6 hex digits>`: unique within the process by the
/// counter, and across hosts with high probability by the random suffix.
fn generated_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded from the OS per process; hashing the counter
    // gives a random-looking suffix without another dependency.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(n);
    format!("worker-{}-{n}-{:06x}", std::process::id(), hasher.finish() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_without_scheduler_names_the_missing_setting() {
        let err = WorkerBuilder::default().build().unwrap_err();
        assert!(err.to_string().contains(".scheduler("), "{err}");
    }

    #[test]
    fn build_rejects_a_malformed_address_and_zero_threads() {
        let bad = WorkerBuilder::default().scheduler("localhost:8786").build();
        assert!(matches!(bad, Err(Error::Config(_))));
        let zero = WorkerBuilder::default().scheduler("tcp://127.0.0.1:1").nthreads(0).build();
        assert!(matches!(zero, Err(Error::Config(_))));
    }

    #[test]
    fn generated_names_are_unique() {
        let a = WorkerBuilder::default().scheduler("tcp://127.0.0.1:1").build().unwrap();
        let b = WorkerBuilder::default().scheduler("tcp://127.0.0.1:1").build().unwrap();
        assert_ne!(a.name(), b.name());
        assert!(a.name().starts_with("worker-"));
    }

    #[test]
    fn ipc_addresses_are_accepted() {
        let w = WorkerBuilder::default().scheduler("ipc:///tmp/reprise-s.sock").listen("ipc:///tmp/reprise-w.sock").build();
        assert!(w.is_ok());
    }
}
