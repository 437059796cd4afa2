//! MOVED mode end to end over raw TCP: a follower answers `-MOVED <slot>
//! <leader-host>:<port>` with each command's own slot, the leader serves, `CLUSTER`
//! describes one shard led by the leader, `INFO` and `HELLO` report cluster mode, and
//! a member that knows no leader answers `-CLUSTERDOWN`. Forwarding mode refuses
//! `CLUSTER` as a Redis server without cluster support does.

mod support;

use std::time::Duration;

use raftkv_kvservice::resp::Value;
use raftkv_storage::NodeId;
use support::fixture::{Fixture, poll_until};
use support::resp_client::{RespClient, hello_reply, req};

fn addr(f: &Fixture, id: NodeId) -> String {
    f.servers[&id].local_addr().to_string()
}

fn name(id: NodeId) -> String {
    format!("{id:040x}")
}

#[test]
fn a_follower_redirects_each_command_to_the_leader_with_its_slot() {
    let f = Fixture::start_moved(|_| {});
    let leader = f.leader();
    let follower = f.follower();
    let to = addr(&f, leader);
    let mut c = f.client(follower);
    let moved = |slot: u16| format!("-MOVED {slot} {to}\r\n");
    assert_eq!(c.cmd(&["SET", "foo", "bar"]), moved(12182));
    assert_eq!(c.cmd(&["GET", "foo"]), moved(12182));
    assert_eq!(c.cmd(&["GET", "{user1000}.following"]), moved(3443));
    assert_eq!(c.cmd(&["MGET", "bar", "foo"]), moved(5061));
    assert_eq!(c.cmd(&["VSET", "hello", "x", "0"]), moved(866));
    assert_eq!(c.cmd(&["DBSIZE"]), moved(0));
    // A pipeline of writes (packed into one replicated command) gets one MOVED per
    // command, each with its own key's slot; local commands are answered here.
    let mut pipeline = req(&["SET", "foo", "1"]);
    pipeline.extend(req(&["PING"]));
    pipeline.extend(req(&["SET", "bar", "2"]));
    pipeline.extend(req(&["DEL", "hello", "foo"]));
    c.send(&pipeline);
    let got = c.read_raw_n(4);
    assert_eq!(
        got,
        format!("{}+PONG\r\n{}{}", moved(12182), moved(5061), moved(866))
    );

    // The leader serves; what it wrote is not visible through the follower's MOVED.
    let mut l = f.client(leader);
    assert_eq!(l.cmd(&["SET", "foo", "bar"]), "+OK\r\n");
    assert_eq!(l.cmd(&["GET", "foo"]), "$3\r\nbar\r\n");
    assert_eq!(l.cmd(&["DBSIZE"]), ":1\r\n");
    assert_eq!(c.cmd(&["GET", "foo"]), moved(12182));

    // Cluster mode shows in INFO and HELLO.
    let Value::BulkString(Some(info)) = c.value(&["INFO"]) else {
        panic!("INFO");
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    assert!(info.contains("redis_mode:cluster\r\n"), "{info}");
    assert!(
        info.contains("# Cluster\r\ncluster_enabled:1\r\n"),
        "{info}"
    );
    let Value::Integer(id) = c.value(&["CLIENT", "ID"]) else {
        panic!("CLIENT ID");
    };
    assert_eq!(
        c.cmd(&["HELLO", "3"]),
        hello_reply(3, id, "cluster", "replica")
    );
    assert_eq!(c.cmd(&["GET", "foo"]), moved(12182));
}

#[test]
fn following_the_redirect_succeeds_and_a_failover_moves_it() {
    let f = Fixture::start_moved(|_| {});
    let old = f.leader();
    let follower = f.follower();
    let mut c = f.client(follower);
    // What a cluster client does: dial the MOVED target and send the command again.
    let reply = c.cmd(&["SET", "{user1000}.following", "alice"]);
    let target = reply
        .strip_prefix("-MOVED 3443 ")
        .and_then(|r| r.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("not a MOVED: {reply:?}"));
    assert_eq!(target, addr(&f, old));
    let mut at = RespClient::connect(target.parse().expect("a socket address"));
    assert_eq!(at.cmd(&["SET", "{user1000}.following", "alice"]), "+OK\r\n");
    assert_eq!(at.cmd(&["GET", "{user1000}.following"]), "$5\r\nalice\r\n");

    // The leader stops; the survivors elect another and redirect there.
    let (new, survivor) = f.kill_leader(old);
    let mut s = f.client(survivor);
    let moved = format!("-MOVED 3443 {}\r\n", addr(&f, new));
    poll_until("MOVED to the new leader", || {
        s.cmd(&["GET", "{user1000}.following"]) == moved
    });
    let mut l = f.client(new);
    assert_eq!(l.cmd(&["GET", "{user1000}.following"]), "$5\r\nalice\r\n");
    // CLUSTER SLOTS now names the new leader as the master.
    let slots = s.cmd(&["CLUSTER", "SLOTS"]);
    let master = format!(
        "*1\r\n*5\r\n:0\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:{}\r\n$40\r\n{}\r\n",
        f.servers[&new].local_addr().port(),
        name(new)
    );
    assert!(slots.starts_with(&master), "{slots}");
}

#[test]
fn cluster_commands_describe_one_shard_led_by_the_leader() {
    let f = Fixture::start_moved(|_| {});
    let leader = f.leader();
    let follower = f.follower();
    let mut c = f.client(follower);
    // The master first, then the replicas by id.
    let mut order = vec![leader];
    order.extend(f.cluster.ids().iter().copied().filter(|&i| i != leader));
    let node = |id: NodeId| {
        let port = f.servers[&id].local_addr().port();
        format!(
            "*4\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$40\r\n{}\r\n",
            name(id)
        )
    };
    let slots: String = order.iter().map(|&id| node(id) + "*0\r\n").collect();
    assert_eq!(
        c.cmd(&["CLUSTER", "SLOTS"]),
        format!("*1\r\n*5\r\n:0\r\n:16383\r\n{slots}")
    );
    assert_eq!(c.cmd(&["CLUSTER", "KEYSLOT", "foo"]), ":12182\r\n");
    assert_eq!(
        c.cmd(&["CLUSTER", "MYID"]),
        format!("$40\r\n{}\r\n", name(follower))
    );
    assert_eq!(c.cmd(&["READONLY"]), "+OK\r\n");
    let Value::BulkString(Some(nodes)) = c.value(&["CLUSTER", "NODES"]) else {
        panic!("CLUSTER NODES");
    };
    let nodes = String::from_utf8_lossy(&nodes).into_owned();
    let lines: Vec<&str> = nodes.lines().collect();
    assert_eq!(lines.len(), 3, "{nodes}");
    assert!(
        // The bus port is the Raft port (the fixture names 10.0.0.<id>:7000).
        lines[0].starts_with(&format!(
            "{} {}@7000 master - ",
            name(leader),
            addr(&f, leader)
        )) && lines[0].ends_with(" connected 0-16383"),
        "{nodes}"
    );
    let mine = format!("{} {}@7000", name(follower), addr(&f, follower));
    let my_line = lines
        .iter()
        .find(|l| l.starts_with(&mine))
        .expect("own line");
    assert!(
        my_line.contains(&format!(" myself,slave {} ", name(leader))),
        "{nodes}"
    );
    let Value::BulkString(Some(info)) = c.value(&["CLUSTER", "INFO"]) else {
        panic!("CLUSTER INFO");
    };
    assert!(info.starts_with(b"cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"));

    // RESP3: maps in CLUSTER SHARDS and the node metadata of CLUSTER SLOTS, verbatim
    // text for CLUSTER NODES.
    assert!(c.cmd(&["HELLO", "3"]).starts_with("%7\r\n"));
    let slots3: String = order.iter().map(|&id| node(id) + "%0\r\n").collect();
    assert_eq!(
        c.cmd(&["CLUSTER", "SLOTS"]),
        format!("*1\r\n*5\r\n:0\r\n:16383\r\n{slots3}")
    );
    let shards = c.value(&["CLUSTER", "SHARDS"]);
    let Value::Array(Some(shards)) = shards else {
        panic!("{shards:?}");
    };
    let Value::Map(shard) = &shards[0] else {
        panic!("{shards:?}");
    };
    let bulk = |s: &str| Value::BulkString(Some(s.to_string().into()));
    assert_eq!(shard[0].0, bulk("slots"));
    assert_eq!(
        shard[0].1,
        Value::Array(Some(vec![Value::Integer(0), Value::Integer(16383)]))
    );
    let Value::Array(Some(members)) = &shard[1].1 else {
        panic!("{shard:?}");
    };
    assert_eq!(members.len(), 3);
    let Value::Map(first) = &members[0] else {
        panic!("{members:?}");
    };
    let keys: Vec<Value> = first.iter().map(|(k, _)| k.clone()).collect();
    let want: Vec<Value> = [
        "id",
        "port",
        "ip",
        "endpoint",
        "role",
        "replication-offset",
        "health",
    ]
    .iter()
    .map(|k| bulk(k))
    .collect();
    assert_eq!(keys, want);
    assert_eq!(first[0].1, bulk(&name(leader)));
    assert_eq!(first[4].1, bulk("master"));
    let (format, _) = match c.value(&["CLUSTER", "NODES"]) {
        Value::Verbatim { format, text } => (format, text),
        other => panic!("{other:?}"),
    };
    assert_eq!(&format, b"txt");
}

#[test]
fn without_a_leader_a_member_answers_clusterdown() {
    let f = Fixture::start_moved(|c| c.retry_budget = Duration::from_millis(300));
    let ids = f.cluster.ids().to_vec();
    f.cluster.partition(&[]);
    let mut clients: Vec<_> = ids.iter().map(|&id| f.client(id)).collect();
    // Every member loses its leader; each then answers CLUSTERDOWN after the budget.
    for c in &mut clients {
        poll_until("CLUSTERDOWN", || {
            c.cmd(&["GET", "foo"]) == "-CLUSTERDOWN The cluster is down\r\n"
        });
        assert_eq!(c.cmd(&["CLUSTER", "SLOTS"]), "*0\r\n");
    }
    f.cluster.heal();
    let leader = f.leader();
    for (&id, c) in ids.iter().zip(&mut clients) {
        let want = if id == leader {
            "+OK\r\n".to_string()
        } else {
            format!("-MOVED 12182 {}\r\n", addr(&f, leader))
        };
        poll_until("a leader again", || c.cmd(&["SET", "foo", "1"]) == want);
    }
}

#[test]
fn forwarding_mode_has_no_cluster_support() {
    let f = Fixture::start(|_| {});
    let mut c = f.client(f.follower());
    let disabled = "-ERR This instance has cluster support disabled\r\n";
    for args in [
        vec!["CLUSTER", "SLOTS"],
        vec!["CLUSTER", "SHARDS"],
        vec!["CLUSTER", "NODES"],
        vec!["READONLY"],
    ] {
        assert_eq!(c.cmd(&args), disabled, "{args:?}");
    }
    assert_eq!(c.cmd(&["SET", "foo", "bar"]), "+OK\r\n");
}
