//! `MEMBER`: a small text file in a member's data directory that records which member
//! of which cluster the directory belongs to, so that starting member 2 on member 1's
//! directory (an easy slip with several members on one host), or a member of another
//! cluster on it, is refused instead of corrupting the cluster, and so that
//! `raftkv inspect` can print the ids.
//!
//! ```text
//! node_id = 2
//! cluster_id = 1234567890
//! ```
//!
//! Written once, durably (temp file, fsync, rename, directory fsync), after the storage
//! backend has claimed the directory.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use raftkv_storage::NodeId;

/// The file's name inside a data directory.
pub const FILE_NAME: &str = "MEMBER";

/// What a `MEMBER` file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberFile {
    /// The member the directory belongs to.
    pub node_id: NodeId,
    /// The cluster the directory belongs to (0: not recorded, accepted by any).
    pub cluster_id: u64,
}

/// Reads `dir/MEMBER`: `Ok(None)` if there is none, an error naming the file if it
/// cannot be read or parsed.
pub fn read(dir: &Path) -> Result<Option<MemberFile>, String> {
    let path = dir.join(FILE_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("read {}: {e}", path.display())),
    };
    let mut node_id = None;
    let mut cluster_id = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = || format!("{} line {}: cannot parse `{line}`", path.display(), n + 1);
        let (k, v) = line.split_once('=').ok_or_else(bad)?;
        let v: u64 = v.trim().parse().map_err(|_| bad())?;
        match k.trim() {
            "node_id" => node_id = Some(v),
            "cluster_id" => cluster_id = v,
            _ => return Err(bad()),
        }
    }
    let node_id = node_id
        .filter(|&id| id != 0)
        .ok_or_else(|| format!("{}: no non-zero node_id", path.display()))?;
    Ok(Some(MemberFile {
        node_id,
        cluster_id,
    }))
}

/// Checks that `dir` belongs to member `node_id` of cluster `cluster_id`, recording
/// both if the directory has no `MEMBER` file yet.
pub fn ensure(dir: &Path, node_id: NodeId, cluster_id: u64) -> Result<(), String> {
    if let Some(found) = read(dir)? {
        if found.node_id != node_id {
            return Err(format!(
                "{} belongs to member {}, not to member {node_id}: check --id and --data-dir",
                dir.display(),
                found.node_id
            ));
        }
        if found.cluster_id != 0 && found.cluster_id != cluster_id {
            return Err(format!(
                "{} belongs to cluster {:#x}, but this member is configured for cluster \
                 {cluster_id:#x}: check --data-dir and the member list (the cluster id is \
                 derived from the peers unless `cluster_id` is set); `raftkv restore` seeds \
                 a directory for a new cluster",
                dir.display(),
                found.cluster_id
            ));
        }
        if found.cluster_id == 0 && cluster_id != 0 {
            // Seeded by `raftkv restore` without a cluster id: adopt this one.
            return write(dir, node_id, cluster_id);
        }
        return Ok(());
    }
    write(dir, node_id, cluster_id)
}

/// Writes `dir/MEMBER` durably (temp file, fsync, rename, directory fsync), replacing
/// any there.
pub fn write(dir: &Path, node_id: NodeId, cluster_id: u64) -> Result<(), String> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let io = |op: &str, e: std::io::Error| format!("{op} {}: {e}", tmp.display());
    let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
    f.write_all(format!("node_id = {node_id}\ncluster_id = {cluster_id}\n").as_bytes())
        .map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("fsync", e))?;
    fs::rename(&tmp, dir.join(FILE_NAME)).map_err(|e| io("rename", e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("fsync {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_once_then_checked() {
        let dir = tempfile::tempdir().expect("must succeed");
        assert_eq!(read(dir.path()).expect("must succeed"), None);
        ensure(dir.path(), 2, 77).expect("must succeed");
        assert_eq!(
            read(dir.path()).expect("must succeed"),
            Some(MemberFile {
                node_id: 2,
                cluster_id: 77
            })
        );
        ensure(dir.path(), 2, 77).expect("must succeed");
        let err = ensure(dir.path(), 1, 77).expect_err("must fail");
        assert!(
            err.contains("belongs to member 2, not to member 1"),
            "{err}"
        );
        let err = ensure(dir.path(), 2, 78).expect_err("another cluster");
        assert!(
            err.contains("belongs to cluster 0x4d") && err.contains("cluster 0x4e"),
            "{err}"
        );
        // A file without a cluster id (0) is accepted by any cluster.
        write(dir.path(), 2, 0).expect("rewrite");
        ensure(dir.path(), 2, 78).expect("unrecorded cluster");
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("must succeed");
        fs::write(dir.path().join(FILE_NAME), "node_id = x\n").expect("must succeed");
        let err = read(dir.path()).expect_err("must fail");
        assert!(err.contains("MEMBER line 1"), "{err}");
        fs::write(dir.path().join(FILE_NAME), "cluster_id = 3\n").expect("must succeed");
        assert!(read(dir.path()).expect_err("must fail").contains("node_id"));
    }
}
