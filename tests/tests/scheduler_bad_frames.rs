//! Whatever arrives on the scheduler's port, the scheduler process keeps
//! serving: raw ZeroMQ DEALER sockets with and without a `c:`/`w:` identity
//! send garbage, empty, multi-part, over-nested and wrong-version frames;
//! raw TCP connections send a non-ZMTP greeting, or a valid ZMTP greeting
//! followed by a frame header claiming 1 TiB (which aborted unpatched
//! zeromq 0.7 before any application check). Afterwards a normal client
//! still gets results and `reprise status` shows the worker.
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use reprise::Future;
use reprise_proto::{decode_frame, encode, encode_frame, ClientMsg, Frame, ToClient, WorkerMsg, PROTOCOL_VERSION};
use reprise_tests::{reprise_bin, within, within_for, Cluster, ClusterSpec, Proc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeromq::util::PeerIdentity;
use zeromq::{DealerSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

/// A DEALER connected to `address`, with `identity` if given (else zeromq's random one).
async fn dealer(address: &str, identity: Option<&str>) -> anyhow::Result<DealerSocket> {
    let mut options = SocketOptions::default();
    if let Some(id) = identity {
        options.peer_identity(PeerIdentity::try_from(id.as_bytes())?);
    }
    let mut socket = DealerSocket::with_options(options);
    within("connecting a raw DEALER", socket.connect(address)).await??;
    Ok(socket)
}

/// Frame bodies that are not a valid `Frame<ClientMsg>`, each with what it is.
fn malformed_bodies() -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    let wrong_version = encode(&Frame { v: PROTOCOL_VERSION + 1, msgs: vec![ClientMsg::Heartbeat] })?;
    // Worker messages that no client message decodes as.
    let worker_msgs = encode_frame(&[WorkerMsg::Finished {
        key: "inc-1".into(),
        attempt: reprise_proto::Attempt(1),
        nbytes: 1,
        inline: Some(vec![0x02]),
    }])?;
    // Ten thousand nested one-element arrays: past any recursion limit.
    let mut deep = vec![0x81u8; 10_000];
    deep.push(0x00);
    // {"v": 1, "msgs": [<claims 2^63 items>…]}: a length no one should reserve for.
    let mut huge = vec![0xa2, 0x61, b'v', 0x01, 0x64, b'm', b's', b'g', b's', 0x9b];
    huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
    Ok(vec![
        ("garbage", b"\xff\x00 this is not CBOR \x1f\xfe".to_vec()),
        ("empty", Vec::new()),
        ("wrong protocol version", wrong_version),
        ("worker messages from a client", worker_msgs),
        ("over-nested CBOR", deep),
        ("an array claiming 2^63 items", huge),
    ])
}

/// A valid ZMTP 3.0 greeting (NULL mechanism, not as-server): 64 bytes.
fn zmtp_greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// Open a raw TCP connection to the scheduler's port, send `bytes`, and
/// return once the scheduler has closed the connection.
async fn send_raw_and_expect_close(what: &str, address: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let hostport = address.strip_prefix("tcp://").context("not a tcp:// address")?;
    let mut stream = within("raw TCP connect", tokio::net::TcpStream::connect(hostport)).await??;
    // The scheduler may close before reading everything: a reset is fine.
    let _ = within("raw TCP write", stream.write_all(bytes)).await?;
    let mut sink = Vec::new();
    match within(&format!("the scheduler closing the connection after {what}"), stream.read_to_end(&mut sink)).await? {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => bail!("reading from the raw connection: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_connections_leave_the_scheduler_serving() -> anyhow::Result<()> {
    let cluster = Cluster::start_async(ClusterSpec::new(1, 2)).await?;
    let address = cluster.address().to_owned();

    // A client identity: each malformed frame gets an error reply.
    let mut as_client = dealer(&address, Some("c:e2e-intruder")).await?;
    let bodies = malformed_bodies()?;
    for (_, body) in &bodies {
        within("raw send", as_client.send(ZmqMessage::from(body.clone()))).await??;
    }
    let mut replies = Vec::new();
    for (what, _) in &bodies {
        let reply = within_for(&format!("the error reply to the {what} frame"), Duration::from_secs(20), as_client.recv()).await??;
        let body = reply.into_vec().pop().context("an empty reply")?;
        match decode_frame::<ToClient>(&body)?.as_slice() {
            [ToClient::Error { message }] => replies.push(message.clone()),
            other => bail!("expected one error reply to the {what} frame, got {other:?}"),
        }
    }
    assert!(replies.iter().all(|m| m.contains("malformed")), "{replies:?}");
    assert!(replies.iter().any(|m| m.contains("version")), "no reply names the protocol version: {replies:?}");
    // Two bodies in one message: not a frame at all; dropped without a reply.
    let mut two_parts = ZmqMessage::from(b"part one".to_vec());
    two_parts.push_back(Bytes::from_static(b"part two"));
    within("raw send", as_client.send(two_parts)).await??;

    // A worker identity, and no identity at all: the same frames, dropped.
    let mut as_worker = dealer(&address, Some("w:e2e-intruder")).await?;
    let mut anonymous = dealer(&address, None).await?;
    for (_, body) in &bodies {
        within("raw send", as_worker.send(ZmqMessage::from(body.clone()))).await??;
        within("raw send", anonymous.send(ZmqMessage::from(body.clone()))).await??;
    }
    drop((as_client, as_worker, anonymous));

    // Below ZeroMQ: not a ZMTP greeting; a greeting then a 1 TiB frame header;
    // a connection closed at once.
    // (At least the greeting's 64 bytes: zeromq waits for a whole greeting,
    // with no deadline, before it looks at one.)
    let http = format!("GET / HTTP/1.1\r\nHost: reprise\r\nUser-Agent: {}\r\n\r\n", "x".repeat(64));
    send_raw_and_expect_close("an HTTP request", &address, http.as_bytes()).await?;
    let mut tebibyte = zmtp_greeting().to_vec();
    tebibyte.push(0x02); // a long message frame, no more parts
    tebibyte.extend_from_slice(&(1u64 << 40).to_be_bytes());
    send_raw_and_expect_close("a ZMTP greeting and a 1 TiB frame header", &address, &tebibyte).await?;
    drop(within("raw TCP connect", tokio::net::TcpStream::connect(address.trim_start_matches("tcp://"))).await??);

    assert!(cluster.scheduler().is_running(), "the scheduler process died; stderr:\n{}", cluster.scheduler().stderr());
    expect_serving(&cluster).await
}

/// A normal client gets results and sees the worker; `reprise status` too.
async fn expect_serving(cluster: &Cluster) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let a: Future<i64> = client.submit("inc", (1,))?;
    let b: Future<i64> = client.submit("add", (&a, 40))?;
    assert_eq!(within("add(inc(1), 40)", b.result()).await??, 42);
    let futs: Vec<Future<i64>> = client.map("inc", 0..100i64)?;
    assert_eq!(within("gather", client.gather(&futs)).await??, (1..=100).collect::<Vec<i64>>());
    let cores = within("ncores", client.ncores()).await??;
    assert_eq!(cores.keys().map(ToString::to_string).collect::<Vec<_>>(), vec!["e2e-w0".to_owned()]);
    within("closing the client", client.close()).await??;

    let status = Proc::spawn("status", &reprise_bin()?, &["status", "--scheduler", cluster.address()])?;
    let exit = tokio::task::spawn_blocking(move || status.wait_exit(Duration::from_secs(60)).map(|s| (s, status.stdout()))).await??;
    assert!(exit.0.success(), "reprise status failed: {}", exit.0);
    assert!(exit.1.contains("e2e-w0"), "reprise status does not list the worker:\n{}", exit.1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_formed_messages_out_of_protocol_order_leave_the_scheduler_serving() -> anyhow::Result<()> {
    let cluster = Cluster::start_async(ClusterSpec::new(1, 2)).await?;
    let address = cluster.address().to_owned();

    // A client that never said Hello submits a task with an unknown input,
    // a task that depends on itself, and releases and cancels unknown keys.
    let mut rude_client = dealer(&address, Some("c:e2e-no-hello")).await?;
    let args = encode(&(1i64,))?;
    let msgs = vec![
        ClientMsg::Submit {
            tasks: vec![
                reprise_proto::TaskSpec::new("inc-orphan".into(), "inc", args.clone(), vec!["no-such-key".into()]),
                reprise_proto::TaskSpec::new("inc-self".into(), "inc", args, vec!["inc-self".into()]),
            ],
        },
        ClientMsg::Release { keys: vec!["never-submitted".into()] },
        ClientMsg::Cancel { keys: vec!["never-submitted".into()], force: true },
        ClientMsg::FireAndForget { keys: vec!["never-submitted".into()] },
        ClientMsg::Goodbye,
    ];
    within("raw send", rude_client.send(ZmqMessage::from(encode_frame(&msgs)?))).await??;

    // A worker that never registered reports results and errors.
    let mut ghost_worker = dealer(&address, Some("w:e2e-ghost")).await?;
    let msgs = vec![
        WorkerMsg::Finished { key: "inc-orphan".into(), attempt: reprise_proto::Attempt(7), nbytes: 1, inline: Some(vec![0x01]) },
        WorkerMsg::Heartbeat,
        WorkerMsg::Goodbye,
    ];
    within("raw send", ghost_worker.send(ZmqMessage::from(encode_frame(&msgs)?))).await??;
    drop((rude_client, ghost_worker));

    assert!(cluster.scheduler().is_running(), "the scheduler process died; stderr:\n{}", cluster.scheduler().stderr());
    expect_serving(&cluster).await?;
    assert!(cluster.scheduler().is_running(), "the scheduler process died; stderr:\n{}", cluster.scheduler().stderr());
    Ok(())
}
