//! Every configurable limit of the RESP server, hit against a real in-process
//! 3-member cluster: each is answered with a Redis-style error, never a crash or a hang.

mod support;

use std::time::{Duration, Instant};

use support::fixture::{Fixture, poll_until};
use support::resp_client::{encode_request, req};

#[test]
fn max_clients_refuses_the_connection_beyond_it() {
    let f = Fixture::start(|c| c.max_clients = 2);
    let leader = f.leader();
    let mut a = f.client(leader);
    let mut b = f.client(leader);
    assert_eq!(a.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(b.cmd(&["PING"]), "+PONG\r\n");
    let mut refused = f.client(leader);
    assert_eq!(refused.read_raw(), "-ERR max number of clients reached\r\n");
    refused.expect_closed();
    drop(b);
    poll_until("the closed connection to free its place", || {
        f.servers[&leader].stats().connected_clients == 1
    });
    assert_eq!(f.client(leader).cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn a_bulk_over_the_configured_limit_is_refused_at_its_header() {
    let f = Fixture::start(|c| c.max_bulk_bytes = 1000);
    let mut c = f.client(f.leader());
    assert_eq!(c.cmd(&["SET", "k", &"v".repeat(1000)]), "+OK\r\n");
    // Only the header of a 1001-byte bulk is sent: the answer cannot wait for it.
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1001\r\n");
    let raw = c.read_raw();
    assert!(
        raw.starts_with("-ERR Protocol error: invalid bulk length 1001"),
        "{raw}"
    );
    c.expect_closed();
}

#[test]
fn a_request_over_the_configured_limit_is_refused() {
    let f = Fixture::start(|c| c.max_request_bytes = Some(4096));
    let mut c = f.client(f.leader());
    let chunk = vec![b'x'; 1000];
    let mut args: Vec<&[u8]> = vec![b"DEL"];
    args.extend(std::iter::repeat_n(chunk.as_slice(), 3));
    assert_eq!(c.cmd(&["DEL", "a", "b"]), ":0\r\n");
    c.send(&encode_request(&args));
    assert_eq!(c.read_raw(), ":0\r\n", "3 KB fits");
    args.extend(std::iter::repeat_n(chunk.as_slice(), 2));
    let _ = std::io::Write::write_all(&mut c.stream, &encode_request(&args));
    assert_eq!(
        c.read_raw(),
        "-ERR Protocol error: request larger than 4096 bytes\r\n"
    );
    c.expect_closed();
}

#[test]
fn writes_beyond_the_pending_proposals_get_busy_at_once() {
    let f = Fixture::start_with(|c| c.max_pending_proposals = 1, |_, _| {});
    let leader = f.leader();
    let replica = f.cluster.replica(leader).expect("leader");
    let mut at_leader = f.client(leader);
    let mut at_follower = f.client(f.follower());
    assert_eq!(at_leader.cmd(&["SET", "k", "1"]), "+OK\r\n");
    assert_eq!(
        replica.pending_proposals(),
        0,
        "answered writes hold no place"
    );

    // The only place is taken, as by a write waiting for its commit.
    let held = replica.admit_write().expect("the free place");
    let busy = "-BUSY too many pending proposals (at most 1 per member); try again later\r\n";
    for c in [&mut at_leader, &mut at_follower] {
        let start = Instant::now();
        assert_eq!(c.cmd(&["SET", "k", "2"]), busy);
        assert!(start.elapsed() < Duration::from_secs(2), "not queued");
        // Reads still run, and see no trace of the refused write.
        assert_eq!(c.cmd(&["GET", "k"]), "$1\r\n1\r\n");
    }
    // A pipeline: the refused write does not stop the read after it.
    let mut pipeline = req(&["SET", "k", "3"]);
    pipeline.extend(req(&["GET", "k"]));
    at_leader.send(&pipeline);
    assert_eq!(at_leader.read_raw_n(2), format!("{busy}$1\r\n1\r\n"));

    drop(held);
    assert_eq!(at_follower.cmd(&["SET", "k", "4"]), "+OK\r\n");
    assert_eq!(at_leader.cmd(&["GET", "k"]), "$1\r\n4\r\n");
    assert_eq!(replica.pending_proposals(), 0);
}

#[test]
fn a_member_without_quorum_answers_within_the_commit_timeout() {
    let timeout = Duration::from_millis(600);
    let f = Fixture::start_with(
        |c| c.rsm.commit_timeout = timeout,
        |_, c| c.retry_budget = timeout,
    );
    let leader = f.leader();
    let mut c = f.client(leader);
    assert_eq!(c.cmd(&["SET", "before", "1"]), "+OK\r\n");
    for id in f.cluster.ids().to_vec() {
        if id != leader {
            f.cluster.crash(id);
        }
    }
    for args in [["SET", "during", "1"], ["GET", "before", ""]] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let start = Instant::now();
        let raw = c.cmd(&args);
        let took = start.elapsed();
        assert!(
            raw.starts_with("-ERR no reachable leader") || raw.starts_with("-ERR timed out"),
            "{args:?}: {raw}"
        );
        assert!(
            took >= timeout && took < 2 * timeout + Duration::from_secs(2),
            "{args:?} took {took:?}"
        );
    }
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n", "the connection still serves");
}

#[test]
fn a_write_stalled_without_quorum_holds_the_place_of_the_next() {
    let f = Fixture::start_with(
        |c| {
            c.max_pending_proposals = 1;
            // A leader that keeps leading for seconds without its followers: the
            // stalled write stays pending meanwhile.
            c.raft.election_ticks = 500;
            c.raft.heartbeat_ticks = 5;
            c.rsm.commit_timeout = Duration::from_secs(2);
        },
        |_, c| c.retry_budget = Duration::from_secs(2),
    );
    let leader = f.leader();
    let replica = f.cluster.replica(leader).expect("leader");
    for id in f.cluster.ids().to_vec() {
        if id != leader {
            f.cluster.crash(id);
        }
    }
    let mut stalled = f.client(leader);
    stalled.send(&req(&["SET", "k", "stalled"]));
    poll_until("the write to be pending", || {
        replica.pending_proposals() == 1
    });
    let mut next = f.client(leader);
    let start = Instant::now();
    assert_eq!(
        next.cmd(&["SET", "k", "next"]),
        "-BUSY too many pending proposals (at most 1 per member); try again later\r\n"
    );
    assert!(start.elapsed() < Duration::from_secs(1), "not queued");
    // The stalled write ends in an error, never a hang, and frees its place.
    let raw = stalled.read_raw();
    assert!(raw.starts_with("-ERR "), "{raw}");
    poll_until("the place to be freed", || replica.pending_proposals() == 0);
}
