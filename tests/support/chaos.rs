//! [`ChaosCluster`]: real `raftkv server` processes whose Raft links all go through
//! fault-injecting [`Proxy`]s, with the faults a chaos test needs: SIGKILL and
//! restart, SIGSTOP/SIGCONT, partitions (whole or one-way), and a damaged newest
//! snapshot file.
//!
//! Member `i`'s `--peers` names its own real Raft address and, for every other member
//! `j`, the port of the proxy of the directed link `i → j`, which forwards to `j`'s real
//! address. The link `i → j` carries `i`'s Raft messages and forwarded client requests
//! to `j` and `j`'s replies to those requests (each member dials each peer once). The
//! peers lists differ between members, so the cluster id (which members otherwise
//! derive from the list) is given in a per-member TOML file.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raftkv::kvservice::resp::Value;

use super::proxy::{LinkMode, Proxy};
use super::{Member, info_field};

/// What was done to a member's newest snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotDamage {
    /// Removed.
    Delete,
    /// Cut to half its length.
    Truncate,
    /// Bytes of the payload overwritten.
    Corrupt,
}

/// A cluster of processes behind per-link proxies, in a temporary directory.
pub struct ChaosCluster {
    /// The members, id `i` at index `i - 1`.
    pub members: Vec<Member>,
    /// The proxy of each directed link `(from, to)`.
    pub proxies: BTreeMap<(u64, u64), Proxy>,
    paused: Vec<bool>,
    root: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl ChaosCluster {
    /// Starts `n` members (file backend) with `extra` flags each, and waits until a
    /// write through every member succeeds.
    pub fn start(n: usize, extra: &[&str]) -> ChaosCluster {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().to_path_buf();
        // The members' ports stay bound while the proxies pick theirs, so that no proxy
        // takes one of them.
        let held: Vec<TcpListener> = (0..2 * n)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        let raft: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], ports[n + i])))
            .collect();
        let mut proxies = BTreeMap::new();
        for from in 1..=n as u64 {
            for to in 1..=n as u64 {
                if from != to {
                    proxies.insert((from, to), Proxy::start(raft[to as usize - 1]));
                }
            }
        }
        drop(held);
        let cluster_id = 0x6368_616f_7300_0000 | u64::from(ports[0]);
        let mut members = Vec::new();
        for i in 0..n {
            let id = i as u64 + 1;
            let peers: Vec<String> = (1..=n as u64)
                .map(|j| {
                    let addr = if j == id {
                        raft[i]
                    } else {
                        proxies[&(id, j)].addr
                    };
                    format!("{j}={addr}")
                })
                .collect();
            let config = path.join(format!("node-{id}.toml"));
            std::fs::write(&config, format!("cluster_id = {cluster_id}\n")).expect("config");
            let client = format!("127.0.0.1:{}", ports[i]);
            let dir = path.join(format!("node-{id}"));
            let mut args: Vec<String> = vec![
                "server".into(),
                "--config".into(),
                config.display().to_string(),
                "--id".into(),
                id.to_string(),
                "--peers".into(),
                peers.join(","),
                "--listen".into(),
                client.clone(),
                "--backend".into(),
                "file".into(),
                "--data-dir".into(),
                dir.display().to_string(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let log = path.join(format!("node-{id}.log"));
            let mut m = Member::new(id, client, dir, args, log);
            m.start();
            members.push(m);
        }
        let mut c = ChaosCluster {
            members,
            proxies,
            paused: vec![false; n],
            root: Some(root),
            path,
        };
        for i in 0..n {
            let m = &c.members[i];
            let start = Instant::now();
            let mut last = None;
            while start.elapsed() < Duration::from_secs(60) {
                last = m.command_within(&["SET", "__ready", "1"], Duration::from_secs(10));
                if matches!(last, Some(Value::SimpleString(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !matches!(last, Some(Value::SimpleString(_))) {
                let id = m.id;
                let dir = c.keep_dir();
                panic!(
                    "member {id} serves no write 60 s after the start (last answer: \
                     {last:?}); logs and data kept in {}\n{}",
                    dir.display(),
                    c.log_tails(40)
                );
            }
        }
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

    /// The directory holding the data directories, configs and logs.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory after the test (for a post-mortem); returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        if let Some(root) = self.root.take() {
            let _ = root.keep();
        }
        self.path.clone()
    }

    /// Sets the mode of the directed link `from → to`.
    pub fn set_link(&self, from: u64, to: u64, mode: LinkMode) {
        self.proxies[&(from, to)].set(mode);
    }

    /// Cuts every link between `side` and the other members, both ways.
    pub fn partition(&self, side: &[u64], mode: LinkMode) {
        for (&(from, to), p) in &self.proxies {
            if side.contains(&from) != side.contains(&to) {
                p.set(mode);
            }
        }
    }

    /// Every link up.
    pub fn heal_links(&self) {
        for p in self.proxies.values() {
            p.set(LinkMode::Up);
        }
    }

    /// SIGSTOP member `id`.
    pub fn pause(&mut self, id: u64) {
        if self.members[id as usize - 1].signal(libc::SIGSTOP) {
            self.paused[id as usize - 1] = true;
        }
    }

    /// SIGCONT member `id`.
    pub fn resume(&mut self, id: u64) {
        self.members[id as usize - 1].signal(libc::SIGCONT);
        self.paused[id as usize - 1] = false;
    }

    /// SIGKILL member `id` (paused or not).
    pub fn kill(&mut self, id: u64) {
        self.members[id as usize - 1].kill();
        self.paused[id as usize - 1] = false;
    }

    /// Every fault undone: links up, paused members resumed, stopped members started.
    pub fn heal_all(&mut self) {
        self.heal_links();
        for id in 1..=self.members.len() as u64 {
            if self.paused[id as usize - 1] {
                self.resume(id);
            }
            let m = self.member(id);
            if !m.is_running() {
                m.start();
            }
        }
    }

    /// The member reporting itself leader (asking running, unpaused members, each
    /// within `timeout`), if any.
    pub fn leader(&self, timeout: Duration) -> Option<u64> {
        self.members
            .iter()
            .zip(&self.paused)
            .filter(|(m, paused)| m.pid().is_some() && !**paused)
            .find(|(m, _)| {
                m.info_within(timeout)
                    .and_then(|t| info_field(&t, "role"))
                    .as_deref()
                    == Some("leader")
            })
            .map(|(m, _)| m.id)
    }

    /// The newest snapshot file of member `id`, if it has one.
    pub fn newest_snapshot(&self, id: u64) -> Option<PathBuf> {
        let dir = self.members[id as usize - 1].dir.join("snapshots");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rks"))
            .collect();
        // snap-{index:020}-{term:020}.rks: the name orders by index.
        files.sort();
        files.pop()
    }

    /// Damages the newest snapshot of (stopped) member `id`, keeping a copy to
    /// [`restore_snapshot`](Self::restore_snapshot) from; `noise` picks the bytes.
    /// Returns the file, or `None` if the member has no snapshot.
    pub fn damage_snapshot(&self, id: u64, damage: SnapshotDamage, noise: u64) -> Option<PathBuf> {
        let file = self.newest_snapshot(id)?;
        let backup = self.backup_of(&file);
        std::fs::copy(&file, &backup).expect("back up the snapshot");
        match damage {
            SnapshotDamage::Delete => std::fs::remove_file(&file).expect("delete snapshot"),
            SnapshotDamage::Truncate => {
                let len = std::fs::metadata(&file).expect("stat").len();
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .expect("open snapshot");
                f.set_len(len / 2).expect("truncate");
            }
            SnapshotDamage::Corrupt => {
                let mut bytes = std::fs::read(&file).expect("read snapshot");
                // Past the 72-byte header: the payload frames.
                let body = bytes.len().saturating_sub(72).max(1);
                let mut x = noise | 1;
                for _ in 0..16 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (72 + (x as usize) % body).min(bytes.len() - 1);
                    bytes[at] ^= 0xa5;
                }
                std::fs::write(&file, bytes).expect("write snapshot");
            }
        }
        Some(file)
    }

    /// Puts back the file [`damage_snapshot`](Self::damage_snapshot) damaged.
    pub fn restore_snapshot(&self, file: &Path) {
        std::fs::copy(self.backup_of(file), file).expect("restore the snapshot");
    }

    fn backup_of(&self, file: &Path) -> PathBuf {
        self.path.join(format!(
            "{}.backup",
            file.file_name().expect("name").to_string_lossy()
        ))
    }

    /// The tails of every member's log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        self.members
            .iter()
            .map(|m| format!("---- member {} ----\n{}\n", m.id, m.log_tail(lines)))
            .collect()
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        // Members first (SIGKILL by PID, paused ones included), then the proxies, then
        // the directory.
        for m in &mut self.members {
            m.kill();
        }
    }
}
