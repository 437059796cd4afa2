//! The recovery rule: which log entries count, given the newest valid snapshot file and
//! the snapshot recorded in the database.
//!
//! A snapshot commit has two durable steps: publishing the snapshot file, then a RocksDB
//! batch that records the snapshot and deletes what it supersedes. A crash can fall
//! between them, and a snapshot file can later fail validation, so the chosen snapshot
//! `C` (newest valid file) and the recorded one `M` can differ:
//!
//! * `C == M`: the normal case. The log after `C` is what counts.
//! * `C` newer than `M`: the record of `C` never landed. Apply what it would have done:
//!   keep the entries after `C.index` if the log holds `C.index` with `C.term`, else
//!   discard the whole log (Raft §7). The answer is the same as if the record had
//!   landed, because nothing is written between the two steps.
//! * `C` older than `M`: `M`'s file is invalid and recovery fell back to `C`. That is
//!   only sound if the log still continues right after `C` up to `M` (the backend keeps
//!   the entries above the fallback snapshot for this); otherwise committed data is
//!   gone and recovery fails with [`StorageError::MissingSnapshot`].
//!
//! In the last two cases the caller rewrites the record to `C`, so the database agrees
//! with the snapshot in use again.

use std::collections::VecDeque;
use std::path::Path;

use crate::error::StorageError;
use crate::persister::Result;
use crate::types::{SkippedSnapshot, SnapshotMeta};

/// The log as stored: `(term, accounted size)` of contiguous entries from `first`.
#[derive(Debug, Default)]
pub(crate) struct StoredLog {
    /// Index of the first stored entry (meaningless when empty).
    pub(crate) first: u64,
    /// `(term, accounted size)` per entry.
    pub(crate) items: VecDeque<(u64, u64)>,
}

impl StoredLog {
    fn last(&self) -> Option<u64> {
        (!self.items.is_empty()).then(|| self.first + self.items.len() as u64 - 1)
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        let pos = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.items.get(pos).map(|&(term, _)| term)
    }

    /// The entries after `index`.
    fn after(&self, index: u64) -> VecDeque<(u64, u64)> {
        let skip = usize::try_from((index + 1).saturating_sub(self.first)).unwrap_or(usize::MAX);
        self.items.iter().skip(skip).copied().collect()
    }
}

/// What recovery decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// `(term, accounted size)` of the entries after the chosen snapshot that count.
    pub(crate) log: VecDeque<(u64, u64)>,
    /// Whether the database must be repaired: record the chosen snapshot, and delete
    /// the whole stored log if `discard_log`.
    pub(crate) repair: Option<Repair>,
}

/// A rewrite of the snapshot record that recovery needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Repair {
    /// The stored log conflicts with the chosen snapshot and must be deleted.
    pub(crate) discard_log: bool,
}

/// Applies the recovery rule. `dir` is the data directory, named in errors;
/// `skipped` lists snapshot files that failed validation.
pub(crate) fn resolve(
    chosen: Option<SnapshotMeta>,
    recorded: Option<SnapshotMeta>,
    log: &StoredLog,
    dir: &Path,
    db_path: &Path,
    skipped: &[SkippedSnapshot],
) -> Result<Resolution> {
    let c = chosen.map_or(0, |s| s.index);
    let m = recorded.map_or(0, |s| s.index);
    if chosen == recorded {
        if let Some(last) = log.last()
            && last > c
            && log.first > c + 1
        {
            return Err(missing(dir, log.first, c, recorded, log, skipped));
        }
        return Ok(Resolution {
            log: log.after(c),
            repair: None,
        });
    }
    if c == m {
        return Err(StorageError::corrupt(
            "snapshot record",
            db_path,
            0,
            format!(
                "the database records snapshot {recorded:?} but the snapshot file at that index is {chosen:?}"
            ),
        ));
    }
    if c > m {
        // The record of the chosen snapshot never landed: do what it would have done.
        let chosen = chosen.expect("c > m >= 0, so there is a chosen snapshot");
        let matched = log.term_at(c) == Some(chosen.term);
        return Ok(Resolution {
            log: if matched {
                log.after(c)
            } else {
                VecDeque::new()
            },
            repair: Some(Repair {
                discard_log: !matched,
            }),
        });
    }
    // Fell back below the recorded snapshot: the log must bridge the gap.
    let recorded_meta = recorded.expect("m > c >= 0, so there is a recorded snapshot");
    let bridges = log.last().is_some_and(|last| last >= m)
        && log.first <= c + 1
        && log.term_at(m) == Some(recorded_meta.term);
    if !bridges {
        let first = if log.items.is_empty() {
            m + 1
        } else {
            log.first
        };
        return Err(missing(dir, first, c, recorded, log, skipped));
    }
    Ok(Resolution {
        log: log.after(c),
        repair: Some(Repair { discard_log: false }),
    })
}

fn missing(
    dir: &Path,
    log_first: u64,
    snapshot_index: u64,
    recorded: Option<SnapshotMeta>,
    log: &StoredLog,
    skipped: &[SkippedSnapshot],
) -> StorageError {
    let held = match log.last() {
        Some(last) => format!("the log holds entries {}..={last}", log.first),
        None => "the log is empty".to_string(),
    };
    let mut detail = match recorded {
        Some(r) => format!(
            "the database records a snapshot at index {} (term {}); {held}",
            r.index, r.term
        ),
        None => format!("the database records no snapshot; {held}"),
    };
    if skipped.is_empty() {
        detail.push_str("; no snapshot file was rejected");
    }
    for s in skipped {
        detail.push_str(&format!("; rejected {}: {}", s.location, s.reason));
    }
    StorageError::MissingSnapshot {
        path: dir.to_path_buf(),
        log_first,
        snapshot_index,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(index: u64, term: u64) -> Option<SnapshotMeta> {
        Some(SnapshotMeta { index, term })
    }

    /// A log from `first` with the given terms, each entry of size 20.
    fn log(first: u64, terms: &[u64]) -> StoredLog {
        StoredLog {
            first,
            items: terms.iter().map(|&t| (t, 20)).collect(),
        }
    }

    fn terms(r: &Resolution) -> Vec<u64> {
        r.log.iter().map(|&(t, _)| t).collect()
    }

    fn run(
        c: Option<SnapshotMeta>,
        rec: Option<SnapshotMeta>,
        l: &StoredLog,
    ) -> Result<Resolution> {
        let skipped = [SkippedSnapshot {
            location: "snap-9".into(),
            reason: "bad checksum".into(),
        }];
        resolve(
            c,
            rec,
            l,
            Path::new("/data"),
            Path::new("/data/db"),
            &skipped,
        )
    }

    #[test]
    fn same_snapshot_keeps_the_log_after_it() {
        // Entries 3..=5 are kept on disk for the fallback snapshot; only 6.. count.
        let r = run(m(5, 1), m(5, 1), &log(3, &[1, 1, 1, 2, 2])).expect("ok");
        assert_eq!(terms(&r), vec![2, 2]);
        assert_eq!(r.repair, None);
        let r = run(None, None, &log(1, &[1, 1])).expect("ok");
        assert_eq!(terms(&r), vec![1, 1]);
        let r = run(m(5, 1), m(5, 1), &log(6, &[2])).expect("ok");
        assert_eq!(terms(&r), vec![2]);
        let e = run(None, None, &log(4, &[1])).expect_err("log after a missing snapshot");
        assert!(
            matches!(
                e,
                StorageError::MissingSnapshot {
                    log_first: 4,
                    snapshot_index: 0,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn unrecorded_snapshot_gives_the_answer_its_record_would() {
        let stored = log(1, &[1, 1, 1, 2, 2, 2]);
        let r = run(m(4, 2), m(2, 1), &stored).expect("matching");
        assert_eq!(terms(&r), vec![2, 2]);
        assert_eq!(r.repair, Some(Repair { discard_log: false }));
        let r = run(m(4, 3), None, &stored).expect("conflicting");
        assert!(r.log.is_empty());
        assert_eq!(r.repair, Some(Repair { discard_log: true }));
        let r = run(m(9, 2), m(2, 1), &stored).expect("beyond the log");
        assert!(r.log.is_empty());
        assert_eq!(r.repair, Some(Repair { discard_log: true }));
    }

    #[test]
    fn fallback_needs_a_log_that_bridges_to_the_recorded_snapshot() {
        // Recorded 6 (term 2); its file is invalid; fallback to 3.
        let bridged = log(3, &[1, 1, 1, 2, 2, 2, 3]);
        let r = run(m(3, 1), m(6, 2), &bridged).expect("bridged");
        assert_eq!(terms(&r), vec![1, 1, 2, 2, 2, 3]);
        assert_eq!(r.repair, Some(Repair { discard_log: false }));
        // The log was discarded by a conflicting snapshot at 6: entries start at 7.
        let e = run(m(3, 1), m(6, 2), &log(7, &[3])).expect_err("gap");
        assert!(
            matches!(
                e,
                StorageError::MissingSnapshot {
                    log_first: 7,
                    snapshot_index: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("bad checksum"), "{e}");
        let e = run(m(3, 1), m(6, 2), &log(1, &[])).expect_err("empty");
        assert!(
            matches!(e, StorageError::MissingSnapshot { log_first: 7, .. }),
            "{e}"
        );
        let e = run(None, m(6, 2), &log(2, &[1, 1, 1, 1, 2])).expect_err("no snapshot, log from 2");
        assert!(
            matches!(
                e,
                StorageError::MissingSnapshot {
                    snapshot_index: 0,
                    ..
                }
            ),
            "{e}"
        );
        let e = run(m(3, 1), m(6, 2), &log(3, &[1, 1, 1])).expect_err("log too short");
        assert!(e.is_corruption(), "{e}");
        let e = run(m(3, 1), m(6, 2), &log(3, &[1, 1, 1, 9])).expect_err("wrong term at 6");
        assert!(e.is_corruption(), "{e}");
    }

    #[test]
    fn record_and_file_disagreeing_at_one_index_is_corruption() {
        let e = run(m(5, 1), m(5, 2), &log(6, &[2])).expect_err("disagree");
        assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
    }
}
