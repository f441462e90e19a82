//! Masking of personal data in free text, applied before anything is stored or logged:
//! ID numbers keep the region and last four (`110101********1234`), card numbers keep
//! BIN and last four (`622202*********1234`), mobile numbers keep prefix and last four
//! (`138****5678`), and any longer run of digits keeps only its first six and last four.
//!
//! Numbers are read the way the NLU's number reader ([`crate::text::numbers`]) reads them:
//! a digit is an ASCII or full-width digit or a Chinese numeral digit (一/幺, 二/两, 〇/零,
//! 壹 …), and digit groups joined by separators (spaces of any count, dots, dashes, slashes,
//! commas, at most two punctuation marks between two groups) count as one number, so
//! `138 1234 5678`, `138.1234.5678` and `幺三八一二三四五六七八` are caught. Identifiers
//! in a row (`13812345678 13912345678`) are masked one by one when nothing else is
//! between them, else as one number. Numerals spoken
//! with units (`一百三十八亿…`) are read too, with the NLU's stricter shapes (a mobile prefix
//! 13–19, Luhn for cards), so that amounts such as 一百亿 stay readable.
//!
//! Two linear passes over the text: spoken numerals first, then digits.

use crate::domain::ids::luhn_ok;
use crate::text::numbers::{digit_value, is_unit, parse_number};

/// Returns `text` with every ID, card and mobile number masked.
pub fn mask_pii(text: &str) -> String {
    if !text.chars().any(|c| digit_of(c).is_some()) {
        return text.to_string();
    }
    let spoken = mask_pass(text, Reading::Spoken);
    mask_pass(&spoken, Reading::Digits)
}

/// The value of a digit written any way (ASCII, full-width, Chinese), if `c` is one.
fn digit_of(c: char) -> Option<u32> {
    match c {
        '０'..='９' => Some(c as u32 - '０' as u32),
        _ => digit_value(c),
    }
}

/// How a pass reads numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Runs of digits only; unit characters end a run. Loose shapes.
    Digits,
    /// Numerals with units read as values (三千五 = 3500); only chains holding such a
    /// numeral are masked, with the NLU's strict shapes.
    Spoken,
}

/// One number in the text: its characters `start..end` and its digits.
struct Token {
    start: usize,
    end: usize,
    digits: String,
    /// Read from a numeral with units.
    spoken: bool,
}

/// The longest numeral with units that is read as a value (longer ones are no quantity).
const MAX_SPOKEN_CHARS: usize = 40;

/// Most punctuation marks between two digit groups of one number (`138 - 1234`).
const MAX_PUNCTUATION: usize = 2;

fn mask_pass(text: &str, reading: Reading) -> String {
    let chars: Vec<char> = text.chars().collect();
    let tokens = tokenize(&chars, reading);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut k = 0;
    while k < tokens.len() {
        let next = chain_end(&chars, &tokens, k);
        for (start, end, masked) in mask_chain(&chars, &tokens[k..next], reading) {
            out.extend(&chars[copied..start]);
            out.push_str(&masked);
            copied = end;
        }
        k = next;
    }
    out.extend(&chars[copied..]);
    out
}

/// What to replace in one number: (start, end, masked form), in order.
fn mask_chain(chars: &[char], chain: &[Token], reading: Reading) -> Vec<(usize, usize, String)> {
    match reading {
        Reading::Digits => {
            if let Some(parts) = split_at_identifiers(chars, chain) {
                return parts;
            }
        }
        Reading::Spoken if !chain.iter().any(|t| t.spoken) => return Vec::new(),
        Reading::Spoken => {}
    }
    mask_whole(chars, chain, reading == Reading::Spoken)
        .into_iter()
        .collect()
}

/// The masked form of the digits of `chain` taken as one number (with an ID's check `X`
/// right after it), or `None` when that is no personal data.
fn mask_whole(chars: &[char], chain: &[Token], strict: bool) -> Option<(usize, usize, String)> {
    let mut digits: String = chain.iter().map(|t| t.digits.as_str()).collect();
    let mut end = chain.last()?.end;
    if digits.len() == 17 && matches!(chars.get(end), Some('X' | 'x')) {
        digits.push('X');
        end += 1;
    }
    mask_number(&digits, strict).map(|masked| (chain[0].start, end, masked))
}

/// A chain such as `13812345678 13912345678` masked identifier by identifier: split at the
/// groups that are identifiers by themselves, provided every stretch between them is one
/// too. Then nothing stays in clear next to a kept head or tail (at most 4 + 6 digits meet),
/// so no identifier can survive across the cut; otherwise `None` (mask the whole chain).
fn split_at_identifiers(chars: &[char], chain: &[Token]) -> Option<Vec<(usize, usize, String)>> {
    let alone = |t: &Token| t.digits.len() >= 11 && mask_number(&t.digits, false).is_some();
    if chain.len() < 2 || !chain.iter().any(alone) {
        return None;
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < chain.len() {
        let j = if alone(&chain[i]) {
            i + 1
        } else {
            i + chain[i..].iter().take_while(|t| !alone(t)).count()
        };
        parts.push(mask_whole(chars, &chain[i..j], false)?);
        i = j;
    }
    Some(parts)
}

/// Every number of `chars`, in order.
fn tokenize(chars: &[char], reading: Reading) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let numeral = |c: char| digit_of(c).is_some() || (reading == Reading::Spoken && is_unit(c));
        if !numeral(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && numeral(chars[i]) {
            i += 1;
        }
        let run = &chars[start..i];
        let digits: Option<String> = if run.iter().any(|c| is_unit(*c)) {
            spoken_value(run)
        } else {
            Some(run.iter().filter_map(|c| digit_of(*c)).map(ascii).collect())
        };
        if let Some(digits) = digits {
            tokens.push(Token {
                start,
                end: i,
                spoken: reading == Reading::Spoken && run.iter().any(|c| is_unit(*c)),
                digits,
            });
        }
    }
    tokens
}

/// The value of a numeral with units (三千五 → 3500), through the NLU's reader.
fn spoken_value(run: &[char]) -> Option<String> {
    if run.len() > MAX_SPOKEN_CHARS {
        return None;
    }
    let text: String = run
        .iter()
        .map(|c| match c {
            '０'..='９' => digit_of(*c).map(ascii).unwrap_or(*c),
            _ => *c,
        })
        .collect();
    parse_number(&text).filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
}

fn ascii(d: u32) -> char {
    char::from_digit(d, 10).unwrap_or('0')
}

/// The index after the last token of the number that starts at token `k`: following
/// tokens join while only separators lie between them.
fn chain_end(chars: &[char], tokens: &[Token], k: usize) -> usize {
    let mut j = k + 1;
    while j < tokens.len() && separated(&chars[tokens[j - 1].end..tokens[j].start]) {
        j += 1;
    }
    j
}

/// Whether `gap` only separates two digit groups of one number.
fn separated(gap: &[char]) -> bool {
    let mut punctuation = 0;
    for &c in gap {
        if c.is_whitespace() {
            continue;
        }
        if !is_separator(c) {
            return false;
        }
        punctuation += 1;
    }
    !gap.is_empty() && punctuation <= MAX_PUNCTUATION
}

fn is_separator(c: char) -> bool {
    matches!(
        c,
        '.' | '．'
            | '-'
            | '－'
            | '‐'
            | '‑'
            | '–'
            | '—'
            | '_'
            | '/'
            | '／'
            | '\\'
            | ','
            | '，'
            | '、'
            | '·'
    )
}

/// The masked form of a bare number (ASCII digits, an ID's check `X`), or `None` when it is
/// not personal data. `strict`: the NLU's shapes (spoken numerals).
fn mask_number(n: &str, strict: bool) -> Option<String> {
    let len = n.len();
    let stars = |k: usize| "*".repeat(k);
    let keep = |head: usize| format!("{}{}{}", &n[..head], stars(len - head - 4), &n[len - 4..]);
    if len == 18 {
        return Some(keep(6));
    }
    if n.ends_with('X') {
        return None;
    }
    let mobile =
        len == 11 && n.starts_with('1') && (!strict || matches!(n.as_bytes()[1], b'3'..=b'9'));
    if mobile {
        return Some(keep(3));
    }
    let card = if strict {
        (16..=19).contains(&len) && luhn_ok(n)
    } else {
        (12..=19).contains(&len)
    };
    if card || len > 19 {
        return Some(keep(6));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::gb11643_ok;
    use proptest::prelude::*;

    #[test]
    fn id_numbers_keep_region_and_last_four() {
        assert_eq!(
            mask_pii("我的身份证是11010119900307123X。"),
            "我的身份证是110101********123X。"
        );
        assert_eq!(mask_pii("110101199003071234"), "110101********1234");
    }

    #[test]
    fn mobile_numbers_keep_prefix_and_last_four() {
        assert_eq!(mask_pii("电话13812345678"), "电话138****5678");
        assert_eq!(mask_pii("电话１３８１２３４５６７８"), "电话138****5678");
    }

    #[test]
    fn card_numbers_keep_bin_and_last_four_even_when_grouped() {
        assert_eq!(
            mask_pii("卡号6222021001123456789"),
            "卡号622202*********6789"
        );
        assert_eq!(
            mask_pii("卡号 6222 0210 0112 3456"),
            "卡号 622202******3456"
        );
    }

    #[test]
    fn the_reported_bypasses_are_masked() {
        for (text, want) in [
            ("13812345678 13912345678", "138****5678 139****5678"),
            ("138  1234  5678", "138****5678"),
            ("138.1234.5678", "138****5678"),
            ("幺三八一二三四五六七八", "138****5678"),
        ] {
            assert_eq!(mask_pii(text), want, "{text}");
        }
    }

    #[test]
    fn digits_written_any_way_and_grouped_any_way_are_one_number() {
        for (text, want) in [
            ("138-1234-5678", "138****5678"),
            ("138 - 1234 - 5678", "138****5678"),
            ("138/1234/5678", "138****5678"),
            ("138，1234，5678", "138****5678"),
            ("138、1234、5678", "138****5678"),
            ("１３８．１２３４－５６７８", "138****5678"),
            ("手机一三八 一二三四 五六七八", "手机138****5678"),
            ("壹叁捌壹贰叁肆伍陆柒捌", "138****5678"),
            ("一三九〇〇〇〇幺幺幺幺", "139****1111"),
            ("138一二三四5678", "138****5678"),
            ("幺幺〇幺〇五幺九四九幺二三幺零零二x", "110105********002X"),
            ("110105 19491231 002X", "110105********002X"),
            ("6222 0210 0112 3456 789", "622202*********6789"),
            (
                "13812345678,6222021001123456789",
                "138****5678,622202*********6789",
            ),
        ] {
            assert_eq!(mask_pii(text), want, "{text}");
        }
    }

    #[test]
    fn runs_longer_than_nineteen_digits_keep_only_their_ends() {
        assert_eq!(
            mask_pii("12345678901234567890123"),
            "123456*************0123"
        );
        assert_eq!(
            mask_pii("138 1234 5678 139 1234 5678"),
            "138123************5678"
        );
        // An identifier next to digits in clear is masked with them: a kept head or tail
        // must not join them into a number (1381234 + 5678… would be a phone).
        assert_eq!(
            mask_pii("1381234 56786222021001123456"),
            "138123*****************3456"
        );
        assert_eq!(mask_pii("13812345678 5000"), "138123*****5000");
    }

    #[test]
    fn numerals_spoken_with_units_are_read_like_the_nlu_reads_them() {
        assert_eq!(
            mask_pii("一百三十八亿一千二百三十四万五千六百七十八"),
            "138****5678"
        );
        assert_eq!(mask_pii("一百三十八 1234 5678"), "138****5678");
        assert_eq!(mask_pii("13812345678万"), "138****5678万");
    }

    #[test]
    fn ordinary_numbers_are_left_alone() {
        for s in [
            "转账5000元",
            "明天上午10点",
            "2026-11-25",
            "2026-12-03",
            "10:30",
            "2026-12-03 10:30",
            "排队号A023",
            "密码123456",
            "取三千五",
            "我想存一百亿",
            "一千亿",
            "1.5万美元",
            "12月3号上午10点半",
            "年利率1.75%",
            "客服电话95588",
            "第1、2、3条",
            "营业时间 9:00-17:00",
            "一下子一起来了三个人",
        ] {
            assert_eq!(mask_pii(s), s);
        }
    }

    #[test]
    fn masking_is_idempotent() {
        let once = mask_pii("身份证110101199003071234 手机13812345678 卡6222021001123456789");
        assert_eq!(mask_pii(&once), once);
    }

    #[test]
    fn masking_is_linear_on_adversarial_input() {
        let started = std::time::Instant::now();
        for unit in [
            "1 ",
            "一十",
            "1-一十 ",
            "十一百二千三万四亿",
            "12345678901,",
        ] {
            let text = unit.repeat(200_000 / unit.chars().count());
            let _ = mask_pii(&text);
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    // ---- property tests: identifiers spelled every way never survive ----

    /// The digits of `text` written any way, as ASCII, with the masks' stars kept (the
    /// kept head and tail of `130000*****0000` must not join into a generated `13000000000`)
    /// and everything else dropped.
    fn digits_only(text: &str) -> String {
        text.chars()
            .filter_map(|c| {
                if c == '*' {
                    Some(c)
                } else {
                    digit_of(c).map(ascii)
                }
            })
            .collect()
    }

    fn phone() -> impl Strategy<Value = String> {
        (3u8..=9, 0u64..1_000_000_000).prop_map(|(second, rest)| format!("1{second}{rest:09}"))
    }

    fn id_number() -> impl Strategy<Value = String> {
        (
            110_000u32..660_000,
            1940u32..2015,
            1u32..=12,
            1u32..=28,
            0u32..1000,
        )
            .prop_map(|(region, year, month, day, seq)| {
                let body = format!("{region}{year}{month:02}{day:02}{seq:03}");
                let check = "0123456789X"
                    .chars()
                    .find(|c| gb11643_ok(&format!("{body}{c}")))
                    .unwrap_or('0');
                format!("{body}{check}")
            })
    }

    fn card() -> impl Strategy<Value = String> {
        (3u8..=6, prop::collection::vec(0u8..10, 14..=17)).prop_map(|(first, rest)| {
            let body: String = std::iter::once(first)
                .chain(rest)
                .map(|d| char::from(b'0' + d))
                .collect();
            (0..10)
                .map(|d| format!("{body}{d}"))
                .find(|n| luhn_ok(n))
                .unwrap_or_default()
        })
    }

    fn identifier() -> impl Strategy<Value = String> {
        prop_oneof![phone(), id_number(), card()]
    }

    /// How to spell a number: each digit's form, where it is cut into groups and with what.
    #[derive(Debug, Clone)]
    struct Spelling {
        forms: Vec<u8>,
        uniform: bool,
        cuts: Vec<(bool, usize)>,
        lower_x: bool,
    }

    fn spelling() -> impl Strategy<Value = Spelling> {
        (
            prop::collection::vec(0u8..5, 20),
            any::<bool>(),
            prop::collection::vec((prop::bool::weighted(0.2), 0usize..SEPARATORS.len()), 20),
            any::<bool>(),
        )
            .prop_map(|(forms, uniform, cuts, lower_x)| Spelling {
                forms,
                uniform,
                cuts,
                lower_x,
            })
    }

    const SEPARATORS: &[&str] = &[
        " ", "  ", "   ", "-", " - ", ".", "/", ",", "，", "、", "．", "－", "／", "\u{3000}", ", ",
    ];

    /// `d` written in `form`: ASCII, full-width, Chinese, Chinese alternatives, capitals.
    fn digit_form(d: u32, form: u8) -> char {
        const LOWER: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
        const ALT: [char; 10] = ['〇', '幺', '两', '三', '四', '五', '六', '七', '八', '九'];
        const CAPITAL: [char; 10] = ['零', '壹', '贰', '叁', '肆', '伍', '陆', '柒', '捌', '玖'];
        match form {
            0 => ascii(d),
            1 => char::from_u32('０' as u32 + d).unwrap_or('0'),
            2 => LOWER[d as usize],
            3 => ALT[d as usize],
            _ => CAPITAL[d as usize],
        }
    }

    fn spell(raw: &str, s: &Spelling) -> String {
        let mut out = String::new();
        let n = raw.chars().count();
        for (i, c) in raw.chars().enumerate() {
            match c.to_digit(10) {
                Some(d) => out.push(digit_form(d, s.forms[if s.uniform { 0 } else { i }])),
                None => out.push(if s.lower_x { 'x' } else { 'X' }),
            }
            let (cut, sep) = s.cuts[i];
            // An ID's check X follows its last digit directly.
            let before_x = i + 2 == n && raw.ends_with('X');
            if cut && i + 1 < n && !before_x {
                out.push_str(SEPARATORS[sep]);
            }
        }
        out
    }

    /// The part of an identifier that must never survive (an ID's 17 digits).
    fn secret(raw: &str) -> &str {
        raw.trim_end_matches('X')
    }

    const BEFORE: &[&str] = &[
        "",
        "我的手机号是",
        "身份证号码",
        "卡号：",
        "电话 ",
        "好的，",
    ];
    const AFTER: &[&str] = &["", "。", "，谢谢", " 好吗", "就这个", "号"];
    const BETWEEN: &[&str] = &["", " ", "，", "和", "、还有", "  "];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn an_identifier_spelled_any_way_never_survives(
            raw in identifier(),
            how in spelling(),
            before in 0..BEFORE.len(),
            after in 0..AFTER.len(),
        ) {
            let text = format!("{}{}{}", BEFORE[before], spell(&raw, &how), AFTER[after]);
            let out = mask_pii(&text);
            prop_assert!(!digits_only(&out).contains(secret(&raw)), "{} -> {}", text, out);
        }

        #[test]
        fn two_identifiers_in_a_row_never_survive(
            a in identifier(),
            b in identifier(),
            how_a in spelling(),
            how_b in spelling(),
            between in 0..BETWEEN.len(),
        ) {
            let text = format!("{}{}{}", spell(&a, &how_a), BETWEEN[between], spell(&b, &how_b));
            let out = mask_pii(&text);
            let digits = digits_only(&out);
            prop_assert!(!digits.contains(secret(&a)), "{} -> {}", text, out);
            prop_assert!(!digits.contains(secret(&b)), "{} -> {}", text, out);
        }

        #[test]
        fn a_plain_identifier_keeps_its_masked_shape(raw in identifier()) {
            let out = mask_pii(&raw);
            let n = raw.len();
            let head = if n == 11 { 3 } else { 6 };
            prop_assert_eq!(out.len(), n);
            prop_assert_eq!(&out[..head], &raw[..head]);
            prop_assert_eq!(&out[n - 4..], &raw[n - 4..]);
            prop_assert!(out[head..n - 4].chars().all(|c| c == '*'));
        }

        #[test]
        fn dates_times_amounts_and_queue_numbers_stay(
            (y, m, d) in (1990u32..2100, 1u32..=12, 1u32..=28),
            (h, mi) in (0u32..24, 0u32..60),
            amount in 0u64..10_000_000,
            queue in 0u32..1000,
        ) {
            let text = format!("{y}-{m:02}-{d:02} {h}:{mi:02} 取{amount}元 排队号A{queue:03} {m}月{d}号");
            prop_assert_eq!(mask_pii(&text), text);
        }

        #[test]
        fn any_text_masks_without_panicking(s in "[0-9０-９一二三四五六七八九十百千万亿幺两〇零xX .,/，、-]{0,80}|\\PC{0,80}") {
            let _ = mask_pii(&s);
        }
    }
}
