//! [`effective_toml`]: a [`NodeConfig`] written back as TOML (what
//! `raftkv server --print-config` prints), the password redacted.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use raftkv_kvservice::rsm::ReadMode;
use raftkv_kvservice::server::Redirect;
use raftkv_storage::{Backend, Durability};

use super::config::{NodeConfig, derive_cluster_id};

/// What stands in for a configured password.
pub const REDACTED: &str = "<redacted>";

/// The printed shape: the keys of the TOML file, plain values before the tables.
#[derive(Serialize)]
struct Effective<'a> {
    id: u64,
    listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<&'a PathBuf>,
    backend: Backend,
    fsync: &'static str,
    zstd_level: i32,
    max_raft_state: i64,
    read_mode: ReadMode,
    tick_ms: u64,
    election_ticks: u32,
    heartbeat_ticks: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requirepass: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_secret: Option<&'static str>,
    insecure: bool,
    redirect: Redirect,
    max_clients: usize,
    max_bulk_bytes: usize,
    max_request_bytes: usize,
    max_pending_proposals: usize,
    commit_timeout_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<String>,
    peers: BTreeMap<String, &'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    clients: BTreeMap<String, &'a str>,
}

/// `config` as TOML that `--config` reads back (a derived cluster id is left out, as
/// it is derived again; the password reads [`REDACTED`]).
pub fn effective_toml(config: &NodeConfig) -> Result<String, String> {
    let derived = config.cluster_id == derive_cluster_id(&config.peers);
    let effective = Effective {
        id: config.id,
        listen: config.listen.to_string(),
        data_dir: config.storage.dir.as_ref(),
        backend: config.storage.backend,
        fsync: match config.storage.durability {
            Durability::Immediate => "always",
            Durability::None => "never",
        },
        zstd_level: config.storage.zstd_level,
        max_raft_state: config.max_raft_state,
        read_mode: config.read_mode,
        tick_ms: u64::try_from(config.tick.as_millis()).unwrap_or(u64::MAX),
        election_ticks: config.election_ticks,
        heartbeat_ticks: config.heartbeat_ticks,
        cluster_id: i64::try_from(config.cluster_id).ok().filter(|_| !derived),
        requirepass: config.requirepass.as_ref().map(|_| REDACTED),
        cluster_secret: config.cluster_secret.is_set().then_some(REDACTED),
        insecure: config.insecure,
        redirect: config.redirect,
        max_clients: config.max_clients,
        max_bulk_bytes: config.max_bulk_bytes,
        max_request_bytes: config.max_request_bytes,
        max_pending_proposals: config.max_pending_proposals,
        commit_timeout_ms: u64::try_from(config.commit_timeout.as_millis()).unwrap_or(u64::MAX),
        metrics: config.metrics.map(|m| m.to_string()),
        peers: config
            .peer_names
            .iter()
            .map(|(id, a)| (id.to_string(), a.as_str()))
            .collect(),
        clients: config
            .client_addrs
            .iter()
            .map(|(id, a)| (id.to_string(), a.as_str()))
            .collect(),
    };
    let body = toml::to_string(&effective).map_err(|e| format!("render the configuration: {e}"))?;
    let origin = if derived {
        format!(
            "# cluster_id {} is derived from the members\n",
            config.cluster_id
        )
    } else {
        String::new()
    };
    Ok(format!(
        "# effective configuration: the TOML file, then RAFTKV_* variables, then flags\n{origin}{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::config::{NodeFile, parse_peers};
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> NodeFile {
        NodeFile::from_env(move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        })
        .expect("valid environment")
    }

    #[test]
    fn the_merged_limits_are_printed_and_read_back_without_the_password() {
        let file: NodeFile = toml::from_str(
            "id = 1\nbackend = \"memory\"\nmaxclients = 50\nproto-max-bulk-len = 4096\n\
             max_request_bytes = 100000\ncommit_timeout_ms = 900\nrequirepass = \"s3cret\"\n\
             cluster_secret = \"peer-s3cret\"\n",
        )
        .expect("parse");
        let vars = env(&[
            ("RAFTKV_MAX_CLIENTS", "60"),
            ("RAFTKV_MAX_PENDING_PROPOSALS", "7"),
            ("RAFTKV_COMMIT_TIMEOUT_MS", "800"),
        ]);
        let flags = NodeFile {
            peers: Some(parse_peers("1=127.0.0.1:7001").expect("peers")),
            commit_timeout_ms: Some(700),
            ..NodeFile::default()
        };
        let c = NodeConfig::from_file(file.overlay(vars).overlay(flags)).expect("valid");
        assert_eq!(c.max_clients, 60, "the environment over the file");
        assert_eq!(c.max_bulk_bytes, 4096, "the Redis name in the file");
        assert_eq!(c.max_request_bytes, 100_000);
        assert_eq!(c.max_pending_proposals, 7);
        assert_eq!(c.commit_timeout.as_millis(), 700, "the flag over both");
        let text = effective_toml(&c).expect("render");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("requirepass = \"<redacted>\""), "{text}");
        assert!(!text.contains("peer-s3cret"), "{text}");
        assert!(text.contains("cluster_secret = \"<redacted>\""), "{text}");
        for line in [
            "max_clients = 60",
            "max_bulk_bytes = 4096",
            "max_request_bytes = 100000",
            "max_pending_proposals = 7",
            "commit_timeout_ms = 700",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        let back =
            NodeConfig::from_file(toml::from_str(&text).expect("reads back")).expect("valid");
        assert_eq!(effective_toml(&back).expect("render"), text);
        assert_eq!(
            back.requirepass.as_ref().map(|p| p.expose()),
            Some(REDACTED)
        );
    }

    #[test]
    fn bad_limits_name_the_setting_and_the_variable() {
        let bad = NodeFile::from_env(|name| {
            (name == "RAFTKV_MAX_PENDING_PROPOSALS").then(|| "many".to_string())
        })
        .expect_err("not a number")
        .to_string();
        assert!(
            bad.contains("`max_pending_proposals`") && bad.contains("RAFTKV_MAX_PENDING_PROPOSALS"),
            "{bad}"
        );
        let base = || NodeFile {
            id: Some(1),
            peers: Some(parse_peers("1=127.0.0.1:7001").expect("peers")),
            backend: Some(Backend::Memory),
            ..NodeFile::default()
        };
        let bad = [
            (
                "`max_clients`",
                NodeFile {
                    max_clients: Some(0),
                    ..base()
                },
            ),
            (
                "`max_request_bytes`",
                NodeFile {
                    max_request_bytes: Some(10),
                    ..base()
                },
            ),
            (
                "`max_pending_proposals`",
                NodeFile {
                    max_pending_proposals: Some(0),
                    ..base()
                },
            ),
            (
                "`commit_timeout_ms`",
                NodeFile {
                    commit_timeout_ms: Some(0),
                    ..base()
                },
            ),
        ];
        for (field, file) in bad {
            let e = NodeConfig::from_file(file).expect_err(field).to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        let c = NodeConfig::from_file(base()).expect("defaults");
        assert_eq!(c.max_request_bytes, (1 << 30) + (64 << 10));
        assert_eq!(c.max_pending_proposals, 10_000);
        assert_eq!(c.commit_timeout.as_millis(), 5_000);
    }
}
