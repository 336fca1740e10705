//! Start-up checks and replay over an ordered stream of `(key, record)`
//! pairs, shared by `SledLog` and `MemLog`.
use reprise_proto::{Event, Seq};

use crate::record::{check_record, decode_record, RecordFault};
use crate::LogError;

/// What the start-up scan found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// The seq of the last event of the last good record (the snapshot's seq
    /// when there is none).
    pub(crate) last_seq: Seq,
    /// A damaged last record, to be cut by the caller.
    pub(crate) torn_tail: Option<TornTail>,
}

/// A damaged last record: a write that a crash interrupted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TornTail {
    pub(crate) key: u64,
    pub(crate) reason: String,
}

/// Check every record after `snapshot_seq`: contiguous keys starting at
/// `snapshot_seq + 1`, checksums, versions; the last record is decoded in
/// full. A damaged last record is reported as a torn tail; any other damage,
/// and a newer version anywhere, is an error naming the record's seq.
pub(crate) fn scan<I, B>(records: I, snapshot_seq: Seq) -> Result<Scanned, LogError>
where
    I: IntoIterator<Item = Result<(u64, B), LogError>>,
    B: AsRef<[u8]>,
{
    let mut expected = snapshot_seq.0 + 1;
    // A damaged record is only a torn tail if nothing follows it.
    let mut damaged: Option<TornTail> = None;
    let mut last_good: Option<(u64, B)> = None;
    for item in records {
        let (key, value) = item?;
        if let Some(tail) = damaged.take() {
            return Err(LogError::Corrupt { seq: Seq(tail.key), reason: tail.reason });
        }
        if key != expected {
            return Err(LogError::NonContiguous { expected: Seq(expected), found: Seq(key) });
        }
        match check_record(key, value.as_ref()) {
            Ok(header) => {
                expected = header.last() + 1;
                last_good = Some((key, value));
            }
            Err(RecordFault::Bad(reason)) => damaged = Some(TornTail { key, reason }),
            Err(newer @ RecordFault::Newer { .. }) => return Err(newer.into_error(key)),
        }
    }
    if let Some(tail) = damaged {
        return Ok(Scanned { last_seq: Seq(tail.key - 1), torn_tail: Some(tail) });
    }
    // The checksum of the last record held; decode it too, since the spec
    // treats an undecodable last record as torn as well.
    if let Some((key, value)) = last_good {
        match decode_record(key, value.as_ref()) {
            Ok(_) => {}
            Err(RecordFault::Bad(reason)) => {
                return Ok(Scanned { last_seq: Seq(key - 1), torn_tail: Some(TornTail { key, reason }) })
            }
            Err(newer @ RecordFault::Newer { .. }) => return Err(newer.into_error(key)),
        }
    }
    Ok(Scanned { last_seq: Seq(expected - 1), torn_tail: None })
}

/// Call `f` for every event with seq in `after+1 ..= last_seq`, in order.
/// `records` must start with the record that holds seq `after + 1` (or be
/// empty when there is none); every record is verified again as it is read.
pub(crate) fn replay<I, B>(
    records: I,
    after: Seq,
    last_seq: Seq,
    f: &mut dyn FnMut(Seq, Event) -> Result<(), LogError>,
) -> Result<(), LogError>
where
    I: IntoIterator<Item = Result<(u64, B), LogError>>,
    B: AsRef<[u8]>,
{
    let mut expected: Option<u64> = None;
    for item in records {
        let (key, value) = item?;
        if key > last_seq.0 {
            break;
        }
        match expected {
            Some(e) if key != e => return Err(LogError::NonContiguous { expected: Seq(e), found: Seq(key) }),
            None if key > after.0 + 1 => {
                return Err(LogError::NonContiguous { expected: Seq(after.0 + 1), found: Seq(key) })
            }
            _ => {}
        }
        let (header, events) = decode_record(key, value.as_ref()).map_err(|fault| fault.into_error(key))?;
        for (seq, event) in (header.first..).zip(events) {
            if seq > last_seq.0 {
                return Ok(());
            }
            if seq > after.0 {
                f(Seq(seq), event)?;
            }
        }
        expected = Some(header.last() + 1);
    }
    match expected {
        Some(e) if e <= last_seq.0 => Err(LogError::NonContiguous { expected: Seq(e), found: Seq(last_seq.0 + 1) }),
        None if after < last_seq => Err(LogError::NonContiguous { expected: Seq(after.0 + 1), found: Seq(last_seq.0 + 1) }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode_records;
    use reprise_proto::Key;

    fn ev(i: u64) -> Event {
        Event::TaskQueued { key: Key(format!("k{i}")) }
    }

    /// Records for seqs `first..first+n`, in batches of `batch`.
    fn records(first: u64, n: u64, batch: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut seq = first;
        while seq < first + n {
            let len = batch.min(first + n - seq);
            let evs: Vec<Event> = (seq..seq + len).map(ev).collect();
            out.extend(encode_records(Seq(seq), &evs).unwrap());
            seq += len;
        }
        out
    }

    fn ok(recs: &[(u64, Vec<u8>)]) -> impl Iterator<Item = Result<(u64, &[u8]), LogError>> {
        recs.iter().map(|(k, v)| Ok((*k, v.as_slice())))
    }

    #[test]
    fn clean_log_scans_to_its_last_seq() {
        let recs = records(1, 10, 3);
        assert_eq!(scan(ok(&recs), Seq(0)).unwrap(), Scanned { last_seq: Seq(10), torn_tail: None });
        let empty: Vec<(u64, Vec<u8>)> = Vec::new();
        assert_eq!(scan(ok(&empty), Seq(5)).unwrap(), Scanned { last_seq: Seq(5), torn_tail: None });
    }

    #[test]
    fn damaged_last_record_is_a_torn_tail() {
        let mut recs = records(1, 10, 3);
        let last = recs.len() - 1;
        recs[last].1.truncate(20);
        let scanned = scan(ok(&recs), Seq(0)).unwrap();
        assert_eq!(scanned.last_seq, Seq(9));
        assert_eq!(scanned.torn_tail.map(|t| t.key), Some(10));
    }

    #[test]
    fn damaged_middle_record_is_an_error_naming_its_seq() {
        let mut recs = records(1, 10, 3);
        recs[1].1[25] ^= 1;
        match scan(ok(&recs), Seq(0)) {
            Err(LogError::Corrupt { seq: Seq(4), .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_gap_is_an_error() {
        let mut recs = records(1, 10, 3);
        recs.remove(1);
        assert!(matches!(
            scan(ok(&recs), Seq(0)),
            Err(LogError::NonContiguous { expected: Seq(4), found: Seq(7) })
        ));
        // The first record must follow the snapshot.
        let recs = records(5, 3, 3);
        assert!(matches!(
            scan(ok(&recs), Seq(0)),
            Err(LogError::NonContiguous { expected: Seq(1), found: Seq(5) })
        ));
    }

    #[test]
    fn replay_starts_inside_a_record_and_stops_at_last_seq() {
        let recs = records(1, 10, 4);
        let mut got = Vec::new();
        let start = recs.iter().position(|r| r.0 == 5).unwrap();
        replay(ok(&recs[start..]), Seq(5), Seq(9), &mut |s, e| {
            got.push((s.0, e));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, (6..=9).map(|i| (i, ev(i))).collect::<Vec<_>>());
    }

    #[test]
    fn replay_reports_a_missing_tail() {
        let recs = records(1, 6, 3);
        let res = replay(ok(&recs), Seq(0), Seq(8), &mut |_, _| Ok(()));
        assert!(matches!(res, Err(LogError::NonContiguous { expected: Seq(7), .. })));
    }
}
