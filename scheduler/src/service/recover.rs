//! Start-up: the newest snapshot plus a replay of the events after it.
use std::path::Path;
use std::time::{Duration, Instant};

use reprise_log::{LogError, LogOptions, LogStore, SledLog};
use reprise_proto::Seq;

use super::ServiceError;
use crate::core::State;

/// The state a log holds, and what it took to read it.
pub struct Recovered {
    pub state: State,
    pub last_seq: Seq,
    pub snapshot_seq: Option<Seq>,
    pub n_replayed: u64,
    pub took: Duration,
}

/// Rebuild the scheduler state from any log: snapshot, then the tail.
pub fn recover_state(log: &dyn LogStore) -> Result<Recovered, ServiceError> {
    let started = Instant::now();
    let (mut state, snapshot_seq) = match log.snapshot()? {
        Some((seq, bytes)) => {
            let state: State = reprise_proto::decode(&bytes)
                .map_err(|e| ServiceError::Snapshot { seq: seq.0, reason: e.to_string() })?;
            (state, Some(seq))
        }
        None => (State::default(), None),
    };
    let mut last_seq = snapshot_seq.unwrap_or_default();
    let mut n_replayed = 0u64;
    log.replay(last_seq, &mut |seq, event| {
        state.apply(&event);
        last_seq = seq;
        n_replayed += 1;
        Ok::<(), LogError>(())
    })?;
    Ok(Recovered { state, last_seq, snapshot_seq, n_replayed, took: started.elapsed() })
}

pub(super) fn open_and_recover(dir: &Path, options: LogOptions) -> Result<(SledLog, Recovered), ServiceError> {
    let log = SledLog::open(dir, options)?;
    let recovered = recover_state(&log)?;
    tracing::info!(
        "recovered {} events after snapshot {:?} from {} in {:?}",
        recovered.n_replayed,
        recovered.snapshot_seq.map(|s| s.0),
        dir.display(),
        recovered.took
    );
    Ok((log, recovered))
}
