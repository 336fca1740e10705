//! Connections to workers' peer sockets, pooled per address: fetching
//! results (`PeerRequest::Get`), storing scattered data (`Put`), actor
//! calls and `run`. Replies are matched to requests by id, so replies that
//! come in their own frames (actor calls, runs) and out of order are fine.
//! A connection whose worker disconnects fails its waiting calls at once.
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use reprise_proto::{decode_frame, encode_frame, PeerReply, PeerRequest, RequestId};
use tokio::sync::{mpsc, oneshot};
use zeromq::prelude::*;
use zeromq::{SocketEvent, ZmqMessage};

use crate::socket::{connect_dealer, spawn_reader};

/// Requests queued to one peer connection before callers wait.
const CALLS_QUEUED_MAX: usize = 256;
/// How long connecting to a worker's peer socket may take: a registered
/// worker has bound it already, so refusals past this mean it is gone.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

type Call = (PeerRequest, oneshot::Sender<PeerReply>);

/// Why a call to a worker's peer socket got no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerFailure {
    pub kind: PeerFailureKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerFailureKind {
    /// The worker could not be reached, or the connection to it closed.
    Unreachable,
    /// The worker did not answer in time.
    Timeout,
}

impl fmt::Display for PeerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<PeerFailure> for String {
    fn from(f: PeerFailure) -> String {
        f.message
    }
}

fn unreachable(message: String) -> PeerFailure {
    PeerFailure { kind: PeerFailureKind::Unreachable, message }
}

/// One connection's request queue; its task owns the socket.
#[derive(Clone)]
struct PeerConn {
    calls: mpsc::Sender<Call>,
}

/// Pooled DEALERs to worker peer sockets, one per address.
pub(crate) struct PeerPool {
    conns: Mutex<BTreeMap<String, PeerConn>>,
    next_req: AtomicU64,
    timeout: Duration,
}

impl PeerPool {
    /// A pool whose calls fail after `timeout` without a reply.
    pub fn new(timeout: Duration) -> PeerPool {
        PeerPool { conns: Mutex::new(BTreeMap::new()), next_req: AtomicU64::new(1), timeout }
    }

    /// Send one request to the peer at `address` and wait for its reply.
    /// On failure the connection is dropped, so the next call makes a fresh one.
    pub async fn call(
        &self,
        address: &str,
        make: impl FnOnce(RequestId) -> PeerRequest,
    ) -> Result<PeerReply, PeerFailure> {
        let req = RequestId(self.next_req.fetch_add(1, Ordering::Relaxed));
        let conn = self.conn(address);
        let (tx, rx) = oneshot::channel();
        let closed = || unreachable(format!("connection to worker {address} closed"));
        let outcome = async {
            conn.calls.send((make(req), tx)).await.map_err(|_| closed())?;
            match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(_)) => Err(closed()),
                Err(_) => Err(PeerFailure {
                    kind: PeerFailureKind::Timeout,
                    message: format!("worker {address} did not answer within {:?}", self.timeout),
                }),
            }
        }
        .await;
        if outcome.is_err() {
            self.evict(address, &conn);
        }
        outcome
    }

    fn conn(&self, address: &str) -> PeerConn {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = conns.get(address).filter(|c| !c.calls.is_closed()) {
            return c.clone();
        }
        let (tx, rx) = mpsc::channel(CALLS_QUEUED_MAX);
        tokio::spawn(run_conn(address.to_owned(), rx, self.timeout));
        let conn = PeerConn { calls: tx };
        conns.insert(address.to_owned(), conn.clone());
        conn
    }

    fn evict(&self, address: &str, conn: &PeerConn) {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        if conns.get(address).is_some_and(|c| c.calls.same_channel(&conn.calls)) {
            conns.remove(address);
        }
    }
}

/// Own one DEALER to a peer: send queued requests, route replies back by
/// request id. Ends (failing its callers) when the socket or queue closes,
/// or the worker disconnects.
async fn run_conn(address: String, mut calls: mpsc::Receiver<Call>, timeout: Duration) {
    let dealer = match connect_dealer(&address, None, timeout.min(PEER_CONNECT_TIMEOUT)).await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(%e, "peer connection failed");
            return;
        }
    };
    let mut monitor = dealer.monitor;
    let mut monitor_live = true;
    let (mut tx, rx) = dealer.socket.split();
    let (mut frames, _reader) = spawn_reader(rx);
    let mut waiting: BTreeMap<RequestId, oneshot::Sender<PeerReply>> = BTreeMap::new();
    loop {
        tokio::select! {
            event = monitor.next(), if monitor_live => match event {
                // A worker that died takes its replies with it: fail the
                // waiting calls now rather than at their timeout.
                Some(SocketEvent::Disconnected(_)) => {
                    tracing::debug!(%address, "the worker's peer socket disconnected");
                    return;
                }
                Some(_) => {}
                None => monitor_live = false,
            },
            call = calls.recv() => {
                let Some((request, reply)) = call else { return };
                let req = request.req();
                let Ok(frame) = encode_frame(&[request]) else { return };
                waiting.insert(req, reply);
                if tx.send(ZmqMessage::from(frame)).await.is_err() {
                    return;
                }
            }
            frame = frames.recv() => {
                let Some(frame) = frame else { return };
                let replies = match decode_frame::<PeerReply>(&frame) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(%address, %e, "undecodable reply from a worker");
                        continue;
                    }
                };
                for reply in replies {
                    if let Some(w) = waiting.remove(&reply.req()) {
                        let _ = w.send(reply);
                    }
                }
            }
        }
    }
}
