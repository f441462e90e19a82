//! The branch's wall clock and the [`Clock`] port. Dates the customer says ("明天",
//! "下周三") are resolved in the branch's time zone: `[branch] time_zone`, an IANA name,
//! `Asia/Shanghai` by default (mainland China has one zone without daylight saving,
//! UTC+08:00). The zone is process-wide: start-up sets it ([`set_branch_zone`]) before
//! anything reads the clock. [`branch_offset`] is the zone's offset *now*, which is exact
//! for zones without daylight saving (all of China) and right within a season elsewhere.

use std::sync::RwLock;

use chrono::{DateTime, FixedOffset, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// The documented default branch time zone.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

static BRANCH_ZONE: RwLock<Tz> = RwLock::new(Tz::Asia__Shanghai);

/// Parses an IANA time-zone name (`Asia/Shanghai`, `Asia/Hong_Kong`, `UTC`).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("`{name}` is not an IANA time zone (e.g. \"{DEFAULT_TIME_ZONE}\")"))
}

/// Makes `zone` the branch's time zone for this process.
pub fn set_branch_zone(zone: Tz) {
    *BRANCH_ZONE.write().unwrap_or_else(|e| e.into_inner()) = zone;
}

/// The branch's time zone.
pub fn branch_zone() -> Tz {
    *BRANCH_ZONE.read().unwrap_or_else(|e| e.into_inner())
}

/// The branch zone's offset from UTC now (UTC+08:00 for Asia/Shanghai).
pub fn branch_offset() -> FixedOffset {
    branch_offset_at(Utc::now())
}

/// The branch zone's offset from UTC at `at`.
pub fn branch_offset_at(at: DateTime<Utc>) -> FixedOffset {
    branch_zone()
        .offset_from_utc_datetime(&at.naive_utc())
        .fix()
}

/// Now, in branch time.
pub fn now_local() -> DateTime<FixedOffset> {
    let now = Utc::now();
    now.with_timezone(&branch_offset_at(now))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_zone_is_shanghai_at_plus_eight_hours() {
        let zone = parse_zone(DEFAULT_TIME_ZONE).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap();
        assert_eq!(
            zone.offset_from_utc_datetime(&at.naive_utc()).fix(),
            FixedOffset::east_opt(8 * 3600).unwrap()
        );
    }

    #[test]
    fn zones_with_daylight_saving_give_the_offset_in_effect() {
        let zone = parse_zone("Europe/Berlin").unwrap();
        let winter = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 7, 15, 12, 0, 0).unwrap();
        let off = |t: DateTime<Utc>| zone.offset_from_utc_datetime(&t.naive_utc()).fix();
        assert_eq!(off(winter).local_minus_utc(), 3600);
        assert_eq!(off(summer).local_minus_utc(), 7200);
    }

    #[test]
    fn an_unknown_zone_is_refused_with_an_example() {
        let e = parse_zone("Beijing").unwrap_err();
        assert!(e.contains("Asia/Shanghai"), "{e}");
        assert!(parse_zone("+08:00").is_err());
    }
}
