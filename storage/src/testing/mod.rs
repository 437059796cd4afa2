//! Test support shared by every backend: one conformance suite, one reference model and
//! the harnesses that open each backend.
//!
//! Every backend runs the same [`suite`] through a [`Harness`]; the property tests
//! compare each backend with the [`model::Model`] after every step. Compiled only for
//! this crate's tests and under the `testing` feature, so other crates' tests can run
//! the suite against a backend of their own.

pub mod harness;
pub mod model;
pub mod payload;
pub mod suite;

pub use harness::{DirHarness, Harness, MemoryHarness};
pub use model::{Model, Outcome};
pub use payload::PayloadGen;
