//! raftkv: a durable key/value store replicated with Raft, whose persistence backend
//! (in memory, file + mmap, or RocksDB) is chosen by configuration.
//!
//! The layers, from the top: [`kvservice`] (the replicated KV state machine),
//! [`consensus`] (Raft), [`storage`] (the `Persister` trait and its backends).
//! See `ARCHITECTURE.md` in the repository.
//!
//! # Embedding
//!
//! [`Db`] is a durable, linearizable KV store in a directory: one node, or several Raft
//! replicas in this process. Writes are fsynced and applied when the call returns.
//!
//! ```
//! use raftkv::storage::Backend;
//! use raftkv::{Db, DbConfig, DbError};
//!
//! let dir = tempfile::tempdir()?;
//! let mut config = DbConfig::new(Backend::File, dir.path());
//! config.replicas = 3; // three Raft replicas, each with its own log and snapshots
//! let db = Db::open(config)?;
//! let v = db.put(b"user:1", b"ada")?;
//! match db.put_if(b"user:1", b"grace", v + 7) {
//!     Err(DbError::VersionMismatch { current }) => assert_eq!(current, v),
//!     other => panic!("expected a version mismatch, got {other:?}"),
//! }
//! assert!(db.delete(b"user:1")?);
//! assert_eq!(db.get(b"user:1")?, None);
//! db.close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

pub use raftkv_consensus as consensus;
pub use raftkv_kvservice as kvservice;
pub use raftkv_storage as storage;

pub mod backup;
pub mod client;
mod db;
pub mod demo;
pub mod server;

pub use db::{Db, DbConfig, DbError};
