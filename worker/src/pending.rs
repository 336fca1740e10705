//! Vocabulary that belongs in `reprise-proto`, kept here until it moves.
use reprise_proto::WorkerId;
use serde::{Deserialize, Serialize};

/// The function name prefix of a task that creates an actor.
pub const ACTOR_FUNC_PREFIX: &str = "actor:";

/// The result of an actor-creating task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRef {
    pub actor: String,
    pub worker: WorkerId,
    pub address: String,
}
