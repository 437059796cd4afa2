//! The in-process transport: counters, disconnection, seeded random loss and the wire
//! encoding, with real nodes behind it.

mod node_common;

use std::time::Duration;

use node_common::{Cluster, ClusterOptions, wait_until};
use raftkv_consensus::transport::wire::{
    DEFAULT_MAX_MESSAGE_BYTES, decode_message, encode_message,
};
use raftkv_consensus::{Message, MessageBody};
use raftkv_storage::Entry;

#[test]
fn counters_and_disconnection() {
    let mut c = Cluster::new(ClusterOptions::new(3, 71));
    c.one(b"x", 3, true);
    let leader = c.leader();
    let s = c.net.stats(leader);
    assert!(s.sent > 0 && s.received > 0, "{s:?}");

    // A disconnected node receives nothing and nothing it sends arrives.
    let f = c.other_than(&[leader]);
    c.disconnect(f);
    // Let the current deliveries settle, then watch the counters.
    let before = c.net.stats(f);
    assert!(wait_until(Duration::from_secs(10), || c
        .net
        .stats(f)
        .dropped
        > before.dropped + 3));
    let received = c.net.stats(f).received;
    c.one(b"y", 2, true);
    assert_eq!(
        c.net.stats(f).received,
        received,
        "a disconnected node received messages"
    );
    assert!(c.net.stats(leader).dropped > 0);
    let total = c.net.total_stats();
    assert!(total.sent >= total.dropped + total.received);
    c.reconnect(f);
    c.one(b"z", 3, true);
    c.shutdown();
}

#[test]
fn agreement_over_a_lossy_network_with_wire_encoding() {
    let mut c = Cluster::new(ClusterOptions::new(3, 72));
    c.net.set_wire_encoding(true);
    c.leader();
    c.net.set_drop_probability(0.1);
    for i in 0..20 {
        c.one(format!("lossy-{i}").as_bytes(), 1, true);
    }
    c.net.set_drop_probability(0.0);
    let last = c.one(b"reliable-again", 3, true);
    assert!(wait_until(Duration::from_secs(20), || c
        .n_committed(last)
        .0
        == 3));
    let total = c.net.total_stats();
    assert!(
        total.dropped > 0,
        "a 10 % loss rate dropped nothing: {total:?}"
    );
    assert!(
        total.bytes_sent > 0,
        "wire encoding counts bytes: {total:?}"
    );
    c.shutdown();
}

#[test]
fn messages_round_trip_through_the_wire_encoding() {
    let msg = Message {
        from: 1,
        to: 2,
        term: 7,
        body: MessageBody::AppendEntries {
            prev_log_index: 10,
            prev_log_term: 6,
            entries: vec![Entry {
                index: 11,
                term: 7,
                data: b"payload".to_vec(),
            }],
            leader_commit: 10,
            read_ctx: 3,
        },
    };
    let bytes = encode_message(&msg).expect("encode");
    assert_eq!(bytes.len(), msg.encoded_len());
    assert_eq!(
        decode_message(&bytes, DEFAULT_MAX_MESSAGE_BYTES).expect("decode"),
        msg
    );
    assert!(
        decode_message(&bytes, bytes.len() - 1).is_err(),
        "the limit is enforced"
    );
    assert!(decode_message(&bytes[..bytes.len() - 1], DEFAULT_MAX_MESSAGE_BYTES).is_err());
}

/// The lab's RPCBytes test: ten 5000-byte commands cost about one copy per follower
/// on the wire, not more (3 × 50 000 + 50 000 bytes at most).
#[test]
fn each_command_crosses_the_wire_about_once_per_follower() {
    let mut c = Cluster::new(ClusterOptions::new(3, 73));
    c.net.set_wire_encoding(true);
    c.one(b"99", 3, false);
    let before = c.net.total_stats().bytes_sent;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..10 {
        let cmd: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'a' + (x % 26) as u8
            })
            .collect();
        c.one(&cmd, 3, false);
    }
    let bytes = c.net.total_stats().bytes_sent - before;
    assert!(
        bytes <= 3 * 50_000 + 50_000,
        "10 commands of 5000 bytes took {bytes} bytes"
    );
    assert!(
        bytes >= 2 * 50_000,
        "the commands must have reached both followers: {bytes}"
    );
    c.shutdown();
}

/// The lab's Count test, for an idle cluster with the default timing (heartbeats every
/// 100 ms): a second of idleness costs a bounded number of messages.
#[test]
fn an_idle_cluster_sends_few_messages() {
    let mut opts = ClusterOptions::new(3, 74);
    opts.config = |c| {
        c.election_ticks = raftkv_consensus::Config::DEFAULT_ELECTION_TICKS;
        c.heartbeat_ticks = raftkv_consensus::Config::DEFAULT_HEARTBEAT_TICKS;
    };
    let mut c = Cluster::new(opts);
    c.one(b"settle", 3, true);
    let before = c.net.total_stats().sent;
    let start = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let sent = c.net.total_stats().sent - before;
    let secs = start.elapsed().as_secs_f64();
    // 10 heartbeats/s to each of 2 followers, plus as many answers: 40/s. The lab
    // allows 60 requests/s; allow 60 messages/s, requests and answers together.
    assert!(
        sent as f64 <= 60.0 * secs,
        "an idle cluster sent {sent} messages in {secs:.2} s"
    );
    c.shutdown();
}
