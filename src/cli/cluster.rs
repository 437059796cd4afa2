//! `raftkv cluster`: N `raftkv server` processes on loopback, for trying raftkv out.
//! Ctrl-C (or SIGTERM) stops them all gracefully; running it again with the same data
//! directory recovers their data.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Args;
use raftkv::kvservice::server::Redirect;
use raftkv::storage::Backend;

/// Flags of `raftkv cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Members to start (1 to 9).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Member `i` keeps its data in `DATA_DIR/node-i`.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Storage backend of every member.
    #[arg(long, default_value = "file")]
    backend: Backend,
    /// Member `i` serves clients on `BASE_PORT + i - 1` and Raft on `BASE_PORT + 1000 + i - 1`.
    #[arg(long, default_value_t = 6381)]
    base_port: u16,
    /// Passed to every member (see `raftkv server --help`).
    #[arg(long, allow_negative_numbers = true)]
    max_raft_state: Option<i64>,
    /// `forward` (default) or `moved`: followers answer `-MOVED` as Redis Cluster
    /// nodes do (use `redis-cli -c`); every member is told the others' client ports.
    #[arg(long, default_value = "forward")]
    redirect: Redirect,
}

struct Member {
    id: u16,
    client: String,
    child: Child,
}

/// Starts the members and waits for a signal (or for all of them to exit).
pub fn run(args: ClusterArgs) -> ExitCode {
    if !(1..=9).contains(&args.nodes) {
        eprintln!("raftkv cluster: --nodes {} is outside 1..=9", args.nodes);
        return ExitCode::from(2);
    }
    if u32::from(args.base_port) + 1000 + u32::from(args.nodes) > u32::from(u16::MAX) {
        eprintln!(
            "raftkv cluster: --base-port {} leaves no room for the Raft ports",
            args.base_port
        );
        return ExitCode::from(2);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("raftkv cluster: cannot find this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ids = 1..=args.nodes;
    let peers: Vec<String> = ids
        .clone()
        .map(|i| format!("{i}=127.0.0.1:{}", args.base_port + 1000 + i - 1))
        .collect();
    let peers = peers.join(",");
    let clients: Vec<String> = ids
        .clone()
        .map(|i| format!("{i}=127.0.0.1:{}", args.base_port + i - 1))
        .collect();
    let clients = clients.join(",");
    let mut members = Vec::new();
    for id in ids {
        let client = format!("127.0.0.1:{}", args.base_port + id - 1);
        let dir = args.data_dir.join(format!("node-{id}"));
        let mut cmd = Command::new(&exe);
        cmd.arg("server")
            .args([
                "--id",
                &id.to_string(),
                "--peers",
                &peers,
                "--listen",
                &client,
            ])
            .args(["--backend", args.backend.name()])
            .arg("--data-dir")
            .arg(&dir);
        if let Some(m) = args.max_raft_state {
            cmd.args(["--max-raft-state", &m.to_string()]);
        }
        if args.redirect == Redirect::Moved {
            cmd.args(["--redirect", "moved", "--clients", &clients]);
        }
        match cmd.spawn() {
            Ok(child) => members.push(Member { id, client, child }),
            Err(e) => {
                eprintln!("raftkv cluster: starting member {id}: {e}");
                stop_all(&mut members);
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "raftkv cluster: {} members, backend {}, data in {}",
        members.len(),
        args.backend,
        args.data_dir.display()
    );
    for m in &members {
        println!("  member {} serves clients on {}", m.id, m.client);
    }
    let cli = if args.redirect == Redirect::Moved {
        "redis-cli -c"
    } else {
        "redis-cli"
    };
    println!(
        "try: {cli} -p {} set hello world   (Ctrl-C stops the cluster)",
        args.base_port
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raftkv cluster: {e}");
            stop_all(&mut members);
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let signal = raftkv::server::wait_for_signal();
        tokio::pin!(signal);
        let mut poll = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                s = &mut signal => return s.map(|name| format!("{name} received")),
                _ = poll.tick() => {
                    let mut live = 0;
                    for m in &mut members {
                        match m.child.try_wait() {
                            Ok(None) => live += 1,
                            Ok(Some(status)) if m.client.is_empty() => { let _ = status; }
                            Ok(Some(status)) => {
                                eprintln!("raftkv cluster: member {} exited ({status})", m.id);
                                m.client.clear();
                            }
                            Err(e) => eprintln!("raftkv cluster: member {}: {e}", m.id),
                        }
                    }
                    if live == 0 {
                        return Ok("every member exited".to_string());
                    }
                }
            }
        }
    });
    match &outcome {
        Ok(why) => println!("raftkv cluster: {why}, stopping the members"),
        Err(e) => eprintln!("raftkv cluster: waiting for signals: {e}; stopping the members"),
    }
    let clean = stop_all(&mut members);
    if clean && outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Sends SIGTERM to every live member and waits for each (SIGKILL after 15 s).
/// Returns whether all of them exited cleanly.
fn stop_all(members: &mut [Member]) -> bool {
    for m in members.iter() {
        if let Ok(pid) = i32::try_from(m.child.id()) {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    let mut clean = true;
    for m in members.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match m.child.try_wait() {
                Ok(Some(status)) => {
                    clean &= status.success() || m.client.is_empty();
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    eprintln!("raftkv cluster: member {} did not stop, killing it", m.id);
                    let _ = m.child.kill();
                    let _ = m.child.wait();
                    clean = false;
                    break;
                }
            }
        }
    }
    clean
}
