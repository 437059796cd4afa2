//! The `raftkv` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
use raftkv::storage::{Backend, StorageConfig};

#[derive(Parser)]
#[command(
    name = "raftkv",
    version,
    about = "A durable key/value store replicated with Raft"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a log and a snapshot through a storage backend, reopen it, and check it.
    Demo {
        /// The backend: file, rocksdb or memory.
        #[arg(long, default_value = "file")]
        backend: String,
        /// Data directory (a fresh temporary one by default).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Batches of 64 entries to append, one sync each.
        #[arg(long, default_value_t = 1000)]
        batches: u64,
    },
    /// Run one cluster member: Raft over TCP with its peers, Redis protocol for clients.
    Server(Box<cli::server::ServerArgs>),
    /// Start a local cluster of N server processes on loopback (Ctrl-C stops them all).
    Cluster(cli::cluster::ClusterArgs),
    /// Read a key (prints its value; exit 1 if it is missing).
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        target: cli::client::Target,
    },
    /// Write a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        #[command(flatten)]
        target: cli::client::Target,
    },
    /// Delete a key (prints 1 if it existed, else 0).
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        target: cli::client::Target,
    },
    /// Probe a member: exit 0 if ready to serve linearizably, 2 if alive but not ready
    /// (loading its state, or no leader), 1 if unreachable.
    Health(cli::health::HealthArgs),
    /// Print what a data directory holds (offline): backend, node id, hard state, log
    /// range and size, and each snapshot with its checksum status; or, given a backup
    /// file, verify it completely. Exits non-zero on any corruption.
    Inspect {
        /// The data directory of one member, or a backup file.
        dir: PathBuf,
    },
    /// Stream a consistent backup of a running cluster into a file.
    Backup(cli::backup::BackupArgs),
    /// Seed a new member's data directory from a backup file.
    Restore(cli::backup::RestoreArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Server(_) | Command::Cluster(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Server(args) => cli::server::run(*args),
        Command::Cluster(args) => cli::cluster::run(args),
        Command::Get { key, target } => cli::client::run(target, cli::client::Op::Get(key)),
        Command::Put { key, value, target } => {
            cli::client::run(target, cli::client::Op::Put(key, value))
        }
        Command::Del { key, target } => cli::client::run(target, cli::client::Op::Del(key)),
        Command::Demo {
            backend,
            data_dir,
            batches,
        } => demo(&backend, data_dir, batches),
        Command::Inspect { dir } if dir.is_file() => cli::backup::run_inspect_file(&dir),
        Command::Inspect { dir } => cli::inspect::run(&dir),
        Command::Backup(args) => cli::backup::run_backup(args),
        Command::Restore(args) => cli::backup::run_restore(args),
        Command::Health(args) => cli::health::run(args),
    }
}

fn demo(backend: &str, data_dir: Option<PathBuf>, batches: u64) -> ExitCode {
    let backend: Backend = match backend.parse() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("raftkv demo: {e}");
            return ExitCode::from(2);
        }
    };
    let tmp;
    let dir = match data_dir {
        Some(d) => d,
        None => {
            tmp = match tempfile::tempdir() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("raftkv demo: creating a temporary directory: {e}");
                    return ExitCode::FAILURE;
                }
            };
            tmp.path().to_path_buf()
        }
    };
    let config = StorageConfig::new(backend, &dir);
    match raftkv::demo::run(&config, batches) {
        Ok(r) => {
            println!("backend            {}", r.backend);
            println!("data dir           {}", dir.display());
            println!(
                "appended           {} entries in {} synced batches: {:.0} entries/s, {:.0} syncs/s",
                r.entries,
                r.batches,
                r.entries as f64 / r.append_secs,
                r.batches as f64 / r.append_secs
            );
            println!(
                "snapshot           {} bytes stored as {} bytes ({:.1}x)",
                r.snapshot_bytes,
                r.snapshot_stored_bytes,
                r.snapshot_bytes as f64 / r.snapshot_stored_bytes.max(1) as f64
            );
            println!(
                "reopen + recover   {:.1} ms, log and snapshot verified",
                r.recover_secs * 1e3
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raftkv demo ({backend}): {e}");
            ExitCode::FAILURE
        }
    }
}
