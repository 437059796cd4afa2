//! [`LayeredMap`]: an ordered map with an O(1) clone that can also be built in O(n) from
//! sorted entries, for [`KvStore`](crate::store::KvStore).
//!
//! A persistent B-tree alone (imbl's `OrdMap`) has the O(1) clone a snapshot needs, but
//! it can only be built one insert at a time, which dominated a restart. Here the bulk
//! of the entries sits in a frozen, shared [`SortedRun`] (a sorted array: a restore
//! fills it as the snapshot's sorted entries come) and the changes since sit in small persistent overlays:
//!
//! ```text
//!   lookup order:  overlay  ->  frozen  ->  base
//!                  (writes)     (being folded into base, on a worker thread)
//! ```
//!
//! When the overlay grows past a fraction of the base, it is cut (O(1)) into `frozen`
//! and a worker thread merges `frozen` over `base` into a new base; the next write that
//! finds the merge done installs it (O(1)), and the old layers are dropped off the
//! writer's thread too. So no write ever pays for an O(n) step.

use std::fmt;
use std::sync::Arc;

use imbl::OrdMap;

use crate::sorted_run::SortedRun;

use crate::fold::Fold;
use crate::merge::Merge;

/// Overlays hold at least this many entries before they are folded into the base.
pub(crate) const FOLD_MIN: usize = 16 * 1024;
/// ... and at least the base's size divided by this.
pub(crate) const FOLD_FRACTION: usize = 4;

/// An entry of an overlay: `Some` sets the key, `None` (a tombstone) removes it from the
/// layers below.
pub(crate) type Change<V> = Option<V>;

/// The layered map.
///
/// Invariants (checked by [`check`](Self::check) in tests and debug builds):
///
/// * the map's contents are `base`, overridden by `frozen`, overridden by `overlay`;
///   a tombstone hides the key in the layers below;
/// * `len` is the number of keys in those contents;
/// * `frozen` is empty unless a `fold` is pending, and that fold merges exactly this
///   `frozen` over exactly this `base`;
/// * clones share every layer: cloning is a few reference-count increments.
pub(crate) struct LayeredMap<K, V> {
    overlay: OrdMap<K, Change<V>>,
    frozen: OrdMap<K, Change<V>>,
    base: Arc<SortedRun<K, V>>,
    len: usize,
    fold: Option<Fold<K, V>>,
    /// Fold on worker threads (else never: for tests of the layers themselves).
    auto_fold: bool,
}

impl<K: Ord + Clone, V: Clone> Clone for LayeredMap<K, V> {
    fn clone(&self) -> Self {
        Self {
            overlay: self.overlay.clone(),
            frozen: self.frozen.clone(),
            base: Arc::clone(&self.base),
            len: self.len,
            fold: self.fold.clone(),
            auto_fold: self.auto_fold,
        }
    }
}

impl<K: Ord + Clone, V: Clone> Default for LayeredMap<K, V> {
    fn default() -> Self {
        Self::from_base(SortedRun::default())
    }
}

impl<K: Ord + Clone + fmt::Debug, V: Clone + fmt::Debug> fmt::Debug for LayeredMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K, V> LayeredMap<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Records a change in the overlay, then folds or installs a fold if it is time.
    fn after_write(&mut self) {
        if let Some(fold) = &self.fold {
            if let Some(new_base) = fold.result() {
                self.install(new_base);
            }
            return;
        }
        if self.auto_fold && self.overlay.len() >= FOLD_MIN.max(self.base.len() / FOLD_FRACTION) {
            self.start_fold();
        }
    }

    /// Cuts the overlay into `frozen` and merges it over the base on a worker thread.
    /// O(1) here. Does nothing while a fold is pending.
    pub(crate) fn start_fold(&mut self) {
        if self.fold.is_some() || self.overlay.is_empty() {
            return;
        }
        debug_assert!(self.frozen.is_empty(), "frozen without a fold");
        if let Some(fold) = Fold::spawn(Arc::clone(&self.base), self.overlay.clone()) {
            self.frozen = std::mem::take(&mut self.overlay);
            self.fold = Some(fold);
        }
    }

    /// Waits for a pending fold and installs it.
    #[cfg(test)]
    pub(crate) fn finish_fold(&mut self) {
        if let Some(fold) = &self.fold {
            let new_base = fold.wait();
            self.install(new_base);
        }
    }

    /// Replaces `frozen` over `base` by the merged base; the old layers are dropped on
    /// another thread (dropping a million entries takes milliseconds).
    fn install(&mut self, new_base: Arc<SortedRun<K, V>>) {
        let old_base = std::mem::replace(&mut self.base, new_base);
        let old_frozen = std::mem::take(&mut self.frozen);
        let old_fold = self.fold.take();
        crate::fold::drop_elsewhere((old_base, old_frozen, old_fold));
        self.debug_check();
    }

    /// Sets `key` to `value`; returns the previous value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.get(&key).cloned();
        if old.is_none() {
            self.len += 1;
        }
        self.overlay.insert(key, Some(value));
        self.after_write();
        old
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let old = self.get(key).cloned()?;
        self.len -= 1;
        if self.below_overlay(key).is_some() {
            self.overlay.insert(key.clone(), None);
        } else {
            // Nothing below to hide: drop the overlay's entry instead of a tombstone.
            self.overlay.remove(key);
        }
        self.after_write();
        Some(old)
    }
}

impl<K: Ord + Clone, V: Clone> LayeredMap<K, V> {
    /// A map of exactly `base`.
    pub(crate) fn from_base(base: SortedRun<K, V>) -> Self {
        Self {
            len: base.len(),
            overlay: OrdMap::new(),
            frozen: OrdMap::new(),
            base: Arc::new(base),
            fold: None,
            auto_fold: true,
        }
    }

    /// The same map, never folding on its own (tests drive [`start_fold`]).
    #[cfg(test)]
    pub(crate) fn manual_fold(mut self) -> Self {
        self.auto_fold = false;
        self
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True without keys.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.overlay.get(key) {
            Some(change) => change.as_ref(),
            None => self.below_overlay(key),
        }
    }

    fn below_overlay<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.frozen.get(key) {
            Some(change) => change.as_ref(),
            None => self.base.get(key),
        }
    }

    /// True if `key` is present.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// All entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let overlay = self.overlay.iter().map(|(k, c)| (k, c.as_ref()));
        let frozen = self.frozen.iter().map(|(k, c)| (k, c.as_ref()));
        let base = self.base.iter().map(|(k, v)| (k, Some(v)));
        Merge::new(Merge::new(overlay, frozen), base).filter_map(|(k, v)| v.map(|v| (k, v)))
    }

    /// Entries in the overlays (for tests of the fold policy).
    #[cfg(test)]
    pub(crate) fn overlay_len(&self) -> usize {
        self.overlay.len() + self.frozen.len()
    }

    /// True while a fold is pending.
    #[cfg(test)]
    pub(crate) fn folding(&self) -> bool {
        self.fold.is_some()
    }

    fn debug_check(&self) {
        #[cfg(debug_assertions)]
        if self.len < 4096 {
            self.check();
        }
    }

    /// Asserts the invariants (O(n)).
    #[cfg(any(test, debug_assertions))]
    pub(crate) fn check(&self) {
        assert_eq!(self.iter().count(), self.len, "layered map: len is off");
        assert!(
            self.fold.is_some() || self.frozen.is_empty(),
            "layered map: a frozen layer without a fold"
        );
        if let Some(fold) = &self.fold {
            assert!(
                fold.is_of(&self.base),
                "layered map: the pending fold is of another base"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Step {
        Insert(u8, u16),
        Remove(u8),
        /// Keep a clone (a snapshot view) and check it later.
        Clone,
        StartFold,
        FinishFold,
        /// Rebuild from the entries in order, as a restore does.
        Restore,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (any::<u8>(), any::<u16>()).prop_map(|(k, v)| Step::Insert(k % 64, v)),
            4 => any::<u8>().prop_map(|k| Step::Remove(k % 64)),
            1 => Just(Step::Clone),
            1 => Just(Step::StartFold),
            1 => Just(Step::FinishFold),
            1 => Just(Step::Restore),
        ]
    }

    fn same(map: &LayeredMap<u8, u16>, model: &BTreeMap<u8, u16>) {
        map.check();
        assert_eq!(map.len(), model.len());
        assert!(map.iter().eq(model.iter()), "{map:?} vs {model:?}");
        for k in 0..64 {
            assert_eq!(map.get(&k), model.get(&k), "key {k}");
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreemap(steps in proptest::collection::vec(step(), 1..200)) {
            let mut map = LayeredMap::default().manual_fold();
            let mut model = BTreeMap::new();
            let mut views = Vec::new();
            for s in steps {
                match s {
                    Step::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                    Step::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                    Step::Clone => views.push((map.clone(), model.clone())),
                    Step::StartFold => map.start_fold(),
                    Step::FinishFold => map.finish_fold(),
                    Step::Restore => {
                        let entries = map.iter().map(|(k, v)| (*k, *v)).collect();
                        map = LayeredMap::from_base(SortedRun::from_sorted(entries)).manual_fold();
                    }
                }
                same(&map, &model);
            }
            map.finish_fold();
            same(&map, &model);
            for (view, at) in &views {
                same(view, at);
            }
        }
    }

    #[test]
    fn writes_fold_on_their_own_into_the_base() {
        let mut map = LayeredMap::default();
        let n = FOLD_MIN as u32 * 3;
        for k in 0..n {
            map.insert(k, k);
        }
        map.finish_fold();
        assert!(
            map.overlay_len() < FOLD_MIN,
            "overlays hold {} of {n}",
            map.overlay_len()
        );
        for k in (0..n).step_by(2) {
            assert_eq!(map.remove(&k), Some(k));
        }
        map.finish_fold();
        assert!(!map.folding());
        assert_eq!(map.len(), n as usize / 2);
        assert!(map.iter().map(|(k, _)| *k).eq((1..n).step_by(2)));
    }
}
