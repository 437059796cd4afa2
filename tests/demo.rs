//! The README's storage demo, run against every backend: write, snapshot, reopen, verify.

use raftkv::storage::{Backend, StorageConfig};

fn run(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig::new(backend, dir.path());
    let first = raftkv::demo::run(&config, 20).expect("first run");
    assert_eq!(first.entries, 20 * 64);
    assert!(first.snapshot_stored_bytes > 0);
    if backend != Backend::Memory {
        // A second run continues the recovered log and term on the same directory.
        let second = raftkv::demo::run(&config, 5).expect("second run on the same dir");
        assert_eq!(second.entries, 5 * 64);
    }
}

#[test]
fn demo_memory() {
    run(Backend::Memory);
}

#[test]
fn demo_file() {
    run(Backend::File);
}

#[cfg(feature = "rocksdb")]
#[test]
fn demo_rocksdb() {
    run(Backend::Rocksdb);
}
