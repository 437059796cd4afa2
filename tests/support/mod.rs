//! Real `raftkv server` processes on 127.0.0.1 for tests: free ports, readiness by
//! polling, and every process killed by PID when its guard drops (even on panic).

#![allow(dead_code)] // each test binary uses a different part

pub mod chaos;
pub mod history;
pub mod proxy;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftkv::client::RespClient;
use raftkv::kvservice::resp::Value;

/// The `raftkv` binary under test.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_raftkv")
}

/// `n` distinct free loopback ports (bound, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// Polls `f` every 20 ms until it returns `Some`, or panics naming `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One member's process; killed (SIGKILL) on drop if still running.
pub struct Member {
    /// Member id.
    pub id: u64,
    /// Client address.
    pub client: String,
    /// Data directory.
    pub dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Member {
    /// A member not started yet: `args` are the `raftkv` arguments, `log` the file its
    /// stderr is appended to.
    pub fn new(id: u64, client: String, dir: PathBuf, args: Vec<String>, log: PathBuf) -> Member {
        Member {
            id,
            client,
            dir,
            args,
            child: None,
            log,
        }
    }

    /// The process id, while a process was started and not reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) to the process; false if
    /// there is none.
    pub fn signal(&self, signal: i32) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet (we hold the
        // Child and only reap in kill/terminate/exit_status), so it cannot be reused.
        unsafe { libc::kill(pid as i32, signal) == 0 }
    }

    /// The exit status if the process has exited (it is reaped then).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// One command on a fresh connection, waiting at most `timeout` to connect and for
    /// the reply; `None` if the member does not answer in time.
    pub fn command_within(&self, args: &[&str], timeout: Duration) -> Option<Value> {
        let mut c = RespClient::connect(&self.client, timeout).ok()?;
        c.command(args).ok()
    }

    /// The INFO text, if the member answers within `timeout`.
    pub fn info_within(&self, timeout: Duration) -> Option<String> {
        match self.command_within(&["INFO"], timeout)? {
            Value::BulkString(Some(text)) => Some(String::from_utf8_lossy(&text).into_owned()),
            _ => None,
        }
    }

    /// The last `n` lines of the member's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts (or restarts) the process with its original arguments.
    pub fn start(&mut self) {
        assert!(!self.is_running(), "member {} is already running", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open member log");
        let child = Command::new(exe())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn raftkv server");
        self.child = Some(child);
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit; returns whether the exit status was 0.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let pid = c.id() as i32;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
            }
        }
    }

    /// The member's log so far (stderr of every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A connection to this member.
    pub fn connect(&self) -> RespClient {
        RespClient::connect(&self.client, Duration::from_secs(10)).expect("connect to member")
    }

    /// One command, on a fresh connection; `None` if the member is unreachable.
    pub fn try_command(&self, args: &[&str]) -> Option<Value> {
        let mut c = RespClient::connect(&self.client, Duration::from_secs(10)).ok()?;
        c.command(args).ok()
    }

    /// INFO field `name` of this member, if it answers.
    pub fn info_field(&self, name: &str) -> Option<String> {
        let Value::BulkString(Some(text)) = self.try_command(&["INFO"])? else {
            return None;
        };
        info_field(&String::from_utf8_lossy(&text), name)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Field `name` of an INFO text.
pub fn info_field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim_end().split_once(':')?;
        (k == name).then(|| v.to_string())
    })
}

/// A cluster of real processes in a temporary directory.
pub struct ProcCluster {
    /// The members, id `i` at index `i - 1`.
    pub members: Vec<Member>,
    /// Holds the data directories.
    pub root: tempfile::TempDir,
}

impl ProcCluster {
    /// Starts `n` members with `extra` flags each, and waits until a leader serves.
    pub fn start(n: usize, backend: &str, extra: &[&str]) -> ProcCluster {
        ProcCluster::start_prepared(n, backend, extra, |_, _| {})
    }

    /// [`start`](Self::start), calling `prepare(id, data_dir)` for each member before
    /// any starts (to seed its data directory, say).
    pub fn start_prepared(
        n: usize,
        backend: &str,
        extra: &[&str],
        mut prepare: impl FnMut(u64, &Path),
    ) -> ProcCluster {
        let root = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2 * n);
        let peers: Vec<String> = (0..n)
            .map(|i| format!("{}=127.0.0.1:{}", i + 1, ports[n + i]))
            .collect();
        let peers = peers.join(",");
        let mut members = Vec::new();
        for (i, port) in ports[..n].iter().enumerate() {
            let id = i as u64 + 1;
            let client = format!("127.0.0.1:{port}");
            let dir = root.path().join(format!("node-{id}"));
            let mut args: Vec<String> = vec![
                "server".into(),
                "--id".into(),
                id.to_string(),
                "--peers".into(),
                peers.clone(),
                "--listen".into(),
                client.clone(),
                "--backend".into(),
                backend.into(),
                "--data-dir".into(),
                dir.display().to_string(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            prepare(id, &dir);
            let m = Member {
                id,
                client,
                dir,
                args,
                child: None,
                log: root.path().join(format!("node-{id}.log")),
            };
            members.push(m);
        }
        for m in &mut members {
            m.start();
        }
        let c = ProcCluster { members, root };
        c.wait_serving(Duration::from_secs(30));
        c
    }

    /// Member `id`.
    pub fn member(&mut self, id: u64) -> &mut Member {
        &mut self.members[id as usize - 1]
    }

    /// Every member's client address.
    pub fn addrs(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.clone()).collect()
    }

    /// Waits until a write through every running member succeeds.
    pub fn wait_serving(&self, limit: Duration) {
        for m in &self.members {
            if m.child.is_none() {
                continue;
            }
            wait_for(
                &format!("member {} to serve a write", m.id),
                limit,
                || match m.try_command(&["SET", "__ready", "1"]) {
                    Some(Value::SimpleString(_)) => Some(()),
                    _ => None,
                },
            );
        }
    }

    /// The id of the member that reports itself leader.
    pub fn leader(&self, limit: Duration) -> u64 {
        wait_for("a leader", limit, || {
            self.members
                .iter()
                .filter(|m| m.child.is_some())
                .find(|m| m.info_field("role").as_deref() == Some("leader"))
                .map(|m| m.id)
        })
    }

    /// Every member's log, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("---- member {} ----\n{}", m.id, m.log()))
            .collect()
    }

    /// The directory holding the members' data.
    pub fn path(&self) -> &Path {
        self.root.path()
    }
}
