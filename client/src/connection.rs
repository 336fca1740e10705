//! The connection task: owns the DEALER to the scheduler, feeds the session
//! what arrives, sends what it batches, keeps its clock, and reconnects with
//! a fresh DEALER (same identity) whenever the scheduler goes silent.
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reprise_proto::{decode_frame, encode_frame, CodecError, ToClient};
use zeromq::prelude::*;
use zeromq::{SocketEvent, ZmqMessage};

use crate::error::Error;
use crate::shared::{LinkEvent, Shared};
use crate::socket::{connect_dealer, spawn_reader, Dealer};

/// How long one connection attempt may take before the next one starts.
const CONNECT_ATTEMPT: Duration = Duration::from_secs(2);
/// After the goodbye, how long the line must stay quiet before closing…
const LINGER_QUIET: Duration = Duration::from_millis(30);
/// …and the longest the close waits for that.
const LINGER_MAX: Duration = Duration::from_millis(500);
/// The pause between failed connection attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// How one connection ended.
enum LinkEnd {
    /// The session is closed (goodbye sent, or nothing to say it on).
    Closed,
    Refused(String),
    /// The scheduler went away; `welcomed` says whether it had accepted us.
    Lost { welcomed: bool },
}

/// Connect, serve, reconnect until the client is closed, refused, or has
/// been unable to reach the scheduler for `reconnect_timeout`.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut down_since = Instant::now();
    let mut term = shared.terminal_rx();
    let identity = shared.config.identity();
    loop {
        if shared.session_closed() {
            return;
        }
        if down_since.elapsed() > shared.config.reconnect_timeout {
            tracing::warn!(address = %shared.config.address, "giving up on the scheduler");
            shared.shutdown(Error::ConnectionLost);
            return;
        }
        let attempt = tokio::select! {
            d = connect_dealer(&shared.config.address, Some(&identity), CONNECT_ATTEMPT) => d,
            _ = term.wait_for(Option::is_some) => return,
        };
        let dealer = match attempt {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(%e, "scheduler connection attempt failed");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        match serve(&shared, dealer).await {
            LinkEnd::Closed => return,
            LinkEnd::Refused(reason) => {
                shared.shutdown(Error::Refused(reason));
                return;
            }
            LinkEnd::Lost { welcomed } => {
                tracing::info!(address = %shared.config.address, "lost the scheduler; reconnecting");
                if welcomed {
                    down_since = Instant::now();
                }
            }
        }
    }
}

/// Serve one connection until it ends.
async fn serve(shared: &Shared, dealer: Dealer) -> LinkEnd {
    let Dealer { socket, mut monitor } = dealer;
    let (mut tx, rx) = socket.split();
    let (mut frames, _reader) = spawn_reader(rx);
    let mut term = shared.terminal_rx();
    let mut welcomed = false;
    let mut events = shared.link_call(|s, now| s.handle_connected(now));
    loop {
        for event in events.drain(..) {
            match event {
                LinkEvent::Welcome => welcomed = true,
                LinkEvent::Refused(reason) => return LinkEnd::Refused(reason),
                LinkEvent::Lost => return LinkEnd::Lost { welcomed },
            }
        }
        if let Err(e) = flush(shared, &mut tx).await {
            tracing::debug!(%e, "send to the scheduler failed");
            shared.link_call(|s, _| s.handle_disconnected());
            return LinkEnd::Lost { welcomed };
        }
        if shared.session_closed() {
            linger(&mut frames).await;
            return LinkEnd::Closed;
        }
        let deadline = shared.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => events = receive(shared, &frame),
                None => events = lost(shared),
            },
            event = monitor.next() => {
                if matches!(event, Some(SocketEvent::Disconnected(_)) | None) {
                    events = lost(shared);
                }
            }
            _ = shared.wake_io.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {
                events = shared.link_call(|s, now| s.handle_timeout(now));
            }
            _ = term.changed() => {}
        }
    }
}

/// After the goodbye: read (and drop) what still arrives until the line is
/// quiet, so that the socket closes with nothing unread. Closing a TCP
/// socket with unread data makes the kernel reset the connection, which
/// can discard the goodbye (and a last release) before the scheduler reads
/// them; the scheduler would then only notice at its heartbeat timeout.
async fn linger(frames: &mut tokio::sync::mpsc::Receiver<bytes::Bytes>) {
    let until = Instant::now() + LINGER_MAX;
    while Instant::now() < until {
        match tokio::time::timeout(LINGER_QUIET, frames.recv()).await {
            Ok(Some(_)) => continue,        // something arrived: wait for quiet again
            Ok(None) | Err(_) => return,    // the reader ended, or the line is quiet
        }
    }
}

/// The connection is gone for sure (the socket said so): skip the silence wait.
fn lost(shared: &Shared) -> Vec<LinkEvent> {
    shared.link_call(|s, _| s.handle_disconnected());
    vec![LinkEvent::Lost]
}

/// Decode one frame and hand its messages to the session.
fn receive(shared: &Shared, frame: &[u8]) -> Vec<LinkEvent> {
    match decode_frame::<ToClient>(frame) {
        Ok(msgs) => shared.link_call(|s, now| msgs.into_iter().for_each(|m| s.handle_message(m, now))),
        // A scheduler that speaks another version can never accept us.
        Err(e @ CodecError::Version { .. }) => vec![LinkEvent::Refused(e.to_string())],
        Err(e) => {
            tracing::warn!(%e, "dropped an undecodable frame from the scheduler");
            Vec::new()
        }
    }
}

/// Send every batch the session has ready, one frame each.
async fn flush(shared: &Shared, tx: &mut zeromq::DealerSendHalf) -> Result<(), String> {
    while let Some(batch) = shared.poll_transmit() {
        let frame = encode_frame(&batch).map_err(|e| e.to_string())?;
        tx.send(ZmqMessage::from(frame)).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
