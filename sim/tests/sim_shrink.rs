//! Scenarios as proptest values: a property over random scenarios, and
//! shrinking a failing one down to what makes it fail.
use proptest::prelude::*;
use reprise_sim::scenario::scenario_strategy;
use reprise_sim::{run_scenario, run_seed, shrink, Invariant, SimOptions};

proptest! {
    // A fixed RNG seed: CI runs the same 48 scenarios every time. The known
    // open issue P1 (sim/README.md) fails about 1 in 25,000 scenarios, which
    // a fresh random draw per run would turn into a rare, unrelated failure;
    // `reprise sim --seeds N` is where new ground is covered.
    #![proptest_config(ProptestConfig {
        cases: 48,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_scenario_holds_every_invariant(scenario in scenario_strategy(&SimOptions::default())) {
        let (result, ..) = run_scenario(&scenario, &SimOptions::default());
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

/// With no time at all to resolve futures after the faults, almost every
/// scenario fails; shrinking must reduce one to a submission or two.
#[test]
fn shrinking_reduces_a_failing_scenario_to_its_core() {
    let opts = SimOptions { liveness_ms: 1, ..SimOptions::default() };
    let seed = (0..100)
        .find(|s| {
            let outcome = run_seed(*s, &opts);
            outcome.scenario.ops.len() > 10 && outcome.result.is_err()
        })
        .expect("some seed fails without time to resolve");
    let shrunk = shrink(seed, &opts, 2_000).expect("the seed fails");
    assert_eq!(shrunk.violation.invariant, Invariant::Liveness);
    assert!(shrunk.original.ops.len() > 10);
    assert!(shrunk.minimal.ops.len() <= 2, "{}", reprise_sim::cli::describe(&shrunk.minimal));
    let (again, ..) = run_scenario(&shrunk.minimal, &opts);
    assert_eq!(again.map_err(|v| v.invariant), Err(Invariant::Liveness), "the minimal scenario still fails");
}
