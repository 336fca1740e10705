//! The byte format of log records and snapshots, shared by `SledLog` and
//! `MemLog` so that the simulator exercises the same checks as production.
//!
//! Record (sled key = first seq as big-endian u64):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | event schema version, u16 BE ([`EVENT_SCHEMA_VERSION`]) |
//! | 2 | 8 | seq of the first event, u64 BE (must equal the key) |
//! | 10 | 4 | number of events, u32 BE (> 0) |
//! | 14 | 4 | crc32 of bytes 0..14 followed by the payload, u32 BE |
//! | 18 | … | payload: the events as one CBOR array |
//!
//! Snapshot:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | schema version, u16 BE |
//! | 2 | 8 | seq the snapshot was taken at, u64 BE |
//! | 10 | 8 | state length in bytes, u64 BE |
//! | 18 | 4 | crc32 of bytes 0..18 followed by the state, u32 BE |
//! | 22 | … | the opaque state |
//!
//! The checksum covers the header too, so a flipped bit in the version or the
//! seq is caught as corruption rather than misread. The header layout is fixed
//! across schema versions: the version only governs how the payload decodes.
use reprise_proto::{Event, Seq, EVENT_SCHEMA_VERSION};

use crate::LogError;

/// The most events one record holds; larger appends are split. Bounds the
/// memory replay needs per record.
pub const RECORD_EVENTS_MAX: usize = 1024;

/// A record's payload is split (while it holds more than one event) when it
/// exceeds this, so that huge inline results do not make huge sled values.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 1 << 20;

/// Length of a record's header.
pub(crate) const RECORD_HEADER_LEN: usize = 18;
const RECORD_CRC_AT: usize = 14;

/// Length of a snapshot's header.
pub(crate) const SNAPSHOT_HEADER_LEN: usize = 22;
const SNAPSHOT_CRC_AT: usize = 18;

/// A record's header after its checksum and version were verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) first: u64,
    pub(crate) n_events: u32,
}

impl RecordHeader {
    /// The seq of the record's last event.
    pub(crate) fn last(&self) -> u64 {
        // n_events >= 1 and first + n_events was checked not to overflow.
        self.first + u64::from(self.n_events) - 1
    }
}

/// Why a record failed its checks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecordFault {
    /// The bytes are damaged or inconsistent: a torn write when it is the
    /// last record, corruption otherwise.
    Bad(String),
    /// A newer Reprise wrote it; never cut, never skipped.
    Newer { found: u16 },
}

impl RecordFault {
    /// The error to report for a record that is not a cuttable tail.
    pub(crate) fn into_error(self, seq: u64) -> LogError {
        match self {
            RecordFault::Bad(reason) => LogError::Corrupt { seq: Seq(seq), reason },
            RecordFault::Newer { found } => {
                LogError::NewerSchema { seq: Seq(seq), found, supported: EVENT_SCHEMA_VERSION }
            }
        }
    }
}

/// Encode `events` as records starting at seq `first`, split so that no
/// record exceeds [`RECORD_EVENTS_MAX`] events or (with more than one event)
/// [`RECORD_PAYLOAD_BYTES_MAX`] payload bytes. Returns `(key, value)` pairs.
pub(crate) fn encode_records(first: Seq, events: &[Event]) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let mut out = Vec::with_capacity(events.len().div_ceil(RECORD_EVENTS_MAX));
    let mut next = first.0;
    for chunk in events.chunks(RECORD_EVENTS_MAX) {
        next = encode_chunk(next, chunk, &mut out)?;
    }
    Ok(out)
}

fn encode_chunk(first: u64, events: &[Event], out: &mut Vec<(u64, Vec<u8>)>) -> Result<u64, LogError> {
    let payload = reprise_proto::encode(events)?;
    if payload.len() > RECORD_PAYLOAD_BYTES_MAX && events.len() > 1 {
        let (a, b) = events.split_at(events.len() / 2);
        let next = encode_chunk(first, a, out)?;
        return encode_chunk(next, b, out);
    }
    let n_events = u32::try_from(events.len()).map_err(|_| LogError::SeqExhausted { last: Seq(first) })?;
    let mut value = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    value.extend_from_slice(&EVENT_SCHEMA_VERSION.to_be_bytes());
    value.extend_from_slice(&first.to_be_bytes());
    value.extend_from_slice(&n_events.to_be_bytes());
    let crc = checksum(&value, &payload);
    value.extend_from_slice(&crc.to_be_bytes());
    value.extend_from_slice(&payload);
    debug_assert_eq!(check_record(first, &value), Ok(RecordHeader { first, n_events }));
    out.push((first, value));
    first.checked_add(u64::from(n_events)).ok_or(LogError::SeqExhausted { last: Seq(first) })
}

/// Verify a record's length, checksum, version and seq against its `key`,
/// without decoding the payload.
pub(crate) fn check_record(key: u64, value: &[u8]) -> Result<RecordHeader, RecordFault> {
    if value.len() < RECORD_HEADER_LEN {
        return Err(RecordFault::Bad(format!(
            "record is {} bytes, shorter than its {RECORD_HEADER_LEN} byte header",
            value.len()
        )));
    }
    let stored_crc = be_u32(&value[RECORD_CRC_AT..RECORD_HEADER_LEN]);
    let actual_crc = checksum(&value[..RECORD_CRC_AT], &value[RECORD_HEADER_LEN..]);
    if stored_crc != actual_crc {
        return Err(RecordFault::Bad(format!("checksum mismatch (stored {stored_crc:#010x}, computed {actual_crc:#010x})")));
    }
    let version = be_u16(&value[0..2]);
    if version > EVENT_SCHEMA_VERSION {
        return Err(RecordFault::Newer { found: version });
    }
    if version == 0 {
        return Err(RecordFault::Bad("schema version 0 is invalid".to_owned()));
    }
    let first = be_u64(&value[2..10]);
    let n_events = be_u32(&value[10..14]);
    if first != key {
        return Err(RecordFault::Bad(format!("header says seq {first} but the record is stored at seq {key}")));
    }
    if n_events == 0 {
        return Err(RecordFault::Bad("record holds no events".to_owned()));
    }
    if first.checked_add(u64::from(n_events)).is_none() {
        return Err(RecordFault::Bad(format!("{n_events} events from seq {first} overflow u64")));
    }
    Ok(RecordHeader { first, n_events })
}

/// Verify a record completely and decode its events.
pub(crate) fn decode_record(key: u64, value: &[u8]) -> Result<(RecordHeader, Vec<Event>), RecordFault> {
    let header = check_record(key, value)?;
    let events: Vec<Event> = reprise_proto::decode(&value[RECORD_HEADER_LEN..])
        .map_err(|e| RecordFault::Bad(format!("payload does not decode: {e}")))?;
    if events.len() != header.n_events as usize {
        return Err(RecordFault::Bad(format!(
            "header promises {} events but the payload holds {}",
            header.n_events,
            events.len()
        )));
    }
    Ok((header, events))
}

/// Encode a snapshot of `state` taken at `seq`.
pub(crate) fn encode_snapshot(seq: Seq, state: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(SNAPSHOT_HEADER_LEN + state.len());
    value.extend_from_slice(&EVENT_SCHEMA_VERSION.to_be_bytes());
    value.extend_from_slice(&seq.0.to_be_bytes());
    value.extend_from_slice(&(state.len() as u64).to_be_bytes());
    let crc = checksum(&value, state);
    value.extend_from_slice(&crc.to_be_bytes());
    value.extend_from_slice(state);
    value
}

/// Verify a snapshot stored for `seq` and return its state.
pub(crate) fn decode_snapshot(seq: Seq, value: &[u8]) -> Result<Vec<u8>, LogError> {
    let bad = |reason: String| LogError::BadSnapshot { seq, reason };
    if value.len() < SNAPSHOT_HEADER_LEN {
        return Err(bad(format!("snapshot is {} bytes, shorter than its {SNAPSHOT_HEADER_LEN} byte header", value.len())));
    }
    let stored_crc = be_u32(&value[SNAPSHOT_CRC_AT..SNAPSHOT_HEADER_LEN]);
    let actual_crc = checksum(&value[..SNAPSHOT_CRC_AT], &value[SNAPSHOT_HEADER_LEN..]);
    if stored_crc != actual_crc {
        return Err(bad(format!("checksum mismatch (stored {stored_crc:#010x}, computed {actual_crc:#010x})")));
    }
    let version = be_u16(&value[0..2]);
    if version > EVENT_SCHEMA_VERSION {
        return Err(LogError::NewerSnapshot { seq, found: version, supported: EVENT_SCHEMA_VERSION });
    }
    if version == 0 {
        return Err(bad("schema version 0 is invalid".to_owned()));
    }
    let header_seq = be_u64(&value[2..10]);
    if header_seq != seq.0 {
        return Err(bad(format!("header says seq {header_seq} but the snapshot is recorded at seq {seq}")));
    }
    let state = &value[SNAPSHOT_HEADER_LEN..];
    let state_len = be_u64(&value[10..18]);
    if state_len != state.len() as u64 {
        return Err(bad(format!("header promises {state_len} bytes of state but {} are stored", state.len())));
    }
    Ok(state.to_vec())
}

fn checksum(header: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(body);
    hasher.finalize()
}

// The callers slice exactly 2, 4 or 8 bytes, so the copies below cannot fail;
// copy_from_slice keeps them free of unwrap.
fn be_u16(b: &[u8]) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(b);
    u16::from_be_bytes(a)
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

pub(crate) fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reprise_proto::{Key, WorkerId};

    fn events(n: usize) -> Vec<Event> {
        (0..n).map(|i| Event::TaskQueued { key: Key(format!("k{i}")) }).collect()
    }

    fn one_record(first: u64, n: usize) -> Vec<u8> {
        let mut recs = encode_records(Seq(first), &events(n)).unwrap();
        assert_eq!(recs.len(), 1);
        recs.remove(0).1
    }

    #[test]
    fn record_round_trips() {
        let value = one_record(7, 3);
        let (h, evs) = decode_record(7, &value).unwrap();
        assert_eq!(h, RecordHeader { first: 7, n_events: 3 });
        assert_eq!(h.last(), 9);
        assert_eq!(evs, events(3));
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let value = one_record(1, 2);
        for i in 0..value.len() {
            let mut v = value.clone();
            v[i] ^= 0x40;
            assert!(matches!(check_record(1, &v), Err(RecordFault::Bad(_))), "byte {i}");
        }
    }

    #[test]
    fn truncated_record_is_bad() {
        let value = one_record(1, 2);
        for len in 0..value.len() {
            assert!(matches!(decode_record(1, &value[..len]), Err(RecordFault::Bad(_))), "len {len}");
        }
    }

    #[test]
    fn record_at_the_wrong_key_is_bad() {
        let value = one_record(5, 1);
        assert!(matches!(check_record(6, &value), Err(RecordFault::Bad(r)) if r.contains("seq 5")));
    }

    #[test]
    fn newer_version_is_reported_as_newer() {
        let mut value = one_record(1, 1);
        value[0..2].copy_from_slice(&(EVENT_SCHEMA_VERSION + 1).to_be_bytes());
        let crc = checksum(&value[..RECORD_CRC_AT], &value[RECORD_HEADER_LEN..]);
        value[RECORD_CRC_AT..RECORD_HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(check_record(1, &value), Err(RecordFault::Newer { found: EVENT_SCHEMA_VERSION + 1 }));
    }

    #[test]
    fn large_appends_split_into_contiguous_records() {
        let n = RECORD_EVENTS_MAX * 2 + 5;
        let recs = encode_records(Seq(10), &events(n)).unwrap();
        assert_eq!(recs.len(), 3);
        let mut expected = 10;
        let mut all = Vec::new();
        for (key, value) in &recs {
            assert_eq!(*key, expected);
            let (h, evs) = decode_record(*key, value).unwrap();
            expected = h.last() + 1;
            all.extend(evs);
        }
        assert_eq!(all, events(n));
    }

    #[test]
    fn oversized_payloads_split_by_bytes() {
        let big = vec![7u8; RECORD_PAYLOAD_BYTES_MAX / 2];
        let evs: Vec<Event> = (0..4)
            .map(|i| Event::DataScattered {
                key: Key(format!("k{i}")),
                worker: WorkerId::from("w"),
                nbytes: big.len() as u64,
                inline: Some(big.clone()),
            })
            .collect();
        let recs = encode_records(Seq(1), &evs).unwrap();
        assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        // A single event over the limit still fits in one record.
        let huge = vec![Event::DataScattered {
            key: Key::from("h"),
            worker: WorkerId::from("w"),
            nbytes: 0,
            inline: Some(vec![1u8; RECORD_PAYLOAD_BYTES_MAX + 1]),
        }];
        assert_eq!(encode_records(Seq(1), &huge).unwrap().len(), 1);
    }

    #[test]
    fn snapshot_round_trips_and_detects_damage() {
        let value = encode_snapshot(Seq(42), b"state");
        assert_eq!(decode_snapshot(Seq(42), &value).unwrap(), b"state");
        let mut bad = value.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(decode_snapshot(Seq(42), &bad), Err(LogError::BadSnapshot { seq: Seq(42), .. })));
        assert!(matches!(decode_snapshot(Seq(41), &value), Err(LogError::BadSnapshot { seq: Seq(41), .. })));
        assert!(matches!(decode_snapshot(Seq(42), &value[..10]), Err(LogError::BadSnapshot { .. })));
    }
}
