//! Rate limits of a kiosk connection: a token bucket per limit (messages, audio time).

use std::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> TokenBucket {
        TokenBucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            at: Instant::now(),
        }
    }

    /// Takes one token; false when none is left.
    pub fn take(&mut self) -> bool {
        self.take_n(1)
    }

    /// Takes `n` tokens; false (and none taken) when fewer are left.
    pub fn take_n(&mut self, n: u32) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_bucket_allows_its_burst_then_refuses() {
        let mut b = TokenBucket::new(1, 3);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
    }
}
