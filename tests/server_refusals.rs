//! `raftkv server` refuses to start, with a message that names the problem, on wrong
//! configuration and on data it must not serve from: an unknown backend, duplicate
//! member ids, a data directory of another member or another backend, a corrupted
//! snapshot that leaves the log unbridgeable, a malformed config file, and a client
//! address open beyond loopback without a password.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{ProcCluster, exe, free_ports};

/// Runs `raftkv server` with `args` (it must exit by itself).
fn server(args: &[&str]) -> Output {
    Command::new(exe())
        .arg("server")
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run raftkv server")
}

fn peers() -> (String, String) {
    let p = free_ports(3);
    (
        format!("1=127.0.0.1:{},2=127.0.0.1:{}", p[0], p[1]),
        format!("127.0.0.1:{}", p[2]),
    )
}

fn refused(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status; stderr: {stderr}"
    );
    assert!(stderr.contains(needle), "stderr names {needle:?}: {stderr}");
}

#[test]
fn configuration_mistakes_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let (peers, listen) = peers();
    let base = ["--listen", listen.as_str(), "--data-dir", d];

    let out = server(
        &[
            &["--id", "1", "--peers", &peers, "--backend", "tape"][..],
            &base,
        ]
        .concat(),
    );
    refused(&out, 2, "tape");

    let dup = peers.replace("2=", "1=");
    let out = server(&[&["--id", "1", "--peers", &dup][..], &base].concat());
    refused(&out, 2, "member 1 is listed twice");

    let out = server(&[&["--id", "3", "--peers", &peers][..], &base].concat());
    refused(&out, 2, "must include this member (id 3)");

    let out = server(&["--id", "1", "--peers", &peers, "--listen", &listen]);
    refused(&out, 2, "`data_dir`");

    // Clients on a non-loopback address need a password, or --insecure.
    let wildcard = listen.replace("127.0.0.1", "0.0.0.0");
    let open = [
        "--id",
        "1",
        "--peers",
        &peers,
        "--listen",
        &wildcard,
        "--data-dir",
        d,
    ];
    let out = server(&open);
    refused(&out, 2, "not a loopback address");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure"));

    let toml = dir.path().join("node.toml");
    std::fs::write(&toml, "id = 1\nlisen = \"127.0.0.1:1\"\n").expect("write toml");
    let out = server(&["--config", toml.to_str().expect("utf-8")]);
    refused(&out, 2, "lisen");
}

#[test]
fn a_data_directory_of_another_member_or_backend_is_refused() {
    let mut c = ProcCluster::start(1, "file", &[]);
    assert!(c.member(1).terminate(Duration::from_secs(15)));
    let dir = c.members[0].dir.to_str().expect("utf-8").to_string();
    let (peers, listen) = peers();

    let out = server(&[
        "--id",
        "2",
        "--peers",
        &peers,
        "--listen",
        &listen,
        "--data-dir",
        &dir,
    ]);
    refused(&out, 1, "belongs to member 1, not to member 2");

    let out = server(&[
        "--id",
        "1",
        "--peers",
        &peers,
        "--listen",
        &listen,
        "--data-dir",
        &dir,
        "--backend",
        "rocksdb",
    ]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rocksdb") || stderr.contains("RocksDB"),
        "names the backend: {stderr}"
    );
}

#[test]
fn a_corrupted_snapshot_is_refused_or_falls_back_never_silently_lost() {
    // Enough writes for two snapshots, so that one is the newest and one the fallback.
    let mut c = ProcCluster::start(1, "file", &["--max-raft-state", "16384"]);
    let m = &c.members[0];
    let mut conn = m.connect();
    for i in 0..3000 {
        conn.send(&["SET", &format!("k{}", i % 300), &format!("{i:0100}")])
            .expect("send");
    }
    for _ in 0..3000 {
        conn.read_reply().expect("reply");
    }
    drop(conn);
    assert!(c.member(1).terminate(Duration::from_secs(15)));
    let snaps = c.members[0].dir.join("snapshots");
    let mut files: Vec<_> = std::fs::read_dir(&snaps)
        .expect("snapshots dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rks"))
        .collect();
    files.sort();
    let newest = files.last().expect("a snapshot").clone();
    let mut bytes = std::fs::read(&newest).expect("read snapshot");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&newest, &bytes).expect("corrupt snapshot");

    // inspect names the file.
    let out = Command::new(exe())
        .arg("inspect")
        .arg(&c.members[0].dir)
        .output()
        .expect("inspect");
    refused(
        &out,
        1,
        newest.file_name().expect("name").to_str().expect("utf-8"),
    );

    // The server either starts from the older snapshot plus the log, with every
    // acknowledged write, or refuses to start naming the file; it never serves less.
    c.member(1).start();
    let started = support::wait_for(
        "the member to start or exit",
        Duration::from_secs(30),
        || {
            let m = c.member(1);
            if !m.is_running() {
                return Some(false);
            }
            // PONG once loaded (-LOADING while it restores and replays).
            match m.try_command(&["PING"]) {
                Some(raftkv::kvservice::resp::Value::SimpleString(s)) if s == "PONG" => Some(true),
                _ => None,
            }
        },
    );
    eprintln!(
        "corrupted newest snapshot: member {}",
        if started { "fell back" } else { "refused" }
    );
    if started {
        let m = &c.members[0];
        for k in 0..300 {
            let i = 2700 + k;
            let got = m.try_command(&["GET", &format!("k{k}")]);
            assert_eq!(
                got,
                Some(raftkv::kvservice::resp::Value::BulkString(Some(
                    format!("{i:0100}").into()
                ))),
                "k{k} after falling back"
            );
        }
    } else {
        let log = c.members[0].log();
        assert!(
            log.contains("snap-"),
            "the refusal names the snapshot: {log}"
        );
    }
}
