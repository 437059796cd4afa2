//! Real Redis clients against a 3-member cluster: redis-py (its current major, which
//! opens every connection with `HELLO 3`, with `AUTH` when a password is set; RESP2
//! too; `RedisCluster` over MOVED), redis-rs (RESP2, RESP3 and its cluster client),
//! `redis-cli` and `redis-cli -c` across a leader kill, and redis-benchmark.
//!
//! `scripts/test.sh` installs the external clients (redis-tools, redis-py) and sets
//! `RAFTKV_REQUIRE_CLIENTS=1`, so that a missing one fails the test there; elsewhere a
//! missing client skips its test with a loud line.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use raftkv_kvservice::server::Password;
use raftkv_storage::NodeId;
use redis::{Commands, ProtocolVersion, RedisResult};
use support::fixture::{Fixture, poll_until};

/// Whether `tool` runs (`probe` exits 0); if not, fails under
/// `RAFTKV_REQUIRE_CLIENTS`, else says the test is skipped.
fn available(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(probe[0])
        .args(&probe[1..])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("RAFTKV_REQUIRE_CLIENTS").is_none(),
            "{tool} is not installed, and RAFTKV_REQUIRE_CLIENTS is set (scripts/test.sh \
             installs it)"
        );
        eprintln!("\n!!!!!!!! SKIPPED: {tool} is not installed (scripts/test.sh installs it)\n");
    }
    ok
}

fn have_redis_py() -> bool {
    available(
        "redis-py 8",
        &[
            "python3",
            "-c",
            "import redis, sys; sys.exit(int(redis.__version__.split('.')[0]) < 8)",
        ],
    )
}

/// Runs `program args` under a 120 s `timeout`, so a hung client fails the test.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn assert_ok(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn redis_py(args: &[&str]) {
    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "clients",
        "redis_py_matrix.py",
    ]
    .iter()
    .collect();
    let script = script.to_str().expect("utf-8 path").to_string();
    let all: Vec<&str> = std::iter::once(script.as_str())
        .chain(args.iter().copied())
        .collect();
    let out = run("python3", &all);
    let stdout = assert_ok(&format!("redis-py {args:?}"), &out);
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}

fn addr(f: &Fixture, id: NodeId) -> String {
    f.servers[&id].local_addr().to_string()
}

fn port(f: &Fixture, id: NodeId) -> String {
    f.servers[&id].local_addr().port().to_string()
}

#[test]
fn redis_py_speaks_resp3_by_default_and_resp2_through_every_member() {
    if !have_redis_py() {
        return;
    }
    let f = Fixture::start(|_| {});
    let addrs: Vec<String> = f.cluster.ids().iter().map(|&id| addr(&f, id)).collect();
    let mut args = vec!["plain"];
    args.extend(addrs.iter().map(String::as_str));
    redis_py(&args);
}

#[test]
fn redis_py_authenticates_with_hello_3_auth() {
    if !have_redis_py() {
        return;
    }
    let f = Fixture::start(|c| c.requirepass = Password::new("py-s3cret"));
    redis_py(&["auth", &addr(&f, f.follower()), "py-s3cret"]);
}

#[test]
fn redis_py_cluster_client_follows_moved() {
    if !have_redis_py() {
        return;
    }
    let f = Fixture::start_moved(|_| {});
    redis_py(&["cluster", &addr(&f, f.follower())]);
}

fn exercise_redis_rs(url: &str, protocol: ProtocolVersion) -> RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection()?;
    let key = format!("rs:{protocol:?}");
    let () = con.set(&key, "v1")?;
    assert_eq!(con.get::<_, Option<String>>(&key)?, Some("v1".into()));
    assert_eq!(con.get::<_, Option<String>>("rs:missing")?, None);
    assert_eq!(
        con.mget::<_, Vec<Option<String>>>(&[key.as_str(), "rs:missing"])?,
        vec![Some("v1".into()), None]
    );
    assert_eq!(con.exists::<_, i64>(&key)?, 1);
    assert_eq!(con.del::<_, i64>(&key)?, 1);
    let mut pipe = redis::pipe();
    for i in 0..50 {
        pipe.set(format!("{key}:{i}"), i).ignore();
    }
    pipe.get(format!("{key}:49"));
    let (last,): (i64,) = pipe.query(&mut con)?;
    assert_eq!(last, 49);
    let info: redis::InfoDict = redis::cmd("INFO").query(&mut con)?;
    assert!(info.get::<String>("redis_version").is_some());
    // HELLO without a version reports the protocol the client negotiated: a map in
    // RESP3, a flat array of names and values in RESP2.
    let hello: redis::Value = redis::cmd("HELLO").query(&mut con)?;
    let pairs: Vec<(redis::Value, redis::Value)> = match hello {
        redis::Value::Map(pairs) => pairs,
        redis::Value::Array(items) => items
            .chunks(2)
            .map(|kv| (kv[0].clone(), kv[1].clone()))
            .collect(),
        other => panic!("HELLO reply {other:?}"),
    };
    let proto = pairs.iter().find_map(|(k, v)| match (k, v) {
        (redis::Value::BulkString(k), redis::Value::Int(p)) if k == b"proto" => Some(*p),
        _ => None,
    });
    let want = if protocol == ProtocolVersion::RESP2 {
        2
    } else {
        3
    };
    assert_eq!(proto, Some(want), "{pairs:?}");
    Ok(())
}

#[test]
fn redis_rs_speaks_resp2_resp3_and_follows_moved_as_a_cluster_client() {
    let f = Fixture::start(|_| {});
    let follower = addr(&f, f.follower());
    exercise_redis_rs(&format!("redis://{follower}/"), ProtocolVersion::RESP2).expect("RESP2");
    exercise_redis_rs(
        &format!("redis://{follower}/?protocol=resp3"),
        ProtocolVersion::RESP3,
    )
    .expect("RESP3");
    drop(f);

    let f = Fixture::start_moved(|_| {});
    let client =
        redis::cluster::ClusterClient::new(vec![format!("redis://{}/", addr(&f, f.follower()))])
            .expect("cluster client");
    let mut con = client.get_connection().expect("cluster connection");
    for i in 0..100 {
        let () = con.set(format!("rsc:{i}"), i).expect("SET through MOVED");
    }
    for i in 0..100 {
        assert_eq!(con.get::<_, i64>(format!("rsc:{i}")).expect("GET"), i);
    }
}

#[test]
fn redis_cli_follows_moved_across_a_leader_kill() {
    if !available("redis-cli", &["redis-cli", "--version"]) {
        return;
    }
    let f = Fixture::start_moved(|_| {});
    let old = f.leader();
    let follower = f.follower();
    let cli = |id: NodeId, args: &[&str]| {
        let p = port(&f, id);
        let mut all = vec!["-h", "127.0.0.1", "-p", p.as_str()];
        all.extend_from_slice(args);
        let out = run("redis-cli", &all);
        assert_ok(&format!("redis-cli {all:?}"), &out)
            .trim()
            .to_string()
    };
    // Without -c the follower's redirect is shown; with -c it is followed.
    let plain = cli(follower, &["SET", "cli:k", "v1"]);
    assert!(plain.starts_with("MOVED "), "{plain}");
    assert_eq!(cli(follower, &["-c", "SET", "cli:k", "v1"]), "OK");
    assert_eq!(cli(follower, &["-c", "GET", "cli:k"]), "v1");

    // The leader is killed; `redis-cli -c` at a survivor reaches the new leader.
    let (new, survivor) = f.kill_leader(old);
    poll_until(
        "redis-cli -c at the survivor to write at the new leader",
        || cli(survivor, &["-c", "SET", "cli:k", "v2"]) == "OK",
    );
    assert_eq!(cli(survivor, &["-c", "GET", "cli:k"]), "v2");
    assert_eq!(cli(new, &["GET", "cli:k"]), "v2");
}

#[test]
fn redis_benchmark_runs_against_a_follower() {
    if !available("redis-benchmark", &["redis-benchmark", "--version"]) {
        return;
    }
    let f = Fixture::start(|_| {});
    let follower = f.follower();
    let p = port(&f, follower);
    let out = run(
        "redis-benchmark",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-t",
            "set,get",
            "-n",
            "2000",
            "-c",
            "8",
            "-r",
            "100",
            "--csv",
        ],
    );
    let csv = assert_ok("redis-benchmark", &out);
    for test in ["SET", "GET"] {
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("\"{test}\"")))
            .unwrap_or_else(|| panic!("no {test} row in:\n{csv}"));
        let rps: f64 = line
            .split(',')
            .nth(1)
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or_else(|| panic!("no rate in {line:?}"));
        assert!(rps > 0.0, "{line}");
    }
    // Its writes went through Raft: the leader holds the random keys.
    let mut leader = f.client(f.leader());
    let dbsize = leader.cmd(&["DBSIZE"]);
    let n: u64 = dbsize
        .trim_start_matches(':')
        .trim_end()
        .parse()
        .unwrap_or_else(|_| panic!("DBSIZE {dbsize:?}"));
    assert!((1..=100).contains(&n), "{n} keys from -r 100");
}
