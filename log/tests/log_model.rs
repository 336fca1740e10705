//! Random operation sequences on MemLog and SledLog match a simple model.
mod common;

use common::{events, fast};
use proptest::prelude::*;
use reprise_log::{Event, LogStore, MemLog, Seq, SledLog};

#[derive(Clone, Debug)]
enum Op {
    /// Append a batch of this many events (0 included).
    Append(u8),
    Flush,
    /// Lose the unflushed tail (MemLog only).
    Crash,
    /// Snapshot at the durable seq, flushing first or not (events appended
    /// after the durable seq must survive the snapshot).
    Snapshot { flush_first: bool },
    /// Close cleanly and open again.
    Reopen,
}

fn op_without_crash() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6).prop_map(Op::Append),
        3 => Just(Op::Flush),
        1 => any::<bool>().prop_map(|flush_first| Op::Snapshot { flush_first }),
        1 => Just(Op::Reopen),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![5 => op_without_crash(), 1 => Just(Op::Crash)]
}

/// What the log should hold.
#[derive(Default)]
struct Model {
    /// Every event appended and not lost, index = seq - 1.
    events: Vec<Event>,
    durable: u64,
    snapshot: Option<(u64, Vec<u8>)>,
    n_appended: u64,
}

impl Model {
    fn last(&self) -> u64 {
        self.events.len() as u64
    }
}

/// Apply `op` to the model, and to the log unless it is a crash or a reopen,
/// which the caller does in the log's own way.
fn step(log: &mut dyn LogStore, model: &mut Model, op: &Op) {
    match op {
        Op::Append(n) => {
            let batch = events(model.n_appended, u64::from(*n));
            model.n_appended += u64::from(*n);
            let seq = log.append(&batch).unwrap();
            model.events.extend(batch);
            assert_eq!(seq, Seq(model.last()));
        }
        Op::Flush => {
            log.flush().unwrap();
            model.durable = model.last();
        }
        Op::Crash => model.events.truncate(model.durable as usize),
        Op::Snapshot { flush_first } => {
            if *flush_first {
                log.flush().unwrap();
                model.durable = model.last();
            }
            let seq = model.durable;
            let state = format!("state at {seq}").into_bytes();
            log.write_snapshot(Seq(seq), &state).unwrap();
            model.durable = model.last();
            model.snapshot = Some((seq, state));
        }
        Op::Reopen => model.durable = model.last(),
    }
}

fn check(log: &dyn LogStore, model: &Model) {
    assert_eq!(log.last_seq(), Seq(model.last()));
    assert_eq!(log.durable_seq(), Seq(model.durable));
    let snap_seq = model.snapshot.as_ref().map_or(0, |s| s.0);
    assert_eq!(log.snapshot_seq(), Seq(snap_seq));
    assert_eq!(log.snapshot().unwrap(), model.snapshot.clone().map(|(s, b)| (Seq(s), b)));
    for after in [snap_seq, (snap_seq + model.last()) / 2] {
        let mut got = Vec::new();
        log.replay(Seq(after), &mut |seq, e| {
            got.push((seq, e));
            Ok(())
        })
        .unwrap();
        let want: Vec<(Seq, Event)> =
            (after + 1..).map(Seq).zip(model.events[after as usize..].iter().cloned()).collect();
        assert_eq!(got, want, "replay after {after}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mem_log_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut log = MemLog::new();
        let mut model = Model::default();
        for op in &ops {
            step(&mut log, &mut model, op);
            match op {
                Op::Crash => log.crash(),
                Op::Reopen => log.reopen().unwrap(),
                _ => {}
            }
            check(&log, &model);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sled_log_matches_the_model(ops in proptest::collection::vec(op_without_crash(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SledLog::open(dir.path(), fast()).unwrap();
        let mut model = Model::default();
        for op in &ops {
            step(&mut log, &mut model, op);
            if let Op::Reopen = op {
                drop(log);
                log = SledLog::open(dir.path(), fast()).unwrap();
            }
            check(&log, &model);
        }
    }
}
