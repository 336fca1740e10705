//! The tail file: how [`Durability::Process`](crate::Durability::Process)
//! commits a batch with one `write(2)` instead of a sled flush.
//!
//! sled 0.34 keeps inserts in its own memory until a flush, and its `flush()`
//! ends in `sync_file_range`, which waits for the device even when only
//! `kill -9` must be survived: about 70–190 µs per commit batch here, most of
//! a coordination round trip. A `write(2)` to a plain file is in the kernel's
//! page cache when it returns, which a killed process cannot lose, and costs
//! a few microseconds. So in process mode each batch's records go to sled
//! (unflushed) and to `<data dir>/tail.wal`; sled is flushed only when the
//! tail file grows past [`TAIL_BYTES_MAX`], at a snapshot and on open, and
//! the tail file is emptied after each such flush.
//!
//! On open, records in the tail file that sled lost are inserted back into
//! sled before anything else reads the log. A frame that a crash cut short
//! (a `write(2)` interrupted by `kill -9` may land partly) ends the file: it
//! is cut with a warning, like a torn last record in sled.
//!
//! A frame is the record's key (u64 BE), the record's length (u32 BE), then
//! the record itself (header with crc32 and events; see the crate docs).
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::record::{check_record, RecordFault, RECORD_HEADER_LEN};
use crate::LogError;

/// The tail file's name inside the data dir.
pub const TAIL_FILE_NAME: &str = "tail.wal";

/// When the tail file holds more than this, sled is flushed and the file
/// emptied, bounding both its size and the work of the next open.
pub const TAIL_BYTES_MAX: u64 = 8 << 20;

const FRAME_HEADER_LEN: usize = 12;

/// The open tail file of a writer.
#[derive(Debug)]
pub(crate) struct Tail {
    file: File,
    path: PathBuf,
    len: u64,
    pending: Vec<u8>,
}

/// A record read back from a tail file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TailRecord {
    pub(crate) key: u64,
    pub(crate) value: Vec<u8>,
    pub(crate) last: u64,
}

impl Tail {
    /// Open (or create) the tail file in `dir`, returning it with the good
    /// records it holds. A damaged frame and everything after it are cut.
    pub(crate) fn open(dir: &Path) -> Result<(Tail, Vec<TailRecord>), LogError> {
        let path = dir.join(TAIL_FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| LogError::io(&path, e))?;
        let (records, good_len) = parse(&path, &bytes)?;
        if good_len < bytes.len() as u64 {
            file.set_len(good_len).map_err(|e| LogError::io(&path, e))?;
        }
        file.seek(SeekFrom::Start(good_len)).map_err(|e| LogError::io(&path, e))?;
        Ok((Tail { file, path, len: good_len, pending: Vec::new() }, records))
    }

    /// Buffer one record for the next [`Tail::write`].
    pub(crate) fn push(&mut self, key: u64, value: &[u8]) {
        self.pending.extend_from_slice(&key.to_be_bytes());
        // A record never exceeds RECORD_PAYLOAD_BYTES_MAX plus one event;
        // values over u32 are impossible, and `parse` would reject them.
        self.pending.extend_from_slice(&(value.len() as u32).to_be_bytes());
        self.pending.extend_from_slice(value);
    }

    /// Hand the buffered records to the kernel in one `write(2)`.
    pub(crate) fn write(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.pending).map_err(|e| LogError::io(&self.path, e))?;
        self.len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// The bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Empty the file and drop what is buffered, once sled durably holds
    /// every record appended so far.
    pub(crate) fn clear(&mut self) -> Result<(), LogError> {
        self.pending.clear();
        self.file.set_len(0).map_err(|e| LogError::io(&self.path, e))?;
        self.file.seek(SeekFrom::Start(0)).map_err(|e| LogError::io(&self.path, e))?;
        self.len = 0;
        Ok(())
    }
}

/// Read the tail file in `dir` without changing it (for a read-only open):
/// its good records, or none when there is no file.
pub(crate) fn read(dir: &Path) -> Result<Vec<TailRecord>, LogError> {
    let path = dir.join(TAIL_FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(parse(&path, &bytes)?.0),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(LogError::io(&path, e)),
    }
}

/// The good records of `bytes` and the length they span. A newer schema is
/// an error; any other damage ends the good part.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<TailRecord>, u64), LogError> {
    let mut records = Vec::new();
    let mut at = 0usize;
    let cut = |at: usize, reason: String| {
        tracing::warn!(
            file = %path.display(),
            offset = at,
            "cutting the tail file at byte {at} (a write interrupted by a crash): {reason}"
        );
    };
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + FRAME_HEADER_LEN) else {
            cut(at, format!("{} trailing bytes are shorter than a frame header", bytes.len() - at));
            break;
        };
        let key = u64::from_be_bytes([header[0], header[1], header[2], header[3], header[4], header[5], header[6], header[7]]);
        let len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
        if len < RECORD_HEADER_LEN {
            cut(at, format!("a frame claims an impossible record length of {len} bytes"));
            break;
        }
        let start = at + FRAME_HEADER_LEN;
        let Some(value) = bytes.get(start..start + len) else {
            cut(at, format!("a frame of {len} bytes is cut short at {} bytes", bytes.len() - start));
            break;
        };
        match check_record(key, value) {
            Ok(h) => records.push(TailRecord { key, value: value.to_vec(), last: h.last() }),
            Err(RecordFault::Bad(reason)) => {
                cut(at, reason);
                break;
            }
            Err(newer @ RecordFault::Newer { .. }) => return Err(newer.into_error(key)),
        }
        at = start + len;
    }
    Ok((records, at as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode_records;
    use reprise_proto::{Event, Key, Seq};

    fn record(first: u64, n: u64) -> (u64, Vec<u8>) {
        let events: Vec<Event> = (first..first + n).map(|i| Event::TaskQueued { key: Key(format!("k{i}")) }).collect();
        encode_records(Seq(first), &events).unwrap().remove(0)
    }

    #[test]
    fn written_records_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tail, found) = Tail::open(dir.path()).unwrap();
        assert!(found.is_empty());
        for (key, value) in [record(1, 3), record(4, 1)] {
            tail.push(key, &value);
        }
        tail.write().unwrap();
        let read_back = read(dir.path()).unwrap();
        assert_eq!(read_back.iter().map(|r| (r.key, r.last)).collect::<Vec<_>>(), vec![(1, 3), (4, 4)]);
        drop(tail);
        let (_, reopened) = Tail::open(dir.path()).unwrap();
        assert_eq!(reopened, read_back);
    }

    #[test]
    fn a_cut_short_frame_is_cut_and_appending_goes_on_after_the_good_part() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tail, _) = Tail::open(dir.path()).unwrap();
        let (k1, v1) = record(1, 2);
        let (k2, v2) = record(3, 2);
        tail.push(k1, &v1);
        tail.push(k2, &v2);
        tail.write().unwrap();
        let full = tail.len();
        drop(tail);
        let file = OpenOptions::new().write(true).open(dir.path().join(TAIL_FILE_NAME)).unwrap();
        file.set_len(full - 5).unwrap();
        drop(file);
        let (mut tail, found) = Tail::open(dir.path()).unwrap();
        assert_eq!(found.iter().map(|r| r.key).collect::<Vec<_>>(), vec![1]);
        let (k3, v3) = record(3, 1);
        tail.push(k3, &v3);
        tail.write().unwrap();
        assert_eq!(read(dir.path()).unwrap().iter().map(|r| (r.key, r.last)).collect::<Vec<_>>(), vec![(1, 2), (3, 3)]);
    }

    #[test]
    fn a_flipped_byte_ends_the_good_part() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tail, _) = Tail::open(dir.path()).unwrap();
        for (key, value) in [record(1, 1), record(2, 1), record(3, 1)] {
            tail.push(key, &value);
        }
        tail.write().unwrap();
        drop(tail);
        let path = dir.path().join(TAIL_FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let second = bytes.len() / 3 + 20;
        bytes[second] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn clear_empties_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tail, _) = Tail::open(dir.path()).unwrap();
        let (k, v) = record(1, 1);
        tail.push(k, &v);
        tail.write().unwrap();
        tail.clear().unwrap();
        assert_eq!(tail.len(), 0);
        assert!(read(dir.path()).unwrap().is_empty());
    }
}
