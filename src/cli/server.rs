//! `raftkv server`: run one cluster member until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use raftkv::kvservice::server::Redirect;
use raftkv::server::{NodeConfig, NodeFile, Server, effective_toml, parse_members, parse_peers};
use raftkv::storage::Backend;

/// Flags of `raftkv server`; each overrides the same key of `--config`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// This member's id (one of --peers).
    #[arg(long)]
    id: Option<u64>,
    /// Every member's Raft address, this one included: `1=HOST:PORT,2=HOST:PORT,...`.
    #[arg(long)]
    peers: Option<String>,
    /// Client (Redis protocol) listen address, `HOST:PORT` (default 127.0.0.1:6379).
    #[arg(long)]
    listen: Option<String>,
    /// Data directory (not needed for the memory backend).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Storage backend: file (default), rocksdb or memory.
    #[arg(long)]
    backend: Option<Backend>,
    /// Snapshot when the Raft state reaches 90% of this many bytes (-1: never).
    #[arg(long, allow_negative_numbers = true)]
    max_raft_state: Option<i64>,
    /// `always` (default: fsync before acknowledging) or `never` (benchmarks only).
    #[arg(long)]
    fsync: Option<String>,
    /// Largest bulk string a client may send, in bytes (default 512 MiB).
    #[arg(long)]
    max_bulk_bytes: Option<usize>,
    /// Most client connections (default 10000); one more gets
    /// `-ERR max number of clients reached`.
    #[arg(long)]
    max_clients: Option<usize>,
    /// Largest request a connection buffers, in bytes (default twice --max-bulk-bytes
    /// plus 64 KiB).
    #[arg(long)]
    max_request_bytes: Option<usize>,
    /// Most client writes pending on this member (default 10000); more get `-BUSY`.
    #[arg(long)]
    max_pending_proposals: Option<usize>,
    /// How long a client command may wait for its commit before an error (default 5000).
    #[arg(long)]
    commit_timeout_ms: Option<u64>,
    /// Print the effective configuration (file, environment and flags merged) as TOML,
    /// the password redacted, and exit.
    #[arg(long)]
    print_config: bool,
    /// Serve clients on a non-loopback `--listen` address without a password.
    #[arg(long)]
    insecure: bool,
    /// How a follower answers commands the leader must run: `forward` (default: it
    /// runs them at the leader) or `moved` (`-MOVED slot leader-host:port`, as a Redis
    /// Cluster node; needs --clients).
    #[arg(long)]
    redirect: Option<Redirect>,
    /// Every member's client address as clients dial it, this one included:
    /// `1=HOST:PORT,2=HOST:PORT,...` (the MOVED targets).
    #[arg(long)]
    clients: Option<String>,
    /// Serve Prometheus metrics (`GET /metrics`) on `HOST:PORT`, or on 127.0.0.1 given
    /// a bare port. A non-loopback address needs a password or --insecure.
    #[arg(long)]
    metrics: Option<String>,
    /// A TOML file with the same keys (the environment overrides it, flags win).
    #[arg(long)]
    config: Option<PathBuf>,
}

impl ServerArgs {
    fn to_file(&self) -> Result<NodeFile, raftkv::server::ConfigError> {
        let base = match &self.config {
            Some(path) => NodeFile::load(path)?,
            None => NodeFile::default(),
        };
        let flags = NodeFile {
            id: self.id,
            peers: self.peers.as_deref().map(parse_peers).transpose()?,
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            backend: self.backend,
            max_raft_state: self.max_raft_state,
            fsync: self.fsync.clone(),
            max_bulk_bytes: self.max_bulk_bytes,
            max_clients: self.max_clients,
            max_request_bytes: self.max_request_bytes,
            max_pending_proposals: self.max_pending_proposals,
            commit_timeout_ms: self.commit_timeout_ms,
            insecure: self.insecure.then_some(true),
            metrics: self.metrics.clone(),
            redirect: self.redirect,
            clients: self
                .clients
                .as_deref()
                .map(|c| parse_members("clients", c))
                .transpose()?,
            ..NodeFile::default()
        };
        let env = NodeFile::from_env(|name| std::env::var(name).ok())?;
        Ok(base.overlay(env).overlay(flags))
    }
}

/// Runs the member; exit 2 on a configuration error, 1 if it cannot start.
pub fn run(args: ServerArgs) -> ExitCode {
    let config = match args.to_file().and_then(NodeConfig::from_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raftkv server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        return match effective_toml(&config) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("raftkv server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let id = config.id;
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(id, error = %e, "cannot start");
            eprintln!("raftkv server {id}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match server.run_until_signal() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raftkv server {id}: {e}");
            ExitCode::FAILURE
        }
    }
}
