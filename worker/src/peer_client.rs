//! Fetching inputs from other workers' peer sockets, over a small pool of
//! DEALER sockets per peer address.
//!
//! A socket that failed in any way is dropped, never reused: a zeromq 0.7
//! DEALER does not reattach after its peer restarts (zmq.rs issue #143), and
//! dropping it also guarantees no stale reply is read by the next request.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reprise_proto::{decode_frame, encode_frame, Key, PeerReply, PeerRequest, RequestId};
use zeromq::{DealerSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

/// How long to try connecting to a peer before counting it as a failure.
pub(crate) const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take, transfer included.
pub(crate) const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle sockets kept per peer address.
const IDLE_SOCKETS_PER_PEER_MAX: usize = 4;
/// Peer addresses with idle sockets kept.
const IDLE_PEERS_MAX: usize = 1024;

/// The pool of connections to other workers' peer sockets.
#[derive(Default)]
pub(crate) struct PeerClient {
    idle: Mutex<BTreeMap<String, Vec<DealerSocket>>>,
    next_req: AtomicU64,
}

impl PeerClient {
    /// Ask the peer at `address` for `keys`: one entry per key, in order,
    /// `None` for a key the peer does not hold.
    pub(crate) async fn get(&self, address: &str, keys: &[Key]) -> Result<Vec<(Key, Option<Bytes>)>, String> {
        let mut socket = match self.take_idle(address) {
            Some(socket) => socket,
            None => connect(address).await?,
        };
        let req = RequestId(self.next_req.fetch_add(1, Ordering::Relaxed) + 1);
        let mut found = tokio::time::timeout(PEER_REQUEST_TIMEOUT, request(&mut socket, req, keys))
            .await
            .map_err(|_| format!("no answer from {address} within {PEER_REQUEST_TIMEOUT:?}"))??;
        self.put_idle(address, socket);
        Ok(keys.iter().map(|k| (k.clone(), found.remove(k).flatten())).collect())
    }

    fn take_idle(&self, address: &str) -> Option<DealerSocket> {
        let mut idle = self.idle.lock().ok()?;
        let sockets = idle.get_mut(address)?;
        let socket = sockets.pop();
        if sockets.is_empty() {
            idle.remove(address);
        }
        socket
    }

    fn put_idle(&self, address: &str, socket: DealerSocket) {
        let Ok(mut idle) = self.idle.lock() else { return };
        if idle.len() >= IDLE_PEERS_MAX && !idle.contains_key(address) {
            return; // drop the socket rather than grow without bound
        }
        let sockets = idle.entry(address.to_owned()).or_default();
        if sockets.len() < IDLE_SOCKETS_PER_PEER_MAX {
            sockets.push(socket);
        }
    }
}

async fn connect(address: &str) -> Result<DealerSocket, String> {
    let mut options = SocketOptions::default();
    options.connect_timeout(PEER_CONNECT_TIMEOUT);
    let mut socket = DealerSocket::with_options(options);
    socket.connect(address).await.map_err(|e| format!("cannot connect to peer {address}: {e}"))?;
    Ok(socket)
}

async fn request(socket: &mut DealerSocket, req: RequestId, keys: &[Key]) -> Result<BTreeMap<Key, Option<Bytes>>, String> {
    let frame = encode_frame(&[PeerRequest::Get { req, keys: keys.to_vec() }]).map_err(|e| e.to_string())?;
    socket.send(ZmqMessage::from(frame)).await.map_err(|e| format!("cannot send to peer: {e}"))?;
    loop {
        let message = socket.recv().await.map_err(|e| format!("peer connection failed: {e}"))?;
        let [body] = message.into_vec().try_into().map_err(|parts: Vec<Bytes>| {
            format!("peer sent a message of {} parts, expected 1", parts.len())
        })?;
        let replies: Vec<PeerReply> = decode_frame(&body).map_err(|e| format!("peer sent a bad frame: {e}"))?;
        for reply in replies {
            match reply {
                PeerReply::Data { req: r, items } if r == req => {
                    return Ok(items.into_iter().map(|(k, d)| (k, d.map(|b| Bytes::from(b.into_vec())))).collect());
                }
                PeerReply::Error { req: r, message } if r == req || r == RequestId(0) => {
                    return Err(format!("peer refused the request: {message}"));
                }
                _ => {} // not an answer to this request
            }
        }
    }
}
