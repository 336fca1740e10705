//! Each planted bug, turned on by its cargo feature, is caught within the
//! first 1,000 seeds, and its failing scenario shrinks. One at a time:
//!
//! ```text
//! cargo test -p reprise-sim --features planted-flush-skipped --test planted -- --nocapture
//! cargo test -p reprise-sim --features planted-refcount-twice --test planted -- --nocapture
//! cargo test -p reprise-sim --features planted-reregister-drops-result --test planted -- --nocapture
//! cargo test -p reprise-sim --features planted-lock-release-unlogged --test planted -- --nocapture
//! cargo test -p reprise-sim --features planted-lease-expiry-off-by-one --test planted -- --nocapture
//! ```
//!
//! Without any of the features this file holds no test.
#![cfg(any(
    feature = "planted-flush-skipped",
    feature = "planted-refcount-twice",
    feature = "planted-reregister-drops-result",
    feature = "planted-lock-release-unlogged",
    feature = "planted-lease-expiry-off-by-one"
))]

use reprise_sim::cli::describe;
use reprise_sim::{explain, run_seeds, shrink, Invariant, SimOptions};

/// The first of seeds 0..1000 that fails must fail one of `expected`; its
/// scenario shrinks to one that still fails the same way.
fn caught_within_a_thousand_seeds(expected: &[Invariant]) {
    let opts = SimOptions { jobs: 2, ..SimOptions::default() };
    let summary = run_seeds(0, 1_000, &opts, |_, _| {});
    println!("{summary}");
    let first = summary.failures.first().expect("no seed caught the planted bug");
    println!("{}", explain(first.seed, &opts).report());
    assert!(expected.contains(&first.violation.invariant), "caught by an unexpected invariant: {}", first.violation);
    let shrunk = shrink(first.seed, &opts, 1_000).expect("the seed fails again");
    println!(
        "shrunk from {} to {} operations in {} runs: {}\n{}",
        shrunk.original.ops.len(),
        shrunk.minimal.ops.len(),
        shrunk.runs,
        shrunk.violation,
        describe(&shrunk.minimal)
    );
    assert!(shrunk.minimal.ops.len() <= shrunk.original.ops.len());
}

#[cfg(feature = "planted-flush-skipped")]
#[test]
fn effects_sent_before_the_flush_are_caught() {
    caught_within_a_thousand_seeds(&[Invariant::AckedDurable]);
}

#[cfg(feature = "planted-refcount-twice")]
#[test]
fn a_release_counted_twice_is_caught() {
    caught_within_a_thousand_seeds(&[Invariant::ReferencedKept, Invariant::Liveness]);
}

#[cfg(feature = "planted-reregister-drops-result")]
#[test]
fn a_result_dropped_at_reregistration_is_caught() {
    caught_within_a_thousand_seeds(&[Invariant::HeldResultKept]);
}

#[cfg(feature = "planted-lock-release-unlogged")]
#[test]
fn a_lock_release_that_is_not_logged_is_caught() {
    caught_within_a_thousand_seeds(&[Invariant::ReplayEquivalence]);
}

#[cfg(feature = "planted-lease-expiry-off-by-one")]
#[test]
fn a_lease_expiring_one_tick_early_is_caught() {
    caught_within_a_thousand_seeds(&[Invariant::LeaseExpiry]);
}
