//! raftkv's KV service: the replicated state machine layer, the versioned KV state
//! machine with exactly-once client sessions, the client and the network server.
#![deny(unsafe_code)]

pub mod backup;
pub mod clerk;
pub mod cluster;
pub mod command;
pub mod error;
mod fold;
mod layered_map;
pub mod linearizability;
pub mod load_progress;
mod merge;
mod payload_reader;
pub mod proposal_limit;
pub mod replica;
pub mod resp;
pub mod rsm;
pub mod server;
pub mod sessions;
mod sorted_run;
pub mod state_machine;
pub mod store;
