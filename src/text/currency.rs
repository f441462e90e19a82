//! Currencies as customers name them: one table of ISO 4217 codes, the name Concierge says
//! for each, and the other words customers use (美金, 港纸, 日币 …). The NLU finds them in
//! what was said ([`first_named`], [`named_at_start`]); replies say [`name`].

/// A currency: its ISO 4217 code, the name Concierge says, and other words for it.
#[derive(Debug, Clone, Copy)]
pub struct Currency {
    /// ISO 4217, e.g. `USD`.
    pub code: &'static str,
    /// The name Concierge says and shows, e.g. 美元.
    pub name: &'static str,
    /// Other words customers use for it, e.g. 美金, 美刀.
    pub also: &'static [&'static str],
}

/// Every currency Concierge understands. No word is the start of another word, so where a
/// currency is named does not depend on the order of this table.
pub const CURRENCIES: &[Currency] = &[
    Currency {
        code: "CNY",
        name: "人民币",
        also: &[],
    },
    Currency {
        code: "USD",
        name: "美元",
        also: &["美金", "美刀"],
    },
    Currency {
        code: "EUR",
        name: "欧元",
        also: &[],
    },
    Currency {
        code: "JPY",
        name: "日元",
        also: &["日币"],
    },
    Currency {
        code: "HKD",
        name: "港币",
        also: &["港元", "港纸"],
    },
    Currency {
        code: "GBP",
        name: "英镑",
        also: &[],
    },
    Currency {
        code: "AUD",
        name: "澳元",
        also: &["澳币"],
    },
    Currency {
        code: "CAD",
        name: "加元",
        also: &["加币"],
    },
    Currency {
        code: "SGD",
        name: "新加坡元",
        also: &["新币"],
    },
    Currency {
        code: "CHF",
        name: "瑞士法郎",
        also: &["瑞郎"],
    },
    Currency {
        code: "KRW",
        name: "韩元",
        also: &["韩币"],
    },
    Currency {
        code: "THB",
        name: "泰铢",
        also: &[],
    },
];

/// Every word that names a currency (names and other words), with its code.
pub fn words() -> impl Iterator<Item = (&'static str, &'static str)> {
    CURRENCIES.iter().flat_map(|c| {
        std::iter::once(c.name)
            .chain(c.also.iter().copied())
            .map(move |w| (w, c.code))
    })
}

/// The code of the currency named first in `text`, if any is.
pub fn first_named(text: &str) -> Option<&'static str> {
    words()
        .filter_map(|(w, code)| text.find(w).map(|at| (at, code)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, code)| code)
}

/// The code of the currency `text` starts with a word of (`美元` in `美元现钞`).
pub fn named_at_start(text: &str) -> Option<&'static str> {
    words()
        .find(|(w, _)| text.starts_with(w))
        .map(|(_, code)| code)
}

/// The name Concierge says for an ISO 4217 code (`USD` → 美元); `None` for a code it does
/// not know.
pub fn name(code: &str) -> Option<&'static str> {
    CURRENCIES.iter().find(|c| c.code == code).map(|c| c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_finds_its_code_and_every_code_its_name() {
        for (word, code) in words() {
            assert_eq!(
                first_named(&format!("我想换五百{word}现钞")),
                Some(code),
                "{word}"
            );
            assert_eq!(named_at_start(&format!("{word}现钞")), Some(code), "{word}");
        }
        let said: Vec<(&str, &str)> = [
            "USD", "EUR", "JPY", "HKD", "GBP", "AUD", "CAD", "SGD", "CHF", "KRW", "THB", "CNY",
            "XAU",
        ]
        .into_iter()
        .map(|code| (code, name(code).unwrap_or("?")))
        .collect();
        assert_eq!(
            said,
            [
                ("USD", "美元"),
                ("EUR", "欧元"),
                ("JPY", "日元"),
                ("HKD", "港币"),
                ("GBP", "英镑"),
                ("AUD", "澳元"),
                ("CAD", "加元"),
                ("SGD", "新加坡元"),
                ("CHF", "瑞士法郎"),
                ("KRW", "韩元"),
                ("THB", "泰铢"),
                ("CNY", "人民币"),
                ("XAU", "?"),
            ]
        );
    }

    #[test]
    fn the_first_currency_said_wins_and_a_word_must_start_the_text() {
        assert_eq!(first_named("港币换美金"), Some("HKD"));
        assert_eq!(first_named("美金换港币"), Some("USD"));
        assert_eq!(first_named("五千块"), None);
        assert_eq!(named_at_start("换美元"), None);
        assert_eq!(named_at_start(""), None);
    }

    #[test]
    fn no_word_starts_another_and_codes_are_unique() {
        let all: Vec<(&str, &str)> = words().collect();
        for (a, _) in &all {
            for (b, _) in &all {
                assert!(a == b || !b.starts_with(a), "{a} starts {b}");
            }
        }
        for (i, c) in CURRENCIES.iter().enumerate() {
            assert!(
                CURRENCIES[..i].iter().all(|d| d.code != c.code),
                "{}",
                c.code
            );
        }
    }
}
