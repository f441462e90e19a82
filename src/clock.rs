//! The branch's wall clock. Dates the customer says ("明天", "下周三") are resolved in the
//! branch's time zone; mainland China has one zone without daylight saving (UTC+08:00).

use chrono::{DateTime, FixedOffset, Utc};

/// UTC+08:00, China Standard Time.
pub fn branch_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// Now, in branch time.
pub fn now_local() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&branch_offset())
}
