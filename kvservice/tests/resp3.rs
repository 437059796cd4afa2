//! RESP3 end to end over raw TCP: `HELLO` switches a connection's protocol, and every
//! reply whose type differs between RESP2 and RESP3 (nulls, maps, sets, verbatim
//! strings) is compared byte for byte in both, through the leader and through a
//! follower that forwards to it.

mod support;

use raftkv_kvservice::resp::Value;
use support::fixture::Fixture;
use support::resp_client::{RespClient, field, hello_reply, req};

fn client_id(c: &mut RespClient) -> i64 {
    match c.value(&["CLIENT", "ID"]) {
        Value::Integer(n) => n,
        other => panic!("CLIENT ID: {other:?}"),
    }
}

/// The replies that differ between the protocols, exactly (keys prefixed by `p`).
fn check_typed_replies(c: &mut RespClient, p: &str, resp3: bool) {
    let k = |s: &str| format!("{p}{s}");
    let null = if resp3 { "_\r\n" } else { "$-1\r\n" };
    assert_eq!(c.cmd(&["GET", &k("missing")]), null);
    assert_eq!(c.cmd(&["SET", &k("a"), "1"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", &k("a"), "2", "NX"]), null);
    assert_eq!(c.cmd(&["SET", &k("b"), "2", "XX", "GET"]), null);
    assert_eq!(
        c.cmd(&["MGET", &k("a"), &k("missing")]),
        format!("*2\r\n$1\r\n1\r\n{null}")
    );
    assert_eq!(
        c.cmd(&["VGET", &k("missing")]),
        format!("*2\r\n{null}:0\r\n")
    );
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), null);
    // What has no RESP3 type of its own is the same in both.
    assert_eq!(c.cmd(&["GET", &k("a")]), "$1\r\n1\r\n");
    assert_eq!(c.cmd(&["EXISTS", &k("a")]), ":1\r\n");
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(
        c.cmd(&["VSET", &k("a"), "x", "9"]),
        "-ERRVERSION version mismatch: the key is at version 1\r\n"
    );
    c.send(b"GET nothing-here\r\n"); // inline
    assert_eq!(c.read_raw(), null);

    let config = "$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n\
                  $9\r\nmaxmemory\r\n$1\r\n0\r\n$9\r\ndatabases\r\n$1\r\n1\r\n";
    let header = if resp3 { "%4" } else { "*8" };
    assert_eq!(
        c.cmd(&[
            "CONFIG",
            "GET",
            "save",
            "appendonly",
            "maxmemory",
            "databases"
        ]),
        format!("{header}\r\n{config}")
    );
    let (flags, acl, tips) = if resp3 {
        ("~2", "~3", "~0")
    } else {
        ("*2", "*3", "*0")
    };
    assert_eq!(
        c.cmd(&["COMMAND", "INFO", "get"]),
        format!(
            "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n{flags}\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
             {acl}\r\n+@read\r\n+@string\r\n+@fast\r\n{tips}\r\n*0\r\n*0\r\n"
        )
    );
    let docs = c.value(&["COMMAND", "DOCS", "get"]);
    let get = field(&docs, "get").expect("docs of get");
    assert_eq!(
        field(&get, "summary"),
        Some(Value::BulkString(Some(
            "Returns the string value of a key.".into()
        )))
    );
    assert_eq!(matches!(docs, Value::Map(_)), resp3, "{docs:?}");

    // INFO: a verbatim string in RESP3, a bulk string in RESP2; the same text.
    let (value, raw) = {
        c.send(&req(&["INFO", "server"]));
        c.read_reply()
    };
    let text = match value {
        Value::Verbatim { format, text } if resp3 => {
            assert_eq!(&format, b"txt");
            text
        }
        Value::BulkString(Some(text)) if !resp3 => text,
        other => panic!("INFO in resp3={resp3}: {other:?}"),
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(
        text.starts_with("# Server\r\nredis_version:7.2.0\r\nredis_mode:standalone\r\n"),
        "{text}"
    );
    let want = if resp3 {
        format!("={}\r\ntxt:{text}\r\n", text.len() + 4)
    } else {
        format!("${}\r\n{text}\r\n", text.len())
    };
    assert_eq!(String::from_utf8_lossy(&raw), want);
}

#[test]
fn hello_switches_the_protocol_and_every_typed_reply_follows() {
    let f = Fixture::start(|_| {});
    let leader = f.leader();
    for (id, role) in [(leader, "master"), (f.follower(), "replica")] {
        let mut c = f.client(id);
        let cid = client_id(&mut c);
        let p = format!("{role}:");
        // Without a version, HELLO answers in the current protocol and changes nothing.
        assert_eq!(c.cmd(&["HELLO"]), hello_reply(2, cid, "standalone", role));
        check_typed_replies(&mut c, &format!("{p}2:"), false);
        assert_eq!(
            c.cmd(&["hello", "3"]),
            hello_reply(3, cid, "standalone", role)
        );
        check_typed_replies(&mut c, &format!("{p}3:"), true);
        assert_eq!(c.cmd(&["HELLO"]), hello_reply(3, cid, "standalone", role));
        // A bad HELLO is an error and keeps the protocol.
        assert_eq!(
            c.cmd(&["HELLO", "4"]),
            "-NOPROTO unsupported protocol version\r\n"
        );
        assert_eq!(
            c.cmd(&["HELLO", "3", "SETNAME"]),
            "-ERR Syntax error in HELLO option 'SETNAME'\r\n"
        );
        assert_eq!(c.cmd(&["GET", "missing"]), "_\r\n");
        // SETNAME names the connection.
        assert_eq!(
            c.cmd(&["HELLO", "2", "SETNAME", "app"]),
            hello_reply(2, cid, "standalone", role)
        );
        assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "$3\r\napp\r\n");
        assert_eq!(c.cmd(&["CLIENT", "SETNAME", ""]), "+OK\r\n");
        check_typed_replies(&mut c, &format!("{p}2b:"), false);
    }
}

#[test]
fn a_pipeline_switches_protocol_between_its_commands() {
    let f = Fixture::start(|_| {});
    let mut c = f.client(f.follower());
    let cid = client_id(&mut c);
    let mut pipeline = Vec::new();
    for args in [
        vec!["SET", "pk", "v"],
        vec!["GET", "pmissing"],
        vec!["HELLO", "3"],
        vec!["GET", "pmissing"],
        vec!["MGET", "pk", "pmissing"],
        vec!["SET", "pk", "w", "NX"],
        vec!["HELLO", "2"],
        vec!["GET", "pmissing"],
        vec!["SET", "pk", "w", "NX"],
    ] {
        pipeline.extend(req(&args));
    }
    c.send(&pipeline);
    let got = c.read_raw_n(9);
    assert_eq!(
        got,
        format!(
            "+OK\r\n$-1\r\n{}_\r\n*2\r\n$1\r\nv\r\n_\r\n_\r\n{}$-1\r\n$-1\r\n",
            hello_reply(3, cid, "standalone", "replica"),
            hello_reply(2, cid, "standalone", "replica"),
        )
    );
}
