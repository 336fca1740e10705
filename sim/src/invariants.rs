//! What the simulator checks, and what a failed check reports.
//!
//! Each [`Invariant`] is checked after every step that could break it: the
//! scheduler's after each of its commit batches, a worker's or a client's
//! after each input it handles, the cross-node ones where the information
//! they compare changes (a commit, an effect sent, a crash and restart).
use std::fmt;

/// A property the simulator checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// `Scheduler::check_invariants`: the state's own cross-checks (each
    /// task in one state, indices agree, refcounts match holders, nothing
    /// processing with an input not in memory) plus the sessions'.
    SchedulerCore,
    /// `WorkerCore::check_invariants`.
    WorkerCore,
    /// `Session::check_invariants`, plus: a client holding a handle to a key
    /// keeps it live with at least that many references.
    ClientSession,
    /// Replaying the durable log (decoded from its bytes) gives the state the
    /// scheduler had at its last flush; the core never emits an event that
    /// does not fit; a snapshot decodes to the state it was taken of; and
    /// snapshot plus tail equals the replay of everything.
    ReplayEquivalence,
    /// After a crash, the recovered state is the state at the last flush
    /// (plus the unflushed tail when it survived whole).
    Recovery,
    /// No acknowledged submit (or scatter) is lost: whenever a client is
    /// told a key is durable, the durable state has the client wanting it,
    /// and it keeps it across crashes. Likewise a primitive change answered
    /// `Done` (set, put, publish, unpublish) or a take answered with items
    /// is in the durable log when the answer goes out.
    AckedDurable,
    /// No key is forgotten while referenced: a want the scheduler
    /// acknowledged disappears only with a logged release (or the client's
    /// removal), and a future a client was told a Variable, Queue or dataset
    /// holds stays live and held until a logged change lets go of it.
    ReferencedKept,
    /// A task runs only with every input present and equal to the value its
    /// producer computes (no stale or missing input).
    LegalInputs,
    /// Every value anywhere (scheduler inline copies, worker stores, client
    /// statuses) is the one the model predicts.
    CorrectValues,
    /// A task never runs on two live workers at once, unless the scheduler
    /// decided to cancel the first attempt (the `Cancel` may be lost with a
    /// crash or a connection: the attempt is fenced off all the same) or
    /// declared its worker dead.
    SingleRunner,
    /// Results a worker reports holding when it registers again are kept,
    /// not dropped and recomputed.
    HeldResultKept,
    /// A lock is granted to one lease at a time: the scheduler never tells
    /// a client it holds a lock while another lease on it was granted and
    /// neither released nor expired (durably).
    LockSingleHolder,
    /// A semaphore never has more than `max_leases` leases granted and
    /// neither released nor expired.
    LeaseBound,
    /// A lease expires only after its client was silent for longer than
    /// the lease timeout.
    LeaseExpiry,
    /// Queues hand out each item once: an acknowledged put stays in the
    /// durable queue (across crashes and replays) until a durable take, a
    /// taken item never comes back, and an item reaches only the request
    /// the durable log has taking it, and no other.
    QueueExactlyOnce,
    /// A Variable get, a dataset get or a dataset list sent after some
    /// client heard a change acknowledged sees that change or a later one
    /// (and a get times out only if the variable was deleted since).
    FreshReads,
    /// Setting an event answers every wait on it that the scheduler had
    /// in line.
    EventWake,
    /// Once faults stop, every future a client holds resolves, and every
    /// primitive request is answered, within the bound (the simulator then
    /// sets what is still waited for: variables, events, queue items).
    Liveness,
    /// Once every client lets go of everything (and empties the variables,
    /// queues and datasets), the scheduler forgets every task, and every
    /// lock and lease is given back, within the bound.
    Quiescence,
    /// A core panicked, or the run did not settle within the step budget.
    Crash,
}

impl Invariant {
    /// Every invariant, in declaration order.
    pub const ALL: [Invariant; 20] = [
        Invariant::SchedulerCore,
        Invariant::WorkerCore,
        Invariant::ClientSession,
        Invariant::ReplayEquivalence,
        Invariant::Recovery,
        Invariant::AckedDurable,
        Invariant::ReferencedKept,
        Invariant::LegalInputs,
        Invariant::CorrectValues,
        Invariant::SingleRunner,
        Invariant::HeldResultKept,
        Invariant::LockSingleHolder,
        Invariant::LeaseBound,
        Invariant::LeaseExpiry,
        Invariant::QueueExactlyOnce,
        Invariant::FreshReads,
        Invariant::EventWake,
        Invariant::Liveness,
        Invariant::Quiescence,
        Invariant::Crash,
    ];

    /// The invariant's name, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::SchedulerCore => "scheduler-core",
            Invariant::WorkerCore => "worker-core",
            Invariant::ClientSession => "client-session",
            Invariant::ReplayEquivalence => "replay-equivalence",
            Invariant::Recovery => "recovery",
            Invariant::AckedDurable => "acked-durable",
            Invariant::ReferencedKept => "referenced-kept",
            Invariant::LegalInputs => "legal-inputs",
            Invariant::CorrectValues => "correct-values",
            Invariant::SingleRunner => "single-runner",
            Invariant::HeldResultKept => "held-result-kept",
            Invariant::LockSingleHolder => "lock-single-holder",
            Invariant::LeaseBound => "lease-bound",
            Invariant::LeaseExpiry => "lease-expiry",
            Invariant::QueueExactlyOnce => "queue-exactly-once",
            Invariant::FreshReads => "fresh-reads",
            Invariant::EventWake => "event-wake",
            Invariant::Liveness => "liveness",
            Invariant::Quiescence => "quiescence",
            Invariant::Crash => "crash",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub message: String,
    /// Simulated time of the failing step, in ms.
    pub time_ms: u64,
    /// The failing step's number (events dispatched so far).
    pub step: u64,
}

impl Violation {
    pub(crate) fn new(invariant: Invariant, message: impl Into<String>) -> Violation {
        Violation { invariant, message: message.into(), time_ms: 0, step: 0 }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated at t={}ms (step {}): {}", self.invariant, self.time_ms, self.step, self.message)
    }
}

/// Fail with `invariant` when `result` is an error.
pub(crate) fn check(invariant: Invariant, result: Result<(), String>) -> Result<(), Violation> {
    result.map_err(|message| Violation::new(invariant, message))
}

/// Fail with `invariant` and `message()` unless `cond`.
pub(crate) fn ensure(invariant: Invariant, cond: bool, message: impl FnOnce() -> String) -> Result<(), Violation> {
    if cond {
        Ok(())
    } else {
        Err(Violation::new(invariant, message()))
    }
}
