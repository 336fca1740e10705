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
    ]
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
    ];
    assert_eq!(decode_frame::<ToClient>(&encode_frame(&to_client).unwrap()).unwrap(), to_client);
    let to_worker = vec![ToWorker::Compute(ComputeTask { key: Key::from("k"), attempt: Attempt(1), func: "inc".into(), args: vec![0x81, 1], deps: vec![loc] })];
    assert_eq!(decode_frame::<ToWorker>(&encode_frame(&to_worker).unwrap()).unwrap(), to_worker);
    let from_client = vec![ClientMsg::Submit { tasks: vec![spec()] }, ClientMsg::Heartbeat];
    assert_eq!(decode_frame::<ClientMsg>(&encode_frame(&from_client).unwrap()).unwrap(), from_client);
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
