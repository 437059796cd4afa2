//! `raftkv server --print-config`: the TOML file, the `RAFTKV_*` environment and the
//! flags merged, printed as TOML with the password redacted; nothing is started.

mod support;

use std::process::Command;

use support::exe;

#[test]
fn print_config_merges_file_environment_and_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "id = 1\nbackend = \"memory\"\nmaxclients = 50\nmax_pending_proposals = 3\n\
         commit_timeout_ms = 900\nrequirepass = \"s3cret\"\n[peers]\n1 = \"127.0.0.1:1\"\n",
    )
    .expect("write the config");
    let out = Command::new(exe())
        .args(["server", "--print-config", "--config"])
        .arg(&file)
        .args(["--commit-timeout-ms", "700", "--max-request-bytes", "65536"])
        .env("RAFTKV_MAX_CLIENTS", "60")
        .env("RAFTKV_COMMIT_TIMEOUT_MS", "800")
        .env("RUST_LOG", "error")
        .output()
        .expect("run raftkv server --print-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "max_clients = 60",          // the environment over the file
        "max_pending_proposals = 3", // the file
        "commit_timeout_ms = 700",   // the flag over both
        "max_request_bytes = 65536",
        "max_bulk_bytes = 536870912", // the default
        "requirepass = \"<redacted>\"",
        "backend = \"memory\"",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("s3cret"), "{stdout}");
    // A bad value is refused by name, with exit 2, as at a real start.
    let out = Command::new(exe())
        .args(["server", "--print-config", "--config"])
        .arg(&file)
        .env("RAFTKV_MAX_PENDING_PROPOSALS", "lots")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RAFTKV_MAX_PENDING_PROPOSALS"));
}
