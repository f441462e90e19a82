//! Chinese numerals: reading "三千五", "一千二百", "1.5万", "二零二六", "幺三八" as numbers, and
//! rewriting the quantities in a sentence as ASCII digits while leaving words such as
//! 一下, 一起, 一点儿, 十分, 万一 and 千万 alone.
//!
//! Values are kept as exact decimal strings (yuan amounts must not pass through floats).

/// The value of one Chinese digit character, if it is one.
pub fn digit_value(c: char) -> Option<u32> {
    Some(match c {
        '零' | '〇' | '0' => 0,
        '一' | '幺' | '壹' | '1' => 1,
        '二' | '两' | '贰' | '2' => 2,
        '三' | '叁' | '3' => 3,
        '四' | '肆' | '4' => 4,
        '五' | '伍' | '5' => 5,
        '六' | '陆' | '6' => 6,
        '七' | '柒' | '7' => 7,
        '八' | '捌' | '8' => 8,
        '九' | '玖' | '9' => 9,
        _ => return None,
    })
}

/// The multiplier a unit character stands for (十 → 10, 万 → 10⁴ …).
fn unit_value(c: char) -> Option<u64> {
    Some(match c {
        '十' | '拾' => 10,
        '百' | '佰' => 100,
        '千' | '仟' => 1_000,
        '万' => 10_000,
        '亿' => 100_000_000,
        _ => return None,
    })
}

/// Whether `c` is a unit character of a Chinese numeral (十, 百, 千, 万, 亿 and their
/// capital forms).
pub fn is_unit(c: char) -> bool {
    unit_value(c).is_some()
}

fn is_numeral_char(c: char) -> bool {
    digit_value(c).is_some() || unit_value(c).is_some() || c == '.'
}

/// Reads a whole numeral such as "三千五", "一万零五百", "1.5万", "二零二六" or "5千" and returns
/// its value as a plain decimal string ("3500", "10500", "15000", "2026", "5000"). `None` when
/// the text is not a well-formed number or the value is too large (more than 10¹⁶).
pub fn parse_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() || !chars.iter().all(|c| is_numeral_char(*c)) {
        return None;
    }
    // A run of digits only ("二零二六", "138", "幺三八"): read positionally.
    if chars.iter().all(|c| digit_value(*c).is_some()) {
        let s: String = chars
            .iter()
            .map(|c| char::from_digit(digit_value(*c).unwrap_or(0), 10).unwrap_or('0'))
            .collect();
        return Some(s);
    }
    // A decimal with a unit: "1.5万", "2.35亿".
    if let Some(dot) = chars.iter().position(|c| *c == '.') {
        let (int_part, rest) = chars.split_at(dot);
        let rest = &rest[1..];
        let frac_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let (frac, unit) = rest.split_at(frac_len);
        if int_part.is_empty() || !int_part.iter().all(|c| c.is_ascii_digit()) || frac.is_empty() {
            return None;
        }
        let multiplier = match unit {
            [] => 1,
            [u] => unit_value(*u)?,
            _ => return None,
        };
        let int: String = int_part.iter().collect();
        let frac: String = frac.iter().collect();
        return scale_decimal(&int, &frac, multiplier);
    }
    read_units(&chars).map(|v| v.to_string())
}

/// `int.frac × multiplier` as an exact decimal string without trailing zeros.
fn scale_decimal(int: &str, frac: &str, multiplier: u64) -> Option<String> {
    if int.len() > 12 || frac.len() > 8 {
        return None;
    }
    let scale = 10u128.pow(frac.len() as u32);
    let whole: u128 = format!("{int}{frac}").parse().ok()?;
    let value = whole.checked_mul(multiplier as u128)?;
    let (q, r) = (value / scale, value % scale);
    if r == 0 {
        return Some(q.to_string());
    }
    let mut frac = format!("{:0width$}", r, width = frac.len());
    while frac.ends_with('0') {
        frac.pop();
    }
    Some(format!("{q}.{frac}"))
}

/// Reads numerals with units: 一千二百 = 1200, 三千五 = 3500 (a trailing digit counts in the
/// next lower unit), 十二 = 12, 一百零五 = 105, 3万5 = 35000, 两亿 = 200000000.
fn read_units(chars: &[char]) -> Option<u64> {
    const LIMIT: u64 = 10_000_000_000_000_000;
    let mut total: u64 = 0; // completed 亿 and 万 sections
    let mut section: u64 = 0; // below 万
    let mut digit: Option<u64> = None; // pending digit (or digits, for "3万5" style ASCII)
    let mut last_unit: u64 = 0; // unit of the last multiplier seen, for "三千五"
    let mut zero_seen = false;
    for (i, &c) in chars.iter().enumerate() {
        if let Some(d) = digit_value(c) {
            if d == 0 && !c.is_ascii_digit() {
                zero_seen = true;
                digit = None;
                continue;
            }
            let d = d as u64;
            digit = Some(match (digit, c.is_ascii_digit()) {
                (Some(prev), true) if chars[i - 1].is_ascii_digit() => prev.checked_mul(10)? + d,
                (Some(_), _) => return None, // two Chinese digits in a row inside a unit number
                (None, _) => d,
            });
            continue;
        }
        let unit = unit_value(c)?;
        match unit {
            10_000 | 100_000_000 => {
                let value = section + digit.take().unwrap_or(0);
                if value == 0 && section == 0 && total == 0 {
                    return None; // "万" with nothing before it
                }
                if unit == 100_000_000 {
                    total = (total + value).checked_mul(unit)?;
                } else {
                    total = total.checked_add(value.checked_mul(unit)?)?;
                }
                section = 0;
            }
            _ => {
                // 十 may stand alone at the start ("十二" = 12); 百 and 千 need a digit.
                let d = match digit.take() {
                    Some(d) => d,
                    None if unit == 10 && (i == 0 || zero_seen || section == 0) => 1,
                    None => return None,
                };
                section = section.checked_add(d.checked_mul(unit)?)?;
            }
        }
        last_unit = unit;
        zero_seen = false;
        if total >= LIMIT {
            return None;
        }
    }
    if let Some(d) = digit {
        // A trailing digit right after a unit, with no 零 between, is in the next lower unit:
        // 三千五 = 3500, 一万二 = 12000, 两百五 = 250. After 零 or 十 it is ones.
        let prev_is_unit = chars.len() >= 2 && unit_value(chars[chars.len() - 2]).is_some();
        let scale = if prev_is_unit && !zero_seen && last_unit >= 100 && d < 10 {
            last_unit / 10
        } else {
            1
        };
        section = section.checked_add(d.checked_mul(scale)?)?;
    }
    let value = total.checked_add(section)?;
    (value < LIMIT).then_some(value)
}

/// Characters after which a lone digit is a quantity or a time ("一张", "三点", "五号").
const MEASURES: &str = "块元圆角毛分张个位号日月年岁点刻笔次天周本份条种人倍成折楼层台";
/// Characters before which a lone digit is a weekday or an ordinal ("周一", "星期三", "第二").
const ORDINAL_BEFORE: &[&str] = &["周", "星期", "礼拜", "第", "初", "下午", "上午", "晚上"];
/// Words that start with a digit character but are not numbers.
const NOT_NUMBERS: &[&str] = &[
    "一下",
    "一起",
    "一些",
    "一直",
    "一定",
    "一般",
    "一样",
    "一切",
    "一旦",
    "一边",
    "一致",
    "一向",
    "一同",
    "一共",
    "一会",
    "一口气",
    "一下子",
    "一点儿",
    "一点点",
    "一模一样",
    "一路",
    "一律",
    "一再",
    "一生",
    "一心",
    "十分",
    "万一",
    "千万",
    "一五一十",
    "三心二意",
    "七上八下",
    "乱七八糟",
    "一手",
    "一体",
    "一家",
    "一趟",
    "一遍",
    "一声",
    "一眼",
    "一把",
];

/// Rewrites every Chinese-numeral quantity in `text` as ASCII digits: "取五千块" → "取5000块",
/// "下午三点半" → "下午3点半", "1.5万" → "15000", "周三" → "周3". Words that merely contain
/// a numeral character (一下, 一起, 十分, 千万) are left as they are, as is "一点" unless it is
/// clearly a time ("下午一点", "一点半").
pub fn rewrite_numerals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_number = digit_value(c).is_some() || c == '十' || c == '拾';
        if !starts_number
            || starts_not_number(&chars[i..])
            || (c == '十' && follows_ascii(&chars, i))
        {
            out.push(c);
            i += 1;
            continue;
        }
        // The longest run of numeral characters from here; "." only between ASCII digits.
        let mut end = i;
        while end < chars.len() {
            let ch = chars[end];
            let ok = if ch == '.' {
                end > i
                    && chars[end - 1].is_ascii_digit()
                    && chars.get(end + 1).is_some_and(|n| n.is_ascii_digit())
            } else {
                digit_value(ch).is_some() || unit_value(ch).is_some()
            };
            if !ok {
                break;
            }
            end += 1;
        }
        // "X点Y万" (一点五万) is a decimal quantity.
        if chars.get(end) == Some(&'点') {
            let after: Vec<char> = chars[end + 1..]
                .iter()
                .take_while(|c| digit_value(**c).is_some() && !c.is_ascii_digit())
                .copied()
                .collect();
            let unit = chars.get(end + 1 + after.len()).copied();
            if !after.is_empty() && matches!(unit, Some('万') | Some('亿')) {
                let int = parse_number(&chars[i..end].iter().collect::<String>());
                let frac: String = after
                    .iter()
                    .map(|c| char::from_digit(digit_value(*c).unwrap_or(0), 10).unwrap_or('0'))
                    .collect();
                if let (Some(int), Some(u)) = (int, unit.and_then(unit_value)) {
                    if let Some(v) = scale_decimal(&int, &frac, u) {
                        out.push_str(&v);
                        i = end + 2 + after.len();
                        continue;
                    }
                }
            }
        }
        let run: String = chars[i..end].iter().collect();
        let all_ascii = chars[i..end].iter().all(|c| c.is_ascii_digit());
        if all_ascii {
            out.push_str(&run);
            i = end;
            continue;
        }
        let lone = end - i == 1;
        if lone && !lone_digit_is_number(&chars, i) {
            out.push(c);
            i += 1;
            continue;
        }
        match parse_number(&run) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&run),
        }
        i = end;
    }
    out
}

fn follows_ascii(chars: &[char], i: usize) -> bool {
    i > 0 && chars[i - 1].is_ascii_digit()
}

fn starts_not_number(rest: &[char]) -> bool {
    NOT_NUMBERS.iter().any(|w| {
        let w: Vec<char> = w.chars().collect();
        rest.len() >= w.len() && rest[..w.len()] == w[..]
    })
}

/// Whether a single numeral character at `i` is a quantity, judged by its neighbours.
fn lone_digit_is_number(chars: &[char], i: usize) -> bool {
    let next = chars.get(i + 1).copied();
    let before: String = chars[..i].iter().collect();
    if ORDINAL_BEFORE.iter().any(|w| before.ends_with(w)) || before.ends_with('月') {
        return true;
    }
    match next {
        Some('点') => {
            // 一点 is "a little" unless it reads as a time.
            if chars[i] != '一' {
                return true;
            }
            let after = chars.get(i + 2).copied();
            [
                "上午", "下午", "中午", "晚上", "凌晨", "早上", "明天", "今天", "后天",
            ]
            .iter()
            .any(|w| before.ends_with(w))
                || matches!(
                    after,
                    Some('半') | Some('刻') | Some('钟') | Some('前') | Some('后') | Some('左')
                )
                || after.is_some_and(|a| digit_value(a).is_some() || a == '十')
        }
        Some(n) => MEASURES.contains(n) || n == '万' || n == '千',
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_forms_customers_say() {
        for (text, value) in [
            ("五千", "5000"),
            ("三千五", "3500"),
            ("一千二百", "1200"),
            ("1.5万", "15000"),
            ("2.35万", "23500"),
            ("十二", "12"),
            ("二十", "20"),
            ("一百零五", "105"),
            ("一万零五百", "10500"),
            ("一万二", "12000"),
            ("两百五", "250"),
            ("二零二六", "2026"),
            ("幺三八", "138"),
            ("5千", "5000"),
            ("3万5", "35000"),
            ("两亿", "200000000"),
            ("十万", "100000"),
            ("二十万", "200000"),
            ("一百二十三万四千五百六十七", "1234567"),
        ] {
            assert_eq!(parse_number(text).as_deref(), Some(value), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        for text in [
            "",
            "万",
            "千万",
            "百",
            "一二三四五六七八九十百",
            "1.2.3",
            "五五千",
        ] {
            assert_eq!(parse_number(text), None, "{text}");
        }
    }

    #[test]
    fn rewrites_quantities_and_leaves_words_alone() {
        for (text, want) in [
            ("我想取五千块", "我想取5000块"),
            ("转三千五给我儿子", "转3500给我儿子"),
            ("换1.5万美元", "换15000美元"),
            ("一点五万", "15000"),
            ("下午三点半", "下午3点半"),
            ("两点一刻", "2点1刻"),
            ("下午一点", "下午1点"),
            ("下周三上午十点", "下周3上午10点"),
            ("十二月一号", "12月1号"),
            ("我看一下", "我看一下"),
            ("我们一起来的", "我们一起来的"),
            ("快一点", "快一点"),
            ("十分感谢", "十分感谢"),
            ("万一丢了", "万一丢了"),
            ("千万别", "千万别"),
            ("办一张卡", "办1张卡"),
            ("手机号幺三八一二三四五六七八", "手机号13812345678"),
            ("一个人", "1个人"),
            ("星期天", "星期天"),
        ] {
            assert_eq!(rewrite_numerals(text), want, "{text}");
        }
    }

    /// Writes `n` the way a person says it: 3500 → 三千五百 (or 三千五 when `short`).
    fn say(n: u64, short: bool) -> String {
        const D: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
        fn below_10k(n: u64, out: &mut String, leading: bool) {
            let units = [(1000, '千'), (100, '百'), (10, '十')];
            let mut zero_pending = false;
            let mut started = !leading;
            for (u, c) in units {
                let d = (n / u) % 10;
                if d == 0 {
                    if started {
                        zero_pending = true;
                    }
                    continue;
                }
                if zero_pending {
                    out.push('零');
                    zero_pending = false;
                }
                if !(u == 10 && d == 1 && !started) {
                    out.push(D[d as usize]);
                }
                out.push(c);
                started = true;
            }
            let d = n % 10;
            if d != 0 {
                if zero_pending || (started && n % 100 < 10 && n >= 10) {
                    out.push('零');
                }
                out.push(D[d as usize]);
            }
        }
        if n == 0 {
            return "零".into();
        }
        let mut out = String::new();
        let (yi, wan, rest) = (n / 100_000_000, (n / 10_000) % 10_000, n % 10_000);
        if yi > 0 {
            below_10k(yi, &mut out, true);
            out.push('亿');
        }
        if wan > 0 {
            if yi > 0 && wan < 1000 {
                out.push('零');
            }
            below_10k(wan, &mut out, true);
            out.push('万');
        }
        if rest > 0 {
            if (yi > 0 || wan > 0) && rest < 1000 {
                out.push('零');
            }
            below_10k(rest, &mut out, true);
        }
        if short && out.ends_with('百') && out.chars().count() >= 4 {
            // 三千五百 → 三千五 only when the digit before 百 follows 千 directly.
            let cs: Vec<char> = out.chars().collect();
            if cs[cs.len() - 3] == '千' {
                out.pop();
            }
        }
        out
    }

    proptest! {
        #[test]
        fn any_spoken_number_reads_back(n in 1u64..1_000_000_000_000) {
            let spoken = say(n, false);
            prop_assert_eq!(parse_number(&spoken), Some(n.to_string()), "{}", spoken);
        }

        #[test]
        fn short_forms_read_back(thousands in 1u64..10, hundreds in 1u64..10) {
            let n = thousands * 1000 + hundreds * 100;
            let spoken = say(n, true);
            prop_assert_eq!(parse_number(&spoken), Some(n.to_string()), "{}", spoken);
        }

        #[test]
        fn digits_with_wan_read_back(int in 0u64..100_000, frac in 0u64..10) {
            let text = format!("{int}.{frac}万");
            prop_assert_eq!(parse_number(&text), Some((int * 10_000 + frac * 1000).to_string()));
        }

        #[test]
        fn rewriting_never_panics_and_keeps_non_numerals(s in "\\PC{0,40}") {
            let out = rewrite_numerals(&s);
            let kept = |t: &str| t.chars().filter(|c| !is_numeral_char(*c) && *c != '点').count();
            prop_assert_eq!(kept(&out), kept(&s), "{} -> {}", s, out);
        }
    }
}
