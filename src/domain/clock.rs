//! The branch's wall clock and the [`Clock`] port. Dates the customer says ("明天",
//! "下周三") are resolved in the branch's time zone; mainland China has one zone without
//! daylight saving (UTC+08:00).

use chrono::{DateTime, FixedOffset, Utc};

/// UTC+08:00, China Standard Time.
pub fn branch_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// Now, in branch time.
pub fn now_local() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&branch_offset())
}

/// Where "now" comes from, so code that depends on the date (booking, "明天") can be run
/// at a fixed time in tests.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in branch time.
    fn now(&self) -> DateTime<FixedOffset>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<FixedOffset> {
        now_local()
    }
}

/// A clock that always says the same time.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<FixedOffset>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<FixedOffset> {
        self.0
    }
}
