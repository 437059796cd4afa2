//! The results file: one line per measurement, tab-separated `name=value` fields, that
//! the benches append to and `benches/report.rs` reads. Kept beside criterion's own
//! output so that the report needs nothing from criterion's file layout.
//!
//! `RAFTKV_BENCH_RESULTS` overrides the path.

use std::io::Write;
use std::path::PathBuf;

/// Where results go.
pub fn path() -> PathBuf {
    std::env::var_os("RAFTKV_BENCH_RESULTS").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_TARGET_TMPDIR"),
                "/raftkv-bench-results.tsv"
            ))
        },
        PathBuf::from,
    )
}

/// Appends one record (nothing in test mode).
pub fn record(fields: &[(&str, String)]) {
    if super::test_mode() {
        return;
    }
    let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let path = path();
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open results file");
    writeln!(f, "{}", line.join("\t")).expect("write results file");
}

/// Seconds with enough digits for microsecond figures.
pub fn secs(d: std::time::Duration) -> String {
    format!("{:.6}", d.as_secs_f64())
}
