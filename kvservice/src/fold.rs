//! [`Fold`]: merging a [`LayeredMap`](crate::layered_map::LayeredMap)'s frozen overlay
//! over its base into a new base, on a worker thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use imbl::OrdMap;

use crate::sorted_run::SortedRun;

use crate::layered_map::Change;
use crate::merge::Merge;

/// A fold in progress or done. Clones share it.
pub(crate) struct Fold<K, V> {
    /// The base being folded into (to check that an install replaces this one).
    of: Arc<SortedRun<K, V>>,
    shared: Arc<Shared<K, V>>,
}

impl<K, V> Clone for Fold<K, V> {
    fn clone(&self) -> Self {
        Self {
            of: Arc::clone(&self.of),
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<K, V> {
    done: OnceLock<Arc<SortedRun<K, V>>>,
    /// The worker ended without a result (it panicked).
    failed: AtomicBool,
    lock: Mutex<()>,
    ended: Condvar,
}

impl<K, V> Fold<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts merging `frozen` over `base` on a new thread; `None` if no thread could be
    /// started (the caller keeps its layers as they are).
    pub(crate) fn spawn(base: Arc<SortedRun<K, V>>, frozen: OrdMap<K, Change<V>>) -> Option<Self> {
        let shared = Arc::new(Shared {
            done: OnceLock::new(),
            failed: AtomicBool::new(false),
            lock: Mutex::new(()),
            ended: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let input = Arc::clone(&base);
        std::thread::Builder::new()
            .name("kv-store-fold".into())
            .spawn(move || {
                let ended = Ended(&worker);
                let merged = fold(&input, &frozen);
                let _ = worker.done.set(Arc::new(merged));
                drop(ended);
                // The inputs are dropped here, off the writer's thread.
            })
            .ok()?;
        Some(Self { of: base, shared })
    }
}

impl<K, V> Fold<K, V> {
    /// The new base, if the merge is done.
    pub(crate) fn result(&self) -> Option<Arc<SortedRun<K, V>>> {
        self.shared.done.get().cloned()
    }

    /// Blocks until the merge is done.
    #[cfg(test)]
    ///
    /// # Panics
    ///
    /// If the worker panicked.
    pub(crate) fn wait(&self) -> Arc<SortedRun<K, V>> {
        let mut guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(done) = self.shared.done.get() {
                return Arc::clone(done);
            }
            assert!(
                !self.shared.failed.load(Ordering::Acquire),
                "kv store fold: the worker thread panicked"
            );
            guard = self
                .shared
                .ended
                .wait(guard)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// True if this fold replaces `base`.
    #[cfg(any(test, debug_assertions))]
    pub(crate) fn is_of(&self, base: &Arc<SortedRun<K, V>>) -> bool {
        Arc::ptr_eq(&self.of, base)
    }
}

/// Wakes waiters when the worker ends, with or without a result.
struct Ended<'a, K, V>(&'a Shared<K, V>);

impl<K, V> Drop for Ended<'_, K, V> {
    fn drop(&mut self) {
        if self.0.done.get().is_none() {
            self.0.failed.store(true, Ordering::Release);
        }
        let _guard = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.0.ended.notify_all();
    }
}

/// `frozen` over `base`, tombstones applied: O(n).
pub(crate) fn fold<K: Ord + Clone, V: Clone>(
    base: &SortedRun<K, V>,
    frozen: &OrdMap<K, Change<V>>,
) -> SortedRun<K, V> {
    let changes = frozen.iter().map(|(k, c)| (k, c.as_ref()));
    let base = base.iter().map(|(k, v)| (k, Some(v)));
    SortedRun::from_sorted(
        Merge::new(changes, base)
            .filter_map(|(k, v)| v.map(|v| (k.clone(), v.clone())))
            .collect(),
    )
}

/// Drops `garbage` on a thread of its own (freeing a million entries takes
/// milliseconds), or here if no thread can be started.
pub(crate) fn drop_elsewhere<T: Send + 'static>(garbage: T) {
    // If the spawn fails, the closure and the garbage in it are dropped right here.
    let _ = std::thread::Builder::new()
        .name("kv-store-drop".into())
        .spawn(move || drop(garbage));
}
