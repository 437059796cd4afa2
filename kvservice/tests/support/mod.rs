//! Helpers shared by the RESP integration tests.

pub mod resp_client;
