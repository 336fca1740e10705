//! How actors appear in the shared vocabulary.
//!
//! Creating an actor is an ordinary task whose function is
//! `actor:<type name>` ([`ACTOR_FUNC_PREFIX`]); workers advertise that
//! function for each actor type they registered, so the scheduler places the
//! task like any other. The task's result is an [`ActorRef`]: where the
//! instance lives, so that calls (`PeerRequest::ActorCall`) go straight to
//! that worker's peer socket. The result never travels inline, so it never
//! outlives the worker in the log: when the worker is lost, the key errs
//! instead of being recomputed elsewhere (actors are not resilient, as in Dask).
use serde::{Deserialize, Serialize};

use crate::WorkerId;

/// The function-name prefix of the task that creates an actor of a type:
/// `actor:Counter` creates a `Counter`.
pub const ACTOR_FUNC_PREFIX: &str = "actor:";

/// The actor type a task function creates, if it creates one.
///
/// ```
/// assert_eq!(reprise_proto::actor_type("actor:Counter"), Some("Counter"));
/// assert_eq!(reprise_proto::actor_type("inc"), None);
/// ```
pub fn actor_type(func: &str) -> Option<&str> {
    func.strip_prefix(ACTOR_FUNC_PREFIX)
}

/// The result of an actor-creating task: which actor type, and the worker
/// (and its peer address) where the instance lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRef {
    pub actor: String,
    pub worker: WorkerId,
    pub address: String,
}
