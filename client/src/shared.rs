//! The state a client's handles and its connection task share: the session
//! core behind one mutex, and what wakes the waiters on it.
//!
//! The mutex is only ever held for a few plain calls, never across an
//! `.await`, and user callbacks run after it is released (a callback may
//! drop a `Future`, which takes the lock again).
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use reprise_proto::{ClientId, InfoReply, InfoRequest, Key, PrimitiveOp, PrimitiveResult, ReplyValue, RequestId};
use tokio::sync::{oneshot, watch, Notify};

use crate::error::{Error, Result};
use crate::peer::PeerPool;
use crate::session::{Output, Session};
use crate::status::{FutureStatus, KeyStatus};

/// A done-callback registered on a future.
pub(crate) type Callback = Box<dyn FnOnce(FutureStatus) + Send + 'static>;

/// A client's settings, fixed at connect time.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub address: String,
    pub client: ClientId,
    pub timeout: Duration,
    pub reconnect_timeout: Duration,
}

impl Config {
    /// The DEALER identity the scheduler routes by.
    pub fn identity(&self) -> String {
        format!("c:{}", self.client)
    }
}

/// What the connection task learns from a session call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LinkEvent {
    Welcome,
    Refused(String),
    Lost,
}

/// Waiters and watchers of one live key.
struct KeyWatch {
    tx: watch::Sender<KeyStatus>,
    callbacks: Vec<Callback>,
}

/// Everything behind the mutex.
struct Core {
    session: Session,
    watches: BTreeMap<Key, KeyWatch>,
    infos: BTreeMap<RequestId, oneshot::Sender<InfoReply>>,
    prims: BTreeMap<RequestId, oneshot::Sender<PrimitiveResult>>,
    acks: BTreeMap<Key, Vec<oneshot::Sender<()>>>,
    welcome: Option<oneshot::Sender<Result<()>>>,
}

/// What must happen once the lock is released.
#[derive(Default)]
struct AfterUnlock {
    callbacks: Vec<(Callback, FutureStatus)>,
    link: Vec<LinkEvent>,
    /// Watches of forgotten keys: their unrun callbacks may own futures,
    /// whose drop takes the lock, so they are dropped after it.
    forgotten: Vec<KeyWatch>,
}

pub(crate) struct Shared {
    pub config: Config,
    core: Mutex<Core>,
    /// Wakes the connection task: there is something to send, or to stop.
    pub wake_io: Notify,
    /// `Some` once the client is closed or has failed for good.
    terminal: watch::Sender<Option<Error>>,
    start: Instant,
    pub peers: PeerPool,
    /// Numbers `pure(false)` keys.
    pub unique_counter: AtomicU64,
    /// Spreads scatters over workers across calls.
    pub scatter_counter: AtomicU64,
}

impl Shared {
    pub fn new(config: Config, session: Session, welcome: oneshot::Sender<Result<()>>) -> Shared {
        let peers = PeerPool::new(config.timeout);
        Shared {
            config,
            core: Mutex::new(Core {
                session,
                watches: BTreeMap::new(),
                infos: BTreeMap::new(),
                prims: BTreeMap::new(),
                acks: BTreeMap::new(),
                welcome: Some(welcome),
            }),
            wake_io: Notify::new(),
            terminal: watch::channel(None).0,
            start: Instant::now(),
            peers,
            unique_counter: AtomicU64::new(0),
            scatter_counter: AtomicU64::new(0),
        }
    }

    /// Milliseconds since this client started: the session's clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant a session deadline (in `now_ms` terms) falls on.
    pub fn instant_of(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// Why the client can no longer be used, if it cannot.
    pub fn terminal(&self) -> Option<Error> {
        self.terminal.borrow().clone()
    }

    pub fn terminal_rx(&self) -> watch::Receiver<Option<Error>> {
        self.terminal.subscribe()
    }

    /// Run a user-side session call, then act on what it produced. Fails
    /// with the terminal error once the client is closed or failed.
    pub fn with_session<R>(&self, f: impl FnOnce(&mut Session, u64) -> R) -> Result<R> {
        if let Some(e) = self.terminal() {
            return Err(e);
        }
        Ok(self.call(f).0)
    }

    /// Like [`Shared::with_session`], also on a closed client (for drops and
    /// clones, which must keep counting).
    pub fn with_session_always<R>(&self, f: impl FnOnce(&mut Session, u64) -> R) -> R {
        self.call(f).0
    }

    /// A network-side session call; returns the connection events it caused.
    pub fn link_call(&self, f: impl FnOnce(&mut Session, u64)) -> Vec<LinkEvent> {
        self.call(f).1
    }

    fn call<R>(&self, f: impl FnOnce(&mut Session, u64) -> R) -> (R, Vec<LinkEvent>) {
        self.call_core(|core, now_ms| f(&mut core.session, now_ms))
    }

    fn call_core<R>(&self, f: impl FnOnce(&mut Core, u64) -> R) -> (R, Vec<LinkEvent>) {
        let now_ms = self.now_ms();
        let (r, after) = {
            let mut core = self.lock();
            let r = f(&mut core, now_ms);
            let after = core.dispatch(now_ms);
            (r, after)
        };
        drop(after.forgotten);
        for (callback, status) in after.callbacks {
            callback(status);
        }
        self.wake_io.notify_one();
        (r, after.link)
    }

    /// The next batch to send, if any.
    pub fn poll_transmit(&self) -> Option<Vec<reprise_proto::ClientMsg>> {
        let now_ms = self.now_ms();
        self.lock().session.poll_transmit(now_ms)
    }

    /// When the session next needs `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lock().session.poll_timeout().map(|ms| self.instant_of(ms))
    }

    pub fn session_closed(&self) -> bool {
        self.lock().session.is_closed()
    }

    /// A watch of a live key's status (created on first use).
    pub fn watch(&self, key: &Key) -> watch::Receiver<KeyStatus> {
        let mut core = self.lock();
        let status = core.session.status(key).cloned().unwrap_or(KeyStatus::Pending);
        core.watches.entry(key.clone()).or_insert_with(|| KeyWatch { tx: watch::channel(status).0, callbacks: Vec::new() }).tx.subscribe()
    }

    /// Run `callback` when the key is done, at once if it already is.
    pub fn add_callback(&self, key: &Key, callback: Callback) {
        let ready = {
            let mut core = self.lock();
            let status = core.session.status(key).map(KeyStatus::future_status);
            match (status, core.watches.get_mut(key)) {
                (Some(FutureStatus::Pending), Some(w)) => {
                    w.callbacks.push(callback);
                    None
                }
                (status, _) => Some((callback, status.unwrap_or(FutureStatus::Cancelled))),
            }
        };
        if let Some((callback, status)) = ready {
            callback(status);
        }
    }

    /// Ask the scheduler; wait (bounded by the client timeout) for the answer.
    pub async fn info(&self, what: InfoRequest) -> Result<InfoReply> {
        if let Some(e) = self.terminal() {
            return Err(e);
        }
        let (tx, rx) = oneshot::channel();
        // Asked and registered under one lock, so the reply cannot come first.
        let req = {
            let mut core = self.lock();
            let req = core.session.info(what);
            core.infos.insert(req, tx);
            req
        };
        self.wake_io.notify_one();
        let mut term = self.terminal_rx();
        let answer = tokio::select! {
            r = tokio::time::timeout(self.config.timeout, rx) => r,
            _ = term.wait_for(Option::is_some) => return Err(self.terminal().unwrap_or(Error::Closed)),
        };
        match answer {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(self.terminal().unwrap_or(Error::Closed)),
            Err(_) => {
                self.lock().infos.remove(&req);
                self.with_session_always(|s, _| s.forget_info(req));
                Err(Error::Timeout)
            }
        }
    }

    /// Ask a primitive and wait for the answer: for ever when `bound` is
    /// `None`, else at most `bound` (then `Error::Timeout`). If the caller
    /// stops waiting (a timeout, or its future is dropped), the request is
    /// abandoned: the scheduler drops its wait or gives back its lease.
    /// Futures in the answer hold one counted reference each, which the
    /// caller must turn into `Future` handles at once.
    /// With `abandon` false (a release), a caller that stops waiting only
    /// stops listening: the request is still resent until answered.
    pub async fn primitive(&self, op: PrimitiveOp, bound: Option<Duration>, abandon: bool) -> Result<PrimitiveResult> {
        self.primitive_with_id(op, bound, abandon).await.map(|(_, result)| result)
    }

    /// [`Shared::primitive`], also returning the request's id (which names
    /// the lease an acquire takes).
    pub async fn primitive_with_id(
        &self,
        op: PrimitiveOp,
        bound: Option<Duration>,
        abandon: bool,
    ) -> Result<(RequestId, PrimitiveResult)> {
        if let Some(e) = self.terminal() {
            return Err(e);
        }
        let (tx, rx) = oneshot::channel();
        // Asked and registered under one lock, so the answer cannot come first.
        let req = {
            let mut core = self.lock();
            let req = core.session.primitive(op);
            core.prims.insert(req, tx);
            req
        };
        self.wake_io.notify_one();
        let mut pending = Pending { shared: self, req, rx: Some(rx), abandon };
        let mut term = self.terminal_rx();
        let out_of_time = async {
            match bound {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        let Some(rx) = pending.rx.as_mut() else { return Err(Error::Closed) };
        tokio::select! {
            answer = rx => match answer {
                Ok(result) => {
                    pending.rx = None;
                    Ok((req, result))
                }
                Err(_) => Err(self.terminal().unwrap_or(Error::Closed)),
            },
            _ = term.wait_for(Option::is_some) => Err(self.terminal().unwrap_or(Error::Closed)),
            _ = out_of_time => Err(Error::Timeout),
        }
    }

    /// Send a primitive request whose answer nobody waits for (a guard's
    /// release on drop); it is still resent after a reconnect until answered.
    pub fn fire_primitive(&self, op: PrimitiveOp) {
        self.with_session_always(|s, _| {
            s.primitive(op);
        });
    }

    /// The caller of `req` stopped waiting. Under one lock: no answer can
    /// reach `rx` once its sender is gone, so an answer already delivered
    /// is read here and its futures released.
    fn abandon_primitive(&self, req: RequestId, mut rx: oneshot::Receiver<PrimitiveResult>, abandon: bool) {
        self.call_core(|core, now| {
            core.prims.remove(&req);
            if let Ok(result) = rx.try_recv() {
                release_values(&mut core.session, &result, now);
            }
            if abandon {
                core.session.abandon(req);
            }
        });
    }

    /// A receiver that fires when the key's submission or scatter is acked
    /// (`None` when it already is, or the key is not live).
    pub fn ack_waiter(&self, key: &Key) -> Option<oneshot::Receiver<()>> {
        let mut core = self.lock();
        if core.session.is_acked(key) || core.session.refs(key) == 0 {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        core.acks.entry(key.clone()).or_default().push(tx);
        Some(rx)
    }

    /// The function a key runs, for error messages.
    pub fn func_of(&self, key: &str) -> String {
        let core = self.lock();
        core.session.func_of(&Key::from(key)).map_or_else(|| crate::keys::func_of_key(key), str::to_owned)
    }

    /// End the client for good: `Goodbye` if connected, every waiter woken
    /// with `error`. Later calls keep the first error.
    pub fn shutdown(&self, error: Error) {
        {
            let mut core = self.lock();
            core.session.goodbye();
            if let Some(w) = core.welcome.take() {
                let _ = w.send(Err(error.clone()));
            }
            // Dropping the senders wakes their waiters, who read the terminal error.
            core.infos.clear();
            core.prims.clear();
            core.acks.clear();
        }
        self.terminal.send_if_modified(|t| {
            if t.is_none() {
                *t = Some(error);
                true
            } else {
                false
            }
        });
        self.wake_io.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic elsewhere while holding the lock leaves plain data behind,
        // which stays consistent enough to keep going.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Core {
    /// Act on everything the session produced: wake watchers, resolve
    /// waiters, and return what must happen outside the lock.
    fn dispatch(&mut self, now_ms: u64) -> AfterUnlock {
        let mut after = AfterUnlock::default();
        loop {
            self.dispatch_outputs(&mut after);
            let Some((req, result)) = self.session.poll_primitive_reply() else { break };
            let unread = match self.prims.remove(&req) {
                Some(tx) => tx.send(result).err(),
                None => Some(result),
            };
            // Nobody will read it: the futures it handed out go again.
            if let Some(result) = unread {
                release_values(&mut self.session, &result, now_ms);
            }
        }
        after
    }

    fn dispatch_outputs(&mut self, after: &mut AfterUnlock) {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Welcome { .. } => {
                    if let Some(w) = self.welcome.take() {
                        let _ = w.send(Ok(()));
                    }
                    after.link.push(LinkEvent::Welcome);
                }
                Output::Refused { reason } => {
                    if let Some(w) = self.welcome.take() {
                        let _ = w.send(Err(Error::Refused(reason.clone())));
                    }
                    after.link.push(LinkEvent::Refused(reason));
                }
                Output::ConnectionLost => after.link.push(LinkEvent::Lost),
                Output::Status { key, status } => self.on_status(&key, status, after),
                Output::Acked { key } => {
                    for tx in self.acks.remove(&key).unwrap_or_default() {
                        let _ = tx.send(());
                    }
                }
                Output::Forgotten { key } => {
                    after.forgotten.extend(self.watches.remove(&key));
                    self.acks.remove(&key);
                }
                Output::Reply { req, body } => {
                    if let Some(tx) = self.infos.remove(&req) {
                        let _ = tx.send(body);
                    }
                }
                Output::SchedulerError { message } => tracing::warn!(%message, "the scheduler rejected a request"),
            }
        }
    }

    fn on_status(&mut self, key: &Key, status: KeyStatus, after: &mut AfterUnlock) {
        let Some(w) = self.watches.get_mut(key) else { return };
        let public = status.future_status();
        w.tx.send_replace(status);
        if public != FutureStatus::Pending {
            after.callbacks.extend(w.callbacks.drain(..).map(|c| (c, public)));
        }
    }
}

/// Release the local reference each future in `result` holds.
fn release_values(session: &mut Session, result: &PrimitiveResult, now_ms: u64) {
    if let PrimitiveResult::Values(values) = result {
        for v in values {
            if let ReplyValue::Future { key, .. } = v {
                session.release_ref(key, now_ms);
            }
        }
    }
}

/// A primitive request being waited for; dropped before its answer was
/// read, it abandons the request.
struct Pending<'a> {
    shared: &'a Shared,
    req: RequestId,
    /// `None` once the answer was read.
    rx: Option<oneshot::Receiver<PrimitiveResult>>,
    /// Withdraw the request at the scheduler too (else only stop listening).
    abandon: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            self.shared.abandon_primitive(self.req, rx, self.abandon);
        }
    }
}

/// Shared by the `Client` handles and the futures; its drop (the last
/// handle and future gone) ends the session.
pub(crate) struct ClientInner {
    pub shared: Arc<Shared>,
    pub io: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.shared.shutdown(Error::Closed);
    }
}
