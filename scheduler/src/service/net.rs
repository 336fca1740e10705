//! The socket side: identities, decoding, and the receive and send tasks.
use std::sync::Arc;

use bytes::Bytes;
use reprise_proto::{decode_frame, encode_frame, ClientId, ClientMsg, ToClient, WorkerId, WorkerMsg};
use zeromq::{RouterRecvHalf, RouterSendHalf, RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use super::{Metrics, ServiceError};
use crate::core::Input;

/// Decoded frames waiting for the core thread; when full, the receive task
/// stops reading and TCP pushes back on the senders.
pub(super) const INBOUND_FRAMES_MAX: usize = 4096;

const CLIENT_PREFIX: &[u8] = b"c:";
const WORKER_PREFIX: &[u8] = b"w:";

/// One frame's worth of messages for one peer.
pub(super) struct Outbound {
    pub identity: Bytes,
    pub body: Vec<u8>,
}

/// Who a ROUTER identity belongs to.
#[derive(Debug, PartialEq)]
pub(super) enum Peer {
    Client(ClientId),
    Worker(WorkerId),
}

pub(super) fn parse_identity(identity: &[u8]) -> Option<Peer> {
    let name = |rest: &[u8]| std::str::from_utf8(rest).ok().filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(rest) = identity.strip_prefix(CLIENT_PREFIX) {
        return name(rest).map(|s| Peer::Client(ClientId(s)));
    }
    if let Some(rest) = identity.strip_prefix(WORKER_PREFIX) {
        return name(rest).map(|s| Peer::Worker(WorkerId(s)));
    }
    None
}

pub(super) fn client_identity(client: &ClientId) -> Bytes {
    Bytes::from([CLIENT_PREFIX, client.0.as_bytes()].concat())
}

pub(super) fn worker_identity(worker: &WorkerId) -> Bytes {
    Bytes::from([WORKER_PREFIX, worker.0.as_bytes()].concat())
}

pub(super) async fn bind(listen: &str) -> Result<(RouterSocket, String), ServiceError> {
    let mut socket = RouterSocket::new();
    let endpoint = socket
        .bind(listen)
        .await
        .map_err(|e| ServiceError::Bind { address: listen.to_owned(), reason: e.to_string() })?;
    Ok((socket, endpoint.to_string()))
}

/// Turn one frame into core inputs, or say why it was refused.
pub(super) fn decode_inputs(peer: Peer, body: &[u8]) -> Result<Vec<Input>, String> {
    match peer {
        Peer::Client(client) => {
            let msgs = decode_frame::<ClientMsg>(body).map_err(|e| e.to_string())?;
            Ok(msgs.into_iter().map(|msg| Input::Client { client: client.clone(), msg }).collect())
        }
        Peer::Worker(worker) => {
            let msgs = decode_frame::<WorkerMsg>(body).map_err(|e| e.to_string())?;
            Ok(msgs.into_iter().map(|msg| Input::Worker { worker: worker.clone(), msg }).collect())
        }
    }
}

pub(super) async fn receive_loop(
    mut socket: RouterRecvHalf,
    inbound: tokio::sync::mpsc::Sender<Vec<Input>>,
    outbound: tokio::sync::mpsc::UnboundedSender<Vec<Outbound>>,
    metrics: Arc<Metrics>,
) {
    loop {
        let message = match socket.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("scheduler socket receive failed: {e}");
                return;
            }
        };
        Metrics::add(&metrics.frames_in, 1);
        let Some(inputs) = handle_frame(message, &outbound, &metrics) else { continue };
        Metrics::add(&metrics.messages_in, inputs.len() as u64);
        if inbound.send(inputs).await.is_err() {
            return; // the core thread stopped
        }
    }
}

fn handle_frame(
    message: ZmqMessage,
    outbound: &tokio::sync::mpsc::UnboundedSender<Vec<Outbound>>,
    metrics: &Metrics,
) -> Option<Vec<Input>> {
    let mut frames = message.into_vec().into_iter();
    let identity = frames.next()?;
    let (Some(peer), Some(body), None) = (parse_identity(&identity), frames.next(), frames.next()) else {
        Metrics::add(&metrics.frames_unknown_peer, 1);
        return None;
    };
    let is_client = matches!(peer, Peer::Client(_));
    match decode_inputs(peer, &body) {
        Ok(inputs) => Some(inputs),
        Err(reason) => {
            Metrics::add(&metrics.frames_malformed, 1);
            tracing::debug!("malformed frame dropped: {reason}");
            if is_client {
                let reply = ToClient::Error { message: format!("malformed frame dropped: {reason}") };
                if let Ok(body) = encode_frame(&[reply]) {
                    let _ = outbound.send(vec![Outbound { identity, body }]);
                }
            }
            None
        }
    }
}

pub(super) async fn send_loop(
    mut socket: RouterSendHalf,
    mut outbound: tokio::sync::mpsc::UnboundedReceiver<Vec<Outbound>>,
    metrics: Arc<Metrics>,
) {
    while let Some(batch) = outbound.recv().await {
        for Outbound { identity, body } in batch {
            let mut message = ZmqMessage::from(identity);
            message.push_back(Bytes::from(body));
            match socket.send(message).await {
                Ok(()) => Metrics::add(&metrics.frames_out, 1),
                Err(e) => {
                    Metrics::add(&metrics.send_errors, 1);
                    tracing::debug!("send to a peer failed (gone?): {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_name_clients_and_workers_and_nothing_else() {
        assert_eq!(parse_identity(b"c:abc"), Some(Peer::Client(ClientId::from("abc"))));
        assert_eq!(parse_identity(b"w:worker-0"), Some(Peer::Worker(WorkerId::from("worker-0"))));
        assert_eq!(parse_identity(b"c:"), None);
        assert_eq!(parse_identity(b"\x00\x01\x02"), None);
        assert_eq!(parse_identity(b"x:abc"), None);
        assert_eq!(parse_identity(b"c:\xff\xfe"), None);
    }

    #[test]
    fn garbage_frames_are_refused_with_a_reason() {
        assert!(decode_inputs(Peer::Client(ClientId::from("a")), b"\x00garbage").is_err());
        assert!(decode_inputs(Peer::Worker(WorkerId::from("w")), &[]).is_err());
    }
}
