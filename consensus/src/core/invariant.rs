//! The one way the core stops on a broken internal invariant: [`raft_assert!`].
//!
//! Inputs a peer can send never reach it; they are validated and, if bad, ignored. A
//! failing `raft_assert!` means this node's own bookkeeping is wrong (or its runtime
//! broke the calling contract), and going on could violate safety.

use raftkv_storage::NodeId;

/// Where the core was when an invariant broke; printed with every failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvariantContext {
    pub(crate) id: NodeId,
    pub(crate) term: u64,
    pub(crate) last_index: u64,
    pub(crate) commit: u64,
    pub(crate) applied: u64,
    pub(crate) persisted: u64,
}

/// Panics with `what` and the node's context.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn violated(ctx: &InvariantContext, what: std::fmt::Arguments<'_>) -> ! {
    panic!(
        "raft invariant violated on node {} at term {} (last index {}, commit {}, applied {}, \
         persisted {}): {what}",
        ctx.id, ctx.term, ctx.last_index, ctx.commit, ctx.applied, ctx.persisted
    )
}

/// Asserts an invariant of the core, adding node id, term and log indices to the panic.
///
/// * `raft_assert!(core, cond, "format", args..)` panics unless `cond` holds.
/// * `raft_assert!(core, ok: result)` unwraps a `Result` whose error displays the
///   broken rule (the log's checked operations return one).
///
/// `core` is anything with an `invariant_context()` method (the `RaftCore`).
macro_rules! raft_assert {
    ($core:expr, ok: $result:expr $(,)?) => {
        match $result {
            Ok(value) => value,
            Err(e) => $crate::core::invariant::violated(
                &$core.invariant_context(),
                ::core::format_args!("{}", e),
            ),
        }
    };
    ($core:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            $crate::core::invariant::violated(
                &$core.invariant_context(),
                ::core::format_args!($($fmt)+),
            )
        }
    };
}
pub(crate) use raft_assert;
