//! Hot backup and restore (issue: step 7, section 4) on real processes: `raftkv backup`
//! from a running cluster (asked through a follower first), `raftkv inspect FILE`,
//! `raftkv restore` into the members of a new cluster, and a comparison of every key;
//! then corrupt and truncated backups, and occupied directories, refused by name.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use raftkv::client::RespClient;
use raftkv::kvservice::resp::Value;
use support::{ProcCluster, exe};

fn raftkv(args: &[&str]) -> Output {
    Command::new(exe()).args(args).output().expect("run raftkv")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `n` keys, overwrites every 7th and deletes every 11th; returns what the state
/// must hold (the readiness probe's key included).
fn write_keys(addr: &str, n: u64) -> BTreeMap<String, String> {
    let mut want = BTreeMap::new();
    want.insert("__ready".to_string(), "1".to_string());
    let mut c = RespClient::connect(addr, Duration::from_secs(30)).expect("connect");
    let mut sent = 0;
    for i in 0..n {
        let (k, v) = (format!("k{i:06}"), format!("v{i}"));
        c.send(&["SET", &k, &v]).expect("send");
        want.insert(k, v);
        sent += 1;
    }
    for i in (0..n).step_by(7) {
        let (k, v) = (format!("k{i:06}"), format!("w{i}"));
        c.send(&["SET", &k, &v]).expect("send");
        want.insert(k, v);
        sent += 1;
    }
    for i in (0..n).step_by(11) {
        let k = format!("k{i:06}");
        c.send(&["DEL", &k]).expect("send");
        want.remove(&k);
        sent += 1;
    }
    for _ in 0..sent {
        let reply = c.read_reply().expect("reply");
        assert!(
            matches!(reply, Value::SimpleString(_) | Value::Integer(_)),
            "{reply:?}"
        );
    }
    want
}

/// Every key of `want` has its value at `addr`, and nothing else is there.
fn assert_holds(addr: &str, want: &BTreeMap<String, String>) {
    let mut c = RespClient::connect(addr, Duration::from_secs(30)).expect("connect");
    assert_eq!(
        c.command(&["DBSIZE"]).expect("DBSIZE"),
        Value::Integer(want.len() as i64),
        "key count at {addr}"
    );
    let keys: Vec<&String> = want.keys().collect();
    for batch in keys.chunks(500) {
        let mut args = vec!["MGET"];
        args.extend(batch.iter().map(|k| k.as_str()));
        let Value::Array(Some(values)) = c.command(&args).expect("MGET") else {
            panic!("MGET reply");
        };
        for (k, v) in batch.iter().zip(values) {
            assert_eq!(
                v,
                Value::BulkString(Some(want[*k].clone().into())),
                "{k} at {addr}"
            );
        }
    }
}

fn cluster_id(dir: &Path) -> u64 {
    raftkv::server::member_file::read(dir)
        .expect("MEMBER")
        .expect("a MEMBER file")
        .cluster_id
}

#[test]
fn a_backup_restored_into_a_new_cluster_holds_every_key() {
    // Snapshots along the way, so the backup is more than a fresh log.
    let mut old = ProcCluster::start(3, "file", &["--max-raft-state", "262144"]);
    let leader = old.leader(Duration::from_secs(30));
    let want = write_keys(&old.member(leader).client.clone(), 20_000);

    // Ask a follower first: it names the leader, which takes the backup.
    let mut addrs: Vec<String> = old
        .members
        .iter()
        .filter(|m| m.id != leader)
        .map(|m| m.client.clone())
        .collect();
    addrs.push(old.member(leader).client.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster.backup");
    let file_arg = file.to_str().expect("utf-8");
    let out = raftkv(&["backup", "--addr", &addrs.join(","), file_arg]);
    assert!(out.status.success(), "backup: {}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("{} keys", want.len())),
        "{}",
        stdout(&out)
    );
    // A write after the backup is not in it.
    assert_eq!(
        old.member(leader).try_command(&["SET", "after", "backup"]),
        Some(Value::SimpleString("OK".into()))
    );

    let out = raftkv(&["inspect", file_arg]);
    assert!(out.status.success(), "inspect: {}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains(&format!("keys               {}", want.len())),
        "{report}"
    );

    // Seed every member of a new cluster (other ports, so another cluster id) from it.
    let new = ProcCluster::start_prepared(3, "file", &[], |id, dir| {
        let out = raftkv(&[
            "restore",
            file_arg,
            "--data-dir",
            dir.to_str().expect("utf-8"),
            "--id",
            &id.to_string(),
        ]);
        assert!(out.status.success(), "restore {id}: {}", stderr(&out));
        assert!(stdout(&out).contains("restored"), "{}", stdout(&out));
    });
    for m in &new.members {
        assert_holds(&m.client, &want);
    }
    assert_eq!(
        new.members[0].try_command(&["GET", "after"]),
        Some(Value::BulkString(None))
    );
    let (old_id, new_id) = (
        cluster_id(&old.members[0].dir),
        cluster_id(&new.members[0].dir),
    );
    assert_ne!(old_id, 0);
    assert_ne!(new_id, 0, "the restored member adopted its cluster's id");
    assert_ne!(old_id, new_id, "the new cluster has an id of its own");
}

#[test]
fn corrupt_backups_and_occupied_directories_are_refused() {
    let c = ProcCluster::start(1, "file", &[]);
    let addr = c.members[0].client.clone();
    let want = write_keys(&addr, 3000);
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.backup");
    let out = raftkv(&["backup", "--addr", &addr, good.to_str().expect("utf-8")]);
    assert!(out.status.success(), "backup: {}", stderr(&out));
    let bytes = std::fs::read(&good).expect("read backup");

    let flipped = dir.path().join("flipped.backup");
    let mut b = bytes.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0x20;
    std::fs::write(&flipped, &b).expect("write");
    let truncated = dir.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).expect("write");

    for bad in [&flipped, &truncated] {
        let name = bad.to_str().expect("utf-8");
        let out = raftkv(&["inspect", name]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "inspect {name}: {}",
            stdout(&out)
        );
        assert!(
            stderr(&out).contains(name),
            "inspect names the file: {}",
            stderr(&out)
        );
        let target = dir.path().join("target");
        let out = raftkv(&[
            "restore",
            name,
            "--data-dir",
            target.to_str().expect("utf-8"),
            "--id",
            "1",
        ]);
        assert_eq!(out.status.code(), Some(1), "restore {name}");
        assert!(
            stderr(&out).contains(name),
            "restore names the file: {}",
            stderr(&out)
        );
        assert!(!target.exists(), "a refused restore leaves nothing behind");
    }

    // A directory with data in it is refused; a fresh one restores and serves.
    let target = dir.path().join("member");
    let target_arg = target.to_str().expect("utf-8");
    let restore = |id: &str| {
        raftkv(&[
            "restore",
            good.to_str().expect("utf-8"),
            "--data-dir",
            target_arg,
            "--id",
            id,
            "--cluster-id",
            "0x1234",
        ])
    };
    let out = restore("1");
    assert!(out.status.success(), "restore: {}", stderr(&out));
    assert_eq!(cluster_id(&target), 0x1234);
    let out = restore("1");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    let out = raftkv(&["inspect", target_arg]);
    assert!(
        out.status.success(),
        "the restored directory inspects clean: {}",
        stderr(&out)
    );

    // Bad protocol input gets errors, not a crash.
    let mut conn = c.members[0].connect();
    for (args, needle) in [
        (vec!["RAFTKV.BACKUP", "CHUNK", "abc", "0"], "no backup"),
        (vec!["RAFTKV.BACKUP", "CHUNK", "zz", "0"], "hexadecimal"),
        (vec!["RAFTKV.BACKUP", "DONE", "1"], "no backup"),
        (vec!["RAFTKV.BACKUP", "NOPE"], "unknown subcommand"),
        (
            vec!["RAFTKV.BACKUP", "START", "x"],
            "wrong number of arguments",
        ),
    ] {
        match conn.command(&args).expect("reply") {
            Value::Error(e) => assert!(
                String::from_utf8_lossy(&e).contains(needle),
                "{args:?}: {}",
                String::from_utf8_lossy(&e)
            ),
            other => panic!("{args:?}: {other:?}"),
        }
    }
    assert_holds(&addr, &want);
}
