//! `Client`: the handle on one session with a scheduler.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reprise_proto::{ClientId, InfoReply, InfoRequest, Key, ScatteredItem, SchedulerInfo, TaskSpec, WorkerId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;

use crate::error::{Error, Result};
use crate::fetch::{self, Wanted};
use crate::future::{decode_result, outcome_error, Future};
use crate::keys::{encode_args, pure_key, scatter_key};
use crate::session::{Session, Timing};
use crate::shared::{ClientInner, Config, Shared};
use crate::status::KeyStatus;
use crate::task::TaskBuilder;

/// The scheduler address used when none is given.
pub const DEFAULT_ADDRESS: &str = "tcp://127.0.0.1:8786";
/// How long `connect` and requests to the scheduler wait by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client keeps trying to reach a lost scheduler by default.
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(300);
/// The environment variable read for the auth token when none is set.
pub const AUTH_TOKEN_ENV: &str = "REPRISE_AUTH_TOKEN";
/// The longest encoded argument list one task may carry; larger values
/// belong on a worker (`scatter`) and are passed as futures.
pub const ARGS_BYTES_MAX: usize = reprise_proto::FRAME_BYTES_MAX / 4;
/// A ZeroMQ identity is at most 255 bytes; `c:` and the random suffix take 15.
const NAME_BYTES_MAX: usize = 200;

/// A connection to a Reprise scheduler. Cheap to clone; every clone and every
/// future share one session. The session ends when the last of them is
/// dropped, or at [`Client::close`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

/// Options for [`Client`]; see [`Client::builder`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    address: String,
    name: String,
    token: Option<String>,
    timeout: Duration,
    reconnect_timeout: Duration,
    timing: Timing,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            address: DEFAULT_ADDRESS.to_owned(),
            name: "client".to_owned(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            reconnect_timeout: DEFAULT_RECONNECT_TIMEOUT,
            timing: Timing::default(),
        }
    }
}

impl ClientBuilder {
    /// The scheduler's address, e.g. `tcp://127.0.0.1:8786` or `ipc:///tmp/s`.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// This client's name; its id is the name plus a random suffix.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The scheduler's shared token (default: `$REPRISE_AUTH_TOKEN`, if set).
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How long `connect` and each request to the scheduler may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long to keep trying to reach a lost scheduler before every
    /// waiting call fails with `Error::ConnectionLost` (default 5 min).
    pub fn reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.reconnect_timeout = timeout;
        self
    }

    /// The heartbeat interval, and the silence after which the scheduler is
    /// taken for gone (defaults 1 s and 5 s).
    pub fn heartbeat(mut self, interval: Duration, silence: Duration) -> Self {
        self.timing.heartbeat_ms = millis(interval);
        self.timing.silence_ms = millis(silence);
        self
    }

    /// Connect and say hello. Fails with `Error::Refused` if the scheduler
    /// refuses (bad token, other protocol version) and `Error::Timeout` if it
    /// does not answer within the timeout.
    pub async fn connect(self) -> Result<Client> {
        if self.address.is_empty() {
            return Err(Error::Config("the scheduler address is empty".into()));
        }
        if self.timing.heartbeat_ms == 0 || self.timing.silence_ms <= self.timing.heartbeat_ms {
            return Err(Error::Config("the heartbeat interval must be positive and shorter than the silence bound".into()));
        }
        if self.name.is_empty() || self.name.len() > NAME_BYTES_MAX {
            return Err(Error::Config(format!("the client name must be 1 to {NAME_BYTES_MAX} bytes")));
        }
        let token = self.token.or_else(|| std::env::var(AUTH_TOKEN_ENV).ok().filter(|t| !t.is_empty()));
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let client = ClientId(format!("{}-{}", self.name, &suffix[..12]));
        let session = Session::new(client.clone(), self.name, token, self.timing);
        let config = Config {
            address: self.address,
            client,
            timeout: self.timeout,
            reconnect_timeout: self.reconnect_timeout,
        };
        let (welcome_tx, welcome_rx) = tokio::sync::oneshot::channel();
        let shared = Arc::new(Shared::new(config, session, welcome_tx));
        let io = tokio::spawn(crate::connection::run(shared.clone()));
        let inner = Arc::new(ClientInner { shared: shared.clone(), io: Mutex::new(Some(io)) });
        // On any error `inner` drops here, which ends the connection task.
        match tokio::time::timeout(self.timeout, welcome_rx).await {
            Ok(Ok(Ok(()))) => Ok(Client { inner }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(shared.terminal().unwrap_or(Error::ConnectionLost)),
            Err(_) => Err(Error::Timeout),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Client {
    /// Connect to the scheduler at `address` with default options.
    pub async fn connect(address: impl Into<String>) -> Result<Client> {
        Client::builder().address(address).connect().await
    }

    /// Options: address, name, auth token, timeouts.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// This client's id (its name and a random suffix), kept across reconnects.
    pub fn id(&self) -> &str {
        self.shared().config.client.as_str()
    }

    /// The scheduler's address.
    pub fn address(&self) -> &str {
        &self.shared().config.address
    }

    /// Submit `func(args…)`; `args` is a tuple (or any sequence), and may
    /// hold futures, also nested. Returns at once; the request is sent in
    /// the background and resent until the scheduler has it.
    pub fn submit<T, A: Serialize>(&self, func: impl AsRef<str>, args: A) -> Result<Future<T>> {
        self.task(func).args(args).submit()
    }

    /// Submit `func(item)` for each item (each item is the one argument).
    pub fn map<T, I>(&self, func: impl AsRef<str>, items: I) -> Result<Vec<Future<T>>>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let func = func.as_ref();
        let specs = items
            .into_iter()
            .map(|item| {
                let args = encode_args(&(item,))?;
                check_args_size(func, &args.bytes)?;
                Ok(TaskSpec::new(pure_key(func, &args.bytes), func, args.bytes, args.deps))
            })
            .collect::<Result<Vec<_>>>()?;
        self.register(specs)
    }

    /// A task with options (key, purity, priority, retries, restrictions).
    pub fn task(&self, func: impl AsRef<str>) -> TaskBuilder {
        TaskBuilder::new(self.clone(), func.as_ref())
    }

    /// Wait for every future and return the results in order; the first
    /// failure (in order) is the error. Data is fetched from the workers
    /// that hold it, one request per worker.
    pub async fn gather<T: DeserializeOwned>(&self, futs: &[Future<T>]) -> Result<Vec<T>> {
        let mut statuses = Vec::with_capacity(futs.len());
        let mut wanted = Vec::new();
        let mut seen = BTreeSet::new();
        for f in futs {
            let status = f.wait_done().await?;
            match &status {
                KeyStatus::Finished { inline: Some(_), .. } => {}
                KeyStatus::Finished { holders, .. } => {
                    if seen.insert(f.key_ref().clone()) {
                        wanted.push(Wanted { key: f.key_ref().clone(), holders: holders.clone() });
                    }
                }
                _ => return Err(outcome_error(self.shared(), f.key_ref(), status)),
            }
            statuses.push(status);
        }
        let fetched = fetch::fetch_all(self.shared(), wanted).await?;
        futs.iter()
            .zip(statuses)
            .map(|(f, status)| match status {
                KeyStatus::Finished { inline: Some(bytes), .. } => decode_result(f.key_ref(), &bytes),
                _ => match fetched.get(f.key_ref()) {
                    Some(bytes) => decode_result(f.key_ref(), bytes),
                    None => Err(Error::Fetch { key: f.key().to_owned(), reason: "not returned".into() }),
                },
            })
            .collect()
    }

    /// Put `value` on a worker and return a future for it.
    pub async fn scatter<T: Serialize>(&self, value: T) -> Result<Future<T>> {
        let mut futs = self.scatter_many([value]).await?;
        futs.pop().ok_or_else(|| Error::Protocol("scatter returned nothing".into()))
    }

    /// Put each value on a worker (round-robin over the connected workers)
    /// and return a future per value, once the scheduler has registered them.
    /// Equal values share a key. Waits up to the client timeout for a worker
    /// to connect.
    pub async fn scatter_many<T: Serialize>(&self, values: impl IntoIterator<Item = T>) -> Result<Vec<Future<T>>> {
        let encoded = values
            .into_iter()
            .map(|v| {
                let bytes = reprise_proto::encode(&v)?;
                Ok((scatter_key(&bytes), bytes))
            })
            .collect::<Result<Vec<_>>>()?;
        let keys: Vec<Key> = encoded.iter().map(|(k, _)| k.clone()).collect();
        // Keys already live only gain a reference: counted now, under the
        // lock, so that no concurrent drop can forget them in between.
        let fresh: Vec<(Key, Vec<u8>)> = self.shared().with_session(|s, _| {
            let mut seen = BTreeSet::new();
            encoded.into_iter().filter(|(k, _)| !s.add_ref(k) && seen.insert(k.clone())).collect()
        })?;
        let fresh_keys: BTreeSet<Key> = fresh.iter().map(|(k, _)| k.clone()).collect();
        let placed = match self.place(fresh).await {
            Ok(p) => p,
            Err(e) => {
                self.release_counted(keys.iter().filter(|k| !fresh_keys.contains(*k)));
                return Err(e);
            }
        };
        self.shared().with_session_always(|s, _| {
            for (worker, address, items) in placed {
                s.scattered(&worker, &address, items);
            }
            let mut first = BTreeSet::new();
            for k in keys.iter().filter(|k| fresh_keys.contains(*k) && !first.insert((*k).clone())) {
                s.add_ref(k);
            }
        });
        let futs: Vec<Future<T>> = keys.into_iter().map(|k| Future::from_counted(self.inner.clone(), k)).collect();
        self.await_acks(&fresh_keys).await?;
        Ok(futs)
    }

    /// Store fresh values on workers round-robin: `(worker, address, items)`.
    async fn place(&self, fresh: Vec<(Key, Vec<u8>)>) -> Result<Vec<(WorkerId, String, Vec<ScatteredItem>)>> {
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        let workers = fetch::workers(self.shared()).await?;
        let start = self.shared().scatter_counter.fetch_add(fresh.len() as u64, Ordering::Relaxed) as usize;
        let mut groups: BTreeMap<usize, Vec<(Key, Vec<u8>)>> = BTreeMap::new();
        for (i, item) in fresh.into_iter().enumerate() {
            groups.entry((start + i) % workers.len()).or_default().push(item);
        }
        let puts = groups.into_iter().map(|(w, items)| {
            let worker = &workers[w];
            let registered: Vec<ScatteredItem> = items
                .iter()
                .map(|(key, bytes)| ScatteredItem {
                    key: key.clone(),
                    nbytes: bytes.len() as u64,
                    inline: (bytes.len() <= reprise_proto::INLINE_BYTES_MAX).then(|| bytes.clone()),
                })
                .collect();
            let payload = items.into_iter().map(|(k, v)| (k, ByteBuf::from(v))).collect();
            async move {
                fetch::put(self.shared(), worker, payload).await?;
                Ok((worker.id.clone(), worker.address.clone(), registered))
            }
        });
        futures::future::join_all(puts).await.into_iter().collect()
    }

    /// Wait until the scheduler has acknowledged these keys (bounded by the timeout).
    async fn await_acks(&self, keys: &BTreeSet<Key>) -> Result<()> {
        let waiters: Vec<_> = keys.iter().filter_map(|k| self.shared().ack_waiter(k)).collect();
        let all = futures::future::join_all(waiters);
        match tokio::time::timeout(self.shared().config.timeout, all).await {
            Err(_) => Err(Error::Timeout),
            Ok(acks) if acks.iter().any(std::result::Result::is_err) => Err(self.shared().terminal().unwrap_or(Error::Closed)),
            Ok(_) => Ok(()),
        }
    }

    /// Drop references counted for futures that will not be made.
    fn release_counted<'a>(&self, keys: impl Iterator<Item = &'a Key>) {
        self.shared().with_session_always(|s, now| keys.for_each(|k| s.release_ref(k, now)));
    }

    /// Cancel these futures: they report `Cancelled` at once, and the
    /// scheduler stops each task that no other client wants.
    pub async fn cancel<T>(&self, futs: &[&Future<T>]) -> Result<()> {
        let keys: Vec<Key> = futs.iter().map(|f| f.key_ref().clone()).collect();
        self.shared().with_session(|s, now| s.cancel(&keys, now))
    }

    /// Which workers hold each of these keys (keys the scheduler does not
    /// know are listed with no workers).
    pub async fn who_has(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Result<BTreeMap<String, Vec<WorkerId>>> {
        let keys = keys.into_iter().map(|k| Key::from(k.as_ref())).collect();
        match self.shared().info(InfoRequest::WhoHas { keys }).await? {
            InfoReply::WhoHas(map) => Ok(map.into_iter().map(|(k, w)| (k.0, w)).collect()),
            other => Err(unexpected("who_has", &other)),
        }
    }

    /// The keys each connected worker holds (idle workers with none).
    pub async fn has_what(&self) -> Result<BTreeMap<WorkerId, Vec<String>>> {
        match self.shared().info(InfoRequest::HasWhat).await? {
            InfoReply::HasWhat(map) => Ok(map.into_iter().map(|(w, ks)| (w, ks.into_iter().map(|k| k.0).collect())).collect()),
            other => Err(unexpected("has_what", &other)),
        }
    }

    /// The number of threads of each connected worker.
    pub async fn ncores(&self) -> Result<BTreeMap<WorkerId, u32>> {
        match self.shared().info(InfoRequest::Ncores).await? {
            InfoReply::Ncores(map) => Ok(map),
            other => Err(unexpected("ncores", &other)),
        }
    }

    /// The scheduler's workers, clients and task counts.
    pub async fn scheduler_info(&self) -> Result<SchedulerInfo> {
        match self.shared().info(InfoRequest::SchedulerInfo).await? {
            InfoReply::SchedulerInfo(info) => Ok(info),
            other => Err(unexpected("scheduler_info", &other)),
        }
    }

    /// End the session: the scheduler releases this client's keys. Later
    /// calls on this client and its futures give `Error::Closed`.
    pub async fn close(&self) -> Result<()> {
        self.shared().shutdown(Error::Closed);
        let io = self.inner.io.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(io) = io {
            // The goodbye is one send; do not hang on a scheduler that is gone.
            let _ = tokio::time::timeout(Duration::from_secs(2), io).await;
        }
        Ok(())
    }

    /// Futures for `specs`, submitted under one lock (one batch).
    pub(crate) fn register<T>(&self, specs: Vec<TaskSpec>) -> Result<Vec<Future<T>>> {
        let keys: Vec<Key> = specs.iter().map(|s| s.key.clone()).collect();
        self.shared().with_session(|s, _| specs.into_iter().for_each(|spec| {
            s.submit(spec);
        }))?;
        Ok(keys.into_iter().map(|k| Future::from_counted(self.inner.clone(), k)).collect())
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// A handle on `key`, for which the session already counted one reference.
    pub(crate) fn adopt_counted<T>(&self, key: Key) -> Future<T> {
        Future::from_counted(self.inner.clone(), key)
    }

    pub(crate) fn client_id(&self) -> &ClientId {
        &self.shared().config.client
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("id", &self.id()).field("address", &self.address()).finish()
    }
}

/// Refuse argument lists too large for a frame, with what to do instead.
pub(crate) fn check_args_size(func: &str, args: &[u8]) -> Result<()> {
    if args.len() > ARGS_BYTES_MAX {
        return Err(Error::Codec(format!(
            "the arguments of {func} are {} bytes, over the {ARGS_BYTES_MAX} byte limit: scatter large values and pass their futures",
            args.len()
        )));
    }
    Ok(())
}

fn unexpected(what: &str, reply: &InfoReply) -> Error {
    Error::Protocol(format!("asked {what}, got {reply:?}"))
}
