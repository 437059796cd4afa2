//! The RocksDB backend (being written).
#![allow(missing_docs)]
#[derive(Debug)]
pub struct RocksPersister;
#[cfg(test)]
mod tests {
    #[test]
    fn links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = rocksdb::DB::open_default(dir.path()).expect("open");
        db.put(b"k", b"v").expect("put");
        assert_eq!(db.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
    }
}
