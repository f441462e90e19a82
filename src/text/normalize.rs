//! Normalisation shared by typed and recognised text: full-width → half-width, Traditional →
//! Simplified (speech recognisers may emit Traditional), lower case, Chinese-numeral
//! quantities → digits, and — for matching only — punctuation, spaces and filler words
//! (嗯, 那个, 就是 …) removed.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::numbers::rewrite_numerals;

/// One utterance, normalised two ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Folded (width, script, case) with numerals as digits; punctuation kept. Slots are
    /// read from this.
    pub text: String,
    /// `text` without punctuation, whitespace and filler words. Intents are matched on this.
    pub matching: String,
}

/// Words that carry no meaning for intent matching. Longest first.
const FILLERS: &[&str] = &[
    "那个那个",
    "就是说",
    "那个",
    "就是",
    "这个嘛",
    "然后呢",
    "嗯嗯",
    "呃呃",
    "嗯",
    "呃",
    "额",
    "唔",
    "哦",
    "噢",
    "诶",
    "欸",
    "哎",
];

/// Normalises one utterance.
pub fn normalize(raw: &str) -> Normalized {
    let folded = fold(raw);
    // Rewriting can leave a numeral for another pass ("三点五万万" → "35000万" →
    // "350000000"): rewrite until nothing changes (a few passes at most), so normalising
    // normalised text changes nothing.
    let mut text = rewrite_numerals(&folded);
    for _ in 0..4 {
        let again = rewrite_numerals(&text);
        if again == text {
            break;
        }
        text = again;
    }
    let matching = for_matching(&text);
    Normalized { text, matching }
}

/// Full-width → half-width, Traditional → Simplified, lower case. Keeps every character's
/// position meaningfully (one char in, at most a few out, for lower-casing).
pub fn fold(raw: &str) -> String {
    let t2s = t2s();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        out.extend(fold_width_script(t2s, c).to_lowercase());
    }
    out
}

/// [`fold`] for one character, always one character out (the first of its lower case), so
/// positions in the folded text map back one to one (search highlights rely on it).
pub fn fold_char(c: char) -> char {
    let c = fold_width_script(t2s(), c);
    c.to_lowercase().next().unwrap_or(c)
}

fn fold_width_script(t2s: &HashMap<char, char>, c: char) -> char {
    let c = match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    };
    t2s.get(&c).copied().unwrap_or(c)
}

/// Drops punctuation, whitespace, emoji and filler words.
pub fn for_matching(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| c.is_alphanumeric() && !is_punctuation(*c))
        .collect();
    let mut out = String::with_capacity(kept.len());
    let mut rest = kept.as_str();
    'outer: while let Some(c) = rest.chars().next() {
        for filler in FILLERS {
            if let Some(after) = rest.strip_prefix(filler) {
                // Keep 那个/就是 when they are the whole utterance or carry meaning
                // ("就是这个" as an answer is still affirmation-ish): only drop fillers that
                // leave something behind.
                if !after.is_empty() || !out.is_empty() {
                    rest = after;
                    continue 'outer;
                }
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || "，。！？、；：“”‘’（）《》【】…—～·「」『』".contains(c)
}

fn t2s() -> &'static HashMap<char, char> {
    static TABLE: OnceLock<HashMap<char, char>> = OnceLock::new();
    TABLE.get_or_init(|| {
        include_str!("data/t2s.txt")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut parts = l.split('\t');
                let t = parts.next()?.chars().next()?;
                let s = parts.next()?.chars().next()?;
                Some((t, s))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_width_script_and_case() {
        assert_eq!(fold("ＡＢＣ１２３！"), "abc123!");
        assert_eq!(fold("我要轉帳，掛失銀行卡"), "我要转帐,挂失银行卡");
        assert_eq!(fold("預約開戶"), "预约开户");
    }

    #[test]
    fn matching_form_drops_punctuation_and_fillers() {
        let n = normalize("嗯，那个，就是我想取五千块钱！");
        assert_eq!(n.text, "嗯,那个,就是我想取5000块钱!");
        assert_eq!(n.matching, "我想取5000块钱");
        assert_eq!(normalize("😀😀").matching, "");
        assert_eq!(normalize("那个").matching, "那个");
    }

    #[test]
    fn traditional_and_full_width_numbers_meet_the_same_form() {
        assert_eq!(
            normalize("轉帳三千五").matching,
            normalize("转帐３５００").matching
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_matching_has_no_punctuation(s in "\\PC{0,200}") {
            let n = normalize(&s);
            prop_assert!(!n.matching.chars().any(|c| c.is_whitespace() || is_punctuation(c)));
        }

        #[test]
        fn is_idempotent_on_its_own_output(s in "[一二三四五六七八九十百千万点半号月的我要取钱转账a-z0-9，。 ]{0,30}") {
            let once = normalize(&s);
            let twice = normalize(&once.text);
            prop_assert_eq!(twice.text, once.text.clone());
        }
    }
}
