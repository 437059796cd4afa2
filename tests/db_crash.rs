//! `Db` crashed without shutdown (SIGKILL of a child process in the middle of a write
//! stream), then reopened: every write the child saw acknowledged must be there, with
//! its version. For the memory backend, the crash is a crash image of one replica set.
//!
//! The child is this test binary re-run with `RAFTKV_DB_CHILD=<backend>:<dir>`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use raftkv::storage::Backend;
use raftkv::{Db, DbConfig};

const CHILD_ENV: &str = "RAFTKV_DB_CHILD";

fn config(backend: Backend, dir: &std::path::Path, replicas: u64) -> DbConfig {
    let mut c = DbConfig::new(backend, dir);
    c.replicas = replicas;
    // Small enough that snapshots are taken (and crashed into) during the run.
    c.max_raft_state = 64 << 10;
    c
}

/// In the child: write keys until killed, printing each acknowledged (key, version).
#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (backend, rest) = spec.split_once(':').expect("backend:replicas:dir");
    let (replicas, dir) = rest.split_once(':').expect("replicas:dir");
    let backend: Backend = backend.parse().expect("backend");
    let db = Db::open(config(
        backend,
        dir.as_ref(),
        replicas.parse().expect("replicas"),
    ))
    .expect("child open");
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let key = format!("key{}", i % 500);
        let value = format!("value{i:0100}");
        let version = db.put(key.as_bytes(), value.as_bytes()).expect("put");
        writeln!(out, "ack {key} {version} {i}").expect("stdout");
        out.flush().expect("flush");
    }
}

fn kill_mid_stream_and_reopen(backend: Backend, replicas: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{backend}:{replicas}:{}", dir.path().display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = std::collections::BTreeMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let Some(rest) = line.strip_prefix("ack ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let key = parts.next().expect("key").to_string();
        let version: u64 = parts.next().expect("version").parse().expect("version");
        let i: u64 = parts.next().expect("i").parse().expect("i");
        acked.insert(key, (version, i));
        if i == 3000 {
            break;
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap");
    assert_eq!(
        acked.len(),
        500,
        "the child acknowledged writes to every key"
    );

    let mut c = config(backend, dir.path(), replicas);
    c.open_timeout = Duration::from_secs(60);
    let db = Db::open(c).expect("reopen after SIGKILL");
    for (key, (version, i)) in &acked {
        let (value, got_version) = db
            .get(key.as_bytes())
            .expect("get")
            .unwrap_or_else(|| panic!("{backend}: acknowledged key {key} lost"));
        // Writes after the last one we read may have applied too, never fewer.
        assert!(
            got_version >= *version,
            "{backend}: {key} at version {got_version}, but version {version} was acknowledged"
        );
        if got_version == *version {
            assert_eq!(
                value,
                format!("value{i:0100}").into_bytes(),
                "{backend}: {key}"
            );
        }
    }
    db.close();
}

#[test]
fn file_backend_keeps_acknowledged_writes_across_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    kill_mid_stream_and_reopen(Backend::File, 1);
}

#[test]
fn file_backend_three_replicas_keep_acknowledged_writes_across_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    kill_mid_stream_and_reopen(Backend::File, 3);
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_backend_keeps_acknowledged_writes_across_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    kill_mid_stream_and_reopen(Backend::Rocksdb, 1);
}

#[test]
fn memory_backend_crash_image_keeps_acknowledged_writes() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let mut c = DbConfig::memory();
    c.replicas = 3;
    c.max_raft_state = 16 << 10;
    let db = Db::open(c).expect("open");
    let mut versions = Vec::new();
    for i in 0..300u64 {
        versions.push(
            db.put(format!("k{}", i % 50).as_bytes(), &i.to_le_bytes())
                .expect("put"),
        );
    }
    // Crash every replica (each keeps only its crash image), then restart them all.
    let cluster = db.cluster();
    for &id in cluster.ids() {
        cluster.crash(id);
    }
    for &id in cluster.ids() {
        cluster.restart(id).expect("restart");
    }
    cluster.wait_ready(Duration::from_secs(30)).expect("ready");
    for k in 0..50u64 {
        let last = (0..300u64).rev().find(|i| i % 50 == k).expect("written");
        let (value, version) = db
            .get(format!("k{k}").as_bytes())
            .expect("get")
            .expect("present");
        assert_eq!(value.as_ref(), last.to_le_bytes(), "k{k}");
        assert_eq!(version, versions[last as usize], "k{k}");
    }
    db.close();
}
