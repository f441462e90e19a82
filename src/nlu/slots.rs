//! Slot extraction (DESIGN.md §NLU contract): `date` (YYYY-MM-DD against a reference time),
//! `time` (HH:MM, 24 h), `amount` (yuan as a decimal string), `currency` (ISO 4217),
//! `phone`, `id_number` (GB 11643 check digit), `card_number` (Luhn) / `card_last4`,
//! `service` (the intent name of a service mentioned).
//!
//! Reads the normalised text (numerals already digits, see [`crate::text::normalize`]). A value
//! that is recognisable but wrong (2月30号, a bad check digit) is not filled; it is reported
//! in [`Slots::rejected`] so the dialog can say exactly what is wrong.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate};
use regex::Regex;
use serde::Serialize;

use crate::domain::ids::{gb11643_ok, luhn_ok};
use crate::text::currency;

/// What was found in one utterance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Slots {
    pub values: BTreeMap<String, String>,
    pub rejected: Vec<Rejected>,
}

/// A value the customer said that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub slot: String,
    /// What was said (masked for identifiers).
    pub text: String,
    /// Stable reason code: `no_such_date`, `date_in_past`, `bad_time`, `bad_check_digit`,
    /// `luhn_failed`.
    pub reason: String,
}

impl Slots {
    fn set(&mut self, slot: &str, value: impl Into<String>) {
        self.values
            .entry(slot.to_string())
            .or_insert_with(|| value.into());
    }

    fn reject(&mut self, slot: &str, text: impl Into<String>, reason: &str) {
        self.rejected.push(Rejected {
            slot: slot.into(),
            text: text.into(),
            reason: reason.into(),
        });
    }
}

/// Phrases that name a service, mapped to its intent (from `dialogs/intents.yaml`).
#[derive(Debug, Clone, Default)]
pub struct ServiceWords {
    /// (phrase, intent), longest first.
    words: Vec<(String, String)>,
}

impl ServiceWords {
    pub fn new(words: impl IntoIterator<Item = (String, String)>) -> ServiceWords {
        let mut words: Vec<(String, String)> = words.into_iter().collect();
        words.sort_by_key(|(w, _)| std::cmp::Reverse(w.chars().count()));
        ServiceWords { words }
    }

    /// The service named earliest in `text` (longest phrase at a position wins).
    pub fn find(&self, text: &str) -> Option<&str> {
        self.words
            .iter()
            .filter_map(|(w, intent)| text.find(w.as_str()).map(|at| (at, intent)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, intent)| intent.as_str())
    }
}

/// Extracts every slot from normalised `text`, resolving dates against `now`.
pub fn extract(text: &str, now: DateTime<FixedOffset>, services: &ServiceWords) -> Slots {
    let mut slots = Slots::default();
    let compact = join_digit_groups(text);
    identifiers(&compact, &mut slots);
    let rest = blank_long_digit_runs(&compact);
    date(&rest, now.date_naive(), &mut slots);
    time(&rest, &mut slots);
    amount(&rest, &mut slots);
    currency(&rest, &mut slots);
    if let Some(service) = services.find(text) {
        slots.set("service", service);
    }
    slots
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("slot regex compiles"))
}

/// "6222 0210 0112 3456" → "6222021001123456": spaces or dashes between digit groups.
fn join_digit_groups(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = i > 0
            && i + 1 < chars.len()
            && chars[i - 1].is_ascii_digit()
            && chars[i + 1].is_ascii_digit();
        if c == ' ' && between_digits && digit_run_len(&chars, i) >= 8 {
            continue;
        }
        out.push(c);
    }
    out
}

/// Digits around position `i` (a separator), counting through further separators.
fn digit_run_len(chars: &[char], i: usize) -> usize {
    let is_part = |c: &char| c.is_ascii_digit() || *c == ' ';
    let left = chars[..i]
        .iter()
        .rev()
        .take_while(|c| is_part(c))
        .filter(|c| c.is_ascii_digit())
        .count();
    let right = chars[i + 1..]
        .iter()
        .take_while(|c| is_part(c))
        .filter(|c| c.is_ascii_digit())
        .count();
    left + right
}

/// Replaces digit runs of 9 or more (identifiers) with '#' so dates and amounts ignore them.
fn blank_long_digit_runs(text: &str) -> String {
    static RUN: OnceLock<Regex> = OnceLock::new();
    re(&RUN, r"\d{9,}x?")
        .replace_all(text, |c: &regex::Captures| "#".repeat(c[0].chars().count()))
        .into_owned()
}

fn identifiers(text: &str, slots: &mut Slots) {
    static DIGITS: OnceLock<Regex> = OnceLock::new();
    static LAST4: OnceLock<Regex> = OnceLock::new();
    for m in re(&DIGITS, r"\d+x?").find_iter(text) {
        let s = m.as_str();
        let len = s.len();
        let id_context = text.contains("身份证") || s.ends_with('x');
        if len == 18 && (s.ends_with('x') || id_context || !luhn_ok(s)) {
            let id = s.to_uppercase();
            if gb11643_ok(&id) {
                slots.set("id_number", id);
            } else {
                slots.reject(
                    "id_number",
                    crate::access::masking::mask_pii(&id),
                    "bad_check_digit",
                );
            }
        } else if s.ends_with('x') {
            continue;
        } else if len == 11 && s.starts_with('1') && matches!(s.as_bytes()[1], b'3'..=b'9') {
            slots.set("phone", s);
        } else if (16..=19).contains(&len) {
            if luhn_ok(s) {
                slots.set("card_number", s);
                slots.set("card_last4", &s[len - 4..]);
            } else {
                slots.reject(
                    "card_number",
                    crate::access::masking::mask_pii(s),
                    "luhn_failed",
                );
            }
        }
    }
    if let Some(c) = re(
        &LAST4,
        r"(?:尾号|尾数|后4位|末4位|最后4位|后面4位|结尾)(?:是|为|:)?(\d{4})(?:\D|$)",
    )
    .captures(text)
    {
        slots.set("card_last4", &c[1]);
    }
}

// ---- dates ----

fn date(text: &str, today: NaiveDate, slots: &mut Slots) {
    static ISO: OnceLock<Regex> = OnceLock::new();
    static MONTH_DAY: OnceLock<Regex> = OnceLock::new();
    static NEXT_MONTH: OnceLock<Regex> = OnceLock::new();
    static DAY_ONLY: OnceLock<Regex> = OnceLock::new();
    static WEEKDAY: OnceLock<Regex> = OnceLock::new();

    let mut found: Option<(String, Result<NaiveDate, &'static str>)> = None;
    if let Some(c) = re(&ISO, r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})").captures(text) {
        let d = ymd(num(&c[1]), num(&c[2]), num(&c[3]));
        found = Some((c[0].to_string(), d.ok_or("no_such_date")));
    } else if let Some(c) = re(
        &MONTH_DAY,
        r"(?:(\d{4})年)?(\d{1,2})月(?:份)?(\d{1,2})(?:号|日)?",
    )
    .captures(text)
    {
        let (month, day) = (num(&c[2]), num(&c[3]));
        let d = match c.get(1) {
            Some(y) => ymd(num(y.as_str()), month, day).ok_or("no_such_date"),
            None => next_month_day(today, month, day),
        };
        found = Some((c[0].to_string(), d));
    } else if let Some(c) =
        re(&NEXT_MONTH, r"(下个?月|这个?月|本月)(\d{1,2})(?:号|日)").captures(text)
    {
        let base = if c[1].starts_with('下') {
            add_months(today, 1)
        } else {
            today.with_day(1)
        };
        let d = base
            .and_then(|b| ymd(b.year() as u32, b.month(), num(&c[2])))
            .ok_or("no_such_date");
        found = Some((c[0].to_string(), d));
    } else if let Some(c) = re(
        &DAY_ONLY,
        r"(?:^|[^\d月#.:])(\d{1,2})(?:号|日)(?:[^码线楼窗]|$)",
    )
    .captures(text)
    {
        let day = num(&c[1]);
        let this = ymd(today.year() as u32, today.month(), day);
        let d = match this {
            Some(d) if d >= today => Ok(d),
            _ => add_months(today.with_day(1).unwrap_or(today), 1)
                .and_then(|b| ymd(b.year() as u32, b.month(), day))
                .ok_or("no_such_date"),
        };
        found = Some((c[0].to_string(), d));
    } else if let Some(c) = re(
        &WEEKDAY,
        r"(下下个?|下个?|这个?|本|上个?)?(?:周|星期|礼拜)([1-7]|天|日)",
    )
    .captures(text)
    {
        let wd = match &c[2] {
            "天" | "日" => 7,
            d => num(d),
        };
        let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
        let this_week = monday + Duration::days(wd as i64 - 1);
        let d = match c.get(1).map(|m| m.as_str()) {
            Some(p) if p.starts_with("下下") => this_week + Duration::days(14),
            Some(p) if p.starts_with('下') => this_week + Duration::days(7),
            Some(p) if p.starts_with('上') => this_week - Duration::days(7),
            Some(_) => this_week,
            None if this_week < today => this_week + Duration::days(7),
            None => this_week,
        };
        found = Some((c[0].to_string(), Ok(d)));
    } else {
        for (word, days) in [
            ("大后天", 3),
            ("后天", 2),
            ("明天", 1),
            ("明日", 1),
            ("今天", 0),
            ("今日", 0),
        ] {
            if text.contains(word) {
                found = Some((word.to_string(), Ok(today + Duration::days(days))));
                break;
            }
        }
    }
    match found {
        Some((_, Ok(d))) if d < today => slots.reject("date", d.to_string(), "date_in_past"),
        Some((_, Ok(d))) => slots.set("date", d.format("%Y-%m-%d").to_string()),
        Some((said, Err(reason))) => slots.reject("date", said, reason),
        None => {}
    }
}

fn num(s: &str) -> u32 {
    s.parse().unwrap_or(0)
}

fn ymd(y: u32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)
}

fn add_months(d: NaiveDate, n: u32) -> Option<NaiveDate> {
    d.with_day(1)?.checked_add_months(chrono::Months::new(n))
}

/// "12月1号" said without a year: this year's if still ahead (or today), else next year's.
/// A day that no year has (2月30号) is `no_such_date`; 2月29号 looks for the next leap year.
fn next_month_day(today: NaiveDate, month: u32, day: u32) -> Result<NaiveDate, &'static str> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err("no_such_date");
    }
    let y = today.year() as u32;
    match ymd(y, month, day) {
        Some(d) if d >= today => Ok(d),
        _ => (1..=8)
            .find_map(|k| ymd(y + k, month, day))
            .ok_or("no_such_date"),
    }
}

// ---- times ----

fn time(text: &str, slots: &mut Slots) {
    static CLOCK: OnceLock<Regex> = OnceLock::new();
    static SPOKEN: OnceLock<Regex> = OnceLock::new();
    let period_re = "(上午|早上|早晨|中午|下午|晚上|傍晚|凌晨)?";
    let (said, period, hour, minute) =
        if let Some(c) = re(&CLOCK, &format!(r"{period_re}(\d{{1,2}}):(\d{{2}})")).captures(text) {
            (
                c[0].to_string(),
                c.get(1).map(|m| m.as_str().to_string()),
                num(&c[2]),
                num(&c[3]),
            )
        } else if let Some(c) = re(
            &SPOKEN,
            &format!(r"{period_re}(\d{{1,2}})点(?:钟)?(半|([1-3])刻|(\d{{1,2}})分?)?"),
        )
        .captures(text)
        {
            let minute = match (c.get(3), c.get(4), c.get(5)) {
                (_, Some(q), _) => num(q.as_str()) * 15,
                (_, _, Some(m)) => num(m.as_str()),
                (Some(h), _, _) if h.as_str() == "半" => 30,
                _ => 0,
            };
            (
                c[0].to_string(),
                c.get(1).map(|m| m.as_str().to_string()),
                num(&c[2]),
                minute,
            )
        } else {
            return;
        };
    if hour > 24 || minute > 59 {
        slots.reject("time", said, "bad_time");
        return;
    }
    let hour = match period.as_deref() {
        Some("下午" | "晚上" | "傍晚") if hour < 12 => hour + 12,
        Some("中午") if hour <= 3 => hour + 12,
        Some("凌晨") if hour == 12 => 0,
        Some(_) => hour,
        // No period said: in banking hours 1–6 o'clock means the afternoon.
        None if (1..=6).contains(&hour) => hour + 12,
        None => hour,
    };
    let hour = if hour == 24 { 0 } else { hour };
    slots.set("time", format!("{hour:02}:{minute:02}"));
}

// ---- money ----

/// The currency named first (ISO 4217, see [`crate::text::currency`]).
fn currency(text: &str, slots: &mut Slots) {
    if let Some(code) = currency::first_named(text) {
        slots.set("currency", code);
    }
}

/// Units after which a number is not money.
const NOT_MONEY_AFTER: &[&str] = &[
    "号", "日", "月", "年", "点", ":", "分钟", "分", "刻", "秒", "岁", "个", "张", "位", "次",
    "天", "周", "星期", "小时", "楼", "层", "人", "样", "种", "本", "份", "条", "倍", "折", "成",
    "%", "-", "/", "#", "号码", "台", "家", "遍",
];
/// Words before which a number is not money.
const NOT_MONEY_BEFORE: &[&str] = &[
    "周", "星期", "礼拜", "尾号", "尾数", "位", "第", "#", ":", "-", "/",
];
const MONEY_AFTER: &[&str] = &["块钱", "块", "元", "圆", "人民币", "rmb"];

fn amount(text: &str, slots: &mut Slots) {
    static NUMBER: OnceLock<Regex> = OnceLock::new();
    let mut best: Option<(bool, String)> = None;
    for m in re(&NUMBER, r"\d+(?:\.\d+)?").find_iter(text) {
        let after = &text[m.end()..];
        let before = &text[..m.start()];
        let with_unit = MONEY_AFTER.iter().any(|u| after.starts_with(u))
            || currency::named_at_start(after).is_some();
        if !with_unit
            && (NOT_MONEY_AFTER.iter().any(|u| after.starts_with(u))
                || NOT_MONEY_BEFORE.iter().any(|w| before.ends_with(w))
                || before.ends_with(['.', '年', '月']))
        {
            continue;
        }
        let value = tidy_decimal(m.as_str());
        if value == "0" {
            continue;
        }
        match &best {
            Some((true, _)) => {}
            Some((false, _)) if !with_unit => {}
            _ => best = Some((with_unit, value)),
        }
    }
    if let Some((_, value)) = best {
        slots.set("amount", value);
    }
}

/// "05000" → "5000", "100.50" → "100.5", "3.0" → "3".
fn tidy_decimal(s: &str) -> String {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::normalize::normalize;
    use proptest::prelude::*;

    /// Monday 2026-11-23, 09:30 in Beijing (the example of DESIGN.md).
    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-23T09:30:00+08:00").unwrap()
    }

    fn slots(text: &str) -> Slots {
        let services = ServiceWords::new([
            ("开户".to_string(), "account.open".to_string()),
            ("挂失".to_string(), "card.report_loss".to_string()),
        ]);
        extract(&normalize(text).text, now(), &services)
    }

    fn get(text: &str, slot: &str) -> Option<String> {
        slots(text).values.get(slot).cloned()
    }

    #[test]
    fn dates_resolve_against_now() {
        for (text, want) in [
            ("帮我预约明天上午十点", "2026-11-24"),
            ("后天", "2026-11-25"),
            ("大后天下午", "2026-11-26"),
            ("本周五", "2026-11-27"),
            ("这周五", "2026-11-27"),
            ("周五", "2026-11-27"),
            ("下周三", "2026-12-02"),
            ("下个星期一", "2026-11-30"),
            ("星期天", "2026-11-29"),
            ("12月1号", "2026-12-01"),
            ("十二月一号", "2026-12-01"),
            ("1月5日", "2027-01-05"),
            ("下个月5号", "2026-12-05"),
            ("下月五号", "2026-12-05"),
            ("30号", "2026-11-30"),
            ("5号", "2026-12-05"),
            ("2026-12-03", "2026-12-03"),
            ("2027年3月8日", "2027-03-08"),
            ("今天", "2026-11-23"),
        ] {
            assert_eq!(get(text, "date").as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn impossible_and_past_dates_are_rejected_not_guessed() {
        let s = slots("2月30号");
        assert_eq!(s.values.get("date"), None);
        assert_eq!(s.rejected[0].reason, "no_such_date");
        let s = slots("2026年1月3日");
        assert_eq!(s.rejected[0].reason, "date_in_past");
        assert_eq!(slots("上周三").rejected[0].reason, "date_in_past");
        assert_eq!(slots("4月31号").rejected[0].reason, "no_such_date");
    }

    #[test]
    fn times_are_24_hour() {
        for (text, want) in [
            ("上午十点", "10:00"),
            ("下午三点半", "15:30"),
            ("14:00", "14:00"),
            ("两点一刻", "14:15"),
            ("下午两点三刻", "14:45"),
            ("早上9点", "09:00"),
            ("晚上七点二十", "19:20"),
            ("中午12点", "12:00"),
            ("中午一点", "13:00"),
            ("十一点", "11:00"),
            ("下午1点", "13:00"),
            ("明天9:30", "09:30"),
        ] {
            assert_eq!(get(text, "time").as_deref(), Some(want), "{text}");
        }
        assert_eq!(get("快一点", "time"), None);
        assert_eq!(slots("25点").rejected[0].reason, "bad_time");
    }

    #[test]
    fn amounts_are_yuan_decimals() {
        for (text, want) in [
            ("取五千块", "5000"),
            ("五千块", "5000"),
            ("换1.5万美元", "15000"),
            ("转三千五给我儿子", "3500"),
            ("一千二百元", "1200"),
            ("存2000", "2000"),
            ("转100.50元", "100.5"),
            ("下周三取二十万", "200000"),
        ] {
            assert_eq!(get(text, "amount").as_deref(), Some(want), "{text}");
        }
        for text in [
            "下周三",
            "12月1号",
            "尾号1234",
            "办一张卡",
            "3楼",
            "手机13812345678",
        ] {
            assert_eq!(get(text, "amount"), None, "{text}");
        }
    }

    #[test]
    fn currencies_are_iso_codes() {
        assert_eq!(get("换五百美元", "currency").as_deref(), Some("USD"));
        assert_eq!(get("港币", "currency").as_deref(), Some("HKD"));
        assert_eq!(get("换点日元", "currency").as_deref(), Some("JPY"));
        assert_eq!(get("五千块", "currency"), None);
    }

    #[test]
    fn identifiers_are_validated() {
        assert_eq!(
            get("手机号13812345678", "phone").as_deref(),
            Some("13812345678")
        );
        assert_eq!(
            get("手机幺三八一二三四五六七八", "phone").as_deref(),
            Some("13812345678")
        );
        assert_eq!(
            get("身份证11010519491231002X", "id_number").as_deref(),
            Some("11010519491231002X")
        );
        let bad = slots("身份证110105194912310021");
        assert_eq!(bad.values.get("id_number"), None);
        assert_eq!(bad.rejected[0].reason, "bad_check_digit");
        assert!(!bad.rejected[0].text.contains("110105194912310021"));
        assert_eq!(
            get("卡号6222 0210 0112 3456 780", "card_number"),
            luhn_ok("6222021001123456780").then(|| "6222021001123456780".to_string())
        );
        assert_eq!(
            get("卡号4111111111111111", "card_last4").as_deref(),
            Some("1111")
        );
        assert_eq!(
            slots("卡号4111111111111112").rejected[0].reason,
            "luhn_failed"
        );
        assert_eq!(get("尾号是1234的卡", "card_last4").as_deref(), Some("1234"));
        assert_eq!(
            get("卡的后四位是五六七八", "card_last4").as_deref(),
            Some("5678")
        );
    }

    #[test]
    fn a_service_names_its_intent() {
        assert_eq!(get("预约开户", "service").as_deref(), Some("account.open"));
        assert_eq!(get("你好", "service"), None);
    }

    proptest! {
        /// Any future month/day written "M月D号" resolves to that month and day, or is
        /// rejected when no such day exists.
        #[test]
        fn month_day_resolves_or_is_rejected(m in 1u32..=12, d in 1u32..=31) {
            let s = slots(&format!("{m}月{d}号"));
            match s.values.get("date") {
                Some(date) => {
                    let parsed = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
                    prop_assert_eq!((parsed.month(), parsed.day()), (m, d));
                    prop_assert!(parsed >= now().date_naive());
                }
                None => prop_assert_eq!(&s.rejected[0].reason, "no_such_date"),
            }
        }

        /// "N天后"-style relative words and weekdays always land on or after today and
        /// within three weeks.
        #[test]
        fn weekdays_land_ahead(prefix in prop::sample::select(vec!["", "下", "下个", "本", "这"]),
                               wd in 1u32..=7) {
            let s = slots(&format!("{prefix}周{wd}"));
            if let Some(date) = s.values.get("date") {
                let parsed = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
                prop_assert_eq!(parsed.weekday().number_from_monday(), wd);
                prop_assert!(parsed >= now().date_naive());
                prop_assert!(parsed - now().date_naive() < Duration::days(21));
            } else {
                prop_assert_eq!(&s.rejected[0].reason, "date_in_past");
            }
        }

        #[test]
        fn extraction_never_panics(s in "\\PC{0,120}") {
            let _ = slots(&s);
        }

        #[test]
        fn valid_ids_pass_and_one_changed_digit_fails(body in "[1-9][0-9]{16}", pos in 0usize..17) {
            const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
            const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
            let sum: u32 = body.chars().zip(W).map(|(c, w)| c.to_digit(10).unwrap() * w).sum();
            let id = format!("{body}{}", CHECK[(sum % 11) as usize]);
            prop_assert!(gb11643_ok(&id));
            let mut chars: Vec<char> = id.chars().collect();
            let d = chars[pos].to_digit(10).unwrap();
            chars[pos] = char::from_digit((d + 1) % 10, 10).unwrap();
            let changed: String = chars.into_iter().collect();
            prop_assert!(!gb11643_ok(&changed));
        }
    }
}
