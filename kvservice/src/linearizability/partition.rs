//! Splitting a history into independently checkable parts.
//!
//! Linearizability is local (Herlihy & Wing): a history is linearizable iff, for every
//! object, the sub-history of the operations on that object is. A model whose objects are
//! independent (the keys of a KV store) can therefore be checked one object at a time,
//! which turns one search exponential in the whole history's concurrency into many small
//! ones.

use std::collections::HashMap;
use std::hash::Hash;

use super::history::Operation;

/// Groups the indices of `history` by `key_of(op)`: one partition per distinct key, in the
/// order keys first appear, each listing its operations in history order.
///
/// This is the usual body of [`Model::partition`](super::Model::partition) for a model
/// of independent objects.
pub fn partition_by_key<'h, I, O, K, F>(
    history: &'h [Operation<I, O>],
    mut key_of: F,
) -> Vec<Vec<usize>>
where
    K: Hash + Eq,
    F: FnMut(&'h Operation<I, O>) -> K,
{
    let mut slot_of: HashMap<K, usize> = HashMap::new();
    let mut partitions: Vec<Vec<usize>> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        let slot = *slot_of.entry(key_of(op)).or_insert_with(|| {
            partitions.push(Vec::new());
            partitions.len() - 1
        });
        partitions[slot].push(i);
    }
    partitions
}
