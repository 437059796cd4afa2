//! [`LoadProgress`]: how far a starting replica is in loading its state: restoring its
//! newest snapshot, then replaying the log entries it knew to be committed when it
//! started. Until both are done the replica is *alive* but not *ready*: the server
//! answers `-LOADING` (as Redis does while it reads its RDB file) and `INFO` reports
//! `loading:1` with a percentage and an estimate of the time left.
//!
//! The apply thread is the only writer; readers (INFO, the `-LOADING` gate, the progress
//! log) see atomics and never wait on it.
//!
//! The percentage counts work items: snapshot keys restored plus log entries replayed,
//! out of the snapshot's key count plus the entries between the snapshot and the
//! commit index at start. The estimate extrapolates the rate so far.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

/// Where a replica is in loading its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPhase {
    /// Restoring the newest local snapshot.
    Snapshot,
    /// Applying the log entries after the snapshot, up to the commit index at start.
    Replay,
    /// Loaded: serving.
    Ready,
    /// Loading failed (an unreadable snapshot): the replica will never be ready.
    Failed,
}

impl LoadPhase {
    fn from_u8(v: u8) -> LoadPhase {
        match v {
            0 => LoadPhase::Snapshot,
            1 => LoadPhase::Replay,
            2 => LoadPhase::Ready,
            _ => LoadPhase::Failed,
        }
    }

    /// Its name, as `INFO` reports it (`loading_phase`).
    pub fn name(self) -> &'static str {
        match self {
            LoadPhase::Snapshot => "snapshot",
            LoadPhase::Replay => "replay",
            LoadPhase::Ready => "ready",
            LoadPhase::Failed => "failed",
        }
    }
}

/// A point-in-time view of [`LoadProgress`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoadStatus {
    /// The phase.
    pub phase: LoadPhase,
    /// Snapshot keys restored so far, out of `keys_total` (0 until the snapshot's
    /// header is read, and without a snapshot).
    pub keys_done: u64,
    /// Keys the snapshot holds.
    pub keys_total: u64,
    /// Log entries replayed so far, out of `entries_total`.
    pub entries_done: u64,
    /// Entries between the snapshot and the commit index at start.
    pub entries_total: u64,
    /// Percent of the work items done, 0 to 100 (100 once ready).
    pub percent: f64,
    /// Estimated seconds left (0 once ready; `None` before any progress to go by).
    pub eta_seconds: Option<u64>,
    /// Time since loading began (until ready: the time it took).
    pub elapsed: Duration,
    /// When loading began, in seconds since the Unix epoch.
    pub start_unix: u64,
    /// Why loading failed, in phase [`LoadPhase::Failed`].
    pub error: Option<String>,
}

/// Progress of loading a replica's state. See the module documentation.
#[derive(Debug)]
pub struct LoadProgress {
    phase: AtomicU8,
    snapshot_index: u64,
    replay_to: u64,
    keys_done: AtomicU64,
    keys_total: AtomicU64,
    applied: AtomicU64,
    started: Instant,
    start_unix: u64,
    /// Nanoseconds from `started` to ready (0 until then).
    took_ns: AtomicU64,
    error: Mutex<Option<String>>,
    changed: Condvar,
}

impl LoadProgress {
    /// Loading a snapshot at `snapshot_index` (0: none), then replaying up to
    /// `replay_to` (the commit index known at start).
    pub fn new(snapshot_index: u64, replay_to: u64) -> LoadProgress {
        LoadProgress {
            phase: AtomicU8::new(LoadPhase::Snapshot as u8),
            snapshot_index,
            replay_to: replay_to.max(snapshot_index),
            keys_done: AtomicU64::new(0),
            keys_total: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            started: Instant::now(),
            start_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            took_ns: AtomicU64::new(0),
            error: Mutex::new(None),
            changed: Condvar::new(),
        }
    }

    /// A replica with nothing to load (tests, and state machines built in memory).
    pub fn ready() -> LoadProgress {
        let p = LoadProgress::new(0, 0);
        p.set_phase(LoadPhase::Ready);
        p
    }

    /// The snapshot's header says it holds `total` keys.
    pub fn snapshot_keys_total(&self, total: u64) {
        self.keys_total.store(total, Ordering::Relaxed);
    }

    /// `done` of the snapshot's keys are restored.
    pub fn snapshot_keys_done(&self, done: u64) {
        self.keys_done.store(done, Ordering::Relaxed);
    }

    /// The snapshot is restored (or there was none): replay begins.
    pub fn snapshot_restored(&self) {
        debug_assert_eq!(self.phase(), LoadPhase::Snapshot);
        self.applied.store(self.snapshot_index, Ordering::Relaxed);
        self.set_phase(LoadPhase::Replay);
        self.applied(self.snapshot_index);
    }

    /// The apply thread applied through `index` (an entry, or an installed snapshot).
    pub fn applied(&self, index: u64) {
        if self.phase() != LoadPhase::Replay {
            return;
        }
        self.applied.store(index, Ordering::Relaxed);
        if index >= self.replay_to {
            let ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.took_ns.store(ns.max(1), Ordering::Relaxed);
            self.set_phase(LoadPhase::Ready);
        }
    }

    /// Loading failed for `reason`: the replica will never be ready.
    pub fn fail(&self, reason: String) {
        *self.error.lock() = Some(reason);
        self.set_phase(LoadPhase::Failed);
    }

    fn set_phase(&self, phase: LoadPhase) {
        // The lock orders the store against `wait`'s check, so no wake-up is lost.
        let _guard = self.error.lock();
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_all();
    }

    /// The current phase.
    pub fn phase(&self) -> LoadPhase {
        LoadPhase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Still restoring or replaying (not ready, not failed).
    pub fn is_loading(&self) -> bool {
        matches!(self.phase(), LoadPhase::Snapshot | LoadPhase::Replay)
    }

    /// Waits up to `timeout` for loading to end; `Ok` once ready, `Err` with the reason
    /// if it failed, or with "still loading" if the time ran out.
    pub fn wait(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut error = self.error.lock();
        loop {
            match self.phase() {
                LoadPhase::Ready => return Ok(()),
                LoadPhase::Failed => {
                    return Err(error.clone().unwrap_or_else(|| "loading failed".into()));
                }
                _ => {}
            }
            if self.changed.wait_until(&mut error, deadline).timed_out() && self.is_loading() {
                return Err(format!(
                    "still loading after {:.1} s",
                    timeout.as_secs_f64()
                ));
            }
        }
    }

    /// When loading finished, if it has.
    pub fn ready_at(&self) -> Option<Instant> {
        match self.took_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.started + Duration::from_nanos(ns)),
        }
    }

    /// A view of the progress now.
    pub fn status(&self) -> LoadStatus {
        let phase = self.phase();
        let keys_total = self.keys_total.load(Ordering::Relaxed);
        let keys_done = self.keys_done.load(Ordering::Relaxed).min(keys_total);
        let entries_total = self.replay_to - self.snapshot_index;
        let entries_done = match phase {
            LoadPhase::Snapshot => 0,
            LoadPhase::Ready => entries_total,
            _ => self
                .applied
                .load(Ordering::Relaxed)
                .saturating_sub(self.snapshot_index)
                .min(entries_total),
        };
        let took = self.took_ns.load(Ordering::Relaxed);
        let elapsed = if took > 0 {
            Duration::from_nanos(took)
        } else {
            self.started.elapsed()
        };
        let (percent, eta_seconds) = if phase == LoadPhase::Ready {
            (100.0, Some(0))
        } else {
            let done = keys_done + entries_done;
            // Before the snapshot's header is read its key count is unknown: count
            // what is known.
            let total = (keys_total + entries_total).max(done).max(1);
            let percent = done as f64 * 100.0 / total as f64;
            let eta = (done > 0).then(|| {
                let left = (total - done) as f64 * elapsed.as_secs_f64() / done as f64;
                left.ceil() as u64
            });
            (percent, eta)
        };
        LoadStatus {
            phase,
            keys_done,
            keys_total,
            entries_done,
            entries_total,
            percent,
            eta_seconds,
            elapsed,
            start_unix: self.start_unix,
            error: self.error.lock().clone(),
        }
    }

    /// Logs the progress once a second while loading, from a thread of its own, and
    /// once more with the time it took when loading took longer than a second.
    pub fn log_while_loading(self: &std::sync::Arc<Self>, node: u64) {
        let me = std::sync::Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("load-progress".into())
            .spawn(move || {
                let mut logged = false;
                while me.wait(Duration::from_secs(1)).is_err() && me.is_loading() {
                    let s = me.status();
                    tracing::info!(
                        node,
                        phase = s.phase.name(),
                        percent = format!("{:.1}", s.percent),
                        keys = format!("{}/{}", s.keys_done, s.keys_total),
                        entries = format!("{}/{}", s.entries_done, s.entries_total),
                        eta_s = s.eta_seconds.map_or("-".into(), |e| e.to_string()),
                        "loading"
                    );
                    logged = true;
                }
                let s = me.status();
                if logged && s.phase == LoadPhase::Ready {
                    tracing::info!(
                        node,
                        keys = s.keys_total,
                        entries = s.entries_total,
                        took_ms = s.elapsed.as_millis() as u64,
                        "loaded"
                    );
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(node, error = %e, "no thread to log loading progress");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_keys_then_entries() {
        let p = LoadProgress::new(10, 30);
        assert!(p.is_loading());
        p.snapshot_keys_total(60);
        p.snapshot_keys_done(30);
        let s = p.status();
        assert_eq!(
            (s.phase, s.keys_done, s.entries_total),
            (LoadPhase::Snapshot, 30, 20)
        );
        assert!((s.percent - 37.5).abs() < 1e-9, "{s:?}");
        p.snapshot_keys_done(60);
        p.snapshot_restored();
        assert_eq!(p.phase(), LoadPhase::Replay);
        p.applied(20);
        let s = p.status();
        assert_eq!(s.entries_done, 10);
        assert!((s.percent - 87.5).abs() < 1e-9, "{s:?}");
        assert!(p.wait(Duration::from_millis(1)).is_err());
        p.applied(30);
        assert_eq!(p.phase(), LoadPhase::Ready);
        assert!(p.wait(Duration::ZERO).is_ok());
        let s = p.status();
        assert_eq!((s.percent, s.eta_seconds), (100.0, Some(0)));
        // Applies after ready change nothing.
        p.applied(40);
        assert_eq!(p.status().entries_done, 20);
    }

    #[test]
    fn nothing_to_replay_is_ready_after_the_snapshot() {
        let p = LoadProgress::new(5, 3);
        p.snapshot_restored();
        assert_eq!(p.phase(), LoadPhase::Ready);
        let p = LoadProgress::new(0, 0);
        p.snapshot_restored();
        assert!(!p.is_loading());
    }

    #[test]
    fn a_failure_is_reported_to_waiters() {
        let p = std::sync::Arc::new(LoadProgress::new(1, 1));
        let waiter = {
            let p = std::sync::Arc::clone(&p);
            std::thread::spawn(move || p.wait(Duration::from_secs(30)))
        };
        p.fail("snapshot unreadable: bad magic".into());
        let got = waiter.join().expect("waiter");
        assert_eq!(got, Err("snapshot unreadable: bad magic".into()));
        assert!(!p.is_loading());
        assert_eq!(p.status().phase, LoadPhase::Failed);
    }
}
