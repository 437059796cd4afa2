//! The `INFO` reply: Redis-style `# Section` blocks of `key:value` lines.

use std::fmt::Write as _;
use std::time::Duration;

use raftkv_consensus::Role;

use super::router::Router;
use super::stats::ServerStats;
use crate::load_progress::LoadPhase;

/// The Redis version whose behaviour the server follows, as `INFO` (`redis_version`)
/// and `HELLO` (`version`) report it: clients read it to decide what to send.
pub(crate) const REDIS_VERSION: &str = "7.2.0";

/// What `INFO` reports on.
pub(crate) struct InfoSource<'a> {
    pub(crate) router: &'a Router,
    pub(crate) stats: ServerStats,
    pub(crate) uptime: Duration,
    pub(crate) port: u16,
    /// Redis Cluster mode (MOVED redirects): `redis_mode:cluster`, `cluster_enabled:1`.
    pub(crate) cluster: bool,
}

const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "stats",
    "raft",
    "persistence",
    "cluster",
    "keyspace",
];

/// The `INFO` text for `asked` (lowercase section names; empty, `default`, `all` or
/// `everything`: every section). Unknown names select nothing, as in Redis.
pub(crate) fn info_text(src: &InfoSource<'_>, asked: &[String]) -> String {
    let all = asked.is_empty()
        || asked
            .iter()
            .any(|s| matches!(s.as_str(), "all" | "default" | "everything"));
    let mut out = String::new();
    for section in SECTIONS {
        if !all && !asked.iter().any(|s| s == section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        write_section(&mut out, src, section);
    }
    out
}

fn write_section(out: &mut String, src: &InfoSource<'_>, section: &str) {
    let replica = src.router.replica();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = if key.starts_with('#') {
            write!(out, "{key}\r\n")
        } else {
            write!(out, "{key}:{value}\r\n")
        };
    };
    match section {
        "server" => {
            line("# Server", &"");
            line("redis_version", &REDIS_VERSION);
            line(
                "redis_mode",
                &if src.cluster { "cluster" } else { "standalone" },
            );
            line("raftkv_version", &env!("CARGO_PKG_VERSION"));
            line("node_id", &replica.node().id());
            line("tcp_port", &src.port);
            line("uptime_in_seconds", &src.uptime.as_secs());
        }
        "clients" => {
            line("# Clients", &"");
            line("connected_clients", &src.stats.connected_clients);
        }
        "stats" => {
            line("# Stats", &"");
            line("total_connections_received", &src.stats.total_connections);
            line("total_commands_processed", &src.stats.commands_processed);
            line("rejected_connections", &src.stats.rejected_connections);
            line("protocol_errors", &src.stats.protocol_errors);
        }
        "raft" => {
            let status = replica.node().status();
            let role = match status.role {
                Role::Leader => "leader",
                Role::Follower => "follower",
                Role::Candidate | Role::PreCandidate => "candidate",
            };
            line("# Raft", &"");
            line("role", &role);
            line("term", &status.term);
            let leader = status.leader.or_else(|| src.router.known_leader());
            line(
                "leader_id",
                &leader.map_or(String::new(), |l| l.to_string()),
            );
            line(
                "leader_addr",
                &leader
                    .and_then(|l| src.router.peer_addr(l))
                    .unwrap_or_default(),
            );
            line("commit_index", &status.commit);
            line("applied_index", &replica.rsm().applied_index());
            line("last_log_index", &status.last_index);
            line("snapshot_index", &status.snapshot_index);
        }
        "persistence" => {
            let persister = replica.persister();
            let snap = replica.rsm().snapshot_stats();
            line("# Persistence", &"");
            // As Redis reports loading its RDB file; the loading_keys_* and
            // loading_entries_* fields are raftkv's own.
            let load = replica.rsm().load_progress().status();
            let loading = matches!(load.phase, LoadPhase::Snapshot | LoadPhase::Replay);
            line("loading", &u8::from(loading));
            line("async_loading", &0);
            if loading {
                line("loading_start_time", &load.start_unix);
                line("loading_phase", &load.phase.name());
                line("loading_loaded_perc", &format_args!("{:.2}", load.percent));
                line(
                    "loading_eta_seconds",
                    &load
                        .eta_seconds
                        .map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX)),
                );
                line("loading_keys_restored", &load.keys_done);
                line("loading_keys_total", &load.keys_total);
                line("loading_entries_replayed", &load.entries_done);
                line("loading_entries_total", &load.entries_total);
            } else if let Some(e) = &load.error {
                line("loading_error", &e.replace(['\r', '\n'], " "));
            }
            line("load_duration_ms", &load.elapsed.as_millis());
            line("storage_backend", &persister.backend_name());
            line("raft_state_size", &persister.raft_state_size());
            line("snapshot_count", &snap.taken);
            line("snapshot_failures", &snap.failed);
            // As Redis's rdb_last_bgsave_status; the error on one line.
            match replica.rsm().last_snapshot_error() {
                None => line("last_snapshot_status", &"ok"),
                Some(e) => {
                    line("last_snapshot_status", &"err");
                    line("last_snapshot_error", &e.replace(['\r', '\n'], " "));
                }
            }
            line("snapshot_size", &persister.snapshot_size());
            line("last_snapshot_index", &snap.last_index);
            line("last_snapshot_duration_ms", &snap.last_duration.as_millis());
            line("snapshot_in_progress", &u8::from(snap.in_progress));
            line("snapshots_installed", &replica.rsm().snapshots_installed());
        }
        "cluster" => {
            line("# Cluster", &"");
            line("cluster_enabled", &u8::from(src.cluster));
        }
        "keyspace" => {
            let (keys, bytes) = replica
                .rsm()
                .with_state(|sm| (sm.store().len(), sm.store().data_bytes()));
            line("# Keyspace", &"");
            line(
                "db0",
                &format_args!("keys={keys},expires=0,avg_ttl=0,bytes={bytes}"),
            );
        }
        _ => {}
    }
}
