//! `raftkv backup`, `raftkv restore` and `raftkv inspect FILE` (see `raftkv::backup`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use raftkv::backup::{self, BackupError, BackupSummary, FetchOptions};
use raftkv::client::split_addrs;
use raftkv::storage::{Backend, StorageConfig};

/// `raftkv backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup (replaced atomically).
    out: PathBuf,
    /// Members' client addresses, `HOST:PORT` (repeatable, or comma-separated). Any
    /// member will do: a follower names the leader, which takes the backup.
    #[arg(
        long = "addr",
        default_value = "127.0.0.1:6381,127.0.0.1:6382,127.0.0.1:6383"
    )]
    addrs: Vec<String>,
    /// The members' `requirepass` (or set `RAFTKV_REQUIREPASS`).
    #[arg(long)]
    password: Option<String>,
    /// Give up finding a member that starts the backup after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// `raftkv restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    input: PathBuf,
    /// The new member's data directory (missing or empty).
    #[arg(long)]
    data_dir: PathBuf,
    /// The new member's id.
    #[arg(long)]
    id: u64,
    /// The new cluster's id (as `cluster_id` in its configuration). Without it the
    /// member records the id it is configured for at its first start.
    #[arg(long, value_parser = parse_cluster_id)]
    cluster_id: Option<u64>,
    /// The storage backend the member will run: file or rocksdb.
    #[arg(long, default_value = "file")]
    backend: Backend,
}

fn parse_cluster_id(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("{s:?} is not a cluster id (decimal or 0x hex): {e}"))
}

/// Fetches a backup from a running cluster.
pub fn run_backup(args: BackupArgs) -> ExitCode {
    let options = FetchOptions {
        addrs: split_addrs(&args.addrs),
        password: args
            .password
            .or_else(|| std::env::var("RAFTKV_REQUIREPASS").ok()),
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    match backup::fetch(&options, &args.out) {
        Ok(s) => {
            println!("backup {}: {}", args.out.display(), describe(&s));
            ExitCode::SUCCESS
        }
        Err(e) => fail("backup", &e),
    }
}

/// Seeds a new member's data directory from a backup.
pub fn run_restore(args: RestoreArgs) -> ExitCode {
    if args.id == 0 {
        eprintln!("raftkv restore: --id must be at least 1");
        return ExitCode::from(2);
    }
    if args.backend == Backend::Memory {
        eprintln!("raftkv restore: the memory backend keeps nothing to restore into");
        return ExitCode::from(2);
    }
    let storage = StorageConfig {
        backend: args.backend,
        dir: Some(args.data_dir.clone()),
        ..StorageConfig::default()
    };
    match backup::restore(&args.input, &storage, args.id, args.cluster_id.unwrap_or(0)) {
        Ok(r) => {
            println!(
                "restored {} into {} as member {} ({}): {}",
                args.input.display(),
                args.data_dir.display(),
                r.id,
                if r.cluster_id == 0 {
                    "cluster id: the one it is configured for at its first start".to_string()
                } else {
                    format!("cluster {:#x}", r.cluster_id)
                },
                describe(&r.backup)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("restore", &e),
    }
}

/// `raftkv inspect FILE`: verifies a backup file; exit 1 if it is corrupt.
pub fn run_inspect_file(path: &Path) -> ExitCode {
    match backup::verify(path) {
        Ok(s) => {
            let f = &s.file;
            println!("backup file        {}", path.display());
            println!("status             ok (structure, every checksum, the KV payload)");
            println!("index              {}", f.meta.index);
            println!("term               {}", f.meta.term);
            println!("keys               {}", s.keys);
            println!("sessions           {}", s.sessions);
            println!("payload bytes      {}", f.uncompressed_bytes);
            println!("stored bytes       {}", f.stored_bytes);
            println!(
                "frames             {} of {} bytes, zstd level {}",
                f.frame_count, f.frame_bytes, f.zstd_level
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("inspect", &e),
    }
}

fn describe(s: &BackupSummary) -> String {
    format!(
        "{} keys at index {} term {}, {} bytes (verified)",
        s.keys, s.file.meta.index, s.file.meta.term, s.file.stored_bytes
    )
}

fn fail(cmd: &str, e: &BackupError) -> ExitCode {
    eprintln!("raftkv {cmd}: {e}");
    ExitCode::FAILURE
}
