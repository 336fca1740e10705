use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The wire protocol's version, checked in every frame.
/// Bump it when any wire message changes its CBOR form.
pub const PROTOCOL_VERSION: u16 = 3;

/// The largest frame body accepted, checked before decoding.
pub const FRAME_BYTES_MAX: usize = 256 << 20;

/// The most messages one frame may carry.
pub const MESSAGES_PER_FRAME_MAX: usize = 1 << 20;

/// Nesting deeper than this is refused while decoding (a stack-safety bound).
const CBOR_RECURSION_MAX: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {n_bytes} bytes exceeds the {max} byte limit")]
    TooLarge { n_bytes: usize, max: usize },
    #[error("frame carries {n_msgs} messages, over the {max} limit")]
    TooManyMessages { n_msgs: usize, max: usize },
    #[error("protocol version {got} is not supported (this side speaks {want})")]
    Version { got: u16, want: u16 },
    #[error("cannot decode CBOR: {0}")]
    Decode(String),
    #[error("cannot encode CBOR: {0}")]
    Encode(String),
}

/// One ZeroMQ message body: a protocol version and a batch of messages.
#[derive(Debug, Serialize, Deserialize)]
pub struct Frame<M> {
    pub v: u16,
    pub msgs: Vec<M>,
}

#[derive(Serialize)]
struct FrameRef<'a, M> {
    v: u16,
    msgs: &'a [M],
}

/// Encode any value as CBOR.
///
/// ```
/// let bytes = reprise_proto::encode(&(1u8, "x")).unwrap();
/// let back: (u8, String) = reprise_proto::decode(&bytes).unwrap();
/// assert_eq!(back, (1, "x".to_owned()));
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decode CBOR with a recursion limit; never panics on malformed input.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    ciborium::de::from_reader_with_recursion_limit(bytes, CBOR_RECURSION_MAX)
        .map_err(|e| CodecError::Decode(e.to_string()))
}

/// Encode a batch of messages as one frame.
pub fn encode_frame<M: Serialize>(msgs: &[M]) -> Result<Vec<u8>, CodecError> {
    encode(&FrameRef { v: PROTOCOL_VERSION, msgs })
}

/// Decode a frame, checking its size before and its version after decoding.
///
/// ```
/// use reprise_proto::{decode_frame, encode_frame, ToClient};
/// let bytes = encode_frame(&[ToClient::Heartbeat]).unwrap();
/// assert_eq!(decode_frame::<ToClient>(&bytes).unwrap(), vec![ToClient::Heartbeat]);
/// assert!(decode_frame::<ToClient>(b"\xff\x00garbage").is_err());
/// ```
pub fn decode_frame<M: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<M>, CodecError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge { n_bytes: bytes.len(), max: FRAME_BYTES_MAX });
    }
    let frame: Frame<M> = decode(bytes)?;
    if frame.v != PROTOCOL_VERSION {
        return Err(CodecError::Version { got: frame.v, want: PROTOCOL_VERSION });
    }
    if frame.msgs.len() > MESSAGES_PER_FRAME_MAX {
        return Err(CodecError::TooManyMessages { n_msgs: frame.msgs.len(), max: MESSAGES_PER_FRAME_MAX });
    }
    Ok(frame.msgs)
}

/// Results and scattered values up to this size travel inline with their
/// `Finished`/`Scattered` report and are kept in the log, so they survive
/// the loss of their worker and of the scheduler.
pub const INLINE_BYTES_MAX: usize = 64 * 1024;
