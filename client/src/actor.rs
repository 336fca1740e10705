//! `ActorHandle`: a handle on an actor living on one worker, whose method
//! calls go straight to that worker's peer socket, not through the scheduler.
use std::fmt;
use std::sync::{Arc, OnceLock};

use reprise_proto::{ActorRef, Key, PeerReply, PeerRequest, WorkerId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::DEFAULT_TIMEOUT;
use crate::error::{Error, Result};
use crate::future::{decode_result, Future};
use crate::keys::encode_args;
use crate::peer::{PeerFailureKind, PeerPool};
use crate::status::FutureStatus;

/// The connections of handles that did not come from a client (deserialized
/// inside a task): one pool for the process.
fn detached_peers() -> &'static PeerPool {
    static PEERS: OnceLock<PeerPool> = OnceLock::new();
    PEERS.get_or_init(|| PeerPool::new(DEFAULT_TIMEOUT))
}

/// An actor: an instance of a type registered on a worker with
/// `Worker::builder().actor::<T>("Name")`, created by
/// [`Client::submit_actor`](crate::Client::submit_actor).
///
/// Calls on one actor run one at a time, in the order the worker receives
/// them. Actors are not resilient (as in Dask): when the actor's worker
/// dies, calls fail with [`Error::ActorLost`] and the actor is not made
/// again elsewhere.
///
/// A handle is cheap to clone. The handles made by `submit_actor` (and
/// their clones) keep the actor alive; when the last is dropped, the actor
/// goes. A handle serializes as a reference (actor, key, worker, address),
/// so it can be passed to a task, where the deserialized handle calls the
/// same actor (without keeping it alive).
///
/// ```no_run
/// # async fn demo(client: reprise_client::Client) -> reprise_client::Result<()> {
/// let counter = client.submit_actor("Counter", ()).await?;
/// let n: u64 = counter.call("increment", ()).await?;
/// assert_eq!(n, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ActorHandle {
    inner: Arc<Inner>,
}

struct Inner {
    key: Key,
    at: ActorRef,
    /// The creating task's future: keeps the actor alive, and tells when
    /// the scheduler lost it. `None` for a deserialized handle.
    future: Option<Future<ActorRef>>,
}

impl ActorHandle {
    pub(crate) fn new(future: Future<ActorRef>, at: ActorRef) -> Self {
        ActorHandle { inner: Arc::new(Inner { key: future.key_ref().clone(), at, future: Some(future) }) }
    }

    /// The key of the task that created the actor.
    pub fn key(&self) -> &str {
        self.inner.key.as_str()
    }

    /// The actor's type name, as registered on the worker.
    pub fn actor(&self) -> &str {
        &self.inner.at.actor
    }

    /// The worker the actor lives on.
    pub fn worker(&self) -> &WorkerId {
        &self.inner.at.worker
    }

    /// That worker's peer socket, where calls go.
    pub fn address(&self) -> &str {
        &self.inner.at.address
    }

    /// Call `method` with `args` (a tuple, or any sequence, as for a task:
    /// `()` for none) and return what it returns. A method that fails gives
    /// `Error::Task` (the key is the actor's); a gone worker gives
    /// `Error::ActorLost`; no answer within the client timeout `Error::Timeout`.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, args: impl Serialize) -> Result<T> {
        self.check_alive()?;
        let args = encode_args(&args)?;
        if !args.deps.is_empty() {
            let message =
                format!("the arguments of `{method}` hold futures, which actor methods cannot take; pass values");
            return Err(self.refused(message));
        }
        let (key, method_name) = (self.inner.key.clone(), method.to_owned());
        let call = |req| PeerRequest::ActorCall { req, key, method: method_name, args: args.bytes };
        match self.peers().call(self.address(), call).await {
            Ok(PeerReply::Returned { value, .. }) => decode_result(&self.inner.key, &value),
            Ok(PeerReply::Raised { error, .. }) => Err(Error::Task(error)),
            Ok(PeerReply::Error { message, .. }) => Err(self.refused(message)),
            Ok(other) => Err(Error::Protocol(format!("an actor call was answered with {other:?}"))),
            Err(failure) if failure.kind == PeerFailureKind::Timeout => Err(Error::Timeout),
            Err(failure) => Err(self.lost(failure.message)),
        }
    }

    /// `Err(ActorLost)` when the scheduler already knows the actor is gone.
    fn check_alive(&self) -> Result<()> {
        let Some(future) = &self.inner.future else { return Ok(()) };
        match future.status() {
            FutureStatus::Finished | FutureStatus::Pending => Ok(()),
            FutureStatus::Error => Err(self.lost("the scheduler reports the actor lost with its worker".to_owned())),
            FutureStatus::Lost => Err(self.lost("its data was lost (the cluster restarted?)".to_owned())),
            FutureStatus::Cancelled => Err(self.lost("its creation was cancelled".to_owned())),
        }
    }

    fn peers(&self) -> &PeerPool {
        match &self.inner.future {
            Some(future) => &future.shared().peers,
            None => detached_peers(),
        }
    }

    fn lost(&self, reason: String) -> Error {
        Error::ActorLost {
            actor: self.actor().to_owned(),
            key: self.key().to_owned(),
            worker: self.worker().to_string(),
            reason,
        }
    }

    fn refused(&self, message: String) -> Error {
        Error::Actor { actor: self.actor().to_owned(), message }
    }
}

/// What the scheduler's answer about an actor-creating task means for the caller.
pub(crate) fn creation_error(actor: &str, error: Error) -> Error {
    match error {
        Error::UnknownFunction(_) => Error::Actor {
            actor: actor.to_owned(),
            message: format!(
                "no connected worker has registered this actor type: register it with `Worker::builder().actor::<T>({actor:?})`"
            ),
        },
        other => other,
    }
}

/// The form a handle travels in.
#[derive(Serialize, Deserialize)]
struct Wire {
    key: Key,
    actor: String,
    worker: WorkerId,
    address: String,
}

impl Serialize for ActorHandle {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let at = &self.inner.at;
        Wire {
            key: self.inner.key.clone(),
            actor: at.actor.clone(),
            worker: at.worker.clone(),
            address: at.address.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ActorHandle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let Wire { key, actor, worker, address } = Wire::deserialize(deserializer)?;
        let at = ActorRef { actor, worker, address };
        Ok(ActorHandle { inner: Arc::new(Inner { key, at, future: None }) })
    }
}

impl fmt::Debug for ActorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorHandle")
            .field("actor", &self.actor())
            .field("key", &self.key())
            .field("worker", &self.worker().as_str())
            .finish()
    }
}
