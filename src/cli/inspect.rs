//! `raftkv inspect DIR`: an offline, read-only report on a data directory.
//!
//! The report goes to stdout, one aligned `label value` line per item; every problem
//! found goes to stderr, naming the file and the offset. Repairs the next open would make
//! (a torn log tail, a leftover temp file) are `warning:` lines on stdout and do not fail
//! the command. See `raftkv_storage::inspect` for what is checked.
//!
//! Exit status: 0 healthy (warnings allowed); 1 corruption or a read error (the report
//! still shows what was readable); 2 usage: the directory is missing, is not a raftkv data
//! directory, or holds a RocksDB store and this build lacks the `rocksdb` feature.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use raftkv::storage::inspect::{
    DirReport, IndexRange, SnapshotReport, SnapshotRole, SnapshotStatus, inspect_dir,
};
use raftkv::storage::{Backend, StorageError};

/// Prints the report for `dir`; non-zero exit on any corruption.
pub fn run(dir: &Path) -> ExitCode {
    // The storage crate logs what its recovery code finds (a torn tail, a torn segment)
    // as if repairing it; inspect repairs nothing and reports those as warnings below.
    let inspected =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            inspect_dir(dir)
        });
    let report = match inspected {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raftkv inspect: {e}");
            let usage = match &e {
                StorageError::Config(_) => true,
                StorageError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
                _ => false,
            };
            return ExitCode::from(if usage { 2 } else { 1 });
        }
    };
    print!("{}", render(&report));
    let member = raftkv::server::member_file::read(dir).err();
    if report.is_healthy() && member.is_none() {
        return ExitCode::SUCCESS;
    }
    for e in &report.problems {
        eprintln!("raftkv inspect: {e}");
    }
    if let Some(e) = &member {
        eprintln!("raftkv inspect: {e}");
    }
    let problems = report.problems.len() + usize::from(member.is_some());
    eprintln!(
        "raftkv inspect: {}: {} problem{} found",
        dir.display(),
        problems,
        if problems == 1 { "" } else { "s" }
    );
    ExitCode::FAILURE
}

/// A `label value` line, the values aligned.
fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{label:<15} {value}");
}

fn range(r: Option<IndexRange>) -> String {
    match r {
        Some(r) => format!("entries {}..={} ({} entries)", r.first, r.last, r.len()),
        None => "no entries".into(),
    }
}

/// The report as printed on stdout.
fn render(r: &DirReport) -> String {
    let mut out = String::new();
    line(&mut out, "data dir", r.dir.display());
    line(&mut out, "backend", r.backend);
    let node_id = match raftkv::server::member_file::read(&r.dir) {
        Ok(Some(m)) => format!("{} (cluster id {:#x})", m.node_id, m.cluster_id),
        Err(e) => format!("unreadable: {e}"),
        Ok(None) => match (r.node_id, r.node_id_from_dir_name) {
            (Some(id), _) => id.to_string(),
            (None, Some(guess)) => {
                format!("not recorded (the directory name suggests {guess})")
            }
            (None, None) => "not recorded".into(),
        },
    };
    line(&mut out, "node id", node_id);
    let hard_state = match r.hard_state {
        Some(hs) => format!(
            "term {}, voted for {}, commit {}",
            hs.term,
            hs.voted_for
                .map_or_else(|| "none".into(), |v| v.to_string()),
            hs.commit
        ),
        None => "unreadable".into(),
    };
    line(&mut out, "hard state", hard_state);
    let mut disk = if r.log.complete || r.log.stored.is_some() {
        range(r.log.stored)
    } else {
        "unreadable".into()
    };
    if let Some(n) = r.log.segments {
        let _ = write!(disk, ", {n} segment{}", if n == 1 { "" } else { "s" });
    }
    let _ = write!(disk, ", {} bytes", r.log.bytes_on_disk);
    if r.backend == Backend::Rocksdb {
        disk.push_str(" in db/");
    }
    line(&mut out, "log on disk", disk);
    let recovered = if r.log.complete {
        let mut s = range(r.log.recovered);
        if let Some(b) = r.log.recovered_accounted_bytes {
            let _ = write!(s, ", {b} bytes accounted");
        }
        s
    } else {
        "cannot be resolved (see the problems)".into()
    };
    line(&mut out, "log recovered", recovered);
    let uses = r
        .current_snapshot()
        .map_or_else(|| "none".into(), |s| format!("index {}", s.meta.index));
    line(
        &mut out,
        "snapshots",
        format!("{} files; recovery uses {uses}", r.snapshots.len()),
    );
    for s in &r.snapshots {
        snapshot_line(&mut out, s);
    }
    for note in &r.notes {
        let _ = writeln!(out, "warning: {note}");
    }
    let status = if r.is_healthy() {
        "ok".to_string()
    } else {
        format!(
            "CORRUPT: {} problem{} (listed on stderr)",
            r.problems.len(),
            if r.problems.len() == 1 { "" } else { "s" }
        )
    };
    line(&mut out, "status", status);
    out
}

fn snapshot_line(out: &mut String, s: &SnapshotReport) {
    let role = match s.role {
        SnapshotRole::Current => "current",
        SnapshotRole::Fallback => "fallback",
        SnapshotRole::Extra => "extra",
        SnapshotRole::Skipped => "skipped",
    };
    let (payload, frames) = match &s.info {
        Some(i) => (i.uncompressed_bytes.to_string(), i.frame_count.to_string()),
        None => ("?".into(), "?".into()),
    };
    let ratio = s
        .compression_ratio()
        .map_or_else(|| "?".into(), |x| format!("{x:.2}"));
    let status = match &s.status {
        SnapshotStatus::Ok => "ok",
        SnapshotStatus::Corrupt(_) => "CORRUPT",
    };
    let _ = writeln!(
        out,
        "  {role:<8}  index {:>8}  term {:>5}  payload {payload:>10} B  stored {:>10} B  \
         ratio {ratio:>6}  frames {frames:>6}  checksum {status:<7}  {}",
        s.meta.index,
        s.meta.term,
        s.file_bytes,
        s.path.display()
    );
    if let SnapshotStatus::Corrupt(e) = &s.status {
        let _ = writeln!(out, "            {e}");
    }
}
