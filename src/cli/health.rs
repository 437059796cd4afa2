//! `raftkv health --addr HOST:PORT`: tells a member that is alive from one that is
//! ready to serve linearizably, for liveness and readiness probes.
//!
//! * exit 0, `ready`: it answers `PING`, and a linearizable read (a ReadIndex barrier
//!   through the leader) succeeds there, or, in MOVED mode, it names the leader;
//! * exit 2, `alive`: it answers, but is loading its state (`-LOADING`, with the
//!   progress from `INFO`), has no leader (`-CLUSTERDOWN`), or cannot complete a read;
//! * exit 1, `unreachable`: no connection, no answer in time, or authentication failed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use raftkv::client::{ClientError, RespClient};
use raftkv::kvservice::resp::Value;

/// What to probe.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The member's client address, `HOST:PORT`.
    #[arg(long = "addr", default_value = "127.0.0.1:6381")]
    addr: String,
    /// Give up waiting for any answer after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// The member's `requirepass`, if it has one (or set `RAFTKV_REQUIREPASS`).
    #[arg(long)]
    password: Option<String>,
}

/// The probe's finding.
#[derive(Debug, PartialEq, Eq)]
enum Health {
    /// Serving linearizably.
    Ready(String),
    /// Answering, not ready.
    Alive(String),
    /// Not answering.
    Unreachable(String),
}

/// Runs the probe, prints one line, and exits 0 (ready), 2 (alive) or 1 (unreachable).
pub fn run(args: HealthArgs) -> ExitCode {
    let password = args
        .password
        .or_else(|| std::env::var("RAFTKV_REQUIREPASS").ok());
    let health = probe(
        &args.addr,
        password.as_deref(),
        Duration::from_secs(args.timeout.max(1)),
    );
    match health {
        Health::Ready(why) => {
            println!("ready: {} {why}", args.addr);
            ExitCode::SUCCESS
        }
        Health::Alive(why) => {
            println!("alive, not ready: {} {why}", args.addr);
            ExitCode::from(2)
        }
        Health::Unreachable(why) => {
            println!("unreachable: {} {why}", args.addr);
            ExitCode::FAILURE
        }
    }
}

fn probe(addr: &str, password: Option<&str>, timeout: Duration) -> Health {
    let unreachable = |e: ClientError| Health::Unreachable(format!("({e})"));
    let mut c = match RespClient::connect(addr, timeout) {
        Ok(c) => c,
        Err(e) => return unreachable(e),
    };
    if let Some(p) = password {
        match c.command(&["AUTH", p]) {
            Ok(Value::SimpleString(_)) => {}
            Ok(other) => return Health::Unreachable(format!("(AUTH: {})", text(&other))),
            Err(e) => return unreachable(e),
        }
    }
    let ping = match c.command(&["PING"]) {
        Ok(v) => v,
        Err(e) => return unreachable(e),
    };
    if let Value::Error(msg) = &ping {
        if msg.starts_with(b"NOAUTH") {
            return Health::Unreachable("(a password is required: --password)".into());
        }
        let progress = if msg.starts_with(b"LOADING") {
            loading_progress(&mut c)
        } else {
            String::new()
        };
        return Health::Alive(format!("({}{progress})", text(&ping)));
    }
    // A read of a key no one writes: a ReadIndex barrier on the leader, so success
    // means a leader with a quorum answered through this member.
    let read = match c.command(&["EXISTS", "raftkv:health"]) {
        Ok(v) => v,
        Err(e) => return Health::Alive(format!("(a read did not complete: {e})")),
    };
    verdict(&read)
}

/// The finding from the reply to the probe's read.
fn verdict(read: &Value) -> Health {
    match read {
        Value::Integer(_) => Health::Ready("(a linearizable read succeeded)".into()),
        Value::Error(msg) if msg.starts_with(b"MOVED") => {
            Health::Ready(format!("(redirects to the leader: {})", text(read)))
        }
        other => Health::Alive(format!("({})", text(other))),
    }
}

/// ", 42.0% loaded, about 3 s left" from `INFO persistence`, if it says.
fn loading_progress(c: &mut RespClient) -> String {
    let Ok(Value::BulkString(Some(info)) | Value::Verbatim { text: info, .. }) =
        c.command(&["INFO", "persistence"])
    else {
        return String::new();
    };
    let info = String::from_utf8_lossy(&info);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    match (field("loading_loaded_perc"), field("loading_eta_seconds")) {
        (Some(perc), Some(eta)) if eta != "-1" => format!(", {perc}% loaded, about {eta} s left"),
        (Some(perc), _) => format!(", {perc}% loaded"),
        _ => String::new(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Error(m) | Value::SimpleString(m) => String::from_utf8_lossy(m).into_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_decides_readiness() {
        assert!(matches!(verdict(&Value::Integer(0)), Health::Ready(_)));
        assert!(matches!(
            verdict(&Value::Error("MOVED 1 127.0.0.1:6382".into())),
            Health::Ready(_)
        ));
        for e in [
            "CLUSTERDOWN no leader",
            "TRYAGAIN no leader yet",
            "LOADING x",
        ] {
            assert!(
                matches!(verdict(&Value::Error(e.into())), Health::Alive(_)),
                "{e}"
            );
        }
    }

    #[test]
    fn nobody_listening_is_unreachable() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = free.local_addr().expect("addr").to_string();
        drop(free);
        assert!(matches!(
            probe(&addr, None, Duration::from_secs(1)),
            Health::Unreachable(_)
        ));
    }
}
