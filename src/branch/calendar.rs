//! When the branch works (`calendar:` of the branch file): open hours, open weekdays and
//! holidays, in branch time (`[branch] time_zone`). Appointments are booked inside it, and ticket SLA
//! deadlines count only its business minutes. Deadlines are stored as absolute instants, so
//! a restart or a clock jump never moves them.

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};

/// When the branch works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub opens: NaiveTime,
    pub closes: NaiveTime,
    /// 1 = Monday … 7 = Sunday.
    pub weekdays: BTreeSet<u32>,
    pub holidays: BTreeSet<NaiveDate>,
}

/// Longest search for an open day (a calendar without any would loop forever).
const MAX_DAYS: i64 = 3660;

impl Calendar {
    /// Whether the branch opens on `d` (an open weekday and no holiday).
    pub fn open_on(&self, d: NaiveDate) -> bool {
        self.weekdays.contains(&d.weekday().number_from_monday()) && !self.holidays.contains(&d)
    }

    /// The instant (ms since the epoch) `minutes` business minutes after `start_ms`.
    pub fn add_minutes(&self, start_ms: i64, minutes: u32) -> i64 {
        let tz = crate::domain::clock::branch_offset();
        let Some(start) = tz.timestamp_millis_opt(start_ms).single() else {
            return start_ms;
        };
        let mut at: NaiveDateTime = start.naive_local();
        let mut left = Duration::minutes(i64::from(minutes));
        for _ in 0..MAX_DAYS {
            let day = at.date();
            if !self.open_on(day) || at.time() >= self.closes {
                at = (day + Duration::days(1)).and_time(self.opens);
                continue;
            }
            if at.time() < self.opens {
                at = day.and_time(self.opens);
            }
            let available = day.and_time(self.closes) - at;
            if left <= available {
                let end = at + left;
                return tz
                    .from_local_datetime(&end)
                    .single()
                    .map_or(start_ms, |t| t.timestamp_millis());
            }
            left -= available;
            at = (day + Duration::days(1)).and_time(self.opens);
        }
        start_ms + i64::from(minutes) * 60_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn calendar() -> Calendar {
        Calendar {
            opens: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            closes: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            weekdays: (1..=5).collect(),
            holidays: [NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()].into(),
        }
    }

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn minutes_count_only_open_hours() {
        let c = calendar();
        // Wednesday 16:50 + 30 min → Thursday 09:20.
        assert_eq!(
            c.add_minutes(ms("2026-11-25T16:50:00+08:00"), 30),
            ms("2026-11-26T09:20:00+08:00")
        );
        // Friday 16:00 + 120 min → Monday 10:00 (the weekend does not count).
        assert_eq!(
            c.add_minutes(ms("2026-11-27T16:00:00+08:00"), 120),
            ms("2026-11-30T10:00:00+08:00")
        );
        // Monday 30 Nov 16:30 + 60 min → Wednesday 09:30 (1 Dec is a holiday).
        assert_eq!(
            c.add_minutes(ms("2026-11-30T16:30:00+08:00"), 60),
            ms("2026-12-02T09:30:00+08:00")
        );
        // Before opening: counting starts at 09:00.
        assert_eq!(
            c.add_minutes(ms("2026-11-25T07:00:00+08:00"), 5),
            ms("2026-11-25T09:05:00+08:00")
        );
    }

    proptest! {
        #[test]
        fn deadlines_never_come_before_the_start_and_grow_with_minutes(
            start in 1_700_000_000_000i64..1_900_000_000_000i64,
            a in 0u32..5000,
            b in 0u32..5000,
        ) {
            let c = calendar();
            let (x, y) = (c.add_minutes(start, a.min(b)), c.add_minutes(start, a.max(b)));
            prop_assert!(x >= start);
            prop_assert!(y >= x);
        }
    }
}
