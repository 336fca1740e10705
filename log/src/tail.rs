//! The tail file: how a commit batch becomes durable without a sled flush.
//!
//! sled 0.34 keeps inserts in its own memory until a flush, and its `flush()`
//! ends in `sync_file_range`, which waits for the device even when only
//! `kill -9` must be survived; with [`Durability::Power`] a `sync_data` of
//! sled's file follows. Together 100–300 µs per commit batch here, most of a
//! coordination round trip. So each batch's records go to sled (unflushed)
//! and to `<data dir>/tail.wal`, a preallocated, zero-filled file written
//! from its start in whole 4 KiB blocks:
//!
//! - [`Durability::Process`]: one `pwrite(2)`, in the page cache when it
//!   returns, which a killed process cannot lose: a few microseconds.
//! - [`Durability::Power`]: one `pwrite(2)` with `O_DIRECT | O_DSYNC`: the
//!   device has the blocks, its cache flushed, when it returns: about 75 µs
//!   on this VM's disk, where a buffered write and `fdatasync` took 3.5 ms.
//!   Where `O_DIRECT` is refused (tmpfs), a buffered write and `sync_data`.
//!
//! sled is flushed (and synced) only when the next batch would not fit, at
//! a snapshot, on open and on a clean close; the file then starts over.
//!
//! A frame is the record's key (u64 BE), the record's length (u32 BE), then
//! the record itself (header with crc32 and events; see the crate docs).
//! Each write ends with a zero frame header, which marks the end; bytes
//! after it are left from an earlier pass and are never read. On open, the
//! records sled lost are inserted back into sled before anything reads the
//! log. A damaged frame (a write torn by a crash) also ends the file; it is
//! reported with a warning, like a torn last record in sled.
//!
//! [`Durability::Process`]: crate::Durability::Process
//! [`Durability::Power`]: crate::Durability::Power
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::record::{check_record, RecordFault, RECORD_HEADER_LEN};
use crate::{Durability, LogError};

/// The tail file's name inside the data dir.
pub const TAIL_FILE_NAME: &str = "tail.wal";

/// The tail file's size: when the next batch would not fit, sled is
/// flushed and the file starts over. Bounds the file and the work of the
/// next open.
pub const TAIL_BYTES_MAX: u64 = 4 << 20;

/// The unit of every write: `O_DIRECT` needs block-aligned offsets,
/// lengths and buffers.
const BLOCK: usize = 4096;

const FRAME_HEADER_LEN: usize = 12;

/// How a write reaches the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteMode {
    /// Page cache only (process durability).
    Buffered,
    /// `O_DIRECT | O_DSYNC`: durable when the write returns.
    Direct,
    /// A buffered write, then `sync_data` (power durability without `O_DIRECT`).
    BufferedSync,
}

/// The open tail file of a writer.
#[derive(Debug)]
pub(crate) struct Tail {
    file: File,
    path: PathBuf,
    mode: WriteMode,
    /// Bytes of frames written since the file started over.
    len: u64,
    /// The frames written into the block that holds `len`, which the next
    /// write rewrites with more frames after them.
    partial: Vec<u8>,
    pending: Vec<u8>,
    /// Reused for aligned writes: the aligned window is found inside it.
    scratch: Vec<u8>,
}

/// A record read back from a tail file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TailRecord {
    pub(crate) key: u64,
    pub(crate) value: Vec<u8>,
    pub(crate) last: u64,
}

impl Tail {
    /// Open (or create and preallocate) the tail file in `dir`, returning it
    /// with the good records it holds. The file starts over only with
    /// [`Tail::clear`], once sled holds those records.
    pub(crate) fn open(dir: &Path, durability: Durability) -> Result<(Tail, Vec<TailRecord>), LogError> {
        let path = dir.join(TAIL_FILE_NAME);
        let records = read(dir)?;
        preallocate(&path)?;
        let (file, mode) = match durability {
            Durability::Process => (open_rw(&path, 0).map_err(|e| LogError::io(&path, e))?, WriteMode::Buffered),
            Durability::Power => match open_rw(&path, direct_flags()) {
                Ok(file) => (file, WriteMode::Direct),
                Err(e) => {
                    tracing::info!(file = %path.display(), "O_DIRECT refused ({e}); the tail file syncs after each write");
                    (open_rw(&path, 0).map_err(|e| LogError::io(&path, e))?, WriteMode::BufferedSync)
                }
            },
        };
        let tail = Tail { file, path, mode, len: 0, partial: Vec::new(), pending: Vec::new(), scratch: Vec::new() };
        Ok((tail, records))
    }

    /// Buffer one record for the next [`Tail::write`].
    pub(crate) fn push(&mut self, key: u64, value: &[u8]) {
        self.pending.extend_from_slice(&key.to_be_bytes());
        // Records are far below 4 GiB (frames on the wire are capped at 256 MiB).
        self.pending.extend_from_slice(&(value.len() as u32).to_be_bytes());
        self.pending.extend_from_slice(value);
    }

    /// Whether the buffered records fit in the rest of the file.
    pub(crate) fn fits(&self) -> bool {
        let start = self.len - self.partial.len() as u64;
        start + padded_len(self.partial.len() + self.pending.len()) as u64 <= TAIL_BYTES_MAX
    }

    /// Write the buffered records (check [`Tail::fits`] first), durable at
    /// this file's level when it returns.
    pub(crate) fn write(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let start = self.len - self.partial.len() as u64;
        let used = self.partial.len() + self.pending.len();
        let padded = padded_len(used);
        let window = aligned_window(&mut self.scratch, padded);
        window[..self.partial.len()].copy_from_slice(&self.partial);
        window[self.partial.len()..used].copy_from_slice(&self.pending);
        window[used..].fill(0);
        let io = |e| LogError::io(&self.path, e);
        self.file.write_all_at(window, start).map_err(io)?;
        if self.mode == WriteMode::BufferedSync {
            self.file.sync_data().map_err(io)?;
        }
        let full_blocks = used / BLOCK * BLOCK;
        self.partial.clear();
        self.partial.extend_from_slice(&window[full_blocks..used]);
        self.len = start + used as u64;
        self.pending.clear();
        Ok(())
    }

    /// Bytes of frames written since the file started over.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Start the file over and drop what is buffered, once sled durably
    /// holds every record appended so far. Writes an end mark at the start,
    /// so that a later open reads nothing from an earlier pass.
    pub(crate) fn clear(&mut self) -> Result<(), LogError> {
        self.pending.clear();
        self.partial.clear();
        self.len = 0;
        let window = aligned_window(&mut self.scratch, BLOCK);
        window.fill(0);
        let io = |e| LogError::io(&self.path, e);
        self.file.write_all_at(window, 0).map_err(io)?;
        if self.mode == WriteMode::BufferedSync {
            self.file.sync_data().map_err(io)?;
        }
        Ok(())
    }
}

/// Read the tail file in `dir` without changing it: its good records, or
/// none when there is no file.
pub(crate) fn read(dir: &Path) -> Result<Vec<TailRecord>, LogError> {
    let path = dir.join(TAIL_FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => parse(&path, &bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(LogError::io(&path, e)),
    }
}

/// Frames plus the end mark, rounded up to whole blocks.
fn padded_len(used: usize) -> usize {
    (used + FRAME_HEADER_LEN).div_ceil(BLOCK) * BLOCK
}

/// A zeroed, block-aligned window of `len` bytes inside `scratch`.
fn aligned_window(scratch: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if scratch.len() < len + BLOCK {
        scratch.resize(len + BLOCK, 0);
    }
    let offset = scratch.as_ptr().align_offset(BLOCK);
    &mut scratch[offset..offset + len]
}

fn open_rw(path: &Path, flags: i32) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().read(true).write(true).custom_flags(flags).open(path)
}

#[cfg(target_os = "linux")]
fn direct_flags() -> i32 {
    libc::O_DIRECT | libc::O_DSYNC
}

#[cfg(not(target_os = "linux"))]
fn direct_flags() -> i32 {
    libc::O_DSYNC
}

/// Create the file at its full size with real zero blocks (not a sparse or
/// `fallocate`d range, whose first write would change metadata and cost a
/// journal commit), durably.
fn preallocate(path: &Path) -> Result<(), LogError> {
    let io = |e| LogError::io(path, e);
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len >= TAIL_BYTES_MAX {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    let mut at = len;
    while at < TAIL_BYTES_MAX {
        let n = zeros.len().min((TAIL_BYTES_MAX - at) as usize);
        file.write_all_at(&zeros[..n], at).map_err(io)?;
        at += n as u64;
    }
    file.sync_all().map_err(io)?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| LogError::io(dir, e))?;
    }
    Ok(())
}

/// The good records of `bytes`, up to the end mark or the first damaged
/// frame. A newer schema is an error.
fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<TailRecord>, LogError> {
    let mut records = Vec::new();
    let mut at = 0usize;
    let cut = |at: usize, reason: String| {
        tracing::warn!(
            file = %path.display(),
            offset = at,
            "the tail file ends at byte {at} with a write interrupted by a crash: {reason}"
        );
    };
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + FRAME_HEADER_LEN) else {
            cut(at, format!("{} trailing bytes are shorter than a frame header", bytes.len() - at));
            break;
        };
        if header.iter().all(|&b| b == 0) {
            break; // the end mark
        }
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
    Ok(records)
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

    fn keys(dir: &Path) -> Vec<(u64, u64)> {
        read(dir).unwrap().iter().map(|r| (r.key, r.last)).collect()
    }

    #[test]
    fn written_records_read_back_in_order_in_both_modes() {
        for durability in [Durability::Process, Durability::Power] {
            let dir = tempfile::tempdir().unwrap();
            let (mut tail, found) = Tail::open(dir.path(), durability).unwrap();
            assert!(found.is_empty());
            assert_eq!(std::fs::metadata(dir.path().join(TAIL_FILE_NAME)).unwrap().len(), TAIL_BYTES_MAX);
            for (key, value) in [record(1, 3), record(4, 1)] {
                tail.push(key, &value);
                assert!(tail.fits());
                tail.write().unwrap();
            }
            assert_eq!(keys(dir.path()), vec![(1, 3), (4, 4)]);
            drop(tail);
            let (_, reopened) = Tail::open(dir.path(), durability).unwrap();
            assert_eq!(reopened.iter().map(|r| r.key).collect::<Vec<_>>(), vec![1, 4]);
        }
    }

    #[test]
    fn writes_across_block_boundaries_keep_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tail, _) = Tail::open(dir.path(), Durability::Process).unwrap();
        let mut expected = Vec::new();
        let mut seq = 1;
        // Records of varied sizes, several per block and some spanning blocks.
        for i in 0..300u64 {
            let n = 1 + i % 37;
            let (key, value) = record(seq, n);
            tail.push(key, &value);
            if i % 3 == 0 {
                tail.write().unwrap();
            }
            expected.push((seq, seq + n - 1));
            seq += n;
        }
        tail.write().unwrap();
        assert!(tail.len() > 4 * BLOCK as u64);
        assert_eq!(keys(dir.path()), expected);
    }

    #[test]
    fn a_cut_short_frame_ends_the_good_part() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tail, _) = Tail::open(dir.path(), Durability::Process).unwrap();
        let (k1, v1) = record(1, 2);
        let (k2, v2) = record(3, 2);
        tail.push(k1, &v1);
        tail.push(k2, &v2);
        tail.write().unwrap();
        drop(tail);
        // A crash that kept the first frame and lost the end of the second.
        let path = dir.path().join(TAIL_FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let second_end = 2 * FRAME_HEADER_LEN + v1.len() + v2.len();
        bytes[second_end - 5..second_end].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(keys(dir.path()), vec![(1, 2)]);
    }

    #[test]
    fn clear_starts_over_and_old_frames_are_never_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tail, _) = Tail::open(dir.path(), Durability::Power).unwrap();
        for (key, value) in [record(1, 5), record(6, 5)] {
            tail.push(key, &value);
        }
        tail.write().unwrap();
        tail.clear().unwrap();
        assert_eq!(tail.len(), 0);
        assert!(read(dir.path()).unwrap().is_empty());
        let (key, value) = record(11, 1);
        tail.push(key, &value);
        tail.write().unwrap();
        assert_eq!(keys(dir.path()), vec![(11, 11)]);
    }

    #[test]
    fn only_a_batch_that_would_run_past_the_end_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tail, _) = Tail::open(dir.path(), Durability::Process).unwrap();
        let mut seq = 1;
        loop {
            let (key, value) = record(seq, 1000);
            tail.push(key, &value);
            seq += 1000;
            if !tail.fits() {
                break;
            }
            tail.write().unwrap();
        }
        assert!(tail.len() > TAIL_BYTES_MAX - 64 * 1024, "{}", tail.len());
    }
}
