//! The worker's peer socket: a ROUTER that clients and other workers ask
//! for data (`PeerRequest::Get`) or give data to (`PeerRequest::Put`).
//!
//! Framing: each ZeroMQ message (after the ROUTER's identity part) is one
//! part holding a `Frame<PeerRequest>`; the answer is one part holding a
//! `Frame<PeerReply>`, one reply per `Get`/`Put` request, in order; actor
//! calls and runs are answered in frames of their own once they ran. A
//! malformed message is answered with `PeerReply::Error { req: RequestId(0), .. }`.
//!
//! A receive task feeds the service loop and a send task drains replies, so
//! a slow reader never stalls the loop: a ROUTER send waits while that
//! peer's queue is full, so each send is bounded by a timeout, and replies
//! that find the outgoing queue full are dropped (the asker times out and asks again).
//! The receive task hands actor calls straight to the actors' threads
//! ([`ActorHost`]), which answer through the send task themselves.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reprise_proto::{decode_frame, encode_frame, Key, PeerReply, PeerRequest, RequestId, TaskError, FRAME_BYTES_MAX};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use zeromq::{RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::actor_host::{ActorHost, Reply};
use crate::{Error, Result};

/// Request batches waiting for the service loop.
const PEER_INCOMING_MAX: usize = 256;
/// Reply batches waiting to be sent.
pub(crate) const PEER_OUTGOING_MAX: usize = 1024;
/// The longest a reply may wait for a slow peer's queue.
const PEER_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What arrived on the peer socket.
#[derive(Debug)]
pub(crate) enum PeerIn {
    Requests { identity: Bytes, requests: Vec<PeerRequest> },
    Malformed { identity: Bytes, message: String },
}

/// Replies to send to one peer.
#[derive(Debug)]
pub(crate) struct PeerOut {
    pub(crate) identity: Bytes,
    pub(crate) replies: Vec<PeerReply>,
}

/// The bound peer socket's channels.
pub(crate) struct PeerServer {
    /// The address peers connect to (the endpoint actually bound).
    pub(crate) address: String,
    pub(crate) incoming: mpsc::Receiver<PeerIn>,
    pub(crate) outgoing: mpsc::Sender<PeerOut>,
}

/// Bind the peer socket on `listen` and start its receive and send tasks in
/// `tasks`; actor calls go to `actors` (on worker `worker`, for messages).
pub(crate) async fn bind(
    listen: &str,
    tasks: &mut JoinSet<()>,
    actors: Arc<ActorHost>,
    worker: String,
) -> Result<PeerServer> {
    let mut socket = RouterSocket::new();
    let endpoint =
        socket.bind(listen).await.map_err(|e| Error::Bind { address: listen.to_owned(), message: e.to_string() })?;
    let (send_half, recv_half) = socket.split();
    let (in_tx, incoming) = mpsc::channel(PEER_INCOMING_MAX);
    let (outgoing, out_rx) = mpsc::channel(PEER_OUTGOING_MAX);
    tasks.spawn(receive(recv_half, in_tx, Dispatch { actors, outgoing: outgoing.clone(), worker }));
    tasks.spawn(send(send_half, out_rx));
    Ok(PeerServer { address: endpoint.to_string(), incoming, outgoing })
}

/// What the receive task needs to hand actor calls to their actors.
struct Dispatch {
    actors: Arc<ActorHost>,
    outgoing: mpsc::Sender<PeerOut>,
    worker: String,
}

impl Dispatch {
    /// Queue the actor calls among `input`'s requests on their actors; the rest go on.
    fn actor_calls(&self, input: PeerIn) -> Option<PeerIn> {
        let PeerIn::Requests { identity, requests } = input else { return Some(input) };
        let mut rest = Vec::new();
        for request in requests {
            match request {
                PeerRequest::ActorCall { req, key, method, args } => self.call(&identity, req, key, method, args),
                other => rest.push(other),
            }
        }
        (!rest.is_empty()).then_some(PeerIn::Requests { identity, requests: rest })
    }

    fn call(&self, identity: &Bytes, req: RequestId, key: Key, method: String, args: Vec<u8>) {
        let reply = answer_from_thread(self.outgoing.clone(), identity.clone(), req);
        if let Err((_, why)) = self.actors.call(&key, method, args, reply) {
            let message = format!("worker {}: {why}", self.worker);
            let out = PeerOut { identity: identity.clone(), replies: vec![PeerReply::Error { req, message }] };
            if self.outgoing.try_send(out).is_err() {
                tracing::warn!("peer replies are backing up; one reply was dropped");
            }
        }
    }
}

/// A reply sent from a thread outside the runtime (an actor's, a run's):
/// it may wait for room in the reply queue, which the async tasks never do.
pub(crate) fn answer_from_thread(outgoing: mpsc::Sender<PeerOut>, identity: Bytes, req: RequestId) -> Reply {
    Box::new(move |outcome: std::result::Result<Vec<u8>, TaskError>| {
        let reply = match outcome {
            Ok(value) => PeerReply::Returned { req, value },
            Err(error) => PeerReply::Raised { req, error },
        };
        // Fails only when the worker is gone; the asker then sees its connection drop.
        let _ = outgoing.blocking_send(PeerOut { identity, replies: vec![reply] });
    })
}

async fn receive(mut socket: zeromq::RouterRecvHalf, incoming: mpsc::Sender<PeerIn>, dispatch: Dispatch) {
    loop {
        let message = match socket.recv().await {
            Ok(message) => message,
            Err(e) => {
                // zeromq reports per-peer failures itself; a socket-level
                // error is unexpected, so back off instead of spinning.
                tracing::warn!("peer socket receive failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(input) = parse(message).and_then(|input| dispatch.actor_calls(input)) else { continue };
        if incoming.send(input).await.is_err() {
            return;
        }
    }
}

fn parse(message: ZmqMessage) -> Option<PeerIn> {
    let mut parts = message.into_vecdeque();
    let identity = parts.pop_front()?;
    if parts.len() != 1 {
        let message = format!("expected one message part holding a frame, got {}", parts.len());
        return Some(PeerIn::Malformed { identity, message });
    }
    let body = parts.pop_front()?;
    Some(match decode_frame::<PeerRequest>(&body) {
        Ok(requests) => PeerIn::Requests { identity, requests },
        Err(e) => PeerIn::Malformed { identity, message: format!("cannot decode the request frame: {e}") },
    })
}

async fn send(mut socket: zeromq::RouterSendHalf, mut outgoing: mpsc::Receiver<PeerOut>) {
    while let Some(out) = outgoing.recv().await {
        let Some(frame) = encode_replies(&out.replies) else { continue };
        let mut message = ZmqMessage::from(frame);
        message.push_front(out.identity);
        match tokio::time::timeout(PEER_SEND_TIMEOUT, socket.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("peer reply not sent (the peer left?): {e}"),
            Err(_) => tracing::warn!("a peer is not reading its replies; one reply was dropped"),
        }
    }
}

/// The reply frame; a frame too large for the receiver to accept becomes an
/// error reply per request instead.
fn encode_replies(replies: &[PeerReply]) -> Option<Vec<u8>> {
    match encode_frame(replies) {
        Ok(frame) if frame.len() <= FRAME_BYTES_MAX => return Some(frame),
        Ok(frame) => tracing::warn!("a reply of {} bytes exceeds the frame limit", frame.len()),
        Err(e) => tracing::error!("cannot encode peer replies: {e}"),
    }
    let errors: Vec<PeerReply> = replies
        .iter()
        .map(|r| PeerReply::Error {
            req: r.req(),
            message: format!("the reply exceeds the {FRAME_BYTES_MAX} byte frame limit; ask for fewer keys at once"),
        })
        .collect();
    encode_frame(&errors).ok()
}
