//! A small fake scheduler (a ROUTER answering the client protocol) and a
//! fake worker peer socket, enough to exercise the client end to end.
//!
//! Functions the fake "runs" as soon as a task is submitted:
//! `inc(x)`, `add(x, y)`, `big(x)` (the result is kept only on the fake
//! worker, so the client must fetch it), `fail(msg)` (errs), `nofunc()`
//! (unknown function), `never()` (never finishes), `moved(x)` (like `big`,
//! but first announced on a worker that is gone).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ciborium::value::Value;
use reprise_proto::{
    decode, decode_frame, encode, encode_frame, replace_refs, ClientMsg, DepLocation, InfoReply, InfoRequest, Key,
    KeyState, KeyUpdate, PeerReply, PeerRequest, SchedulerInfo, TaskError, TaskErrorKind, TaskSpec, ToClient,
    WorkerId, WorkerInfo,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeromq::prelude::*;
use zeromq::{RouterSocket, ZmqMessage};

pub const WORKER: &str = "w1";
/// A loopback port nothing listens on (port 1 needs root to bind).
pub const DEAD_ADDRESS: &str = "tcp://127.0.0.1:1";

/// How the fake scheduler behaves.
#[derive(Clone, Default)]
pub struct Options {
    /// Refuse hellos without this token.
    pub token: Option<String>,
    /// Swallow submissions: no ack, no result (a scheduler about to die).
    pub black_hole: bool,
    /// Pretend no worker is connected.
    pub no_workers: bool,
}

/// What the fake has seen, shared with the test.
#[derive(Default)]
pub struct Seen {
    pub msgs: Vec<ClientMsg>,
}

pub struct FakeScheduler {
    pub address: String,
    pub port: u16,
    pub seen: Arc<Mutex<Seen>>,
    pub worker: Arc<FakeWorker>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The fake worker's peer socket and data.
pub struct FakeWorker {
    pub address: String,
    pub data: Mutex<BTreeMap<Key, Vec<u8>>>,
    pub n_gets: Mutex<Vec<Vec<Key>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FakeWorker {
    pub async fn start() -> Arc<FakeWorker> {
        let mut router = RouterSocket::new();
        let endpoint = router.bind("tcp://127.0.0.1:0").await.unwrap();
        let worker = Arc::new(FakeWorker {
            address: endpoint.to_string(),
            data: Mutex::new(BTreeMap::new()),
            n_gets: Mutex::new(Vec::new()),
            task: Mutex::new(None),
        });
        let w = worker.clone();
        let task = tokio::spawn(async move {
            while let Ok(msg) = router.recv().await {
                let mut parts = msg.into_vec();
                let body = parts.pop().unwrap();
                let identity = parts.remove(0);
                let replies: Vec<PeerReply> = decode_frame::<PeerRequest>(&body)
                    .unwrap()
                    .into_iter()
                    .map(|req| w.answer(req))
                    .collect();
                let mut out = ZmqMessage::from(encode_frame(&replies).unwrap());
                out.push_front(identity);
                if router.send(out).await.is_err() {
                    return;
                }
            }
        });
        *worker.task.lock().unwrap() = Some(task);
        worker
    }

    fn answer(&self, req: PeerRequest) -> PeerReply {
        match req {
            PeerRequest::Get { req, keys } => {
                self.n_gets.lock().unwrap().push(keys.clone());
                let data = self.data.lock().unwrap();
                let items = keys.into_iter().map(|k| {
                    let v = data.get(&k).map(|v| serde_bytes::ByteBuf::from(v.clone()));
                    (k, v)
                });
                PeerReply::Data { req, items: items.collect() }
            }
            PeerRequest::Put { req, items } => {
                let mut data = self.data.lock().unwrap();
                for (k, v) in items {
                    data.insert(k, v.into_vec());
                }
                PeerReply::Stored { req }
            }
            PeerRequest::ActorCall { req, .. } | PeerRequest::Run { req, .. } => {
                PeerReply::Error { req, message: "the fake worker has no actors or functions to run".into() }
            }
        }
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }
}

/// The scheduler's state between messages.
struct State {
    opts: Options,
    seen: Arc<Mutex<Seen>>,
    worker: Arc<FakeWorker>,
    /// Inline results and scattered values, by key (`None`: on the worker only).
    results: BTreeMap<Key, Option<Vec<u8>>>,
}

impl FakeScheduler {
    /// A fake on a fresh port.
    pub async fn start(opts: Options) -> FakeScheduler {
        FakeScheduler::start_on(0, opts, FakeWorker::start().await).await
    }

    /// A fake on `port` (0: any), retrying while the port is still held by a
    /// fake that was just stopped.
    pub async fn start_on(port: u16, opts: Options, worker: Arc<FakeWorker>) -> FakeScheduler {
        let mut router = RouterSocket::new();
        let mut tries = 0;
        let endpoint = loop {
            match router.bind(&format!("tcp://127.0.0.1:{port}")).await {
                Ok(e) => break e,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot bind port {port}: {e}"),
            }
        };
        let address = endpoint.to_string();
        let port = address.rsplit(':').next().unwrap().parse().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop, mut stopped) = oneshot::channel();
        let mut state = State { opts, seen: seen.clone(), worker: worker.clone(), results: BTreeMap::new() };
        let task = tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = router.recv() => m,
                    _ = &mut stopped => break,
                };
                let Ok(msg) = msg else { break };
                let mut parts = msg.into_vec();
                let body = parts.pop().unwrap();
                let identity = parts.remove(0);
                assert!(identity.starts_with(b"c:"), "client identities start with c:");
                let mut replies = Vec::new();
                for m in decode_frame::<ClientMsg>(&body).unwrap() {
                    state.seen.lock().unwrap().msgs.push(m.clone());
                    replies.extend(state.answer(m));
                }
                if replies.is_empty() {
                    continue;
                }
                let mut out = ZmqMessage::from(encode_frame(&replies).unwrap());
                out.push_front(identity);
                let _ = router.send(out).await;
            }
            let _ = router.close().await;
        });
        FakeScheduler { address, port, seen, worker, stop: Some(stop), task: Some(task) }
    }

    /// Stop answering and free the port.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }

    /// Everything received so far.
    pub fn msgs(&self) -> Vec<ClientMsg> {
        self.seen.lock().unwrap().msgs.clone()
    }

    /// Wait (at most `timeout`) until a received message satisfies `pred`.
    pub async fn wait_for_msg(&self, timeout: Duration, pred: impl Fn(&ClientMsg) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.msgs().iter().any(&pred) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

impl Drop for FakeScheduler {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl State {
    fn answer(&mut self, msg: ClientMsg) -> Vec<ToClient> {
        match msg {
            ClientMsg::Hello { token, .. } => match &self.opts.token {
                Some(want) if token.as_ref() != Some(want) => {
                    vec![ToClient::Refused { reason: "invalid auth token".into() }]
                }
                _ => vec![ToClient::Welcome { scheduler: "fake".into() }],
            },
            ClientMsg::Submit { tasks } if !self.opts.black_hole => {
                let mut out = vec![ToClient::Acked { keys: tasks.iter().map(|t| t.key.clone()).collect() }];
                out.extend(tasks.iter().filter_map(|t| self.run(t)));
                out
            }
            ClientMsg::Scattered { items, .. } => {
                let keys = items.iter().map(|i| i.key.clone()).collect();
                for item in items {
                    self.results.insert(item.key, item.inline);
                }
                vec![ToClient::Acked { keys }]
            }
            ClientMsg::Info { req, what } => vec![ToClient::Reply { req, body: self.info(what) }],
            ClientMsg::Heartbeat => vec![ToClient::Heartbeat],
            _ => Vec::new(),
        }
    }

    fn worker_info(&self) -> WorkerInfo {
        WorkerInfo {
            id: WorkerId::from(WORKER),
            address: self.worker.address.clone(),
            nthreads: 2,
            n_processing: 0,
            n_keys: self.results.len() as u64,
            functions: vec!["inc".into(), "add".into()],
        }
    }

    fn info(&self, what: InfoRequest) -> InfoReply {
        let w = WorkerId::from(WORKER);
        match what {
            InfoRequest::SchedulerInfo => InfoReply::SchedulerInfo(SchedulerInfo {
                workers: if self.opts.no_workers { vec![] } else { vec![self.worker_info()] },
                n_clients: 1,
                tasks_by_state: BTreeMap::new(),
                last_seq: 0,
            }),
            InfoRequest::Ncores => InfoReply::Ncores([(w, 2)].into()),
            InfoRequest::HasWhat => InfoReply::HasWhat([(w, self.results.keys().cloned().collect())].into()),
            InfoRequest::WhoHas { keys } => InfoReply::WhoHas(
                keys.into_iter()
                    .map(|k| {
                        let holders = if self.results.contains_key(&k) { vec![w.clone()] } else { vec![] };
                        (k, holders)
                    })
                    .collect(),
            ),
            InfoRequest::Locate { keys } => InfoReply::Locate(
                keys.into_iter()
                    .map(|key| DepLocation {
                        holders: vec![(w.clone(), self.worker.address.clone())],
                        inline: None,
                        key,
                    })
                    .collect(),
            ),
            _ => InfoReply::Done,
        }
    }

    /// "Run" a task at once; its update, if it ends.
    fn run(&mut self, spec: &TaskSpec) -> Option<ToClient> {
        let key = spec.key.clone();
        let args: Value = decode(&spec.args).unwrap();
        let worker_data = self.worker.data.lock().unwrap().clone();
        let args = replace_refs(args, &mut |k| {
            let bytes = self.results.get(k).cloned().flatten().or_else(|| worker_data.get(k).cloned())?;
            decode::<Value>(&bytes).ok()
        })
        .unwrap();
        let Value::Array(args) = args else { panic!("args are an array") };
        let int = |i: usize| i64::try_from(args[i].as_integer().unwrap()).unwrap();
        let state = match spec.func.as_str() {
            "inc" => self.finish(&key, encode(&(int(0) + 1)).unwrap(), true),
            "add" => self.finish(&key, encode(&(int(0) + int(1))).unwrap(), true),
            "big" => self.finish(&key, encode(&args[0]).unwrap(), false),
            // On the worker, but announced at an address where nobody listens:
            // the client must ask `Locate` to find it.
            "moved" => match self.finish(&key, encode(&args[0]).unwrap(), false) {
                KeyState::Finished { nbytes, mut location } => {
                    location.holders = vec![(WorkerId::from("gone"), DEAD_ADDRESS.to_owned())];
                    KeyState::Finished { nbytes, location }
                }
                other => other,
            },
            "fail" => KeyState::Erred(TaskError::new(TaskErrorKind::Raised, key.clone(), "it failed")),
            "nofunc" => KeyState::Erred(TaskError::new(TaskErrorKind::UnknownFunction, key.clone(), "no worker has nofunc")),
            _ => return None,
        };
        Some(ToClient::Update(KeyUpdate { key, state }))
    }

    fn finish(&mut self, key: &Key, bytes: Vec<u8>, inline: bool) -> KeyState {
        let nbytes = bytes.len() as u64;
        let location = if inline {
            self.results.insert(key.clone(), Some(bytes.clone()));
            DepLocation { key: key.clone(), holders: vec![], inline: Some(bytes) }
        } else {
            self.worker.data.lock().unwrap().insert(key.clone(), bytes);
            self.results.insert(key.clone(), None);
            DepLocation {
                key: key.clone(),
                holders: vec![(WorkerId::from(WORKER), self.worker.address.clone())],
                inline: None,
            }
        };
        KeyState::Finished { nbytes, location }
    }
}
