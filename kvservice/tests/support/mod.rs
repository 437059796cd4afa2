//! Helpers shared by the RESP integration tests.

pub mod fixture;
pub mod resp_client;
