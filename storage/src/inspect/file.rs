//! The file backend's log, read with recovery's own scan in its read-only mode.

use std::fs;
use std::path::Path;

use super::{DirReport, IndexRange, SnapshotScan};
use crate::error::StorageError;
use crate::file::recovery::{Mode, scan};
use crate::file::segment::parse_file_name;
use crate::persister::Result;
use crate::types::{Entry, HardState};

/// Fills in the hard state and the log of a file-backend directory.
pub(super) fn inspect_log(dir: &Path, snapshots: &SnapshotScan, report: &mut DirReport) {
    // Count the segment files first, so that they are reported even if replay fails.
    match segment_files(dir) {
        Ok((count, bytes)) => {
            report.log.segments = Some(count);
            report.log.bytes_on_disk = bytes;
        }
        Err(e) => report.problems.push(e),
    }
    let scan = match scan(dir, Mode::ReadOnly) {
        Ok(scan) => scan,
        Err(e) => {
            report.problems.push(e);
            return;
        }
    };
    if let Some((path, offset)) = &scan.torn_tail {
        let len = fs::metadata(path).map_or(*offset, |m| m.len());
        report.notes.push(format!(
            "torn tail: {} has {} bytes at offset {offset} that are not a valid record and \
             are followed by none (the append in flight at a crash, never acknowledged); \
             the next open cuts them",
            path.display(),
            len.saturating_sub(*offset)
        ));
    }
    if let Some(path) = &scan.torn_segment {
        report.notes.push(format!(
            "{} was torn while being created (a crash while starting a new segment); it \
             holds nothing acknowledged and the next open removes it",
            path.display()
        ));
    }
    for path in &scan.before_gap {
        report.notes.push(format!(
            "{} lies before a gap in the segment numbers (a crash during compaction); the \
             next open removes it",
            path.display()
        ));
    }
    let (base, last) = scan.raw_bounds();
    report.log.stored = IndexRange::with_len(base + 1, last - base);
    if scan.active.is_none() {
        if snapshots.chosen.is_some() || !snapshots.skipped.is_empty() {
            report.problems.push(StorageError::corrupt(
                "log",
                dir,
                0,
                "the directory holds snapshot files but no log segment: the log (and the \
                 hard state in it) is missing",
            ));
        } else {
            report.hard_state = Some(HardState::default());
            report.log.complete = true;
            report.notes.push(
                "no log segment yet (a crash right after the directory was created); the \
                 next open starts one"
                    .into(),
            );
        }
        return;
    }
    match scan.resolve(snapshots.chosen, &snapshots.skipped) {
        Ok(resolved) => {
            report.hard_state = Some(resolved.hard_state);
            let first = snapshots.chosen.map_or(1, |c| c.index + 1);
            report.log.recovered = IndexRange::with_len(first, resolved.entries.len() as u64);
            report.log.recovered_accounted_bytes =
                Some(resolved.entries.iter().map(Entry::accounted_size).sum());
            report.log.complete = true;
            if let Some(mark) = resolved.mark_needed {
                report.notes.push(format!(
                    "the log does not note snapshot (index {}, term {}) yet (a crash between \
                     publishing it and logging it, or a fallback to an older snapshot file); \
                     the next open appends a record for it",
                    mark.meta.index, mark.meta.term
                ));
            }
        }
        Err(e) => {
            report.hard_state = Some(scan.raw_hard_state());
            report.problems.push(e);
        }
    }
}

/// Number and total size of the segment files in `dir`.
fn segment_files(dir: &Path) -> Result<(u64, u64)> {
    let (mut count, mut bytes) = (0, 0);
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io("list log segments", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list log segments", dir, e))?;
        if entry
            .file_name()
            .to_str()
            .and_then(parse_file_name)
            .is_some()
        {
            let path = entry.path();
            let meta =
                fs::metadata(&path).map_err(|e| StorageError::io("stat log segment", &path, e))?;
            count += 1;
            bytes += meta.len();
        }
    }
    Ok((count, bytes))
}
