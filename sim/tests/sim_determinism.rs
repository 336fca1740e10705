//! A seed replays exactly: same trace, same result, whatever else runs.
use reprise_sim::cli::{self, Args};
use reprise_sim::{run_seed, run_seeds, SimOptions, TraceMode};

#[test]
fn the_same_seed_replays_the_same_trace() {
    let opts = SimOptions::default().with_trace(TraceMode::Full);
    for seed in [0, 1, 7, 42, 1_234, 99_999] {
        let (a, b) = (run_seed(seed, &opts), run_seed(seed, &opts));
        assert!(a.trace_lines > 20, "seed {seed} traced only {} lines", a.trace_lines);
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a.result, b.result);
        assert_eq!(a.scenario, b.scenario);
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let opts = SimOptions::default().with_trace(TraceMode::Full);
    let mut hashes: Vec<u64> = (0..20).map(|seed| run_seed(seed, &opts).trace_hash).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 20);
}

#[test]
fn tracing_does_not_change_the_run() {
    for seed in 0..20 {
        let off = run_seed(seed, &SimOptions::default());
        let full = run_seed(seed, &SimOptions::default().with_trace(TraceMode::Full));
        let tail = run_seed(seed, &SimOptions::default().with_trace(TraceMode::Tail(5)));
        assert_eq!(off.result, full.result, "seed {seed}");
        assert_eq!(full.trace_hash, tail.trace_hash, "the tail hashes every line too");
        assert!(tail.trace.len() <= 5);
        assert!(off.trace.is_empty());
    }
}

#[test]
fn the_replay_command_prints_byte_identical_output() {
    let args = Args { seed: Some(3), ..Args::default() };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    assert!(cli::run(&args, &mut a).unwrap());
    assert!(cli::run(&args, &mut b).unwrap());
    assert_eq!(a, b);
    let text = String::from_utf8(a).unwrap();
    assert!(text.contains("seed 3 passed"), "{text}");
}

#[test]
fn threads_do_not_change_the_outcome_of_a_sweep() {
    let one = run_seeds(500, 60, &SimOptions { jobs: 1, ..SimOptions::default() }, |_, _| {});
    let two = run_seeds(500, 60, &SimOptions { jobs: 2, ..SimOptions::default() }, |_, _| {});
    assert_eq!(one.totals, two.totals);
    assert_eq!(one.failures, two.failures);
}
