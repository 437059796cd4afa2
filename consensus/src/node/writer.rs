//! The log writer: a thread that makes the driver's persist batches durable, in order,
//! while the driver goes on sending, receiving and proposing.
//!
//! The driver hands over each `Ready`'s batch with [`Writer::submit`] and never waits
//! for it (except at a [`Writer::wait_all`] barrier). The thread takes every batch
//! queued while its previous write was syncing and writes them as **one** merged batch
//! with one `Persister::write` (group commit), then records the last id written as
//! durable and wakes the driver, which calls `on_persisted` and sends the messages that
//! needed durability. A failed write is recorded and stops the thread: the persister is
//! poisoned, and the driver stops on it.
//!
//! Handing a batch to another thread costs two thread wake-ups, which only pays off
//! when writes are slow (they sync). The writer keeps a moving average of how long
//! writes take; while it is below [`INLINE_BELOW`] and nothing is in flight, the driver
//! writes the batch itself ([`Writer::write_inline`]), as a synchronous driver would.
//!
//! Merging batches `a` then `b` into one is exact: `b`'s truncation removes `a`'s
//! entries at and above it (and the older log's, which `a`'s own truncation, if lower,
//! already covers), `b`'s entries follow, and `b`'s hard state wins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use raftkv_storage::{NodeId, Persister, StorageError, WriteBatch};

use super::driver::Input;

struct Job {
    id: u64,
    batch: WriteBatch,
}

#[derive(Default)]
struct State {
    /// Every batch with an id up to this is durable.
    durable: u64,
    /// The write that failed (taken by the driver).
    failed: Option<StorageError>,
    /// The thread has stopped (after a failure, or when the driver hung up).
    stopped: bool,
}

struct Progress {
    state: Mutex<State>,
    changed: Condvar,
    /// Moving average of the duration of non-empty writes, in nanoseconds.
    avg_write_ns: AtomicU64,
}

impl Progress {
    fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let old = self.avg_write_ns.load(Ordering::Relaxed);
        self.avg_write_ns
            .store(old - old / 8 + ns / 8, Ordering::Relaxed);
    }
}

/// Writes faster than this on average (no sync, or a very fast disk) are done by the
/// driver itself when nothing is in flight.
pub(crate) const INLINE_BELOW: Duration = Duration::from_micros(200);

/// The driver's end of the writer thread.
pub(crate) struct Writer {
    jobs: Option<Sender<Job>>,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
    /// The id of the last batch submitted.
    submitted: u64,
}

/// What the driver learns from [`Writer::poll`].
pub(crate) enum Written {
    /// Batches through this id are durable.
    Durable(u64),
    /// A write failed; the persister is poisoned.
    Failed(StorageError),
}

impl Writer {
    /// Starts the thread. It wakes the driver through `wake` after every write.
    pub(crate) fn start(
        id: NodeId,
        persister: Arc<dyn Persister>,
        wake: Sender<Input>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let progress = Arc::new(Progress {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            avg_write_ns: AtomicU64::new(0),
        });
        let p = Arc::clone(&progress);
        let thread = thread::Builder::new()
            .name(format!("raft-wal-{id}"))
            .spawn(move || run(&*persister, &rx, &p, &wake))?;
        Ok(Self {
            jobs: Some(tx),
            progress,
            thread: Some(thread),
            submitted: 0,
        })
    }

    /// Queues batch `id` (ids increase) for writing. Never blocks.
    pub(crate) fn submit(&mut self, id: u64, batch: WriteBatch) {
        debug_assert!(id > self.submitted, "persist ids increase");
        self.submitted = id;
        if let Some(jobs) = &self.jobs {
            // A stopped thread has recorded why; the driver finds it in `poll`.
            let _ = jobs.send(Job { id, batch });
        }
    }

    /// True when the driver should write batch `id` itself with
    /// [`write_inline`](Self::write_inline): nothing is in flight (every submitted
    /// batch is durable and `acked`) and writes have been fast.
    pub(crate) fn prefers_inline(&self, acked: u64) -> bool {
        self.submitted == acked
            && self.progress.avg_write_ns.load(Ordering::Relaxed) < INLINE_BELOW.as_nanos() as u64
    }

    /// Writes batch `id` on the calling thread (see
    /// [`prefers_inline`](Self::prefers_inline)); on success it counts as submitted and
    /// durable.
    pub(crate) fn write_inline(
        &mut self,
        persister: &dyn Persister,
        id: u64,
        batch: &WriteBatch,
    ) -> Result<(), StorageError> {
        debug_assert!(id > self.submitted, "persist ids increase");
        if !batch.is_empty() {
            let started = Instant::now();
            persister.write(batch)?;
            self.progress.record(started.elapsed());
        }
        self.submitted = id;
        lock(&self.progress.state).durable = id;
        Ok(())
    }

    /// The id of the last batch submitted (0: none yet).
    pub(crate) fn submitted(&self) -> u64 {
        self.submitted
    }

    /// The writer's progress: a failure first, else the durable id.
    pub(crate) fn poll(&self) -> Written {
        let mut state = lock(&self.progress.state);
        match state.failed.take() {
            Some(e) => Written::Failed(e),
            None => Written::Durable(state.durable),
        }
    }

    /// Waits until every submitted batch is durable or the writer failed, then
    /// reports like [`poll`](Self::poll).
    pub(crate) fn wait_all(&self) -> Written {
        let mut state = lock(&self.progress.state);
        while state.durable < self.submitted && state.failed.is_none() && !state.stopped {
            state = self
                .progress
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match state.failed.take() {
            Some(e) => Written::Failed(e),
            None => Written::Durable(state.durable),
        }
    }
}

impl Drop for Writer {
    /// Lets the thread finish the batches already queued, and waits for it: a node
    /// restarted on the same persister must not race its predecessor's writes.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(persister: &dyn Persister, jobs: &Receiver<Job>, progress: &Progress, wake: &Sender<Input>) {
    while let Ok(first) = jobs.recv() {
        let mut last = first.id;
        let mut batch = first.batch;
        while let Ok(next) = jobs.try_recv() {
            merge(&mut batch, next.batch);
            last = next.id;
        }
        let result = if batch.is_empty() {
            Ok(())
        } else {
            let started = Instant::now();
            let r = persister.write(&batch);
            progress.record(started.elapsed());
            r
        };
        let failed = result.is_err();
        {
            let mut state = lock(&progress.state);
            match result {
                Ok(()) => state.durable = last,
                Err(e) => {
                    state.failed = Some(e);
                    state.stopped = true;
                }
            }
        }
        progress.changed.notify_all();
        // The driver may be gone (shutting down); then nobody needs the news.
        let _ = wake.send(Input::Persisted);
        if failed {
            return;
        }
    }
    lock(&progress.state).stopped = true;
    progress.changed.notify_all();
}

/// Makes `a` the batch equal to writing `a`, then `b`.
pub(crate) fn merge(a: &mut WriteBatch, b: WriteBatch) {
    if let Some(t) = b.truncate_from {
        a.entries.retain(|e| e.index < t);
        a.truncate_from = Some(a.truncate_from.map_or(t, |t0| t0.min(t)));
    }
    a.entries.extend(b.entries);
    if b.hard_state.is_some() {
        a.hard_state = b.hard_state;
    }
}

#[cfg(test)]
mod tests {
    use raftkv_storage::{Entry, HardState, MemoryPersister};

    use super::*;

    fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
        (from..=to)
            .map(|index| Entry {
                index,
                term,
                data: vec![index as u8, term as u8],
            })
            .collect()
    }

    fn hs(term: u64, commit: u64) -> HardState {
        HardState {
            term,
            voted_for: None,
            commit,
        }
    }

    /// Writing the batches one by one and writing their merge leave the same state.
    #[test]
    fn a_merged_batch_equals_its_parts_written_in_order() {
        let base = WriteBatch::new()
            .append(entries(1, 6, 1))
            .hard_state(hs(1, 2));
        let cases: Vec<Vec<WriteBatch>> = vec![
            vec![
                WriteBatch::new().append(entries(7, 8, 1)),
                WriteBatch::new()
                    .append(entries(9, 9, 1))
                    .hard_state(hs(1, 5)),
            ],
            vec![
                WriteBatch::new().append(entries(7, 9, 1)),
                WriteBatch::new()
                    .truncate_from(8)
                    .append(entries(8, 10, 2))
                    .hard_state(hs(2, 3)),
            ],
            vec![
                WriteBatch::new().truncate_from(5).append(entries(5, 7, 2)),
                WriteBatch::new().truncate_from(4).append(entries(4, 4, 3)),
                WriteBatch::new().append(entries(5, 6, 3)),
            ],
            vec![
                WriteBatch::new().truncate_from(3).append(entries(3, 4, 2)),
                WriteBatch::new().truncate_from(4).append(entries(4, 5, 3)),
            ],
            vec![WriteBatch::new().hard_state(hs(4, 6)), WriteBatch::new()],
        ];
        for (n, parts) in cases.into_iter().enumerate() {
            let one_by_one = MemoryPersister::new();
            let merged = MemoryPersister::new();
            one_by_one.write(&base).expect("base");
            merged.write(&base).expect("base");
            let mut all = WriteBatch::new();
            for part in parts {
                one_by_one.write(&part).expect("part");
                merge(&mut all, part);
            }
            merged.write(&all).expect("merged");
            let (a, b) = (
                one_by_one.recover().expect("recover"),
                merged.recover().expect("recover"),
            );
            assert_eq!(a.entries, b.entries, "case {n}");
            assert_eq!(a.hard_state, b.hard_state, "case {n}");
        }
    }

    #[test]
    fn batches_become_durable_in_order_and_a_failure_is_reported() {
        let persister = Arc::new(MemoryPersister::new());
        let (wake, woken) = mpsc::channel();
        let mut w = Writer::start(1, Arc::clone(&persister) as _, wake).expect("start");
        w.submit(1, WriteBatch::new().append(entries(1, 2, 1)));
        w.submit(2, WriteBatch::new());
        w.submit(3, WriteBatch::new().append(entries(3, 3, 1)));
        assert!(matches!(w.wait_all(), Written::Durable(3)));
        assert!(matches!(woken.recv(), Ok(Input::Persisted)));
        assert_eq!(persister.recover().expect("recover").entries.len(), 3);
        // A gap is refused by the persister: the writer reports it and stops.
        w.submit(4, WriteBatch::new().append(entries(9, 9, 1)));
        assert!(matches!(w.wait_all(), Written::Failed(_)));
        w.submit(5, WriteBatch::new().append(entries(4, 4, 1)));
        assert!(
            matches!(w.wait_all(), Written::Durable(3)),
            "stopped for good"
        );
        drop(w);
    }
}
