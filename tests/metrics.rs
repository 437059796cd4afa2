//! `raftkv server --metrics`: a real process scraped over HTTP after writes. The named
//! metrics exist with values that follow from what the test did; anything but
//! `GET /metrics` is 404; a malformed request is 400 and the connection closes.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use raftkv::kvservice::resp::Value;
use support::{Member, free_ports, wait_for};

/// Sends `request` raw and reads until the server closes the connection.
fn http(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s.write_all(request).expect("send request");
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("the server answers and closes");
    String::from_utf8(out).expect("ascii response")
}

/// `name{labels} value` lines of an exposition, keyed by `name{labels}`.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("`name value`");
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|e| panic!("value of {l:?}: {e}")),
            };
            (name.to_string(), value)
        })
        .collect()
}

#[test]
fn a_scrape_after_writes_reports_leadership_commits_applies_and_fsyncs() {
    let root = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(3);
    let (client, metrics) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[2]),
    );
    let args: Vec<String> = [
        "server",
        "--id",
        "1",
        "--peers",
        &format!("1=127.0.0.1:{}", ports[1]),
        "--listen",
        &client,
        "--backend",
        "file",
        "--data-dir",
        &root.path().join("node-1").display().to_string(),
        "--metrics",
        &metrics,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut m = Member::new(
        1,
        client,
        root.path().join("node-1"),
        args,
        root.path().join("node-1.log"),
    );
    m.start();
    wait_for(
        "the member to serve a write",
        Duration::from_secs(30),
        || {
            matches!(
                m.try_command(&["SET", "__ready", "1"]),
                Some(Value::SimpleString(_))
            )
            .then_some(())
        },
    );
    let writes = 25u64;
    let mut conn = m.connect();
    for i in 0..writes {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        assert_eq!(
            conn.command(&["SET", &k, &v]).expect("SET"),
            Value::SimpleString("OK".into())
        );
    }

    let response = http(
        &metrics,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
    );
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    let s = samples(body);
    let get = |name: &str| {
        *s.get(name)
            .unwrap_or_else(|| panic!("{name} missing from:\n{body}"))
    };
    assert_eq!(
        get("raftkv_has_leader"),
        1.0,
        "a single member leads itself"
    );
    assert!(get("raftkv_term") >= 1.0);
    // The readiness write and ours, each a committed command of this member.
    assert!(
        get("raftkv_proposals_committed_total") >= (writes + 1) as f64,
        "{body}"
    );
    assert_eq!(get("raftkv_proposals_failed_total"), 0.0, "{body}");
    assert!(get("raftkv_applied_index") >= (writes + 1) as f64, "{body}");
    assert!(get("raftkv_commit_index") >= get("raftkv_applied_index"));
    // Every acknowledged write was synced first on the file backend.
    let fsyncs = get("raftkv_fsync_duration_seconds_count");
    assert!(fsyncs > 0.0, "{body}");
    assert_eq!(
        get("raftkv_fsync_duration_seconds_bucket{le=\"+Inf\"}"),
        fsyncs
    );
    assert!(get("raftkv_fsync_duration_seconds_sum") > 0.0);
    let restart = get("raftkv_restart_duration_seconds");
    assert!(restart > 0.0 && restart < 30.0, "{restart}");
    for name in [
        "raftkv_snapshot_duration_seconds",
        "raftkv_snapshot_size_bytes",
    ] {
        assert!(get(name) >= 0.0, "{name}");
    }

    let other = http(&metrics, b"GET /other HTTP/1.1\r\n\r\n");
    assert!(other.starts_with("HTTP/1.1 404 "), "{other}");
    let post = http(&metrics, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 404 "), "{post}");
    // `http` returns only once the server closed the connection.
    let bad = http(&metrics, b"this is not http\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
    let bad = http(&metrics, b"GET /metrics HTTP/1.1\r\nno-colon\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
    // After all of that the endpoint (and the member) still serve.
    let again = http(&metrics, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert!(again.starts_with("HTTP/1.1 200 OK"), "{again}");
    assert!(m.is_running(), "{}", m.log());
}
