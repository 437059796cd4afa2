//! Reading the log back: list the segments, check their headers, replay their records
//! into a raw log, cut a torn tail, and resolve the result against the chosen snapshot.
//!
//! Sealed segments are memory-mapped; the active (last) segment is read with ordinary
//! reads because it is the one appended to. `FORMAT.md` ("Recovery") gives the
//! reasoning; the rules in short:
//!
//! * Every segment starts with a STATE record; a later segment's STATE must agree with
//!   the log replayed before it.
//! * Any bad record in a sealed segment is corruption. In the active segment, a bad
//!   record followed by no valid record is a torn tail: it was never acknowledged and is
//!   cut off. A bad record followed by a valid one is corruption.
//! * A last segment whose header or STATE record is torn (a crash while rotating) holds
//!   nothing acknowledged and is removed.
//! * The log keeps entries after the chosen snapshot S only if it holds S.index with
//!   S.term (or starts right after S); a log that needs entries at or below its start
//!   that S does not cover is [`StorageError::MissingSnapshot`].

use std::fs::{self, File, OpenOptions};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::mmap;
use super::record::{self, Framed, Record, SnapshotMark, StateRecord};
use super::segment::{self, SealedSegment, SegmentHeader};
use crate::config::Durability;
use crate::error::StorageError;
use crate::persister::Result;
use crate::snapshot::sync_dir;
use crate::types::{Entry, HardState, SkippedSnapshot, SnapshotMeta};

/// Whether recovery may repair what a crash left (cut a torn tail, remove a torn new
/// segment), as on open, or must only read, as a later `recover()` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Repair(Durability),
    ReadOnly,
}

/// The bytes of one segment.
enum SegBytes {
    Mapped(Mmap),
    Read(Vec<u8>),
}

impl Deref for SegBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(m) => m,
            Self::Read(v) => v,
        }
    }
}

/// An entry of the raw log: where its data is.
#[derive(Debug, Clone, Copy)]
struct RawEntry {
    index: u64,
    term: u64,
    seg: usize,
    data_offset: usize,
    data_len: usize,
}

/// The log as the records describe it, before the chosen snapshot is applied: entries
/// `base + 1 ..= last`, with entries at or below `base` unavailable (compacted).
#[derive(Debug, Default)]
struct RawLog {
    base: u64,
    entries: Vec<RawEntry>,
}

impl RawLog {
    fn last(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        let pos = usize::try_from(index.checked_sub(self.base + 1)?).ok()?;
        self.entries.get(pos).map(|e| e.term)
    }

    fn truncate(&mut self, from: u64) {
        if from > self.last() {
            return;
        }
        if from <= self.base {
            self.entries.clear();
            self.base = from - 1;
        } else {
            self.entries.truncate((from - self.base - 1) as usize);
        }
    }

    fn append(&mut self, e: RawEntry) -> std::result::Result<(), String> {
        if e.index != self.last() + 1 {
            return Err(format!(
                "entry {} does not follow the log's last index {}",
                e.index,
                self.last()
            ));
        }
        if e.term == 0 {
            return Err(format!("entry {} has term 0", e.index));
        }
        self.entries.push(e);
        Ok(())
    }

    /// Replays a snapshot record: the decision it notes is applied as taken.
    fn mark(&mut self, mark: SnapshotMark) -> std::result::Result<(), String> {
        if mark.suffix_kept {
            // The log held the snapshot's entry: everything stays (entries at or below
            // the index remain for a fallback to an older snapshot).
            if self.last() < mark.meta.index {
                return Err(format!(
                    "snapshot record at index {} says the log held it, but the log ends at {}",
                    mark.meta.index,
                    self.last()
                ));
            }
        } else {
            self.entries.clear();
            self.base = mark.meta.index;
        }
        Ok(())
    }
}

/// The active segment as found: where appends continue.
#[derive(Debug, Clone)]
pub(crate) struct ActiveInfo {
    pub(crate) path: PathBuf,
    pub(crate) header: SegmentHeader,
    /// End of the last valid record.
    pub(crate) len: u64,
    pub(crate) max_index: u64,
}

/// Everything read from the segments.
pub(crate) struct Scan {
    dir: PathBuf,
    bufs: Vec<SegBytes>,
    /// Sealed segments, oldest first.
    pub(crate) sealed: Vec<SealedSegment>,
    /// The active segment, `None` if the directory holds no segment.
    pub(crate) active: Option<ActiveInfo>,
    hard_state: HardState,
    raw: RawLog,
    /// The newest snapshot the log notes.
    latest_mark: Option<SnapshotMeta>,
    /// Segments before a gap in the sequence numbers: left by a crash during compaction,
    /// not part of the log.
    pub(crate) before_gap: Vec<PathBuf>,
    /// A torn tail found (and, in repair mode, cut): file and offset.
    pub(crate) torn_tail: Option<(PathBuf, u64)>,
    /// A torn new segment found (and, in repair mode, removed).
    pub(crate) torn_segment: Option<PathBuf>,
}

/// The log resolved against the chosen snapshot.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The hard state, with `commit` at least the snapshot index.
    pub(crate) hard_state: HardState,
    /// Entries after the snapshot, contiguous.
    pub(crate) entries: Vec<Entry>,
    /// When the log does not note the chosen snapshot yet (a crash between publishing
    /// the snapshot and appending its record, or a fallback to an older one): the record
    /// to append so that the log on disk says what recovery decided.
    pub(crate) mark_needed: Option<SnapshotMark>,
}

fn corrupt(path: &Path, offset: u64, detail: impl Into<String>) -> StorageError {
    StorageError::corrupt("log record", path, offset, detail)
}

/// Lists `dir`'s segment files, sorted by sequence number.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segs = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io("list log segments", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list log segments", dir, e))?;
        if let Some(seq) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            segs.push((seq, entry.path()));
        }
    }
    segs.sort();
    Ok(segs)
}

/// The most bytes the write that creates a segment puts in it: header and STATE record.
/// A last segment with a bad header and no more bytes than this is a torn creation.
const CREATION_BYTES: usize = segment::HEADER_LEN + record::RECORD_HEADER_LEN + 48;

/// How the start (header and STATE record) of the last segment looks.
enum Start {
    Ok(SegmentHeader),
    /// Torn while being created; nothing in it was acknowledged.
    Torn(String),
}

fn check_last_start(bytes: &[u8], seq: u64, path: &Path) -> Result<Start> {
    let header = match SegmentHeader::decode(bytes) {
        Ok(h) => h,
        Err(reason) if bytes.len() <= CREATION_BYTES => return Ok(Start::Torn(reason)),
        Err(reason) => {
            return Err(StorageError::corrupt("log segment header", path, 0, reason));
        }
    };
    if header.seq != seq {
        return Err(StorageError::corrupt(
            "log segment header",
            path,
            0,
            format!("header says segment {}, the name says {seq}", header.seq),
        ));
    }
    match record::read_frame(bytes, segment::HEADER_LEN, header.salt) {
        Framed::Record { .. } => Ok(Start::Ok(header)),
        Framed::End => Ok(Start::Torn("no state record".into())),
        Framed::Bad(reason) => {
            match record::next_valid_record(bytes, segment::HEADER_LEN + 1, header.salt) {
                None => Ok(Start::Torn(reason)),
                Some(at) => Err(corrupt(
                    path,
                    segment::HEADER_LEN as u64,
                    format!("{reason}; a valid record follows at offset {at}"),
                )),
            }
        }
    }
}

/// Reads every segment of `dir` and replays it.
pub(crate) fn scan(dir: &Path, mode: Mode) -> Result<Scan> {
    let mut segs = list_segments(dir)?;
    let mut before_gap = Vec::new();
    if let Some(gap) = (1..segs.len())
        .rev()
        .find(|&i| segs[i].0 != segs[i - 1].0 + 1)
    {
        before_gap = segs.drain(..gap).map(|(_, p)| p).collect();
    }
    let mut torn_segment = None;
    // The last segment, read with ordinary reads. A torn creation is removed.
    let mut last: Option<(SegmentHeader, PathBuf, Vec<u8>)> = None;
    while let Some((seq, path)) = segs.pop() {
        let bytes = fs::read(&path).map_err(|e| StorageError::io("read log segment", &path, e))?;
        match check_last_start(&bytes, seq, &path)? {
            Start::Ok(header) => {
                last = Some((header, path, bytes));
                break;
            }
            Start::Torn(reason) => {
                tracing::warn!(segment = %path.display(), %reason, "removing a log segment torn while being created");
                if let Mode::Repair(durability) = mode {
                    fs::remove_file(&path)
                        .map_err(|e| StorageError::io("remove torn log segment", &path, e))?;
                    if durability == Durability::Immediate {
                        sync_dir(dir)?;
                    }
                }
                torn_segment = Some(path);
            }
        }
    }
    let mut scan = Scan {
        dir: dir.to_path_buf(),
        bufs: Vec::new(),
        sealed: Vec::new(),
        active: None,
        hard_state: HardState::default(),
        raw: RawLog::default(),
        latest_mark: None,
        before_gap,
        torn_tail: None,
        torn_segment,
    };
    let Some((last_header, last_path, last_bytes)) = last else {
        return Ok(scan);
    };
    for (seq, path) in segs {
        let file = File::open(&path).map_err(|e| StorageError::io("open log segment", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io("stat log segment", &path, e))?
            .len();
        if len < segment::HEADER_LEN as u64 {
            return Err(StorageError::corrupt(
                "log segment header",
                &path,
                0,
                format!("sealed segment is {len} bytes, shorter than its header"),
            ));
        }
        let map = mmap::map_immutable(&file, &path)?;
        let header = SegmentHeader::decode(&map)
            .map_err(|reason| StorageError::corrupt("log segment header", &path, 0, reason))?;
        if header.seq != seq {
            return Err(StorageError::corrupt(
                "log segment header",
                &path,
                0,
                format!("header says segment {}, the name says {seq}", header.seq),
            ));
        }
        scan.bufs.push(SegBytes::Mapped(map));
        let (end, max_index) = scan.replay(&path, header, false)?;
        debug_assert_eq!(end, len);
        scan.sealed.push(SealedSegment {
            seq,
            path,
            max_index,
        });
    }
    scan.bufs.push(SegBytes::Read(last_bytes));
    let (end, max_index) = scan.replay(&last_path, last_header, true)?;
    let file_len = scan.bufs.last().map_or(0, |b| b.len() as u64);
    if end < file_len {
        tracing::warn!(segment = %last_path.display(), offset = end, "cutting a torn log tail");
        if let Mode::Repair(durability) = mode {
            let f = OpenOptions::new()
                .write(true)
                .open(&last_path)
                .map_err(|e| {
                    StorageError::io("open log segment to cut a torn tail", &last_path, e)
                })?;
            f.set_len(end)
                .map_err(|e| StorageError::io("truncate torn log tail", &last_path, e))?;
            if durability == Durability::Immediate {
                f.sync_data().map_err(|e| {
                    StorageError::io("fdatasync after cutting a torn tail", &last_path, e)
                })?;
            }
        }
        scan.torn_tail = Some((last_path.clone(), end));
    }
    scan.active = Some(ActiveInfo {
        path: last_path,
        header: last_header,
        len: end,
        max_index,
    });
    Ok(scan)
}

impl Scan {
    /// The hard state the records give, before a snapshot raises `commit` (read-only
    /// accessor for `raftkv inspect`).
    pub(crate) fn raw_hard_state(&self) -> HardState {
        self.hard_state
    }

    /// `(base, last)`: the segments hold entries `base + 1 ..= last` (none if equal),
    /// before the chosen snapshot is applied (read-only accessor for `raftkv inspect`).
    pub(crate) fn raw_bounds(&self) -> (u64, u64) {
        (self.raw.base, self.raw.last())
    }

    /// Replays the segment whose bytes are the last of `bufs`. Returns the end of its
    /// last valid record and the highest entry index in it. `is_last` allows a torn tail.
    fn replay(&mut self, path: &Path, header: SegmentHeader, is_last: bool) -> Result<(u64, u64)> {
        let seg = self.bufs.len() - 1;
        let first_segment = seg == 0;
        let salt = header.salt;
        let mut offset = segment::HEADER_LEN;
        let mut max_index = 0;
        let mut records = 0u64;
        loop {
            let bytes: &[u8] = &self.bufs[seg];
            let (kind, payload, next) = match record::read_frame(bytes, offset, salt) {
                Framed::End => break,
                Framed::Record {
                    kind,
                    payload,
                    next,
                } => (kind, payload, next),
                Framed::Bad(reason) => {
                    if !is_last {
                        return Err(corrupt(
                            path,
                            offset as u64,
                            format!("{reason} (sealed segment)"),
                        ));
                    }
                    if let Some(at) = record::next_valid_record(bytes, offset + 1, salt) {
                        return Err(corrupt(
                            path,
                            offset as u64,
                            format!("{reason}; a valid record follows at offset {at}"),
                        ));
                    }
                    // A torn tail: the caller cuts it.
                    break;
                }
            };
            let rec = record::decode_payload(bytes, kind, payload)
                .map_err(|detail| corrupt(path, offset as u64, detail))?;
            self.apply(rec, records == 0, first_segment, seg, &mut max_index)
                .map_err(|detail| corrupt(path, offset as u64, detail))?;
            records += 1;
            offset = next;
        }
        if records == 0 {
            // `check_last_start` found the state record of the last segment; a sealed
            // segment without one is corrupt.
            return Err(corrupt(
                path,
                segment::HEADER_LEN as u64,
                "segment has no state record",
            ));
        }
        Ok((offset as u64, max_index))
    }

    fn apply(
        &mut self,
        rec: Record,
        first_record: bool,
        first_segment: bool,
        seg: usize,
        max_index: &mut u64,
    ) -> std::result::Result<(), String> {
        match (rec, first_record) {
            (Record::State(state), true) => self.apply_state(state, first_segment),
            (_, true) => Err("segment does not start with a state record".into()),
            (Record::State(_), false) => Err("state record in the middle of a segment".into()),
            (Record::Batch(batch), false) => {
                if let Some(from) = batch.truncate_from {
                    if from == 0 {
                        return Err("truncation from index 0".into());
                    }
                    self.raw.truncate(from);
                }
                for e in &batch.entries {
                    self.raw.append(RawEntry {
                        index: e.index,
                        term: e.term,
                        seg,
                        data_offset: e.data_offset,
                        data_len: e.data_len,
                    })?;
                    *max_index = (*max_index).max(e.index);
                }
                if let Some(hs) = batch.hard_state {
                    self.hard_state = hs;
                }
                Ok(())
            }
            (Record::Snapshot(mark), false) => {
                self.raw.mark(mark)?;
                self.hard_state.commit = self.hard_state.commit.max(mark.meta.index);
                self.latest_mark = Some(mark.meta);
                Ok(())
            }
        }
    }

    fn apply_state(
        &mut self,
        state: StateRecord,
        first_segment: bool,
    ) -> std::result::Result<(), String> {
        if first_segment {
            self.raw = RawLog {
                base: state.last_index,
                entries: Vec::new(),
            };
            self.hard_state = state.hard_state;
            self.latest_mark = state.snapshot;
            return Ok(());
        }
        if state.hard_state != self.hard_state || state.last_index != self.raw.last() {
            return Err(format!(
                "segment starts with hard state {:?} and last index {}, but the log before it \
                 ends with hard state {:?} and last index {}",
                state.hard_state,
                state.last_index,
                self.hard_state,
                self.raw.last()
            ));
        }
        Ok(())
    }

    /// Applies the chosen snapshot (the newest valid one) to the raw log.
    ///
    /// Fails with [`StorageError::MissingSnapshot`] if the log starts after the
    /// snapshot's index + 1: it was compacted through a newer snapshot that is not
    /// available, and continuing would lose committed entries.
    pub(crate) fn resolve(
        &self,
        chosen: Option<SnapshotMeta>,
        skipped: &[SkippedSnapshot],
    ) -> Result<Resolved> {
        let snapshot_index = chosen.map_or(0, |c| c.index);
        if self.raw.base > snapshot_index {
            let detail = if skipped.is_empty() {
                format!(
                    "no snapshot file was rejected; the snapshot the log was compacted to is missing from {}",
                    self.dir.join(super::SNAPSHOT_DIR).display()
                )
            } else {
                let rejected: Vec<String> = skipped
                    .iter()
                    .map(|s| format!("{} ({})", s.location, s.reason))
                    .collect();
                format!("rejected snapshot files: {}", rejected.join("; "))
            };
            return Err(StorageError::MissingSnapshot {
                path: self.dir.clone(),
                log_first: self.raw.base + 1,
                snapshot_index,
                detail,
            });
        }
        let mut hard_state = self.hard_state;
        let (kept_from, mark_needed) = match chosen {
            None => (0, None),
            Some(c) => {
                hard_state.commit = hard_state.commit.max(c.index);
                let kept = c.index == self.raw.base || self.raw.term_at(c.index) == Some(c.term);
                let mark = (self.latest_mark != Some(c)).then_some(SnapshotMark {
                    meta: c,
                    suffix_kept: kept,
                });
                (
                    if kept {
                        c.index - self.raw.base
                    } else {
                        self.raw.entries.len() as u64
                    },
                    mark,
                )
            }
        };
        let entries: Vec<Entry> = self.raw.entries[kept_from as usize..]
            .iter()
            .map(|e| Entry {
                index: e.index,
                term: e.term,
                data: self.bufs[e.seg][e.data_offset..e.data_offset + e.data_len].to_vec(),
            })
            .collect();
        if let Some(first) = entries.first() {
            assert_eq!(
                first.index,
                snapshot_index + 1,
                "recovery of {}: entries must follow the snapshot",
                self.dir.display()
            );
        }
        Ok(Resolved {
            hard_state,
            entries,
            mark_needed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(base: u64, terms: &[u64]) -> RawLog {
        RawLog {
            base,
            entries: terms
                .iter()
                .enumerate()
                .map(|(i, &term)| RawEntry {
                    index: base + 1 + i as u64,
                    term,
                    seg: 0,
                    data_offset: 0,
                    data_len: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn raw_log_truncates_below_its_base() {
        let mut r = raw(10, &[1, 1, 2]);
        r.truncate(12);
        assert_eq!(r.last(), 11);
        r.truncate(5);
        assert_eq!((r.base, r.entries.len()), (4, 0));
        let e = |index| RawEntry {
            index,
            term: 3,
            seg: 0,
            data_offset: 0,
            data_len: 0,
        };
        r.append(e(5)).expect("follows");
        assert!(r.append(e(7)).is_err());
    }

    #[test]
    fn marks_apply_the_noted_decision() {
        let meta = SnapshotMeta { index: 12, term: 2 };
        let mut r = raw(10, &[1, 2, 2]);
        r.mark(SnapshotMark {
            meta,
            suffix_kept: true,
        })
        .expect("kept");
        assert_eq!(r.last(), 13);
        r.mark(SnapshotMark {
            meta,
            suffix_kept: false,
        })
        .expect("superseded");
        assert_eq!((r.base, r.last()), (12, 12));
        let mut short = raw(10, &[1]);
        assert!(
            short
                .mark(SnapshotMark {
                    meta,
                    suffix_kept: true
                })
                .is_err()
        );
    }
}
