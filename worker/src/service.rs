//! The async shell around [`WorkerCore`]: one `select!` loop that moves
//! bytes between the scheduler link, the peer socket, the fetch requests
//! and the task threads, reads the clock, and calls the core. It decides
//! nothing itself.
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reprise_proto::{Attempt, Key, PeerReply, PeerRequest, RequestId, WorkerId};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::actor_host::ActorHost;
use crate::builder::Settings;
use crate::context::Services;
use crate::core::{Effect, StopReason, WorkerCore};
use crate::executor::{ExecEvent, Executor, JobDone};
use crate::link::{self, Connected, Link, LinkEvent};
use crate::peer_client::PeerClient;
use crate::peer_server::{self, answer_from_thread, PeerIn, PeerOut, PeerServer};
use crate::registry::Registry;
use crate::worker::Status;
use crate::{Error, Result};

/// Link events waiting for the loop (the receive task waits when it is full,
/// which pushes back on the scheduler's socket).
const LINK_EVENTS_MAX: usize = 64;
/// Inputs of one kind handled before the loop looks at the others again.
const DRAIN_MAX: usize = 1024;
/// How long a stopping worker waits for its last reports to leave.
const STOP_FLUSH_GRACE: Duration = Duration::from_secs(1);
/// `Run` requests running at once; more are refused.
const RUNS_IN_FLIGHT_MAX: usize = 256;

/// The result of one fetch request.
struct FetchDone {
    address: String,
    keys: Vec<Key>,
    result: Result<Vec<(Key, Option<bytes::Bytes>)>, String>,
}

/// The loop's state besides the core.
struct Shell {
    settings: Settings,
    origin: Instant,
    core: WorkerCore,
    executor: Executor,
    exec_rx: mpsc::UnboundedReceiver<ExecEvent>,
    /// Seceded tasks waiting to rejoin the pool, woken on `Effect::Resume`.
    rejoins: BTreeMap<(Key, Attempt), oneshot::Sender<()>>,
    actors: Arc<ActorHost>,
    /// `Run` requests running now.
    runs_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    link: Option<Link>,
    generation: u64,
    connecting: Option<JoinHandle<Result<Connected, String>>>,
    link_tx: mpsc::Sender<LinkEvent>,
    link_rx: mpsc::Receiver<LinkEvent>,
    peers: Arc<PeerClient>,
    fetches: JoinSet<FetchDone>,
    /// What each fetch task asked, to fail it if the task itself fails.
    fetch_asks: HashMap<tokio::task::Id, (String, Vec<Key>)>,
    peer_server: PeerServer,
    status: watch::Sender<Status>,
}

/// Run a worker until the scheduler shuts it down, `shutdown` resolves
/// (graceful: `Goodbye`), or it fails.
pub(crate) async fn serve(
    settings: Settings,
    registry: Arc<Registry>,
    status: watch::Sender<Status>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    // Tasks owned by this future: dropping it (a kill) aborts them and drops their sockets.
    let mut background = JoinSet::new();
    let actors = Arc::new(ActorHost::default());
    let peer_server =
        match peer_server::bind(&settings.listen, &mut background, Arc::clone(&actors), settings.name.clone()).await {
            Ok(server) => server,
            Err(e) => {
                status.send_modify(|s| s.ended = Some(e.to_string()));
                return Err(e);
            }
        };
    status.send_modify(|s| s.address = Some(peer_server.address.clone()));
    tracing::info!(name = %settings.name, address = %peer_server.address, "worker listening for peers");

    let origin = Instant::now();
    let config = settings.core_config(&peer_server.address, registry.names());
    let (exec_tx, exec_rx) = mpsc::unbounded_channel();
    let services = Arc::new(Services::new(
        WorkerId::from(settings.name.as_str()),
        peer_server.address.clone(),
        settings.scheduler.clone(),
        settings.auth_token.clone(),
        tokio::runtime::Handle::current(),
    ));
    let executor = match Executor::start(settings.nthreads, registry, exec_tx, services) {
        Ok(executor) => executor,
        Err(e) => {
            status.send_modify(|s| s.ended = Some(e.to_string()));
            return Err(e);
        }
    };
    let (link_tx, link_rx) = mpsc::channel(LINK_EVENTS_MAX);
    let mut shell = Shell {
        core: WorkerCore::new(config, Duration::ZERO),
        settings,
        origin,
        executor,
        exec_rx,
        rejoins: BTreeMap::new(),
        actors,
        runs_in_flight: Arc::default(),
        link: None,
        generation: 0,
        connecting: None,
        link_tx,
        link_rx,
        peers: Arc::new(PeerClient::default()),
        fetches: JoinSet::new(),
        fetch_asks: HashMap::new(),
        peer_server,
        status,
    };
    let result = shell.run(shutdown).await;
    if let Some(connecting) = shell.connecting.take() {
        connecting.abort();
    }
    let ended = match &result {
        Ok(()) => "the worker shut down".to_owned(),
        Err(e) => e.to_string(),
    };
    shell.status.send_modify(|s| {
        s.registered = false;
        s.ended = Some(ended);
    });
    result
}

impl Shell {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn run(&mut self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        tokio::pin!(shutdown);
        let mut shutdown_asked = false;
        loop {
            if let Some(reason) = self.apply_effects() {
                return self.stop(reason).await;
            }
            self.flush_fast();
            self.publish_registered();
            // Never sooner than a millisecond from now, so that a deadline the
            // core cannot act on yet cannot spin the loop.
            let soonest = Instant::now() + Duration::from_millis(1);
            let deadline = self.core.next_deadline().map(|d| (self.origin + d).max(soonest));
            let outgoing = self.link.as_ref().filter(|_| self.core.has_messages()).map(|l| l.outgoing.clone());
            tokio::select! {
                () = &mut shutdown, if !shutdown_asked => {
                    shutdown_asked = true;
                    self.core.handle_shutdown_request();
                }
                Some(event) = self.exec_rx.recv() => self.on_exec_event(event),
                Some(event) = self.link_rx.recv() => self.on_link_event(event),
                connected = wait_opt(self.connecting.as_mut()) => {
                    self.connecting = None;
                    self.on_connected(connected)?;
                }
                Some(input) = self.peer_server.incoming.recv() => self.on_peer_input(input),
                Some(joined) = self.fetches.join_next_with_id(), if !self.fetches.is_empty() => self.on_fetch_joined(joined),
                Ok(permit) = reserve_opt(outgoing) => {
                    permit.send(self.core.poll_messages());
                }
                () = sleep_opt(deadline) => {
                    let now = self.now();
                    self.core.handle_tick(now);
                }
            }
        }
    }

    /// Tell the handle whether the scheduler has welcomed the current session.
    fn publish_registered(&self) {
        let registered = self.core.is_registered();
        self.status.send_if_modified(|s| std::mem::replace(&mut s.registered, registered) != registered);
    }

    /// Carry out the core's effects; `Some` when it says stop.
    fn apply_effects(&mut self) -> Option<StopReason> {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Connect => self.reconnect(),
                Effect::Execute(job) => self.executor.submit(job),
                Effect::Resume { key, attempt } => {
                    if let Some(resume) = self.rejoins.remove(&(key, attempt)) {
                        let _ = resume.send(());
                    }
                }
                Effect::Fetch { address, keys } => self.fetch(address, keys),
                Effect::Stop(reason) => return Some(reason),
            }
        }
        None
    }

    /// Send the core's reports at once if the link has room; otherwise the
    /// loop waits for room (and the reports keep batching in the core).
    fn flush_fast(&mut self) {
        let Some(link) = &self.link else { return };
        if !self.core.has_messages() {
            return;
        }
        if let Ok(permit) = link.outgoing.try_reserve() {
            permit.send(self.core.poll_messages());
        }
    }

    fn reconnect(&mut self) {
        if let Some(old) = self.link.take() {
            tracing::info!(scheduler = %self.settings.scheduler, "lost the scheduler; reconnecting with a fresh socket");
            drop(old);
        }
        if let Some(connecting) = self.connecting.take() {
            connecting.abort();
        }
        self.generation += 1;
        let address = self.settings.scheduler.clone();
        let identity = format!("w:{}", self.settings.name);
        self.connecting = Some(tokio::spawn(link::connect(address, identity)));
    }

    fn on_connected(
        &mut self,
        connected: std::result::Result<Result<Connected, String>, tokio::task::JoinError>,
    ) -> Result<()> {
        let connected = match connected {
            Ok(Ok(connected)) => connected,
            Ok(Err(message)) => return Err(Error::Config(message)),
            Err(e) => return Err(Error::Stopped(format!("the connecting task failed: {e}"))),
        };
        self.link = Some(Link::start(connected, self.generation, self.link_tx.clone()));
        let now = self.now();
        self.core.handle_connected(now);
        tracing::debug!(scheduler = %self.settings.scheduler, "connected; registering");
        Ok(())
    }

    fn on_link_event(&mut self, event: LinkEvent) {
        let mut next = Some(event);
        let mut n = 0;
        while let Some(event) = next.take() {
            let now = self.now();
            match event {
                LinkEvent::Messages { generation, msgs } if generation == self.generation => {
                    for msg in msgs {
                        self.core.handle_message(msg, now);
                    }
                }
                LinkEvent::Lost { generation } if generation == self.generation => self.core.handle_disconnected(now),
                _ => {} // from a link already replaced
            }
            n += 1;
            if n < DRAIN_MAX {
                next = self.link_rx.try_recv().ok();
            }
        }
        self.replace_detached_threads();
        self.drop_released_actors();
    }

    fn on_exec_event(&mut self, event: ExecEvent) {
        let mut next = Some(event);
        let mut n = 0;
        while let Some(event) = next.take() {
            match event {
                ExecEvent::Done(done) => self.on_done(done),
                ExecEvent::Seceded { key, attempt } => self.core.handle_seceded(key, attempt),
                ExecEvent::Rejoin { key, attempt, resume } => {
                    self.rejoins.insert((key.clone(), attempt), resume);
                    self.core.handle_rejoin(key, attempt);
                }
            }
            n += 1;
            if n < DRAIN_MAX {
                next = self.exec_rx.try_recv().ok();
            }
        }
    }

    /// A job ended; an actor it created is kept if the core kept its marker
    /// (a cancelled creation's instance is dropped).
    fn on_done(&mut self, done: JobDone) {
        let JobDone { key, attempt, outcome, actor } = done;
        self.core.handle_task_done(key.clone(), attempt, outcome);
        if let Some(instance) = actor {
            if self.core.data(&key).is_some() {
                if let Err(e) = self.actors.start(key.clone(), instance) {
                    tracing::error!(%key, "cannot keep the actor: {e}");
                }
            }
        }
    }

    /// Take the threads of tasks a restart abandoned out of the pool (new
    /// threads take their places): their slots are free already.
    fn replace_detached_threads(&mut self) {
        for id in self.core.poll_detached() {
            self.executor.detach(&id);
        }
    }

    /// Drop the actors whose marker the core no longer holds (freed, restarted).
    fn drop_released_actors(&mut self) {
        if !self.actors.is_empty() {
            let core = &self.core;
            self.actors.retain(|k| core.data(k).is_some());
        }
    }

    /// Data requests are the core's, answered together in order; runs
    /// (and actor calls, which the receive task dispatches itself) execute
    /// elsewhere and are answered once they ran.
    fn on_peer_input(&mut self, input: PeerIn) {
        let (identity, replies) = match input {
            PeerIn::Requests { identity, requests } => {
                let mut replies = Vec::new();
                for request in requests {
                    match request {
                        PeerRequest::Run { req, func, args } => self.run_call(&identity, req, func, args),
                        data => replies.push(self.core.handle_peer_request(data)),
                    }
                }
                (identity, replies)
            }
            PeerIn::Malformed { identity, message } => {
                tracing::debug!("malformed peer request: {message}");
                (identity, vec![PeerReply::Error { req: RequestId(0), message }])
            }
        };
        if !replies.is_empty() {
            self.send_peer(identity, replies);
        }
    }

    fn send_peer(&self, identity: Bytes, replies: Vec<PeerReply>) {
        if self.peer_server.outgoing.try_send(PeerOut { identity, replies }).is_err() {
            tracing::warn!("peer replies are backing up; one reply was dropped");
        }
    }

    /// Run the function once on a thread of its own (outside the task slots).
    fn run_call(&mut self, identity: &Bytes, req: RequestId, func: String, args: Vec<u8>) {
        use std::sync::atomic::Ordering;
        let in_flight = Arc::clone(&self.runs_in_flight);
        if in_flight.fetch_add(1, Ordering::AcqRel) >= RUNS_IN_FLIGHT_MAX {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            let message =
                format!("worker {} runs {RUNS_IN_FLIGHT_MAX} functions already; try again later", self.settings.name);
            self.send_peer(identity.clone(), vec![PeerReply::Error { req, message }]);
            return;
        }
        let reply = answer_from_thread(self.peer_server.outgoing.clone(), identity.clone(), req);
        let done_in_flight = Arc::clone(&in_flight);
        let started = self.executor.call_outside(func, args, move |outcome| {
            done_in_flight.fetch_sub(1, Ordering::AcqRel);
            reply(outcome);
        });
        if let Err(e) = started {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            let message = format!("worker {} cannot start a thread for the call: {e}", self.settings.name);
            self.send_peer(identity.clone(), vec![PeerReply::Error { req, message }]);
        }
    }

    fn fetch(&mut self, address: String, keys: Vec<Key>) {
        let peers = Arc::clone(&self.peers);
        let (ask_address, ask_keys) = (address.clone(), keys.clone());
        let handle = self.fetches.spawn(async move {
            let result = peers.get(&address, &keys).await;
            FetchDone { address, keys, result }
        });
        self.fetch_asks.insert(handle.id(), (ask_address, ask_keys));
    }

    fn on_fetch_joined(&mut self, joined: std::result::Result<(tokio::task::Id, FetchDone), tokio::task::JoinError>) {
        let now = self.now();
        let (address, keys, result) = match joined {
            Ok((id, done)) => {
                self.fetch_asks.remove(&id);
                (done.address, done.keys, done.result)
            }
            Err(e) => {
                let Some((address, keys)) = self.fetch_asks.remove(&e.id()) else { return };
                (address, keys, Err(format!("the fetch task failed: {e}")))
            }
        };
        match result {
            Ok(items) => self.core.handle_fetched(&address, items, now),
            Err(message) => {
                tracing::debug!(peer = %address, "fetch failed: {message}");
                self.core.handle_fetch_failed(&address, &keys, now);
            }
        }
    }

    async fn stop(&mut self, reason: StopReason) -> Result<()> {
        let last = self.core.poll_messages();
        if let Some(link) = self.link.take() {
            link.close(last, STOP_FLUSH_GRACE).await;
        }
        match reason {
            StopReason::Shutdown => {
                tracing::info!(name = %self.settings.name, "worker shut down");
                Ok(())
            }
            StopReason::Refused(reason) => Err(Error::Refused(reason)),
            StopReason::ConnectionLost => Err(Error::ConnectionLost {
                address: self.settings.scheduler.clone(),
                timeout: self.settings.reconnect_timeout,
            }),
        }
    }
}

async fn wait_opt<T>(handle: Option<&mut JoinHandle<T>>) -> std::result::Result<T, tokio::task::JoinError> {
    match handle {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

async fn reserve_opt<T>(sender: Option<mpsc::Sender<T>>) -> std::result::Result<mpsc::OwnedPermit<T>, ()> {
    match sender {
        Some(sender) => sender.reserve_owned().await.map_err(|_| ()),
        None => std::future::pending().await,
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
