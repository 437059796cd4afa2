//! Peers that cannot prove the cluster secret, and data directories of another
//! cluster, are refused by real `raftkv server` processes.

mod support;

use std::time::Duration;

use raftkv::kvservice::resp::Value;
use support::{Member, free_ports, wait_for};

/// Starts members `1..=secrets.len()`; member `i` reads `cluster_secret = secrets[i-1]`
/// from its own config file.
fn start(root: &std::path::Path, secrets: &[&str]) -> Vec<Member> {
    let n = secrets.len();
    let ports = free_ports(2 * n);
    let peers: Vec<String> = (0..n)
        .map(|i| format!("{}=127.0.0.1:{}", i + 1, ports[n + i]))
        .collect();
    let peers = peers.join(",");
    secrets
        .iter()
        .enumerate()
        .map(|(i, secret)| {
            let id = i as u64 + 1;
            let config = root.join(format!("node-{id}.toml"));
            std::fs::write(&config, format!("cluster_secret = {secret:?}\n")).expect("config");
            let client = format!("127.0.0.1:{}", ports[i]);
            let dir = root.join(format!("node-{id}"));
            let args = [
                "server",
                "--config",
                config.to_str().expect("utf-8"),
                "--id",
                &id.to_string(),
                "--peers",
                &peers,
                "--listen",
                &client,
                "--data-dir",
                dir.to_str().expect("utf-8"),
            ]
            .map(String::from)
            .to_vec();
            let mut m = Member::new(id, client, dir, args, root.join(format!("node-{id}.log")));
            m.start();
            m
        })
        .collect()
}

/// Waits until a write through `m` succeeds.
fn wait_write(m: &Member) {
    wait_for(
        &format!("a write through member {}", m.id),
        Duration::from_secs(30),
        || match m.command_within(&["SET", "k", "v"], Duration::from_secs(3)) {
            Some(Value::SimpleString(_)) => Some(()),
            _ => None,
        },
    );
}

fn raft_field(m: &Member, field: &str) -> Option<String> {
    let info = m.info_within(Duration::from_secs(2))?;
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
}

#[test]
fn a_member_with_the_wrong_cluster_secret_is_refused_both_ways() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut members = start(root.path(), &["shared secret", "shared secret", "another"]);
    // Members 1 and 2 are a quorum: a write through member 1 succeeds.
    wait_write(&members[0]);
    // Member 3 is refused by both, and refuses them: each side logs why.
    wait_for(
        "member 3 to log the bad proof",
        Duration::from_secs(30),
        || {
            members[2]
                .log_tail(400)
                .contains("its proof of the cluster secret is wrong")
                .then_some(())
        },
    );
    for m in &members[..2] {
        wait_for(
            &format!("member {} to refuse member 3", m.id),
            Duration::from_secs(30),
            || {
                let log = m.log_tail(400);
                (log.contains("bad handshake") && log.contains("cluster secret")).then_some(())
            },
        );
    }
    // It never learned of the leader or the write.
    assert_eq!(raft_field(&members[2], "leader_id").as_deref(), Some(""));
    assert_eq!(
        raft_field(&members[2], "applied_index").as_deref(),
        Some("0")
    );
    let leader_term = raft_field(&members[0], "term").expect("term");
    assert!(
        raft_field(&members[0], "leader_id").is_some_and(|l| l == "1" || l == "2"),
        "member 1 knows a leader among 1 and 2"
    );
    assert!(!leader_term.is_empty());
    for m in &mut members {
        m.kill();
    }
}

#[test]
fn a_data_directory_of_another_cluster_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut members = start(root.path(), &["s"]);
    wait_write(&members[0]);
    assert!(members[0].terminate(Duration::from_secs(15)));
    // The same directory under another member list (so another derived cluster id).
    let ports = free_ports(2);
    let out = std::process::Command::new(support::exe())
        .args([
            "server",
            "--id",
            "1",
            "--peers",
            &format!("1=127.0.0.1:{}", ports[0]),
            "--listen",
            &format!("127.0.0.1:{}", ports[1]),
            "--data-dir",
            members[0].dir.to_str().expect("utf-8"),
        ])
        .env("RUST_LOG", "error")
        .output()
        .expect("run raftkv server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("belongs to cluster") && stderr.contains("raftkv restore"),
        "{stderr}"
    );
}
