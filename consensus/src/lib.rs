//! raftkv's Raft: an IO-free core, a node runtime and a deterministic simulator.
//!
//! * [`core`]: [`RaftCore`], the Raft state machine. It does no IO: inputs are
//!   `tick`/`step`/`propose`/..., the output is a [`Ready`] that the runtime executes.
//! * [`node`]: the runtime that drives a core with a clock, a
//!   [`Persister`](raftkv_storage::Persister) and a [`transport`].
//! * [`sim`]: a deterministic simulator for cores and their storage.
//! * [`docs`]: the protocol rationale (PreVote, CheckQuorum, replication, snapshots,
//!   ReadIndex, leadership transfer, IO ordering).
#![deny(unsafe_code)]

pub mod config;
pub mod core;
pub mod docs;
pub mod error;
pub mod message;
pub mod node;
pub mod ready;
pub mod sim;
pub mod transport;

pub use crate::config::Config;
pub use crate::core::{RaftCore, Role, Status};
pub use crate::error::{ConfigError, ProposeError};
pub use crate::message::{Message, MessageBody};
pub use crate::ready::{Apply, Persist, ReadState, Ready, SnapshotSend};
