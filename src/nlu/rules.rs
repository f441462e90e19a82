//! Keyword rules: phrases that, when present, make an intent certain. Declared per intent
//! in `dialogs/intents.yaml`. The longest matching phrase wins, so "取消预约" beats "预约".

use serde::Serialize;

/// A ranked guess at what the customer wants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentMatch {
    pub name: String,
    pub confidence: f32,
    /// The phrase that decided it.
    pub matched: String,
}

/// Keyword rules compiled for matching.
#[derive(Debug, Clone, Default)]
pub struct KeywordRules {
    /// (normalized phrase, intent), longest phrases first.
    phrases: Vec<(String, String)>,
}

impl KeywordRules {
    pub fn new(rules: impl IntoIterator<Item = (String, String)>) -> KeywordRules {
        let mut phrases: Vec<(String, String)> = rules
            .into_iter()
            .map(|(phrase, intent)| (normalize(&phrase), intent))
            .filter(|(p, _)| !p.is_empty())
            .collect();
        phrases.sort_by_key(|p| std::cmp::Reverse(p.0.chars().count()));
        KeywordRules { phrases }
    }

    /// The intent whose longest phrase occurs in `text`, if any.
    pub fn classify(&self, text: &str) -> Option<IntentMatch> {
        let text = normalize(text);
        self.phrases
            .iter()
            .find(|(phrase, _)| text.contains(phrase.as_str()))
            .map(|(phrase, intent)| IntentMatch {
                name: intent.clone(),
                confidence: 1.0,
                matched: phrase.clone(),
            })
    }
}

/// Lower-cases, turns full-width ASCII into half-width and drops whitespace and
/// punctuation, so "你好！" and "你好" match alike.
pub fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .filter(|c| !c.is_whitespace() && !is_punctuation(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || "，。！？、；：“”‘’（）《》【】…—～·".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> KeywordRules {
        KeywordRules::new([
            ("预约".to_string(), "appointment.book".to_string()),
            ("取消预约".to_string(), "appointment.cancel".to_string()),
            ("你好".to_string(), "greet".to_string()),
        ])
    }

    #[test]
    fn the_longest_phrase_wins() {
        assert_eq!(
            rules().classify("我想取消预约").unwrap().name,
            "appointment.cancel"
        );
        assert_eq!(
            rules().classify("我想预约").unwrap().name,
            "appointment.book"
        );
    }

    #[test]
    fn punctuation_and_full_width_do_not_matter() {
        assert_eq!(rules().classify("你　好！！").unwrap().name, "greet");
        assert!(rules().classify("今天天气").is_none());
    }
}
