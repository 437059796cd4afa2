//! A cluster of real `raftkv server` processes on 127.0.0.1: writes through every
//! member, SIGKILL of the leader under load, restart and catch-up by snapshot, bad
//! input at a live server, graceful SIGTERM, and `raftkv cluster` / `get` / `put` /
//! `del` from the shell. Every process is killed by PID when its guard drops.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use raftkv::client::{RespClient, run_on_any};
use raftkv::kvservice::resp::Value;
use support::{ProcCluster, exe, free_ports, wait_for};

fn ok() -> Value {
    Value::SimpleString("OK".into())
}

fn bulk(s: &str) -> Value {
    Value::BulkString(Some(s.to_string().into()))
}

#[test]
fn three_members_serve_writes_and_reads_through_each_and_stop_on_sigterm() {
    let mut c = ProcCluster::start(3, "file", &[]);
    for m in &c.members {
        let key = format!("from-{}", m.id);
        assert_eq!(
            m.try_command(&["SET", &key, &m.client]),
            Some(ok()),
            "{}",
            c.logs()
        );
    }
    for m in &c.members {
        for other in &c.members {
            let key = format!("from-{}", other.id);
            assert_eq!(m.try_command(&["GET", &key]), Some(bulk(&other.client)));
        }
        assert_eq!(
            m.try_command(&["DBSIZE"]),
            Some(Value::Integer(4)),
            "3 keys + __ready"
        );
    }
    let leader = c.leader(Duration::from_secs(10));
    let log = c.member(leader).log();
    assert!(
        log.contains("raftkv member started") && log.contains("restart_ms"),
        "startup line: {log}"
    );
    for id in 1..=3 {
        assert!(
            c.member(id).terminate(Duration::from_secs(15)),
            "member {id} exits 0 on SIGTERM:\n{}",
            c.member(id).log()
        );
    }
}

/// Writers put through random members while the leader is SIGKILLed; every write a
/// client saw acknowledged must be readable afterwards, with the acknowledged value
/// or a later one of the same writer.
#[test]
fn sigkill_of_the_leader_under_load_loses_no_acknowledged_write() {
    let mut c = ProcCluster::start(3, "file", &["--max-raft-state", "262144"]);
    let addrs = c.addrs();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addrs, stop, acked) = (addrs.clone(), Arc::clone(&stop), Arc::clone(&acked));
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}-k{}", i % 50);
                    let value = format!("{i}");
                    let reply = run_on_any(&addrs, &["SET", &key, &value], Duration::from_secs(20));
                    if matches!(reply, Ok(Value::SimpleString(_))) {
                        acked.lock().insert(key, i);
                    }
                    i += 1;
                }
                i
            })
        })
        .collect();
    wait_for("200 acknowledged writes", Duration::from_secs(30), || {
        (acked.lock().len() >= 200 || acked.lock().values().any(|&i| i > 300)).then_some(())
    });
    let leader = c.leader(Duration::from_secs(10));
    c.member(leader).kill();
    let before = acked.lock().values().max().copied().unwrap_or(0);
    wait_for(
        "writes to continue after the kill",
        Duration::from_secs(30),
        || (acked.lock().values().max().copied().unwrap_or(0) > before + 200).then_some(()),
    );
    c.member(leader).start();
    wait_for(
        "more writes after the restart",
        Duration::from_secs(30),
        || (acked.lock().values().max().copied().unwrap_or(0) > before + 400).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.lock().clone();
    assert!(!acked.is_empty());
    for m in &c.members {
        let mut conn = m.connect();
        for (key, i) in &acked {
            let got = conn.command(&["GET", key.as_str()]).expect("get");
            let Value::BulkString(Some(v)) = &got else {
                panic!(
                    "member {}: acknowledged {key}={i} is gone ({got:?})\n{}",
                    m.id,
                    c.logs()
                );
            };
            let v: u64 = String::from_utf8_lossy(v).parse().expect("number");
            assert!(v >= *i, "member {}: {key} went back from {i} to {v}", m.id);
        }
    }
}

/// A member that was down while the others compacted their logs comes back and
/// catches up through a snapshot sent over TCP.
#[test]
fn a_restarted_member_catches_up_by_snapshot() {
    let mut c = ProcCluster::start(3, "file", &["--max-raft-state", "65536"]);
    let leader = c.leader(Duration::from_secs(10));
    let down = if leader == 3 { 2 } else { 3 };
    assert!(c.member(down).terminate(Duration::from_secs(15)));
    let addrs: Vec<String> = c
        .members
        .iter()
        .filter(|m| m.id != down)
        .map(|m| m.client.clone())
        .collect();
    let mut conn = RespClient::connect(&addrs[0], Duration::from_secs(10)).expect("connect");
    let value = "v".repeat(200);
    for i in 0..2000 {
        conn.send(&["SET", &format!("key{}", i % 700), &format!("{i}{value}")])
            .expect("send");
    }
    for _ in 0..2000 {
        assert_eq!(conn.read_reply().expect("reply"), ok());
    }
    let live_id = if down == 1 { 2 } else { 1 };
    let live = &c.members[live_id as usize - 1];
    let snapshots: u64 = wait_for(
        "a snapshot on a live member",
        Duration::from_secs(30),
        || {
            live.info_field("snapshot_count")?
                .parse()
                .ok()
                .filter(|&n: &u64| n > 0)
        },
    );
    assert!(snapshots > 0);
    let target: u64 = live
        .info_field("applied_index")
        .expect("applied")
        .parse()
        .expect("n");
    c.member(down).start();
    let m = &c.members[down as usize - 1];
    wait_for(
        "the restarted member to catch up",
        Duration::from_secs(60),
        || {
            let applied: u64 = m.info_field("applied_index")?.parse().ok()?;
            (applied >= target).then_some(())
        },
    );
    let installed: u64 = m
        .info_field("snapshots_installed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(installed > 0, "caught up by snapshot:\n{}", m.log());
    assert_eq!(
        m.try_command(&["GET", "key599"]).and_then(|v| match v {
            Value::BulkString(Some(b)) => Some(b.len()),
            _ => None,
        }),
        Some(4 + value.len())
    );
    assert!(c.member(down).terminate(Duration::from_secs(15)));
    let out = Command::new(exe())
        .arg("inspect")
        .arg(&c.members[down as usize - 1].dir)
        .output()
        .expect("run inspect");
    assert!(
        out.status.success(),
        "inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn malformed_input_gets_errors_and_harms_no_one() {
    let c = ProcCluster::start(1, "memory", &["--max-bulk-bytes", "1048576"]);
    let m = &c.members[0];
    let mut bystander = m.connect();
    assert_eq!(bystander.command(&["SET", "k", "v"]).expect("set"), ok());

    let mut conn = m.connect();
    conn.send_raw(b"*2\r\n$3\r\nGET\r\n$abc\r\n").expect("send");
    let reply = conn.read_reply().expect("error reply");
    assert!(
        matches!(&reply, Value::Error(e) if e.starts_with(b"ERR Protocol error")),
        "{reply:?}"
    );
    assert!(conn.read_reply().is_err(), "closed after a protocol error");

    let mut conn = m.connect();
    conn.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000000\r\n")
        .expect("send");
    let reply = conn.read_reply().expect("error before the body is sent");
    assert!(matches!(&reply, Value::Error(_)), "{reply:?}");

    let mut conn = m.connect();
    let reply = conn.command(&["FLUSHALL"]).expect("reply");
    assert!(
        matches!(&reply, Value::Error(e) if e.starts_with(b"ERR unknown command 'FLUSHALL'")),
        "{reply:?}"
    );
    assert_eq!(
        conn.command(&["PING"]).expect("still open"),
        Value::SimpleString("PONG".into())
    );

    let mut conn = m.connect();
    conn.send_raw(&[0xff; 4096]).expect("send garbage");
    let _ = conn.read_reply();

    assert_eq!(bystander.command(&["GET", "k"]).expect("get"), bulk("v"));
}

#[test]
fn redis_cli_talks_to_raftkv() {
    if Command::new("redis-cli").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("RAFTKV_REQUIRE_CLIENTS").is_none(),
            "redis-cli is not installed, and RAFTKV_REQUIRE_CLIENTS is set"
        );
        eprintln!(
            "\n!!!!!!!! SKIPPED redis_cli_talks_to_raftkv: redis-cli is not installed \
             (scripts/test.sh installs Debian's redis-tools) !!!!!!!!\n"
        );
        return;
    }
    let c = ProcCluster::start(3, "file", &[]);
    let cli = |port: &str, args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", port])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ports: Vec<String> = c
        .addrs()
        .iter()
        .map(|a| a.rsplit(':').next().expect("port").to_string())
        .collect();
    assert_eq!(cli(&ports[0], &["PING"]), "PONG");
    assert_eq!(cli(&ports[1], &["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&ports[2], &["GET", "greeting"]), "hello world");
    assert_eq!(cli(&ports[0], &["SET", "greeting", "x", "NX"]), "");
    assert_eq!(cli(&ports[0], &["EXISTS", "greeting", "nope"]), "1");
    assert_eq!(cli(&ports[1], &["DEL", "greeting"]), "1");
    assert!(cli(&ports[0], &["INFO"]).contains("role:"));
}

#[test]
fn raftkv_cluster_starts_stops_on_sigint_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = wait_for("a free block of ports", Duration::from_secs(10), || {
        let p = free_ports(1)[0];
        let base = 20_000 + p % 30_000;
        let all: Vec<u16> = (0..3).flat_map(|i| [base + i, base + 1000 + i]).collect();
        all.iter()
            .all(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
            .then_some(base)
    });
    let addrs: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    let start = || {
        Command::new(exe())
            .args(["cluster", "--nodes", "3", "--base-port", &base.to_string()])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("raftkv cluster")
    };
    let cli = |args: &[&str]| {
        Command::new(exe())
            .args(args)
            .args(["--addr", &addrs.join(","), "--timeout", "30"])
            .output()
            .expect("raftkv client")
    };
    let stop = |mut child: std::process::Child| {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        let status = wait_for("raftkv cluster to exit", Duration::from_secs(30), || {
            child.try_wait().expect("wait")
        });
        assert!(status.success(), "clean exit: {status}");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut out)
            .expect("read stdout");
        out
    };

    let first = start();
    let put = cli(&["put", "color", "blue"]);
    assert!(
        put.status.success(),
        "put: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&cli(&["get", "color"]).stdout).trim(),
        "blue"
    );
    assert!(cli(&["put", "gone", "x"]).status.success());
    assert_eq!(
        String::from_utf8_lossy(&cli(&["del", "gone"]).stdout).trim(),
        "1"
    );
    let printed = stop(first);
    for a in &addrs {
        assert!(printed.contains(a.as_str()), "prints {a}: {printed}");
    }

    let second = start();
    let get = cli(&["get", "color"]);
    assert_eq!(
        String::from_utf8_lossy(&get.stdout).trim(),
        "blue",
        "recovered"
    );
    let missing = cli(&["get", "gone"]);
    assert!(!missing.status.success(), "a deleted key is missing");
    stop(second);
}
