use std::time::Duration;

/// Everything that can stop a worker or keep it from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The builder was given something unusable (no scheduler address, a bad name, …).
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// The peer socket could not be bound.
    #[error("cannot bind the worker's peer socket on {address}: {message} (pick another address with .listen(..))")]
    Bind { address: String, message: String },
    /// The task thread pool could not be started.
    #[error("cannot start the worker's task threads: {0}")]
    Threads(#[source] std::io::Error),
    /// The scheduler refused this worker (bad token, protocol version, …).
    #[error("the scheduler refused this worker: {0}")]
    Refused(String),
    /// The scheduler was unreachable for longer than the reconnect timeout.
    #[error("lost the scheduler at {address} and could not reconnect within {timeout:?}; is it running?")]
    ConnectionLost { address: String, timeout: Duration },
    /// The worker stopped (killed, failed or ended) before the asked-for state was reached.
    #[error("the worker stopped: {0}")]
    Stopped(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
