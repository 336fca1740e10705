//! Sweeps of seeds: every invariant holds for each.
use reprise_sim::{explain, run_seeds, FaultProfile, SimOptions, Summary};

fn sweep(first: u64, n: u64, opts: &SimOptions) -> Summary {
    let summary = run_seeds(first, n, opts, |_, _| {});
    if let Some(f) = summary.failures.first() {
        let others: Vec<u64> = summary.failures.iter().map(|f| f.seed).collect();
        panic!("failing seeds {others:?}\n{}", explain(f.seed, opts).report());
    }
    summary
}

#[test]
fn a_thousand_seeds_hold_every_invariant() {
    let opts = SimOptions { jobs: 2, ..SimOptions::default() };
    let summary = sweep(0, 1_000, &opts);
    let t = &summary.totals;
    println!("{summary}\n{t:?}");
    // The sweep exercised what it claims to.
    assert!(t.scheduler_crashes > 100 && t.worker_crashes > 100 && t.clients_lost > 50, "{t:?}");
    assert!(t.snapshots > 50 && t.executions > 5_000, "{t:?}");
    assert!(t.leases_granted > 500 && t.primitive_answers > 5_000, "{t:?}");
    assert!(t.items_delivered > 150 && t.event_wakeups > 150, "{t:?}");
}

#[test]
fn without_faults_every_seed_resolves_and_quiesces() {
    let opts = SimOptions { jobs: 2, faults: FaultProfile::None, ..SimOptions::default() };
    let t = sweep(10_000, 200, &opts).totals;
    assert_eq!((t.scheduler_crashes, t.worker_crashes, t.clients_lost), (0, 0, 0));
}

#[test]
fn heavy_faults_hold_every_invariant() {
    let opts = SimOptions { jobs: 2, faults: FaultProfile::Heavy, ..SimOptions::default() };
    let t = sweep(20_000, 200, &opts).totals;
    assert!(t.scheduler_crashes > 100 && t.worker_crashes > 100, "{t:?}");
}
