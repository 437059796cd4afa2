//! Restarts that clients understand (issue: step 7, section 2), on real processes:
//!
//! * a member restarting with 1M keys answers `-LOADING` while it restores its snapshot
//!   and replays its log, reports `loading:1` and a percentage in `INFO`, and
//!   `raftkv health` calls it alive but not ready; then it serves every key, and the
//!   probe calls it ready;
//! * SIGTERM on the leader hands leadership over before the process exits.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use raftkv::client::RespClient;
use raftkv::kvservice::resp::Value;
use support::{ProcCluster, exe, info_field, wait_for};

const KEYS: u64 = 1_000_000;

fn key(i: u64) -> String {
    format!("key:{i:07}")
}

fn value(i: u64) -> String {
    format!("v{i:x}")
}

/// `raftkv health --addr addr`: the exit code and what it printed.
fn health(addr: &str) -> (i32, String) {
    let out = Command::new(exe())
        .args(["health", "--addr", addr, "--timeout", "5"])
        .output()
        .expect("run raftkv health");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Writes `KEYS` keys through one pipelined connection.
fn fill(addr: &str) {
    let mut c = RespClient::connect(addr, Duration::from_secs(30)).expect("connect");
    const WINDOW: u64 = 4096;
    let mut i = 0;
    while i < KEYS {
        let end = (i + WINDOW).min(KEYS);
        for k in i..end {
            c.send(&["SET", &key(k), &value(k)]).expect("send");
        }
        for k in i..end {
            let reply = c.read_reply().expect("reply");
            assert_eq!(
                reply,
                Value::SimpleString("OK".into()),
                "SET {} while filling",
                key(k)
            );
        }
        i = end;
    }
}

/// What a polling client saw while the member restarted.
#[derive(Default)]
struct Seen {
    loading_replies: u64,
    info_loading: u64,
    percents: Vec<f64>,
    health_alive: u64,
}

#[test]
fn a_restart_with_a_million_keys_says_loading_then_serves_them_all() {
    // Snapshots along the way, so that the restart restores one and replays a tail.
    let mut c = ProcCluster::start(1, "file", &["--max-raft-state", "33554432"]);
    let addr = c.members[0].client.clone();
    let started = Instant::now();
    fill(&addr);
    eprintln!(
        "wrote {KEYS} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        c.members[0].try_command(&["DBSIZE"]),
        Some(Value::Integer(KEYS as i64 + 1)),
        "every key (and the readiness probe's) before the restart"
    );
    let (code, out) = health(&addr);
    assert_eq!(code, 0, "ready before the restart: {out}");

    assert!(c.member(1).terminate(Duration::from_secs(60)), "clean stop");
    c.member(1).start();

    // Poll as a client would: connect, PING, and read INFO while it says LOADING.
    let mut seen = Seen::default();
    let restarted = Instant::now();
    wait_for(
        "the member to serve again",
        Duration::from_secs(300),
        || {
            let mut conn = RespClient::connect(&addr, Duration::from_secs(10)).ok()?;
            match conn.command(&["PING"]).ok()? {
                Value::SimpleString(s) if s == "PONG" => return Some(()),
                Value::Error(e) if e.starts_with(b"LOADING") => seen.loading_replies += 1,
                other => panic!("PING while restarting: {other:?}"),
            }
            if let Ok(Value::BulkString(Some(info))) = conn.command(&["INFO", "persistence"]) {
                let info = String::from_utf8_lossy(&info);
                if info_field(&info, "loading").as_deref() == Some("1") {
                    seen.info_loading += 1;
                    let perc = info_field(&info, "loading_loaded_perc")
                        .and_then(|p| p.parse::<f64>().ok())
                        .expect("loading_loaded_perc while loading");
                    assert!((0.0..=100.0).contains(&perc), "{info}");
                    assert!(
                        info_field(&info, "loading_eta_seconds").is_some(),
                        "loading_eta_seconds while loading: {info}"
                    );
                    seen.percents.push(perc);
                }
            }
            // Any data command is refused the same way meanwhile.
            match conn.command(&["GET", &key(0)]).ok()? {
                Value::Error(e) if e.starts_with(b"LOADING") => {}
                Value::BulkString(Some(_)) => return None, // loaded in between
                other => panic!("GET while loading: {other:?}"),
            }
            if seen.health_alive == 0 {
                let (code, out) = health(&addr);
                if code == 2 {
                    assert!(out.contains("LOADING"), "{out}");
                    seen.health_alive += 1;
                }
            }
            None
        },
    );
    eprintln!(
        "restart served again after {:.1} s; saw {} -LOADING replies, {} INFO loading:1 \
         ({:?} to {:?} %), health alive-not-ready {} time(s)",
        restarted.elapsed().as_secs_f64(),
        seen.loading_replies,
        seen.info_loading,
        seen.percents.first(),
        seen.percents.last(),
        seen.health_alive,
    );
    assert!(seen.loading_replies > 0, "a polling client saw -LOADING");
    assert!(seen.info_loading > 0, "INFO said loading:1");
    assert!(
        seen.percents.windows(2).all(|w| w[0] <= w[1]),
        "the percentage only grows: {:?}",
        seen.percents
    );
    assert!(seen.health_alive > 0, "health said alive, not ready");

    let log = c.members[0].log();
    assert!(
        log.lines()
            .any(|l| l.contains("loading") && l.contains("percent")),
        "the log shows the progress with a percentage"
    );

    // Everything is back.
    let mut conn = c.members[0].connect();
    assert_eq!(
        conn.command(&["DBSIZE"]).expect("DBSIZE"),
        Value::Integer(KEYS as i64 + 1)
    );
    for i in (0..KEYS).step_by(997).chain([KEYS - 1]) {
        assert_eq!(
            conn.command(&["GET", &key(i)]).expect("GET"),
            Value::BulkString(Some(value(i).into())),
            "{} after the restart",
            key(i)
        );
    }
    let info = c.members[0]
        .info_within(Duration::from_secs(10))
        .expect("INFO");
    assert_eq!(info_field(&info, "loading").as_deref(), Some("0"));
    let (code, out) = health(&addr);
    assert_eq!(code, 0, "ready after loading: {out}");
}

#[test]
fn sigterm_on_the_leader_hands_leadership_over() {
    let mut c = ProcCluster::start(3, "file", &[]);
    let leader = c.leader(Duration::from_secs(30));
    let term: u64 = c
        .member(leader)
        .info_field("term")
        .and_then(|t| t.parse().ok())
        .expect("term");
    assert!(
        c.member(leader).terminate(Duration::from_secs(30)),
        "clean exit"
    );
    let log = c.member(leader).log();
    assert!(
        log.contains("leadership handed over"),
        "the leader handed over before it stopped:\n{log}"
    );
    // The successor took over by the transfer: one term later, and no election timeout
    // spent on a term that elected nobody.
    let successor = wait_for("a new leader", Duration::from_secs(30), || {
        c.members
            .iter()
            .filter(|m| m.id != leader)
            .find(|m| m.info_field("role").as_deref() == Some("leader"))
            .map(|m| m.id)
    });
    let new_term: u64 = c
        .member(successor)
        .info_field("term")
        .and_then(|t| t.parse().ok())
        .expect("term");
    assert_eq!(new_term, term + 1, "{}", c.logs());
    for m in c.members.iter().filter(|m| m.id != leader) {
        let (code, out) = health(&m.client);
        assert_eq!(code, 0, "member {} ready after the handover: {out}", m.id);
    }
    assert_eq!(
        c.member(successor)
            .try_command(&["SET", "after", "handover"]),
        Some(Value::SimpleString("OK".into()))
    );
}
