//! [`SortedRun`]: an immutable array of entries in strictly increasing key order, the
//! base layer of a [`LayeredMap`](crate::layered_map::LayeredMap).
//!
//! Built from sorted entries without any rebuilding (a restore pushes the snapshot's
//! entries as they come) and as compact as the entries themselves; lookups are binary
//! searches.

use std::borrow::Borrow;

/// Entries in strictly increasing key order.
///
/// Invariant: `entries[i].0 < entries[i + 1].0` for every `i`.
#[derive(Debug, Clone)]
pub(crate) struct SortedRun<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SortedRun<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> SortedRun<K, V> {
    /// The run of `entries`, whose keys must be strictly increasing (checked in debug
    /// builds; a caller with untrusted input checks it itself).
    pub(crate) fn from_sorted(entries: Vec<(K, V)>) -> Self {
        debug_assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted run: keys not strictly increasing"
        );
        Self { entries }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries
            .binary_search_by(|(k, _)| k.borrow().cmp(key))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_holds_and_nothing_else() {
        let run = SortedRun::from_sorted((0..100u32).map(|k| (k * 2, k)).collect());
        assert_eq!(run.len(), 100);
        for k in 0..200u32 {
            assert_eq!(run.get(&k), (k % 2 == 0).then_some(&(k / 2)), "key {k}");
        }
        assert!(run.iter().map(|(k, _)| *k).eq((0..200).step_by(2)));
        assert_eq!(SortedRun::<u32, u32>::default().get(&0), None);
    }
}
