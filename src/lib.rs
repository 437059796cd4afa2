//! raftkv: a durable key/value store replicated with Raft, whose persistence backend
//! (in memory, file + mmap, or RocksDB) is chosen by configuration.
//!
//! The layers, from the top: [`kvservice`] (the replicated KV state machine),
//! [`consensus`] (Raft), [`storage`] (the `Persister` trait and its backends).
//! See `ARCHITECTURE.md` in the repository.
#![deny(unsafe_code)]

pub use raftkv_consensus as consensus;
pub use raftkv_kvservice as kvservice;
pub use raftkv_storage as storage;

mod db;
pub mod demo;

pub use db::{Db, DbConfig, DbError};
