//! The `raftkv` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            backend,
            data_dir,
            batches,
        } => demo(&backend, data_dir, batches),
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
