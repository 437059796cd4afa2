//! `CLUSTER` in [`Redirect::Moved`](super::Redirect::Moved) mode: the members seen as
//! a Redis Cluster of one shard that holds every slot (0-16383), the Raft leader its
//! master and the other members its replicas. Without MOVED mode every `CLUSTER`
//! subcommand (and `READONLY` / `READWRITE`) answers Redis's
//! `-ERR This instance has cluster support disabled`.

use std::collections::BTreeMap;

use bytes::Bytes;
use raftkv_storage::NodeId;

use super::commands::{Call, unknown_subcommand, wrong_arity};
use super::config::split_host_port;
use super::slot::{SLOTS, key_slot};
use crate::resp::{Protocol, encode};

/// A `CLUSTER` subcommand (or `READONLY` / `READWRITE`), run by the connection with a
/// [`ClusterView`] of the moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClusterCall {
    /// `CLUSTER SLOTS`.
    Slots,
    /// `CLUSTER SHARDS`.
    Shards,
    /// `CLUSTER NODES`.
    Nodes,
    /// `CLUSTER INFO`.
    Info,
    /// `CLUSTER MYID`.
    MyId,
    /// `CLUSTER KEYSLOT key`.
    KeySlot(Bytes),
    /// `READONLY` / `READWRITE`: accepted; commands still go to the leader.
    Ok,
}

/// Redis's reply to `CLUSTER` on a server that is not in cluster mode.
pub(crate) const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";

/// Parses `CLUSTER <subcommand> ...`, `READONLY` and `READWRITE`.
pub(crate) fn parse_cluster(args: &[Bytes]) -> Call {
    if !args[0].eq_ignore_ascii_case(b"cluster") {
        return Call::Cluster(ClusterCall::Ok);
    }
    let sub = args[1].to_ascii_lowercase();
    let exact = |call: ClusterCall, name: &str| {
        if args.len() == 2 {
            Call::Cluster(call)
        } else {
            wrong_arity(&format!("cluster|{name}"))
        }
    };
    match sub.as_slice() {
        b"slots" => exact(ClusterCall::Slots, "slots"),
        b"shards" => exact(ClusterCall::Shards, "shards"),
        b"nodes" => exact(ClusterCall::Nodes, "nodes"),
        b"info" => exact(ClusterCall::Info, "info"),
        b"myid" => exact(ClusterCall::MyId, "myid"),
        b"keyslot" if args.len() == 3 => Call::Cluster(ClusterCall::KeySlot(args[2].clone())),
        b"keyslot" => wrong_arity("cluster|keyslot"),
        _ => unknown_subcommand(&args[1], "CLUSTER"),
    }
}

/// The cluster as this member sees it now.
pub(crate) struct ClusterView<'a> {
    /// This member.
    pub(crate) me: NodeId,
    /// The leader, if one is known.
    pub(crate) leader: Option<NodeId>,
    /// The current term (reported as the config epoch).
    pub(crate) term: u64,
    /// This member's applied index (its replication offset).
    pub(crate) applied: u64,
    /// Every member's client address.
    pub(crate) clients: &'a BTreeMap<NodeId, String>,
    /// Every member's Raft address (its cluster bus port), when known.
    pub(crate) raft: &'a BTreeMap<NodeId, String>,
}

/// A member's 40-character Redis Cluster node id: its Raft id in hex, zero-padded.
pub(crate) fn node_name(id: NodeId) -> String {
    format!("{id:040x}")
}

impl ClusterView<'_> {
    /// The members as (id, host, port): the leader first, then the others by id.
    fn members(&self) -> Vec<(NodeId, &str, u16)> {
        let mut out: Vec<_> = self
            .clients
            .iter()
            .filter_map(|(&id, addr)| split_host_port(addr).map(|(h, p)| (id, h, p)))
            .collect();
        out.sort_by_key(|&(id, ..)| (Some(id) != self.leader, id));
        out
    }

    fn is_master(&self, id: NodeId) -> bool {
        Some(id) == self.leader
    }
}

/// Appends the reply to `call` in `proto`.
pub(crate) fn write_cluster_reply(
    out: &mut Vec<u8>,
    proto: Protocol,
    view: &ClusterView<'_>,
    call: &ClusterCall,
) {
    match call {
        ClusterCall::Slots => write_slots(out, proto, view),
        ClusterCall::Shards => write_shards(out, proto, view),
        ClusterCall::Nodes => {
            encode::write_verbatim(out, proto, b"txt", nodes_text(view).as_bytes());
        }
        ClusterCall::Info => {
            encode::write_verbatim(out, proto, b"txt", info_text(view).as_bytes());
        }
        ClusterCall::MyId => encode::write_bulk(out, node_name(view.me).as_bytes()),
        ClusterCall::KeySlot(key) => encode::write_integer(out, i64::from(key_slot(key))),
        ClusterCall::Ok => encode::write_simple_string(out, b"OK"),
    }
}

/// Redis 7's `CLUSTER SLOTS`: one range, 0-16383, with the master then each replica
/// as `[ip, port, id, {}]`. Empty while no leader is known.
fn write_slots(out: &mut Vec<u8>, proto: Protocol, view: &ClusterView<'_>) {
    if view.leader.is_none() {
        return encode::write_array_header(out, 0);
    }
    let members = view.members();
    encode::write_array_header(out, 1);
    encode::write_array_header(out, 2 + members.len());
    encode::write_integer(out, 0);
    encode::write_integer(out, i64::from(SLOTS - 1));
    for (id, host, port) in members {
        encode::write_array_header(out, 4);
        encode::write_bulk(out, host.as_bytes());
        encode::write_integer(out, i64::from(port));
        encode::write_bulk(out, node_name(id).as_bytes());
        encode::write_map_header(out, proto, 0);
    }
}

/// Redis 7's `CLUSTER SHARDS`: one shard, a map of `slots` (`[0, 16383]`, or empty
/// while no leader is known) and `nodes` (a map per member).
fn write_shards(out: &mut Vec<u8>, proto: Protocol, view: &ClusterView<'_>) {
    let members = view.members();
    encode::write_array_header(out, 1);
    encode::write_map_header(out, proto, 2);
    encode::write_bulk(out, b"slots");
    if view.leader.is_some() {
        encode::write_array_header(out, 2);
        encode::write_integer(out, 0);
        encode::write_integer(out, i64::from(SLOTS - 1));
    } else {
        encode::write_array_header(out, 0);
    }
    encode::write_bulk(out, b"nodes");
    encode::write_array_header(out, members.len());
    let pair = |out: &mut Vec<u8>, key: &str, value: &str| {
        encode::write_bulk(out, key.as_bytes());
        encode::write_bulk(out, value.as_bytes());
    };
    for (id, host, port) in members {
        encode::write_map_header(out, proto, 7);
        pair(out, "id", &node_name(id));
        encode::write_bulk(out, b"port");
        encode::write_integer(out, i64::from(port));
        pair(out, "ip", host);
        pair(out, "endpoint", host);
        let role = if view.is_master(id) {
            "master"
        } else {
            "replica"
        };
        pair(out, "role", role);
        encode::write_bulk(out, b"replication-offset");
        let offset = if id == view.me { view.applied } else { 0 };
        encode::write_integer(out, i64::try_from(offset).unwrap_or(i64::MAX));
        pair(out, "health", "online");
    }
}

/// Redis 7's `CLUSTER NODES` text: `<id> <ip:port@cport> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> [<slots>]`, one line per member.
fn nodes_text(view: &ClusterView<'_>) -> String {
    let master = view.leader.map_or("-".to_string(), node_name);
    let mut text = String::new();
    for (id, host, port) in view.members() {
        let bus = view
            .raft
            .get(&id)
            .and_then(|a| split_host_port(a))
            .map_or(0, |(_, p)| p);
        let myself = if id == view.me { "myself," } else { "" };
        let (role, of, slots) = if view.is_master(id) {
            ("master", "-", format!(" 0-{}", SLOTS - 1))
        } else if view.leader.is_some() {
            ("slave", master.as_str(), String::new())
        } else {
            ("master", "-", String::new())
        };
        text += &format!(
            "{} {host}:{port}@{bus} {myself}{role} {of} 0 0 {} connected{slots}\n",
            node_name(id),
            view.term
        );
    }
    text
}

/// Redis 7's `CLUSTER INFO` text.
fn info_text(view: &ClusterView<'_>) -> String {
    let (state, assigned) = match view.leader {
        Some(_) => ("ok", SLOTS),
        None => ("fail", 0),
    };
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{}\r\ncluster_size:1\r\n\
         cluster_current_epoch:{term}\r\ncluster_my_epoch:{term}\r\n\
         cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n",
        view.clients.len(),
        term = view.term,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(
        clients: &'a BTreeMap<NodeId, String>,
        raft: &'a BTreeMap<NodeId, String>,
        leader: Option<NodeId>,
    ) -> ClusterView<'a> {
        ClusterView {
            me: 1,
            leader,
            term: 5,
            applied: 42,
            clients,
            raft,
        }
    }

    fn reply(proto: Protocol, v: &ClusterView<'_>, call: ClusterCall) -> String {
        let mut out = Vec::new();
        write_cluster_reply(&mut out, proto, v, &call);
        String::from_utf8(out).expect("utf8")
    }

    fn addrs(base: u16) -> BTreeMap<NodeId, String> {
        (1..=3)
            .map(|i| (i, format!("127.0.0.1:{}", base + i as u16)))
            .collect()
    }

    #[test]
    fn one_shard_led_by_the_leader() {
        let (clients, raft) = (addrs(6380), addrs(7380));
        let v = view(&clients, &raft, Some(2));
        let id = node_name;
        let node = |i: NodeId, port: u16| {
            format!(
                "*4\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$40\r\n{}\r\n*0\r\n",
                id(i)
            )
        };
        assert_eq!(
            reply(Protocol::Resp2, &v, ClusterCall::Slots),
            format!(
                "*1\r\n*5\r\n:0\r\n:16383\r\n{}{}{}",
                node(2, 6382),
                node(1, 6381),
                node(3, 6383)
            )
        );
        assert!(reply(Protocol::Resp3, &v, ClusterCall::Slots).ends_with("%0\r\n"));
        assert_eq!(
            nodes_text(&v),
            format!(
                "{} 127.0.0.1:6382@7382 master - 0 0 5 connected 0-16383\n\
                 {} 127.0.0.1:6381@7381 myself,slave {} 0 0 5 connected\n\
                 {} 127.0.0.1:6383@7383 slave {} 0 0 5 connected\n",
                id(2),
                id(1),
                id(2),
                id(3),
                id(2)
            )
        );
        let shards = reply(Protocol::Resp3, &v, ClusterCall::Shards);
        assert!(
            shards.starts_with(
                "*1\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*3\r\n%7\r\n$2\r\nid\r\n"
            ),
            "{shards}"
        );
        assert!(
            shards.contains("$4\r\nrole\r\n$6\r\nmaster\r\n"),
            "{shards}"
        );
        assert!(
            shards.contains("$18\r\nreplication-offset\r\n:42\r\n"),
            "{shards}"
        );
        assert!(reply(Protocol::Resp2, &v, ClusterCall::Shards).starts_with("*1\r\n*4\r\n"));
        assert!(reply(Protocol::Resp3, &v, ClusterCall::Info).starts_with("="));
        assert!(info_text(&v).starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"));
        assert_eq!(
            reply(
                Protocol::Resp2,
                &v,
                ClusterCall::KeySlot(Bytes::from_static(b"foo"))
            ),
            ":12182\r\n"
        );
        assert_eq!(
            reply(Protocol::Resp2, &v, ClusterCall::MyId),
            format!("$40\r\n{}\r\n", id(1))
        );
    }

    #[test]
    fn without_a_leader_no_slot_is_served() {
        let (clients, raft) = (addrs(6380), BTreeMap::new());
        let v = view(&clients, &raft, None);
        assert_eq!(reply(Protocol::Resp2, &v, ClusterCall::Slots), "*0\r\n");
        assert!(info_text(&v).starts_with("cluster_state:fail\r\ncluster_slots_assigned:0\r\n"));
        let nodes = nodes_text(&v);
        assert!(
            nodes
                .lines()
                .all(|l| l.contains("master - 0 0 5 connected") && l.ends_with("connected")),
            "{nodes}"
        );
        assert!(nodes.contains("127.0.0.1:6381@0 myself,master"), "{nodes}");
    }

    #[test]
    fn subcommands_parse() {
        let a = crate::server::commands::args;
        assert_eq!(
            parse_cluster(&a(&["CLUSTER", "slots"])),
            Call::Cluster(ClusterCall::Slots)
        );
        assert_eq!(
            parse_cluster(&a(&["cluster", "KEYSLOT", "k"])),
            Call::Cluster(ClusterCall::KeySlot(Bytes::from_static(b"k")))
        );
        assert_eq!(
            parse_cluster(&a(&["READONLY"])),
            Call::Cluster(ClusterCall::Ok)
        );
        assert!(matches!(
            parse_cluster(&a(&["cluster", "slots", "x"])),
            Call::Reply(_)
        ));
        assert!(matches!(
            parse_cluster(&a(&["cluster", "meet"])),
            Call::Reply(_)
        ));
        // Arity is checked before a subcommand is looked at.
        let parse = |words: &[&str]| crate::server::commands::parse(&a(words), Protocol::Resp2);
        assert_eq!(
            parse(&["CLUSTER"]),
            Call::Reply(b"-ERR wrong number of arguments for 'cluster' command\r\n".to_vec())
        );
        assert_eq!(
            parse(&["READONLY", "x"]),
            Call::Reply(b"-ERR wrong number of arguments for 'readonly' command\r\n".to_vec())
        );
    }
}
