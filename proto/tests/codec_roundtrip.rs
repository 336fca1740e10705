//! Every Event variant and every wire message survives CBOR and back, and
//! malformed input is an error, never a panic.
use proptest::prelude::*;
use reprise_proto::*;

fn spec() -> TaskSpec {
    let mut s = TaskSpec::new(Key::from("add-1"), "add", encode(&(1, 2)).unwrap(), vec![Key::from("inc-0")]);
    s.priority = -3;
    s.retries = 2;
    s.resources = vec![("GPU".into(), 1.5)];
    s.workers = vec![WorkerId::from("w1")];
    s
}

fn err() -> TaskError {
    TaskError { kind: TaskErrorKind::Raised, message: "boom".into(), traceback: Some("at f".into()), key: Key::from("k") }
}

fn one_of_each_event() -> Vec<Event> {
    let k = Key::from("k");
    let c = ClientId::from("c1");
    let w = WorkerId::from("w1");
    vec![
        Event::ClientJoined { client: c.clone() },
        Event::ClientRemoved { client: c.clone() },
        Event::TaskSubmitted { spec: spec() },
        Event::ClientWants { client: c.clone(), key: k.clone() },
        Event::ClientReleased { client: c, key: k.clone() },
        Event::HolderAdded { holder: Holder::FireAndForget, key: k.clone() },
        Event::HolderRemoved { holder: Holder::Queue("q".into()), key: k.clone() },
        Event::TaskQueued { key: k.clone() },
        Event::TaskNoWorker { key: k.clone() },
        Event::TaskAssigned { key: k.clone(), worker: w.clone(), attempt: Attempt(7) },
        Event::TaskFinished { key: k.clone(), worker: w.clone(), attempt: Attempt(7), nbytes: 3, inline: Some(vec![1, 2, 3]) },
        Event::DataScattered { key: k.clone(), worker: w.clone(), nbytes: 9, inline: None },
        Event::ReplicaAdded { key: k.clone(), worker: w.clone() },
        Event::ReplicaRemoved { key: k.clone(), worker: w.clone() },
        Event::TaskRetried { key: k.clone() },
        Event::TaskErred { key: k.clone(), error: err() },
        Event::TaskRescheduled { key: k.clone() },
        Event::TaskLost { key: k.clone() },
        Event::TaskCancelled { key: k.clone() },
        Event::TaskForgotten { key: k },
        Event::WorkerJoined { worker: w.clone(), nthreads: 2, address: "tcp://127.0.0.1:1".into(), functions: vec!["inc".into()], resources: vec![] },
        Event::WorkerRemoved { worker: w },
        Event::VariableSet { name: "v".into(), value: StoredValue::Inline(vec![1, 2]), op: op() },
        Event::VariableDeleted { name: "v".into(), op: None },
        Event::QueuePut { name: "q".into(), item: StoredValue::Future(Key::from("k")), op: op() },
        Event::QueueTaken { name: "q".into(), items: vec![0, 3], op: Some(op()) },
        Event::LockAcquired { lock: "l".into(), lease: op() },
        Event::LockReleased { lock: "l".into(), lease: op() },
        Event::SemaphoreCreated { semaphore: "s".into(), max_leases: 2 },
        Event::LeaseGranted { semaphore: "s".into(), lease: op() },
        Event::LeaseReleased { semaphore: "s".into(), lease: op() },
        Event::LeaseExpired { on: LeaseOn::Lock("l".into()), lease: op() },
        Event::SemaphoreClosed { semaphore: "s".into() },
        Event::EventSet { name: "e".into() },
        Event::EventCleared { name: "e".into() },
        Event::DatasetPublished { name: "d".into(), key: Key::from("k"), op: op() },
        Event::DatasetUnpublished { name: "d".into(), op: Some(op()) },
        Event::ClusterRestarted,
    ]
}

fn op() -> OpId {
    OpId { client: ClientId::from("c1"), req: RequestId(9) }
}

#[test]
fn every_event_variant_roundtrips() {
    let events = one_of_each_event();
    let kinds: std::collections::BTreeSet<_> = events.iter().map(Event::kind).collect();
    assert_eq!(kinds.len(), EventKind::ALL.len(), "the test must cover every variant");
    for ev in events {
        let back: Event = decode(&encode(&ev).unwrap()).unwrap();
        assert_eq!(back, ev);
    }
}

#[test]
fn wire_messages_roundtrip_in_frames() {
    let loc = DepLocation { key: Key::from("k"), holders: vec![(WorkerId::from("w"), "tcp://x:1".into())], inline: None };
    let to_client = vec![
        ToClient::Welcome { scheduler: "s".into() },
        ToClient::Acked { keys: vec![Key::from("a")] },
        ToClient::Update(KeyUpdate { key: Key::from("k"), state: KeyState::Finished { nbytes: 1, location: loc.clone() } }),
        ToClient::Update(KeyUpdate { key: Key::from("k"), state: KeyState::Erred(err()) }),
        ToClient::Reply { req: RequestId(4), body: InfoReply::Locate(vec![loc.clone()]) },
        ToClient::PrimitiveReply { req: RequestId(5), result: PrimitiveResult::Granted },
        ToClient::PrimitiveReply {
            req: RequestId(6),
            result: PrimitiveResult::Values(vec![
                ReplyValue::Inline(vec![0x01]),
                ReplyValue::Future { key: Key::from("k"), state: Some(KeyState::Cancelled) },
            ]),
        },
        ToClient::PrimitiveReply { req: RequestId(7), result: PrimitiveResult::Invalid { message: "bad".into() } },
    ];
    assert_eq!(decode_frame::<ToClient>(&encode_frame(&to_client).unwrap()).unwrap(), to_client);
    let to_worker = vec![
        ToWorker::Compute(ComputeTask { key: Key::from("k"), attempt: Attempt(1), func: "inc".into(), args: vec![0x81, 1], deps: vec![loc] }),
        ToWorker::Fetch { key: Key::from("k"), from: vec![(WorkerId::from("w"), "tcp://x:1".into())] },
        ToWorker::Restart,
    ];
    assert_eq!(decode_frame::<ToWorker>(&encode_frame(&to_worker).unwrap()).unwrap(), to_worker);
    let from_client = vec![
        ClientMsg::Submit { tasks: vec![spec()] },
        ClientMsg::Primitive {
            req: RequestId(1),
            op: PrimitiveOp::QueuePut {
                name: "q".into(),
                value: StoredValue::Inline(vec![7]),
                maxsize: 2,
                timeout_ms: Some(10),
            },
        },
        ClientMsg::Primitive { req: RequestId(2), op: PrimitiveOp::Abandon { req: RequestId(1) } },
        ClientMsg::Heartbeat,
    ];
    assert_eq!(decode_frame::<ClientMsg>(&encode_frame(&from_client).unwrap()).unwrap(), from_client);
}

#[test]
fn cluster_management_and_actor_messages_roundtrip_in_frames() {
    let from_client = vec![
        ClientMsg::Info { req: RequestId(1), what: InfoRequest::Replicate { keys: vec![Key::from("k")], n: 2 } },
        ClientMsg::Info { req: RequestId(2), what: InfoRequest::Rebalance },
        ClientMsg::Info { req: RequestId(3), what: InfoRequest::Restart },
        ClientMsg::Info { req: RequestId(4), what: InfoRequest::Shutdown },
    ];
    assert_eq!(decode_frame::<ClientMsg>(&encode_frame(&from_client).unwrap()).unwrap(), from_client);
    let to_client = vec![
        ToClient::Reply { req: RequestId(1), body: InfoReply::Transferred { copied: 1, failed: 0 } },
        ToClient::Reply { req: RequestId(3), body: InfoReply::Done },
    ];
    assert_eq!(decode_frame::<ToClient>(&encode_frame(&to_client).unwrap()).unwrap(), to_client);
    let from_worker = vec![
        WorkerMsg::DataAdded { key: Key::from("k"), nbytes: 3 },
        WorkerMsg::FetchFailed { key: Key::from("k"), message: "gone".into() },
    ];
    assert_eq!(decode_frame::<WorkerMsg>(&encode_frame(&from_worker).unwrap()).unwrap(), from_worker);
    let requests = vec![
        PeerRequest::ActorCall { req: RequestId(5), key: Key::from("actor:C-1"), method: "increment".into(), args: vec![0x80] },
        PeerRequest::Run { req: RequestId(6), func: "inc".into(), args: vec![0x81, 1] },
    ];
    assert_eq!(decode_frame::<PeerRequest>(&encode_frame(&requests).unwrap()).unwrap(), requests);
    assert_eq!(requests.iter().map(PeerRequest::req).collect::<Vec<_>>(), vec![RequestId(5), RequestId(6)]);
    let replies = vec![PeerReply::Returned { req: RequestId(5), value: vec![1] }, PeerReply::Raised { req: RequestId(6), error: err() }];
    assert_eq!(decode_frame::<PeerReply>(&encode_frame(&replies).unwrap()).unwrap(), replies);
    let marker = ActorRef { actor: "Counter".into(), worker: WorkerId::from("w"), address: "tcp://x:1".into() };
    assert_eq!(decode::<ActorRef>(&encode(&marker).unwrap()).unwrap(), marker);
}

#[test]
fn frame_of_another_protocol_version_is_refused() {
    let bytes = encode(&Frame { v: PROTOCOL_VERSION + 1, msgs: vec![ToClient::Heartbeat] }).unwrap();
    assert!(matches!(decode_frame::<ToClient>(&bytes), Err(CodecError::Version { .. })));
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    let mut bytes = vec![0x81u8; 100_000]; // arrays of one element, nested
    bytes.push(0x01);
    assert!(decode::<ciborium::value::Value>(&bytes).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame::<ClientMsg>(&bytes);
        let _ = decode_frame::<WorkerMsg>(&bytes);
        let _ = decode::<Event>(&bytes);
    }
}
