//! Protocol notes: why the core does what it does, rule by rule, with the Raft paper
//! (Ongaro & Ousterhout, 2014) and thesis (Ongaro, 2014) sections they come from.
//!
//! Each page is a Markdown file next to this module, included with `include_str!`, so
//! that rustdoc (built with `-D warnings`) checks its links.

#[doc = include_str!("election.md")]
pub mod election {}

#[doc = include_str!("replication.md")]
pub mod replication {}

#[doc = include_str!("snapshots.md")]
pub mod snapshots {}

#[doc = include_str!("read_index.md")]
pub mod read_index {}

#[doc = include_str!("leadership_transfer.md")]
pub mod leadership_transfer {}

#[doc = include_str!("io_ordering.md")]
pub mod io_ordering {}
