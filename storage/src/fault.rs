//! Named failpoints for tests: make a chosen step of a write fail, as a crash (or a
//! full disk) there would.
//!
//! Backends call [`FaultPlan::check`] at each persistence step (before and after a log
//! write, its sync, a snapshot write, its sync, its rename, the directory sync, a log
//! compaction); the KV service adds the steps of applying an installed snapshot. With
//! no plan installed the check is one branch on a `None`, and in release builds
//! without the `testing` feature it is compiled out altogether.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use parking_lot::Mutex;

use crate::error::StorageError;

/// How an armed point fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// [`StorageError::Injected`]: a crash at this step.
    Crash,
    /// [`StorageError::Io`] with this OS error code (e.g. `ENOSPC`), as the system call
    /// at this step would return it.
    Os(i32),
}

#[derive(Debug, Default)]
struct Armed {
    /// Point → (hits left before it fires, how it fails, whether it stays armed).
    points: HashMap<String, (u64, Action, bool)>,
}

/// A set of armed failpoints, a record of every point reached and of every point that
/// fired.
#[derive(Debug, Default)]
pub struct FaultPlan {
    armed: Mutex<Armed>,
    hits: Mutex<Vec<String>>,
    fired: Mutex<Vec<String>>,
}

impl FaultPlan {
    /// A plan with nothing armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `point` to fail with [`StorageError::Injected`] on its `nth` hit from now
    /// (1 = the next hit).
    pub fn fail_at(&self, point: &str, nth: u64) {
        self.arm(point, nth, Action::Crash);
    }

    /// Arms `point` to fail on its `nth` hit with the OS error `errno` (e.g.
    /// `libc::ENOSPC`), as a [`StorageError::Io`] naming the point.
    pub fn fail_with_os_error(&self, point: &str, nth: u64, errno: i32) {
        self.arm(point, nth, Action::Os(errno));
    }

    /// Arms `point` to fail on its `nth` hit as a full disk would (`ENOSPC`).
    pub fn fail_no_space(&self, point: &str, nth: u64) {
        self.fail_with_os_error(point, nth, libc::ENOSPC);
    }

    /// Makes every hit of `point` fail with `ENOSPC` until [`clear`](Self::clear): a
    /// disk that stays full.
    pub fn disk_full(&self, point: &str) {
        self.armed
            .lock()
            .points
            .insert(point.to_string(), (1, Action::Os(libc::ENOSPC), true));
    }

    fn arm(&self, point: &str, nth: u64, action: Action) {
        assert!(nth >= 1, "arming {point} at hit 0: hits are counted from 1");
        self.armed
            .lock()
            .points
            .insert(point.to_string(), (nth, action, false));
    }

    /// Disarms every point.
    pub fn clear(&self) {
        self.armed.lock().points.clear();
    }

    /// Called by a backend at a named step. Fails if the point is armed and due.
    pub fn check(&self, point: &'static str) -> Result<(), StorageError> {
        self.hits.lock().push(point.to_string());
        let mut armed = self.armed.lock();
        let Some((left, action, sticky)) = armed.points.get_mut(point) else {
            return Ok(());
        };
        *left -= 1;
        if *left > 0 {
            return Ok(());
        }
        let action = *action;
        if *sticky {
            *left = 1;
        } else {
            armed.points.remove(point);
        }
        drop(armed);
        self.fired.lock().push(point.to_string());
        Err(match action {
            Action::Crash => StorageError::Injected {
                point: point.to_string(),
            },
            Action::Os(errno) => StorageError::io(
                point,
                PathBuf::from(format!("<failpoint {point}>")),
                io::Error::from_raw_os_error(errno),
            ),
        })
    }

    /// Every point reached so far, in order (with repeats).
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().clone()
    }

    /// The points that fired so far, in order.
    pub fn fired(&self) -> Vec<String> {
        self.fired.lock().clone()
    }

    /// True once `point` fired.
    pub fn has_fired(&self, point: &str) -> bool {
        self.fired.lock().iter().any(|p| p == point)
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
#[cfg(any(debug_assertions, feature = "testing"))]
pub fn check(
    plan: &Option<std::sync::Arc<FaultPlan>>,
    point: &'static str,
) -> Result<(), StorageError> {
    match plan {
        Some(p) => p.check(point),
        None => Ok(()),
    }
}

/// Release builds without the `testing` feature: failpoints are compiled out.
#[cfg(not(any(debug_assertions, feature = "testing")))]
#[inline(always)]
pub fn check(
    _plan: &Option<std::sync::Arc<FaultPlan>>,
    _point: &'static str,
) -> Result<(), StorageError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_fires_on_its_nth_hit_once_and_is_recorded() {
        let plan = FaultPlan::new();
        plan.fail_at("a", 2);
        assert!(plan.check("a").is_ok());
        assert!(plan.check("b").is_ok());
        assert!(matches!(plan.check("a"), Err(StorageError::Injected { point }) if point == "a"));
        assert!(plan.check("a").is_ok(), "fires once");
        assert_eq!(plan.fired(), ["a"]);
        assert!(plan.has_fired("a") && !plan.has_fired("b"));
        assert_eq!(plan.distinct_points(), ["a", "b"]);
        assert_eq!(plan.hits().len(), 4);
    }

    #[test]
    fn an_os_error_names_the_point_and_keeps_its_code() {
        let plan = FaultPlan::new();
        plan.fail_no_space("snapshot.write", 1);
        let e = plan.check("snapshot.write").expect_err("armed");
        assert!(e.is_no_space(), "{e}");
        assert!(e.to_string().contains("snapshot.write"), "{e}");
        plan.disk_full("y");
        assert!(plan.check("y").expect_err("full").is_no_space());
        assert!(plan.check("y").expect_err("still full").is_no_space());
        plan.fail_at("x", 1);
        plan.clear();
        assert!(plan.check("x").is_ok());
        assert!(plan.check("y").is_ok(), "room again");
    }
}
