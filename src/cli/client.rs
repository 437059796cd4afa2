//! `raftkv get|put|del`: one command against the cluster, from the shell.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use raftkv::client::{run_on_any, split_addrs};
use raftkv::kvservice::resp::Value;

/// Where the cluster is.
#[derive(Debug, Args)]
pub struct Target {
    /// A member's client address, `HOST:PORT` (repeatable, or comma-separated). Any
    /// member will do: the command finds its way to the leader.
    #[arg(
        long = "addr",
        default_value = "127.0.0.1:6381,127.0.0.1:6382,127.0.0.1:6383"
    )]
    addrs: Vec<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

/// Which client command.
#[derive(Debug)]
pub enum Op {
    /// `GET key`.
    Get(String),
    /// `SET key value`.
    Put(String, String),
    /// `DEL key`.
    Del(String),
}

/// Runs `op`; prints the value (get), `OK` (put) or the number deleted (del).
/// Exit 1 when the key is missing (get) or on an error.
pub fn run(target: Target, op: Op) -> ExitCode {
    let addrs = split_addrs(&target.addrs);
    let args: Vec<&[u8]> = match &op {
        Op::Get(k) => vec![b"GET", k.as_bytes()],
        Op::Put(k, v) => vec![b"SET", k.as_bytes(), v.as_bytes()],
        Op::Del(k) => vec![b"DEL", k.as_bytes()],
    };
    match run_on_any(&addrs, &args, Duration::from_secs(target.timeout)) {
        Ok(Value::BulkString(Some(v))) => {
            println!("{}", String::from_utf8_lossy(&v));
            ExitCode::SUCCESS
        }
        Ok(Value::BulkString(None)) => {
            eprintln!("(nil)");
            ExitCode::FAILURE
        }
        Ok(Value::SimpleString(s)) => {
            println!("{}", String::from_utf8_lossy(&s));
            ExitCode::SUCCESS
        }
        Ok(Value::Integer(n)) => {
            println!("{n}");
            ExitCode::SUCCESS
        }
        Ok(Value::Error(e)) => {
            eprintln!("raftkv: {}", String::from_utf8_lossy(&e));
            ExitCode::FAILURE
        }
        Ok(other) => {
            eprintln!("raftkv: unexpected reply {other:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("raftkv: {e}");
            ExitCode::FAILURE
        }
    }
}
