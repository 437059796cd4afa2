//! Crash consistency of the file backend.
//!
//! Failure mode guarded against: a crash in the middle of a log write or a snapshot
//! install leaving a directory that recovers to a mix of old and new state (a batch
//! half applied, a snapshot without its compaction or the reverse) or that loses an
//! acknowledged entry.
//!
//! For every failpoint of a log batch write and of a snapshot install, the test arms
//! the point, performs the operation (which fails and poisons the persister, unless a
//! snapshot failed before its fsync: then only that snapshot is abandoned and the log
//! must keep taking writes), checks that the persister refuses further writes, drops
//! it, and then builds *crash images*
//! of the directory: as left, with the data written during the operation cut at several
//! points (what a power loss before the fsync can leave), with a snapshot rename lost,
//! with segment deletions lost, with a leftover temp file. Every image must open and
//! recover to exactly the old state or exactly the new one (hard state, snapshot and its
//! payload, log), where the failpoint allows only one of them, that one; and the
//! recovered store must accept the next write and recover it after a restart.

mod file_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use file_support::{
    copy_dir, entries, entry, file_sizes, open, payload, read_snapshot, small_config,
    write_snapshot,
};
use raftkv_storage::fault::FaultPlan;
use raftkv_storage::{
    Entry, FilePersister, HardState, Persister, RecoveredState, SnapshotMeta, StorageConfig,
    StorageError, WriteBatch,
};

const S1: SnapshotMeta = SnapshotMeta {
    index: 200,
    term: 1,
};
const S2: SnapshotMeta = SnapshotMeta {
    index: 250,
    term: 1,
};
const S1_LEN: usize = 20_000;
const S2_LEN: usize = 30_000;

/// What recovery returned: the state and the current snapshot's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    state: RecoveredState,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

impl Observed {
    fn of(p: &FilePersister) -> Self {
        Self {
            state: p.recover().expect("recover"),
            snapshot: read_snapshot(p),
        }
    }

    fn summary(&self) -> String {
        format!(
            "hard state {:?}, snapshot {:?}, log {}..={} ({} entries), last term {:?}, skipped {:?}",
            self.state.hard_state,
            self.snapshot.as_ref().map(|(m, p)| (m, p.len())),
            self.state.first_index(),
            self.state.last_index(),
            self.state.entries.len(),
            self.state.entries.last().map(|e| e.term),
            self.state.skipped_snapshots
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    LogWrite,
    SnapshotInstall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Old,
    New,
}

struct Scenario {
    _root: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
    config: StorageConfig,
    plan: Arc<FaultPlan>,
    p: FilePersister,
}

fn hs(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        voted_for: Some(1),
        commit,
    }
}

/// A store with entries 1..=300 (term 1), snapshot S1, entries 301..=400 (term 2),
/// spread over several segments; then single-entry writes until the active segment is
/// full (`rotate_next`, so that the next append rotates) or has room.
fn setup(rotate_next: bool) -> Scenario {
    let root_dir = tempfile::tempdir().expect("tempdir");
    let root = root_dir.path().to_path_buf();
    let dir = root.join("store");
    let config = small_config();
    let plan = Arc::new(FaultPlan::new());
    let p = FilePersister::open_with_faults(&dir, config.clone(), Arc::clone(&plan)).expect("open");
    for from in (1..=300u64).step_by(10) {
        let b = WriteBatch::new()
            .hard_state(hs(1, from.saturating_sub(5)))
            .append(entries(from, from + 9, 1));
        p.write(&b).expect("write");
    }
    write_snapshot(&p, S1, &payload(S1, S1_LEN)).expect("snapshot S1");
    for from in (301..=400u64).step_by(10) {
        let b = WriteBatch::new()
            .hard_state(hs(2, from - 5))
            .append(entries(from, from + 9, 2));
        p.write(&b).expect("write");
    }
    let mut last = 400;
    let full = |dir: &Path| {
        let segs = file_support::segments(dir);
        let active = segs.last().expect("a segment");
        fs::metadata(active).expect("stat").len() >= config.segment_bytes
    };
    while full(&dir) != rotate_next {
        last += 1;
        p.write(&WriteBatch::new().append([entry(last, 2)]))
            .expect("write");
    }
    assert!(
        file_support::segments(&dir).len() >= 4,
        "setup spans several segments"
    );
    Scenario {
        _root: root_dir,
        root,
        dir,
        config,
        plan,
        p,
    }
}

/// The batch of the log-write operation: replace the last entry and append three, with a
/// new hard state. Applied half, it would show.
fn log_batch(last: u64) -> WriteBatch {
    WriteBatch::new()
        .hard_state(HardState {
            term: 3,
            voted_for: Some(2),
            commit: last - 1,
        })
        .truncate_from(last)
        .append(entries(last, last + 3, 3))
}

fn expected_after_log_write(old: &Observed) -> Observed {
    let mut new = old.clone();
    let last = old.state.last_index();
    let b = log_batch(last);
    new.state.entries.retain(|e| e.index < last);
    new.state.entries.extend(b.entries.iter().cloned());
    new.state.hard_state = b.hard_state.expect("batch has a hard state");
    new
}

fn expected_after_snapshot(old: &Observed) -> Observed {
    let mut new = old.clone();
    new.state.snapshot = Some(S2);
    new.state.entries.retain(|e| e.index > S2.index);
    new.state.hard_state.commit = new.state.hard_state.commit.max(S2.index);
    new.snapshot = Some((S2, payload(S2, S2_LEN)));
    new
}

fn perform(op: Op, p: &FilePersister, last: u64) -> Result<(), StorageError> {
    match op {
        Op::LogWrite => p.write(&log_batch(last)),
        Op::SnapshotInstall => write_snapshot(p, S2, &payload(S2, S2_LEN)).map(|_| ()),
    }
}

/// The outcome of the directory as left after the failure.
fn as_left(op: Op, point: &str) -> Want {
    match (op, point) {
        (Op::LogWrite, "log.after_write" | "log.before_fsync" | "log.after_fsync") => Want::New,
        (Op::LogWrite, _) => Want::Old,
        (
            Op::SnapshotInstall,
            "snapshot.write_frame"
            | "snapshot.before_write"
            | "snapshot.after_write"
            | "snapshot.before_fsync"
            | "snapshot.after_fsync"
            | "snapshot.before_rename",
        ) => Want::Old,
        (Op::SnapshotInstall, _) => Want::New,
    }
}

/// A crash image: a label, its directory, and the outcome it must recover to.
struct Image {
    label: String,
    dir: PathBuf,
    want: Want,
}

fn is_log_segment(rel: &Path) -> bool {
    rel.extension().is_some_and(|x| x == "seg")
}

fn is_snapshot(rel: &Path) -> bool {
    rel.extension().is_some_and(|x| x == "rks")
}

/// Builds every crash image of `s.dir` for a failure at `point` during `op`.
fn images(
    s: &Scenario,
    op: Op,
    point: &str,
    before: &BTreeMap<PathBuf, u64>,
    backup: &Path,
) -> Vec<Image> {
    let now = file_sizes(&s.dir);
    let mut out = Vec::new();
    let mut n = 0;
    let mut make = |label: String, want: Want, edit: &dyn Fn(&Path)| {
        n += 1;
        let dir = s.root.join(format!("image-{n}"));
        copy_dir(&s.dir, &dir);
        edit(&dir);
        out.push(Image { label, dir, want });
    };
    let left = as_left(op, point);
    make("as left".into(), left, &|_| {});

    // Log data written during the operation, cut at several points (one file at a
    // time): a crash before the fsync. Every cut loses the record's end, so a log write
    // recovers the old state; a snapshot install is durable before its log record, so
    // it recovers the new one.
    let torn_want = match op {
        Op::LogWrite => Want::Old,
        Op::SnapshotInstall => Want::New,
    };
    for (rel, &len) in now.iter().filter(|(rel, _)| is_log_segment(rel)) {
        let old_len = before.get(rel).copied().unwrap_or(0);
        if len <= old_len {
            continue;
        }
        let mut cuts = vec![
            old_len,
            old_len + 1,
            old_len + 31,
            old_len + (len - old_len) / 2,
            len - 1,
        ];
        cuts.retain(|&c| c < len);
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            let rel = rel.clone();
            make(
                format!("{} cut at {cut} of {len}", rel.display()),
                torn_want,
                &move |d: &Path| {
                    let path = d.join(&rel);
                    if cut == 0 {
                        fs::remove_file(&path).expect("remove");
                    } else {
                        file_support::truncate(&path, cut);
                    }
                },
            );
        }
    }

    // The snapshot rename not yet durable: the new file is gone again.
    let new_snapshots: Vec<PathBuf> = now
        .keys()
        .filter(|rel| is_snapshot(rel) && !before.contains_key(*rel))
        .cloned()
        .collect();
    if point.starts_with("snapshot.") && !new_snapshots.is_empty() {
        make("snapshot rename lost".into(), Want::Old, &|d: &Path| {
            for rel in &new_snapshots {
                fs::remove_file(d.join(rel)).expect("remove new snapshot");
            }
        });
    }

    // Deletions (old segments, old snapshots) not yet durable: the files are back.
    let deleted: Vec<PathBuf> = before
        .keys()
        .filter(|rel| !now.contains_key(*rel))
        .cloned()
        .collect();
    if !deleted.is_empty() {
        make("deletions lost".into(), left, &|d: &Path| {
            for rel in &deleted {
                fs::copy(backup.join(rel), d.join(rel)).expect("restore deleted file");
            }
        });
    }

    // A temp file left by the crash of a snapshot write.
    if op == Op::SnapshotInstall {
        make("leftover temp file".into(), left, &|d: &Path| {
            let tmp = d
                .join("snapshots")
                .join("snap-00000000000000000250-00000000000000000001.rks.1-1.tmp");
            fs::write(tmp, b"half a snapshot").expect("write temp");
        });
    }
    out
}

fn check_image(image: &Image, config: &StorageConfig, old: &Observed, new: &Observed) {
    let label = &image.label;
    let p = FilePersister::open(&image.dir, config.clone())
        .unwrap_or_else(|e| panic!("{label}: the crash image does not open: {e}"));
    let got = Observed::of(&p);
    let want = match image.want {
        Want::Old => old,
        Want::New => new,
    };
    if got != *want {
        let which = if got == *old {
            "the old state"
        } else if got == *new {
            "the new state"
        } else {
            "NEITHER the old nor the new state"
        };
        panic!(
            "{label}: expected the {:?} state, recovered {which}\n got: {}\n old: {}\n new: {}",
            image.want,
            got.summary(),
            old.summary(),
            new.summary()
        );
    }
    let tmp_left = fs::read_dir(image.dir.join("snapshots"))
        .expect("read_dir")
        .any(|e| {
            e.expect("entry")
                .path()
                .extension()
                .is_some_and(|x| x == "tmp")
        });
    assert!(!tmp_left, "{label}: a temp file survived the open");
    // The recovered store keeps working: the next entry is accepted and survives.
    let next = Entry {
        index: got.state.last_index() + 1,
        term: 9,
        data: b"after the crash".to_vec(),
    };
    p.write(&WriteBatch::new().append([next.clone()]))
        .unwrap_or_else(|e| panic!("{label}: write after recovery: {e}"));
    drop(p);
    let again = Observed::of(&open(&image.dir, config));
    let mut expect = got.clone();
    expect.state.entries.push(next);
    assert_eq!(again, expect, "{label}: state after a write and a restart");
}

/// Snapshot failpoints before its fsync: they fail that snapshot and nothing else.
fn fails_the_snapshot_only(point: &str) -> bool {
    matches!(
        point,
        "snapshot.write_frame" | "snapshot.before_write" | "snapshot.after_write"
    )
}

fn run(op: Op, point: &'static str, rotate_next: bool) {
    let s = setup(rotate_next);
    let old = Observed::of(&s.p);
    let last = old.state.last_index();
    let new = match op {
        Op::LogWrite => expected_after_log_write(&old),
        Op::SnapshotInstall => expected_after_snapshot(&old),
    };
    assert_ne!(old, new);
    let before = file_sizes(&s.dir);
    let backup = s.root.join("backup");
    copy_dir(&s.dir, &backup);

    s.plan.fail_at(point, 1);
    match perform(op, &s.p, last) {
        Err(StorageError::Injected { point: hit }) => assert_eq!(hit, point),
        // While the payload streams in, the failure comes back through `io::Write`.
        Err(StorageError::Io { source, .. })
            if source.to_string().contains(point) && point == "snapshot.write_frame" => {}
        other => panic!("{op:?} with {point} armed: expected the injected failure, got {other:?}"),
    }
    if op == Op::SnapshotInstall && fails_the_snapshot_only(point) {
        // Before its fsync a failed snapshot is abandoned: not poisoned, no temp file
        // left, and the log keeps taking writes (a full disk while a snapshot is written
        // must not stop the node).
        assert!(!s.p.is_poisoned(), "{point} poisoned the persister");
        let images = images(&s, op, point, &before, &backup);
        let next = entry(last + 1, 2);
        s.p.write(&WriteBatch::new().append([next.clone()]))
            .unwrap_or_else(|e| panic!("{point}: log write after a failed snapshot: {e}"));
        let mut expect = old.clone();
        expect.state.entries.push(next);
        assert_eq!(Observed::of(&s.p), expect, "{point}: after the next write");
        let config = s.config.clone();
        drop(s.p);
        for image in &images {
            check_image(image, &config, &old, &new);
        }
        return;
    }
    // Poisoned: every later write is refused, and nothing more reaches the disk.
    assert!(s.p.is_poisoned());
    let sizes_after_failure = file_sizes(&s.dir);
    let refused = s.p.write(&WriteBatch::new().append([entry(last + 10, 3)]));
    assert!(
        matches!(refused, Err(StorageError::Poisoned { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        s.p.begin_snapshot(SnapshotMeta {
            index: 390,
            term: 2
        }),
        Err(StorageError::Poisoned { .. })
    ));
    assert!(matches!(s.p.compact(0), Err(StorageError::Poisoned { .. })));
    assert_eq!(
        file_sizes(&s.dir),
        sizes_after_failure,
        "a poisoned persister wrote"
    );

    let images = images(&s, op, point, &before, &backup);
    let config = s.config.clone();
    drop(s.p);
    assert!(images.len() >= 2 || op == Op::LogWrite);
    for image in &images {
        check_image(image, &config, &old, &new);
    }
}

macro_rules! crash_cases {
    ($($name:ident: $op:expr, $point:literal, $rotate:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run($op, $point, $rotate);
            }
        )*
    };
}

crash_cases! {
    log_before_write: Op::LogWrite, "log.before_write", false;
    log_after_write: Op::LogWrite, "log.after_write", false;
    log_before_fsync: Op::LogWrite, "log.before_fsync", false;
    log_after_fsync: Op::LogWrite, "log.after_fsync", false;
    log_before_write_rotating: Op::LogWrite, "log.before_write", true;
    log_after_write_rotating: Op::LogWrite, "log.after_write", true;
    log_before_fsync_rotating: Op::LogWrite, "log.before_fsync", true;
    log_after_fsync_rotating: Op::LogWrite, "log.after_fsync", true;
    log_before_rotate: Op::LogWrite, "log.before_rotate", true;
    log_after_rotate: Op::LogWrite, "log.after_rotate", true;

    snapshot_write_frame: Op::SnapshotInstall, "snapshot.write_frame", false;
    snapshot_before_write: Op::SnapshotInstall, "snapshot.before_write", false;
    snapshot_after_write: Op::SnapshotInstall, "snapshot.after_write", false;
    snapshot_before_fsync: Op::SnapshotInstall, "snapshot.before_fsync", false;
    snapshot_after_fsync: Op::SnapshotInstall, "snapshot.after_fsync", false;
    snapshot_before_rename: Op::SnapshotInstall, "snapshot.before_rename", false;
    snapshot_after_rename: Op::SnapshotInstall, "snapshot.after_rename", false;
    snapshot_before_dir_fsync: Op::SnapshotInstall, "snapshot.before_dir_fsync", false;
    snapshot_after_dir_fsync: Op::SnapshotInstall, "snapshot.after_dir_fsync", false;
    snapshot_record_before_write: Op::SnapshotInstall, "log.before_write", false;
    snapshot_record_after_write: Op::SnapshotInstall, "log.after_write", false;
    snapshot_record_before_fsync: Op::SnapshotInstall, "log.before_fsync", false;
    snapshot_record_after_fsync: Op::SnapshotInstall, "log.after_fsync", false;
    snapshot_record_before_rotate: Op::SnapshotInstall, "log.before_rotate", true;
    snapshot_record_after_rotate: Op::SnapshotInstall, "log.after_rotate", true;
    snapshot_compact_before_delete: Op::SnapshotInstall, "compact.before_delete", false;
    snapshot_compact_after_delete: Op::SnapshotInstall, "compact.after_delete", false;
}

/// The compaction failpoints on `compact` itself. A commit whose segment deletion
/// failed leaves deletable segments behind; after a restart, `compact` deletes them. A
/// failure there poisons, and recovery is the same whether the deletions happened or not.
#[test]
fn compact_failpoints() {
    for point in ["compact.before_delete", "compact.after_delete"] {
        let s = setup(false);
        s.plan.fail_at("compact.before_delete", 1);
        let r = write_snapshot(&s.p, S2, &payload(S2, S2_LEN));
        assert!(matches!(r, Err(StorageError::Injected { .. })), "{r:?}");
        let (root, dir, config) = (s.root.clone(), s.dir.clone(), s.config.clone());
        drop(s.p);

        let plan = Arc::new(FaultPlan::new());
        let p = FilePersister::open_with_faults(&dir, config.clone(), Arc::clone(&plan))
            .expect("reopen");
        let expected = Observed::of(&p);
        assert_eq!(expected.state.snapshot, Some(S2));
        let before = file_sizes(&dir);
        let backup = root.join(format!("backup-{point}"));
        copy_dir(&dir, &backup);
        plan.fail_at(point, 1);
        match p.compact(S2.index) {
            Err(StorageError::Injected { point: hit }) => assert_eq!(hit, point),
            // While the payload streams in, the failure comes back through `io::Write`.
            Err(StorageError::Io { source, .. })
                if source.to_string().contains(point) && point == "snapshot.write_frame" => {}
            other => panic!("compact with {point} armed: {other:?}"),
        }
        assert!(p.is_poisoned());
        assert!(matches!(
            p.write(&WriteBatch::new().append([entry(1000, 3)])),
            Err(StorageError::Poisoned { .. })
        ));
        assert!(matches!(
            p.compact(S2.index),
            Err(StorageError::Poisoned { .. })
        ));
        drop(p);
        let now = file_sizes(&dir);
        let deleted: Vec<&PathBuf> = before.keys().filter(|k| !now.contains_key(*k)).collect();
        if point == "compact.after_delete" {
            assert!(!deleted.is_empty(), "compact deleted nothing");
            assert!(deleted.iter().all(|d| is_log_segment(d)), "{deleted:?}");
        } else {
            assert!(deleted.is_empty(), "{deleted:?}");
        }
        assert_eq!(
            Observed::of(&open(&dir, &config)),
            expected,
            "{point}: as left"
        );
        for rel in &deleted {
            fs::copy(backup.join(rel), dir.join(rel)).expect("restore");
        }
        assert_eq!(
            Observed::of(&open(&dir, &config)),
            expected,
            "{point}: deletions lost"
        );
    }
}
