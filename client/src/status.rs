//! What a key came to, as the client sees it.
use std::sync::Arc;

use reprise_proto::{KeyState, TaskError, WorkerId};

/// A future's state, as Dask's `Future.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FutureStatus {
    /// Not finished yet (waiting, queued, running, or being recomputed).
    Pending,
    /// The result exists.
    Finished,
    /// The task (or an input) failed.
    Error,
    /// The future was cancelled.
    Cancelled,
    /// The data was lost and will not be recomputed.
    Lost,
}

/// A key's status with what the client needs to act on it: where a result
/// can be fetched (or the value itself when small) and why a task failed.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyStatus {
    /// Not finished yet.
    Pending,
    /// The result exists.
    Finished {
        /// The encoded result's size.
        nbytes: u64,
        /// `(worker, peer address)` of each holder.
        holders: Vec<(WorkerId, String)>,
        /// The encoded value itself, when small enough to travel inline.
        inline: Option<Arc<[u8]>>,
    },
    /// The task (or an input) failed.
    Erred(TaskError),
    /// Cancelled; stays so for this session whatever the task comes to.
    Cancelled,
    /// The data was lost and will not be recomputed.
    Lost,
}

impl KeyStatus {
    /// Whether the key has come to an end (anything but `Pending`).
    pub fn is_done(&self) -> bool {
        !matches!(self, KeyStatus::Pending)
    }

    /// The public status this maps to.
    pub fn future_status(&self) -> FutureStatus {
        match self {
            KeyStatus::Pending => FutureStatus::Pending,
            KeyStatus::Finished { .. } => FutureStatus::Finished,
            KeyStatus::Erred(_) => FutureStatus::Error,
            KeyStatus::Cancelled => FutureStatus::Cancelled,
            KeyStatus::Lost => FutureStatus::Lost,
        }
    }
}

impl From<KeyState> for KeyStatus {
    fn from(state: KeyState) -> Self {
        match state {
            KeyState::Finished { nbytes, location } => KeyStatus::Finished {
                nbytes,
                holders: location.holders,
                inline: location.inline.map(Arc::from),
            },
            KeyState::Erred(e) => KeyStatus::Erred(e),
            KeyState::Cancelled => KeyStatus::Cancelled,
            KeyState::Lost => KeyStatus::Lost,
        }
    }
}
