//! A token bucket: a steady rate with a burst allowance, for routes that anyone may call
//! and that cost CPU (`POST /v1/nlu/parse`). One bucket per node and route; a refusal
//! tells how long to wait.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Admits `per_sec` calls a second on average, `burst` at once.
#[derive(Debug)]
pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket. `per_sec` ≤ 0 admits everything (no limit); `burst` is at least 1.
    pub fn new(per_sec: f64, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            per_sec,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn try_take(&self) -> Result<(), Duration> {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> Result<(), Duration> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = *state;
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let tokens = (tokens + elapsed * self.per_sec).min(self.burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            *state = (tokens, now);
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_then_the_rate_refills_it() {
        let b = TokenBucket::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.try_take_at(t0).is_ok());
        }
        let wait = b.try_take_at(t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        assert!(b.try_take_at(t0 + Duration::from_millis(500)).is_ok());
        assert!(b.try_take_at(t0 + Duration::from_millis(500)).is_err());
        // Never more than the burst, however long it was idle.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.try_take_at(later).is_ok());
        }
        assert!(b.try_take_at(later).is_err());
    }

    #[test]
    fn a_zero_rate_means_no_limit() {
        let b = TokenBucket::new(0.0, 1);
        for _ in 0..1000 {
            assert!(b.try_take().is_ok());
        }
    }
}
