//! [`Backoff`]: exponential reconnection delays with jitter.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Delays between connection attempts: `min`, doubling per attempt up to `max`; each
/// delay is drawn uniformly from the upper half of the current step (`[d/2, d]`), so
/// that peers that lost each other at the same moment do not redial in lockstep.
#[derive(Debug)]
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    rng: SmallRng,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            min,
            max: max.max(min),
            current: min,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The next delay; the step doubles for the attempt after.
    pub(super) fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = step.saturating_mul(2).min(self.max);
        let half = step / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(self.rng.gen_range(0..=nanos))
    }

    /// Back to the first step (after a connection that lasted).
    pub(super) fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_max_with_jitter_in_the_upper_half() {
        let min = Duration::from_millis(10);
        let max = Duration::from_millis(100);
        let mut b = Backoff::new(min, max, 7);
        let mut step = min;
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(d >= step / 2 && d <= step, "{d:?} for step {step:?}");
            step = (step * 2).min(max);
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
