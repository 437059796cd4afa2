//! Named failpoints for tests: make a chosen step of a write fail, as a crash there would.
//!
//! Backends call [`FaultPlan::check`] at each persistence step (before and after a log
//! write, its sync, a snapshot write, its sync, its rename, the directory sync). With no
//! plan installed the check is one branch on a `None`.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::error::StorageError;

/// A set of armed failpoints and a record of every point reached.
#[derive(Debug, Default)]
pub struct FaultPlan {
    armed: Mutex<HashMap<String, u64>>,
    hits: Mutex<Vec<String>>,
}

impl FaultPlan {
    /// A plan with nothing armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `point` to fail on its `nth` hit from now (1 = the next hit).
    pub fn fail_at(&self, point: &str, nth: u64) {
        assert!(nth >= 1, "fail_at({point}, 0): hits are counted from 1");
        self.armed.lock().insert(point.to_string(), nth);
    }

    /// Disarms every point.
    pub fn clear(&self) {
        self.armed.lock().clear();
    }

    /// Called by a backend at a named step. Fails if the point is armed and due.
    pub fn check(&self, point: &'static str) -> Result<(), StorageError> {
        self.hits.lock().push(point.to_string());
        let mut armed = self.armed.lock();
        if let Some(left) = armed.get_mut(point) {
            *left -= 1;
            if *left == 0 {
                armed.remove(point);
                return Err(StorageError::Injected {
                    point: point.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Every point reached so far, in order (with repeats).
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().clone()
    }

    /// The distinct points reached so far, in order of first hit.
    pub fn distinct_points(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for h in self.hits.lock().iter() {
            if !seen.contains(h) {
                seen.push(h.clone());
            }
        }
        seen
    }
}

/// Calls `plan.check(point)` when a plan is installed.
pub(crate) fn check(
    plan: &Option<std::sync::Arc<FaultPlan>>,
    point: &'static str,
) -> Result<(), StorageError> {
    match plan {
        Some(p) => p.check(point),
        None => Ok(()),
    }
}
