//! Virtual time.
//!
//! The simulation's clock is a `u64` count of microseconds that only moves when the
//! event loop jumps to the next scheduled event: idle time costs nothing. Every node
//! ticks its core once per [`TICK_US`] of virtual time (the 10 ms tick that
//! [`Config::new`](crate::Config::new)'s defaults assume: 30 ticks = 300 ms election
//! timeout, 10 ticks = 100 ms heartbeat), each with its own random phase so that the
//! nodes' ticks do not line up.

use std::time::Duration;

/// Virtual microseconds since the simulation started.
pub type Micros = u64;

/// One virtual millisecond.
pub const MS: Micros = 1_000;
/// One virtual second.
pub const SECOND: Micros = 1_000_000;
/// The core's tick: 10 ms of virtual time.
pub const TICK_US: Micros = 10 * MS;

/// Converts a [`Duration`] to virtual microseconds (saturating).
pub fn micros(d: Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Formats a virtual instant as seconds with millisecond precision, e.g. `12.345s`.
pub fn fmt_time(t: Micros) -> String {
    format!("{}.{:06}s", t / SECOND, t % SECOND)
}

/// When a node ticks: a fixed period with an optional per-tick jitter, modelling
/// imperfect timers (a real node's 10 ms timer drifts a little).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickPlan {
    /// The nominal period.
    pub period_us: Micros,
    /// Each interval is `period_us ± jitter_us` (uniform).
    pub jitter_us: Micros,
}

impl Default for TickPlan {
    fn default() -> Self {
        Self {
            period_us: TICK_US,
            jitter_us: 0,
        }
    }
}

impl TickPlan {
    /// The delay until the next tick, given a uniform random value in `0..=2*jitter_us`.
    pub fn next_interval(&self, draw: impl FnOnce(Micros) -> Micros) -> Micros {
        if self.jitter_us == 0 {
            return self.period_us;
        }
        let j = self.jitter_us.min(self.period_us - 1);
        let d = draw(2 * j);
        (self.period_us - j + d).max(1)
    }
}
