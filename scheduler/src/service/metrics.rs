use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the service saw; read by `reprise status` and tests.
#[derive(Debug, Default)]
pub struct Metrics {
    pub frames_in: AtomicU64,
    pub messages_in: AtomicU64,
    /// Frames that did not decode, were too large, or spoke another protocol version.
    pub frames_malformed: AtomicU64,
    /// Frames from an identity that is neither `c:<client>` nor `w:<worker>`.
    pub frames_unknown_peer: AtomicU64,
    pub frames_out: AtomicU64,
    /// Sends that failed (the peer is gone).
    pub send_errors: AtomicU64,
    pub events_logged: AtomicU64,
    pub commits: AtomicU64,
    pub flush_us_total: AtomicU64,
    pub snapshots: AtomicU64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
