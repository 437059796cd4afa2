//! The subcommands of the `raftkv` binary, one module each.

pub mod backup;
pub mod client;
pub mod cluster;
pub mod health;
pub mod inspect;
pub mod server;
