//! Connections to workers' peer sockets, pooled per address: fetching
//! results (`PeerRequest::Get`) and storing scattered data (`Put`).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reprise_proto::{decode_frame, encode_frame, PeerReply, PeerRequest, RequestId};
use tokio::sync::{mpsc, oneshot};
use zeromq::prelude::*;
use zeromq::ZmqMessage;

use crate::socket::{connect_dealer, spawn_reader};

/// Requests queued to one peer connection before callers wait.
const CALLS_QUEUED_MAX: usize = 256;

type Call = (PeerRequest, oneshot::Sender<PeerReply>);

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
    pub async fn call(&self, address: &str, make: impl FnOnce(RequestId) -> PeerRequest) -> Result<PeerReply, String> {
        let req = RequestId(self.next_req.fetch_add(1, Ordering::Relaxed));
        let conn = self.conn(address);
        let (tx, rx) = oneshot::channel();
        let outcome = async {
            conn.calls.send((make(req), tx)).await.map_err(|_| format!("connection to worker {address} closed"))?;
            match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(_)) => Err(format!("connection to worker {address} closed")),
                Err(_) => Err(format!("worker {address} did not answer within {:?}", self.timeout)),
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
/// request id. Ends (failing its callers) when the socket or queue closes.
async fn run_conn(address: String, mut calls: mpsc::Receiver<Call>, timeout: Duration) {
    let dealer = match connect_dealer(&address, None, timeout).await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(%e, "peer connection failed");
            return;
        }
    };
    let (mut tx, rx) = dealer.socket.split();
    let (mut frames, _reader) = spawn_reader(rx);
    let mut waiting: BTreeMap<RequestId, oneshot::Sender<PeerReply>> = BTreeMap::new();
    loop {
        tokio::select! {
            call = calls.recv() => {
                let Some((request, reply)) = call else { return };
                let req = match &request {
                    PeerRequest::Get { req, .. } | PeerRequest::Put { req, .. } => *req,
                };
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
                    let req = match &reply {
                        PeerReply::Data { req, .. } | PeerReply::Stored { req } | PeerReply::Error { req, .. } => *req,
                    };
                    if let Some(w) = waiting.remove(&req) {
                        let _ = w.send(reply);
                    }
                }
            }
        }
    }
}
