//! ZeroMQ plumbing shared by the scheduler link and the peer connections.
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc as fmpsc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zeromq::prelude::*;
use zeromq::{DealerRecvHalf, DealerSocket, SocketEvent, SocketOptions};

/// Incoming frames buffered between a socket's reader task and its owner.
const FRAMES_IN_MAX: usize = 1024;

/// A spawned task that is aborted when this handle is dropped.
pub(crate) struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connected DEALER and the monitor that reports its disconnection.
pub(crate) struct Dealer {
    pub socket: DealerSocket,
    pub monitor: fmpsc::Receiver<SocketEvent>,
}

/// Connect a fresh DEALER (with `identity`, if given) to `address`, giving
/// up after `timeout`. A DEALER never reattaches after its peer restarts
/// (zmq.rs issue #143), so every reconnect goes through here.
pub(crate) async fn connect_dealer(address: &str, identity: Option<&str>, timeout: Duration) -> Result<Dealer, String> {
    let mut options = SocketOptions::default();
    if let Some(id) = identity {
        let id = zeromq::util::PeerIdentity::try_from(id.as_bytes()).map_err(|e| format!("bad identity {id:?}: {e}"))?;
        options.peer_identity(id);
    }
    options.connect_timeout(timeout);
    let mut socket = DealerSocket::with_options(options);
    let monitor = socket.monitor();
    match tokio::time::timeout(timeout, socket.connect(address)).await {
        Ok(Ok(())) => Ok(Dealer { socket, monitor }),
        Ok(Err(e)) => Err(format!("cannot connect to {address}: {e}")),
        Err(_) => Err(format!("cannot connect to {address} within {timeout:?}")),
    }
}

/// Move every received frame into a channel, from a task of its own (so the
/// owner's `select!` never cancels a half-read message). The channel closes
/// when the socket fails.
pub(crate) fn spawn_reader(mut rx: DealerRecvHalf) -> (mpsc::Receiver<Bytes>, AbortOnDrop) {
    let (tx, frames) = mpsc::channel(FRAMES_IN_MAX);
    let task = tokio::spawn(async move {
        while let Ok(msg) = rx.recv().await {
            for part in msg.into_vec() {
                if !part.is_empty() && tx.send(part).await.is_err() {
                    return;
                }
            }
        }
    });
    (frames, AbortOnDrop(task))
}
