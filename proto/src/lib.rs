//! Reprise's shared vocabulary: ids, task specs, the log's [`Event`] record,
//! the wire messages, and the CBOR codec that carries both.
//!
//! Nothing here does IO. The scheduler core, the log, the client and the
//! worker all speak these types, so a change here is a protocol or a schema
//! change: bump [`PROTOCOL_VERSION`] or [`EVENT_SCHEMA_VERSION`] with it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod actor;
mod codec;
mod event;
mod future_ref;
mod ids;
mod primitive;
mod task;
mod wire;

pub use actor::{actor_type, ActorRef, ACTOR_FUNC_PREFIX};
pub use codec::{decode, decode_frame, encode, encode_frame, CodecError, Frame, FRAME_BYTES_MAX, INLINE_BYTES_MAX, MESSAGES_PER_FRAME_MAX, PROTOCOL_VERSION};
pub use event::{Event, EventKind, Holder, EVENT_SCHEMA_VERSION};
pub use future_ref::{list_refs, replace_refs, future_ref_value, FUTURE_REF_TAG};
pub use primitive::{
    invalid_primitive_name, LeaseOn, OpId, PrimitiveOp, PrimitiveResult, ReplyValue, StoredValue, PRIMITIVE_NAME_BYTES_MAX,
    PRIMITIVE_VALUE_BYTES_MAX,
};
pub use ids::{Attempt, ClientId, Key, RequestId, Seq, WorkerId};
pub use task::{TaskError, TaskErrorKind, TaskSpec};
pub use wire::{
    ClientMsg, ComputeTask, DepLocation, InfoReply, InfoRequest, KeyState, KeyUpdate, PeerReply, PeerRequest, ScatteredItem,
    SchedulerInfo, ToClient, ToWorker, WorkerInfo, WorkerMsg, HELLO_FIRST,
};
