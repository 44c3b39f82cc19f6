//! The master driver's tick clock: how many ticks of `tick_interval_ms` fell due since the
//! driver last ticked the core (`docs/protocol.md` §7.2).
//!
//! Why it exists: a stop-the-world pause (a GC pause, `SIGSTOP`, a frozen event loop) shows up
//! only as time that passed without a tick. Handing the core the number of due ticks
//! (`Master::elapse`) lets it tell a pause (from `Config::pause_threshold_ticks` on: check-quorum
//! first, `Pause`/`Resume` traced) from a late tick (ordinary ticks), instead of firing every
//! overdue tick as a burst of ordinary ones, which would let a resumed leader evict every
//! follower (`docs/protocol.md` §7.2). Ticks are counted from a fixed start, so a late tick is
//! caught up by the next one and nothing drifts.

use std::time::Duration;

use tokio::time::Instant;

/// Counts ticks on the host's monotonic clock: tick `n` falls due at `start + n * interval`.
#[derive(Clone, Debug)]
pub struct TickClock {
    start: Instant,
    interval: Duration,
    /// Ticks already handed to the core (tick 0 falls due at `start`).
    ticks_handed: u64,
}

impl TickClock {
    /// A clock whose first tick falls due at `start`. `interval` must not be zero (the host's
    /// configuration validation refuses `tick_interval_ms = 0`).
    pub fn new(start: Instant, interval: Duration) -> TickClock {
        assert!(!interval.is_zero(), "a tick interval is at least 1 ms");
        TickClock {
            start,
            interval,
            ticks_handed: 0,
        }
    }

    /// The ticks that fell due by `now` and were not handed out yet (0 when called again
    /// within the same tick); they count as handed from now on.
    pub fn due(&mut self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        let reached = elapsed.as_nanos() / self.interval.as_nanos();
        let due_by_now = u64::try_from(reached).unwrap_or(u64::MAX).saturating_add(1);
        let due = due_by_now.saturating_sub(self.ticks_handed);
        self.ticks_handed = self.ticks_handed.max(due_by_now);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::Config;

    const INTERVAL: Duration = Duration::from_millis(50);

    #[test]
    fn one_tick_per_interval_and_late_ticks_caught_up() {
        let start = Instant::now();
        let mut clock = TickClock::new(start, INTERVAL);
        assert_eq!(clock.due(start), 1);
        assert_eq!(clock.due(start + Duration::from_millis(10)), 0);
        assert_eq!(clock.due(start + Duration::from_millis(50)), 1);
        // A tick 70 ms late: two due, then the next one on schedule is one.
        assert_eq!(clock.due(start + Duration::from_millis(170)), 2);
        assert_eq!(clock.due(start + Duration::from_millis(200)), 1);
    }

    #[test]
    fn a_frozen_event_loop_is_a_pause_and_a_late_tick_is_not() {
        let config = Config::default();
        let threshold = config.pause_threshold_ticks();
        let start = Instant::now();
        let mut clock = TickClock::new(start, INTERVAL);
        assert_eq!(clock.due(start), 1);
        // The next tick comes one interval late: below the threshold, ordinary ticks.
        let late = clock.due(start + 2 * INTERVAL);
        assert_eq!(late, 2);
        assert!(late < threshold);
        // Frozen for a second (20 intervals): a pause.
        let frozen = clock.due(start + 2 * INTERVAL + Duration::from_secs(1));
        assert_eq!(frozen, 20);
        assert!(frozen >= threshold);
    }
}
