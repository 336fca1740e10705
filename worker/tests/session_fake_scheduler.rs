//! Real workers over real sockets, driven by a fake scheduler (a ZeroMQ
//! ROUTER in the test) that speaks the worker session protocol.
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use ciborium::value::Value;
use reprise_proto::{
    decode, decode_frame, encode, encode_frame, future_ref_value, Attempt, ComputeTask, DepLocation, Key, PeerReply,
    PeerRequest, RequestId, TaskErrorKind, ToWorker, WorkerId, WorkerMsg,
};
use reprise_worker::{stock, Worker, WorkerHandle};
use serde_bytes::ByteBuf;
use zeromq::{DealerSocket, RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

/// The longest any single step may take.
const STEP: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A scheduler stand-in: receives worker frames, answers heartbeats, and
/// keeps messages no test step has asked for yet.
struct FakeScheduler {
    router: RouterSocket,
    address: String,
    pending: VecDeque<(String, WorkerMsg)>,
    /// A scheduler that stops answering heartbeats looks dead to its workers.
    answer_heartbeats: bool,
}

impl FakeScheduler {
    async fn bind(endpoint: &str) -> Self {
        let mut router = RouterSocket::new();
        let address = router.bind(endpoint).await.unwrap().to_string();
        FakeScheduler { router, address, pending: VecDeque::new(), answer_heartbeats: true }
    }

    /// Bind `address` again once the previous socket has let go of it.
    async fn rebind(address: &str) -> Self {
        within("the scheduler port to be free again", async {
            loop {
                let mut router = RouterSocket::new();
                match router.bind(address).await {
                    Ok(_) => {
                        return FakeScheduler {
                            router,
                            address: address.to_owned(),
                            pending: VecDeque::new(),
                            answer_heartbeats: true,
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await
    }

    /// Stop as a killed process does: the port closes at once (a plain drop
    /// would leave zeromq's accept task listening for a moment, and a
    /// reconnecting worker could attach to the dying socket).
    async fn die(self) {
        let errors = self.router.close().await;
        assert!(errors.is_empty(), "{errors:?}");
    }

    async fn send(&mut self, worker: &str, msgs: Vec<ToWorker>) {
        let mut message = ZmqMessage::from(encode_frame(&msgs).unwrap());
        message.push_front(format!("w:{worker}").into_bytes().into());
        within("a send to the worker", self.router.send(message)).await.unwrap();
    }

    async fn receive_frame(&mut self) {
        let message = self.router.recv().await.unwrap();
        let parts = message.into_vec();
        assert_eq!(parts.len(), 2, "identity + one frame");
        let identity = String::from_utf8(parts[0].to_vec()).unwrap();
        let worker = identity.strip_prefix("w:").expect("worker identities start with w:").to_owned();
        for msg in decode_frame::<WorkerMsg>(&parts[1]).unwrap() {
            if msg == WorkerMsg::Heartbeat {
                if self.answer_heartbeats {
                    self.send(&worker, vec![ToWorker::Heartbeat]).await;
                }
            } else {
                self.pending.push_back((worker.clone(), msg));
            }
        }
    }

    /// The first message (from any worker, in arrival order) that `pick` accepts.
    async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&str, &WorkerMsg) -> Option<T>) -> T {
        within(what, async {
            let mut seen = 0;
            loop {
                while seen < self.pending.len() {
                    let (worker, msg) = &self.pending[seen];
                    if let Some(out) = pick(worker, msg) {
                        self.pending.remove(seen);
                        return out;
                    }
                    seen += 1;
                }
                self.receive_frame().await;
            }
        })
        .await
    }

    async fn expect_register(&mut self, worker: &str) -> WorkerMsg {
        let name = worker.to_owned();
        self.expect(&format!("Register from {worker}"), |w, m| {
            (w == name && matches!(m, WorkerMsg::Register { .. })).then(|| m.clone())
        })
        .await
    }

    async fn expect_report(&mut self, key: &str) -> WorkerMsg {
        let key = Key::from(key);
        self.expect(&format!("the report of {key}"), |_, m| match m {
            WorkerMsg::Finished { key: k, .. } | WorkerMsg::Erred { key: k, .. } if *k == key => Some(m.clone()),
            _ => None,
        })
        .await
    }
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    encode(v).unwrap()
}

fn compute(key: &str, func: &str, args: &Value, deps: Vec<DepLocation>) -> ToWorker {
    ToWorker::Compute(ComputeTask {
        key: Key::from(key),
        attempt: Attempt(1),
        func: func.into(),
        args: cbor(args),
        deps,
    })
}

fn start_worker(scheduler: &str, name: &str) -> WorkerHandle {
    stock::register(Worker::builder())
        .scheduler(scheduler)
        .name(name)
        .nthreads(2)
        .fetch_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .spawn()
}

/// Ask a worker's peer socket, as a client does.
async fn peer_ask(address: &str, request: &PeerRequest) -> Vec<PeerReply> {
    peer_raw(address, encode_frame(std::slice::from_ref(request)).unwrap()).await
}

async fn peer_raw(address: &str, body: Vec<u8>) -> Vec<PeerReply> {
    within("a peer reply", async {
        let mut socket = DealerSocket::new();
        socket.connect(address).await.unwrap();
        socket.send(ZmqMessage::from(body)).await.unwrap();
        let reply = socket.recv().await.unwrap().into_vec();
        assert_eq!(reply.len(), 1);
        decode_frame(&reply[0]).unwrap()
    })
    .await
}

async fn peer_get(address: &str, key: &str) -> Option<Vec<u8>> {
    let request = PeerRequest::Get { req: RequestId(1), keys: vec![Key::from(key)] };
    match peer_ask(address, &request).await.as_slice() {
        [PeerReply::Data { req: RequestId(1), items }] => {
            assert_eq!(items.len(), 1);
            items[0].1.clone().map(ByteBuf::into_vec)
        }
        other => panic!("unexpected peer reply {other:?}"),
    }
}

fn finished_value(msg: &WorkerMsg) -> i64 {
    match msg {
        WorkerMsg::Finished { inline: Some(bytes), nbytes, attempt, .. } => {
            assert_eq!(*nbytes as usize, bytes.len());
            assert_eq!(*attempt, Attempt(1));
            decode(bytes).unwrap()
        }
        other => panic!("expected an inline Finished, got {other:?}"),
    }
}

fn erred_kind(msg: &WorkerMsg) -> (TaskErrorKind, String) {
    match msg {
        WorkerMsg::Erred { error, .. } => (error.kind, error.message.clone()),
        other => panic!("expected Erred, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_compute_fetch_serve_free_and_reregister_after_scheduler_restart() {
    let mut sched = FakeScheduler::bind("tcp://127.0.0.1:0").await;
    let mut w1 = start_worker(&sched.address, "w1");
    let w2 = start_worker(&sched.address, "w2");
    let a1 = within("w1 to bind", w1.ready()).await.unwrap();
    let a2 = within("w2 to bind", w2.ready()).await.unwrap();
    assert_eq!(w1.peer_address().as_deref(), Some(a1.as_str()));

    // Registration.
    for (name, address) in [("w1", &a1), ("w2", &a2)] {
        match sched.expect_register(name).await {
            WorkerMsg::Register { worker, nthreads, address: advertised, functions, held, running, .. } => {
                assert_eq!(worker, WorkerId::from(name));
                assert_eq!(nthreads, 2);
                assert_eq!(&advertised, address);
                for f in ["noop", "inc", "add", "sum", "sleep", "slowinc", "fail", "echo", "bytes"] {
                    assert!(functions.iter().any(|g| g == f), "{f} missing from {functions:?}");
                }
                assert!(held.is_empty() && running.is_empty());
            }
            _ => unreachable!(),
        }
        sched.send(name, vec![ToWorker::Welcome { scheduler: "fake".into() }]).await;
    }
    within("w1 to be welcomed", w1.registered()).await.unwrap();
    within("w2 to be welcomed", w2.registered()).await.unwrap();

    // `inc` with an inline input.
    let x = Key::from("x");
    let args = Value::Array(vec![future_ref_value(&x)]);
    let dep = DepLocation { key: x.clone(), holders: vec![], inline: Some(cbor(&41)) };
    sched.send("w1", vec![compute("inc-1", "inc", &args, vec![dep])]).await;
    assert_eq!(finished_value(&sched.expect_report("inc-1").await), 42);

    // `add` on w2, whose input lives on w1 and must be fetched from its peer socket.
    let inc1 = Key::from("inc-1");
    let args = Value::Array(vec![future_ref_value(&inc1), Value::Integer(100.into())]);
    let dep = DepLocation { key: inc1.clone(), holders: vec![(WorkerId::from("w1"), a1.clone())], inline: None };
    sched.send("w2", vec![compute("add-1", "add", &args, vec![dep])]).await;
    assert_eq!(finished_value(&sched.expect_report("add-1").await), 142);

    // A client-style Get returns the stored result, and None for an unknown key.
    assert_eq!(peer_get(&a2, "add-1").await, Some(cbor(&142)));
    assert_eq!(peer_get(&a2, "nope").await, None);

    // Free drops the data: Get then answers None.
    sched.send("w2", vec![ToWorker::Free { keys: vec![Key::from("add-1")] }]).await;
    within("add-1 to be freed", async {
        while peer_get(&a2, "add-1").await.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // Put stores data that Get then serves.
    let put = PeerRequest::Put { req: RequestId(9), items: vec![(Key::from("s-1"), ByteBuf::from(cbor(&"hi")))] };
    assert_eq!(peer_ask(&a1, &put).await, vec![PeerReply::Stored { req: RequestId(9) }]);
    assert_eq!(peer_get(&a1, "s-1").await, Some(cbor(&"hi")));

    // A malformed peer frame gets an error reply, and the worker keeps serving.
    let replies = peer_raw(&a1, b"\xff\x00 not cbor".to_vec()).await;
    assert!(matches!(replies.as_slice(), [PeerReply::Error { req: RequestId(0), .. }]), "{replies:?}");
    assert_eq!(peer_get(&a1, "inc-1").await, Some(cbor(&42)));

    // Errors: Err → Raised, unknown function, undecodable arguments, unreachable input.
    let text = Value::Array(vec![Value::Text("boom".into())]);
    sched.send("w1", vec![compute("fail-1", "fail", &text, vec![])]).await;
    assert_eq!(erred_kind(&sched.expect_report("fail-1").await), (TaskErrorKind::Raised, "boom".into()));
    sched.send("w1", vec![compute("nope-1", "nope", &Value::Array(vec![]), vec![])]).await;
    assert_eq!(erred_kind(&sched.expect_report("nope-1").await).0, TaskErrorKind::UnknownFunction);
    sched.send("w1", vec![compute("inc-bad", "inc", &text, vec![])]).await;
    assert_eq!(erred_kind(&sched.expect_report("inc-bad").await).0, TaskErrorKind::Codec);
    let gone = Key::from("gone");
    let dep = DepLocation {
        key: gone.clone(),
        holders: vec![(WorkerId::from("w9"), "tcp://127.0.0.1:1".into())],
        inline: None,
    };
    sched.send("w1", vec![compute("inc-lost", "inc", &Value::Array(vec![future_ref_value(&gone)]), vec![dep])]).await;
    assert_eq!(erred_kind(&sched.expect_report("inc-lost").await).0, TaskErrorKind::LostDependency);

    // A slow task is running when the scheduler dies.
    let slow = Value::Array(vec![Value::Integer(1.into()), Value::Float(3.0)]);
    sched.send("w1", vec![compute("slowinc-1", "slowinc", &slow, vec![])]).await;
    let address = sched.address.clone();
    sched.die().await;

    // The scheduler comes back on the same port: w1 registers again with what
    // it holds and what it is running, and then reports the slow task.
    let mut sched = FakeScheduler::rebind(&address).await;
    match sched.expect_register("w1").await {
        WorkerMsg::Register { held, running, .. } => {
            let held: Vec<&str> = held.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(held, vec!["inc-1", "s-1"]);
            assert_eq!(running, vec![(Key::from("slowinc-1"), Attempt(1))]);
        }
        _ => unreachable!(),
    }
    sched.send("w1", vec![ToWorker::Welcome { scheduler: "fake-2".into() }]).await;
    assert_eq!(finished_value(&sched.expect_report("slowinc-1").await), 2);

    // Shutdown from the scheduler ends w1 cleanly; w2 leaves with Goodbye.
    sched.expect_register("w2").await;
    sched.send("w1", vec![ToWorker::Shutdown]).await;
    within("w1 to stop", w1.join()).await.unwrap();
    within("w2 to shut down", w2.shutdown()).await.unwrap();
    sched.expect("Goodbye from w2", |w, m| (w == "w2" && *m == WorkerMsg::Goodbye).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_stops_serving_its_peer_socket() {
    let mut sched = FakeScheduler::bind("tcp://127.0.0.1:0").await;
    let w = start_worker(&sched.address, "k1");
    let address = within("k1 to bind", w.ready()).await.unwrap();
    sched.expect_register("k1").await;
    assert_eq!(peer_get(&address, "x").await, None);
    within("the kill", w.kill()).await;
    // Nothing listens any more: a fresh connection is refused.
    let host_port = address.trim_start_matches("tcp://").to_owned();
    within("the port to close", async {
        while tokio::net::TcpStream::connect(&host_port).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_gives_up_when_no_scheduler_appears_within_the_reconnect_timeout() {
    let mut w = Worker::builder()
        .scheduler("tcp://127.0.0.1:1")
        .name("lonely")
        .reconnect_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
        .spawn();
    let err = within("the worker to give up", w.join()).await.unwrap_err();
    assert!(matches!(err, reprise_worker::Error::ConnectionLost { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_registration_ends_the_worker_with_the_reason() {
    let mut sched = FakeScheduler::bind("tcp://127.0.0.1:0").await;
    let mut w = Worker::builder().scheduler(&sched.address).name("r1").auth_token("wrong").build().unwrap().spawn();
    match sched.expect_register("r1").await {
        WorkerMsg::Register { token, .. } => assert_eq!(token.as_deref(), Some("wrong")),
        _ => unreachable!(),
    }
    sched.send("r1", vec![ToWorker::Refused { reason: "bad token".into() }]).await;
    let err = within("the refusal to be seen", w.registered()).await.unwrap_err();
    assert!(err.to_string().contains("bad token"), "{err}");
    let err = within("the worker to stop", w.join()).await.unwrap_err();
    assert!(matches!(&err, reprise_worker::Error::Refused(r) if r == "bad token"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_works_over_ipc() {
    let dir = std::env::temp_dir().join(format!("reprise-worker-ipc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut sched = FakeScheduler::bind(&format!("ipc://{}", dir.join("s.sock").display())).await;
    let w = stock::register(Worker::builder())
        .scheduler(&sched.address)
        .listen(format!("ipc://{}", dir.join("w.sock").display()))
        .name("i1")
        .build()
        .unwrap()
        .spawn();
    let address = within("i1 to bind", w.ready()).await.unwrap();
    assert!(address.starts_with("ipc://"), "{address}");
    sched.expect_register("i1").await;
    sched.send("i1", vec![compute("inc-7", "inc", &Value::Array(vec![Value::Integer(6.into())]), vec![])]).await;
    assert_eq!(finished_value(&sched.expect_report("inc-7").await), 7);
    assert_eq!(peer_get(&address, "inc-7").await, Some(cbor(&7)));
    within("i1 to shut down", w.shutdown()).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_scheduler_gets_a_fresh_socket_and_a_new_register() {
    let mut sched = FakeScheduler::bind("tcp://127.0.0.1:0").await;
    sched.answer_heartbeats = false;
    let w = stock::register(Worker::builder())
        .scheduler(&sched.address)
        .name("q1")
        .heartbeat_interval(Duration::from_millis(100))
        .scheduler_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
        .spawn();
    sched.expect_register("q1").await;
    sched.send("q1", vec![ToWorker::Welcome { scheduler: "fake".into() }]).await;
    // The connection stays up, so only the silence rule can make the worker
    // register again, from a fresh socket with the same identity.
    let started = tokio::time::Instant::now();
    sched.expect_register("q1").await;
    assert!(started.elapsed() >= Duration::from_millis(400), "re-registered after {:?}", started.elapsed());
    within("q1 to shut down", w.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_result_is_reported_without_inline_bytes_and_served_by_get() {
    let mut sched = FakeScheduler::bind("tcp://127.0.0.1:0").await;
    let w = start_worker(&sched.address, "b1");
    let address = within("b1 to bind", w.ready()).await.unwrap();
    sched.expect_register("b1").await;
    let n = reprise_proto::INLINE_BYTES_MAX as u64 + 1;
    sched.send("b1", vec![compute("bytes-1", "bytes", &Value::Array(vec![Value::Integer(n.into())]), vec![])]).await;
    let nbytes = match sched.expect_report("bytes-1").await {
        WorkerMsg::Finished { nbytes, inline: None, .. } => nbytes,
        other => panic!("expected a Finished without inline bytes, got {other:?}"),
    };
    let data = peer_get(&address, "bytes-1").await.unwrap();
    assert_eq!(data.len() as u64, nbytes);
    let value: ByteBuf = decode(&data).unwrap();
    assert_eq!(value.len() as u64, n);
    within("b1 to shut down", w.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_tasks_in_one_frame_is_all_reported_in_batched_frames() {
    const N_TASKS: usize = 5000;
    let mut sched = FakeScheduler::bind("tcp://127.0.0.1:0").await;
    let w = start_worker(&sched.address, "m1");
    sched.expect_register("m1").await;
    let tasks = (0..N_TASKS)
        .map(|i| compute(&format!("inc-{i}"), "inc", &Value::Array(vec![Value::Integer(i.into())]), vec![]))
        .collect();
    sched.send("m1", tasks).await;
    let mut sum = 0i64;
    let mut frames_before = 0;
    within("every report", async {
        let mut seen = 0;
        while seen < N_TASKS {
            frames_before += 1;
            sched.receive_frame().await;
            while let Some((_, msg)) = sched.pending.pop_front() {
                if matches!(msg, WorkerMsg::Finished { .. }) {
                    sum += finished_value(&msg);
                    seen += 1;
                }
            }
        }
    })
    .await;
    let n = N_TASKS as i64;
    assert_eq!(sum, n * (n + 1) / 2);
    // Reports that pile up while the send task waits share frames.
    assert!(frames_before < N_TASKS, "{N_TASKS} reports took {frames_before} frames");
    within("m1 to shut down", w.shutdown()).await.unwrap();
}

/// A counter actor for the tests below.
#[derive(Default)]
struct Counter {
    n: u64,
}

impl reprise_worker::Actor for Counter {
    type Args = ();
    fn new((): ()) -> Result<Self, String> {
        Ok(Counter::default())
    }
    fn methods(methods: &mut reprise_worker::Methods<Self>) {
        methods.method("increment", |c: &mut Counter| {
            c.n += 1;
            c.n
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_lives_on_its_worker_runs_calls_in_order_and_goes_with_its_data() {
    let mut sched = FakeScheduler::bind("tcp://127.0.0.1:0").await;
    let w = stock::register(Worker::builder())
        .scheduler(sched.address.as_str())
        .name("wa")
        .nthreads(1)
        .actor::<Counter>("Counter")
        .task_with_context("whoami", |ctx: &reprise_worker::TaskContext| ctx.worker_id().map(ToString::to_string))
        .build()
        .unwrap()
        .spawn();
    let address = within("wa to bind", w.ready()).await.unwrap();
    match sched.expect_register("wa").await {
        WorkerMsg::Register { functions, .. } => {
            assert!(functions.iter().any(|f| f == "actor:Counter"), "{functions:?}")
        }
        _ => unreachable!(),
    }
    sched.send("wa", vec![ToWorker::Welcome { scheduler: "fake".into() }]).await;

    // Creating the actor is a task; its marker is not inline and names this worker.
    sched.send("wa", vec![compute("actor:Counter-1", "actor:Counter", &Value::Array(vec![]), vec![])]).await;
    match sched.expect_report("actor:Counter-1").await {
        WorkerMsg::Finished { inline: None, .. } => {}
        other => panic!("expected a Finished without inline bytes, got {other:?}"),
    }
    let marker: reprise_proto::ActorRef = decode(&peer_get(&address, "actor:Counter-1").await.unwrap()).unwrap();
    assert_eq!(
        (marker.actor.as_str(), marker.worker.as_str(), marker.address.as_str()),
        ("Counter", "wa", address.as_str())
    );

    // 50 calls sent back to back come back one per frame, in order.
    let replies = within("50 actor calls", async {
        let mut socket = DealerSocket::new();
        socket.connect(&address).await.unwrap();
        for i in 0..50u64 {
            let call = PeerRequest::ActorCall {
                req: RequestId(i + 1),
                key: Key::from("actor:Counter-1"),
                method: "increment".into(),
                args: cbor(&()),
            };
            socket.send(ZmqMessage::from(encode_frame(&[call]).unwrap())).await.unwrap();
        }
        let mut replies = Vec::new();
        while replies.len() < 50 {
            let frame = socket.recv().await.unwrap().into_vec();
            replies.extend(decode_frame::<PeerReply>(&frame[0]).unwrap());
        }
        replies
    })
    .await;
    let values: Vec<(u64, u64)> = replies
        .iter()
        .map(|r| match r {
            PeerReply::Returned { req, value } => (req.0, decode::<u64>(value).unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(values, (1..=50).map(|i| (i, i)).collect::<Vec<_>>());

    // An unknown method is the call's error, not the actor's end.
    let bad = PeerRequest::ActorCall {
        req: RequestId(77),
        key: Key::from("actor:Counter-1"),
        method: "nope".into(),
        args: cbor(&()),
    };
    match peer_ask(&address, &bad).await.as_slice() {
        [PeerReply::Raised { req: RequestId(77), error }] => assert_eq!(error.kind, TaskErrorKind::UnknownFunction),
        other => panic!("{other:?}"),
    }

    // `Run` calls a registered function once, with a context, outside the slots.
    let run = PeerRequest::Run { req: RequestId(78), func: "whoami".into(), args: cbor(&()) };
    match peer_ask(&address, &run).await.as_slice() {
        [PeerReply::Returned { req: RequestId(78), value }] => {
            assert_eq!(decode::<Option<String>>(value).unwrap().as_deref(), Some("wa"))
        }
        other => panic!("{other:?}"),
    }

    // Freeing the actor's key ends the actor: calls are then refused.
    sched.send("wa", vec![ToWorker::Free { keys: vec![Key::from("actor:Counter-1")] }]).await;
    let call = PeerRequest::ActorCall {
        req: RequestId(79),
        key: Key::from("actor:Counter-1"),
        method: "increment".into(),
        args: cbor(&()),
    };
    within("the actor to go", async {
        loop {
            match peer_ask(&address, &call).await.as_slice() {
                [PeerReply::Error { message, .. }] => {
                    assert!(message.contains("no actor"), "{message}");
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
}
