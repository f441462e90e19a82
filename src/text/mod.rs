//! Chinese text handling shared by the NLU, knowledge search and speech: normalisation
//! (width, Traditional → Simplified, case, filler words; [`normalize`]), numerals read and
//! rewritten as digits ([`numbers`]), currency codes and names ([`currency`]), the jieba
//! word dictionary (one shared, [`jieba`]; [`jieba_with`] for a reader that adds words) and
//! the utterance length limit ([`cut_utterance`]).

pub mod currency;
pub mod normalize;
pub mod numbers;

use std::sync::OnceLock;

use jieba_rs::Jieba;

/// jieba with its built-in dictionary, loaded once per process (about 0.3 s and 25 MB) for
/// the readers that add no words (the speech corrector).
pub fn jieba() -> &'static Jieba {
    static DICT: OnceLock<Jieba> = OnceLock::new();
    DICT.get_or_init(Jieba::new)
}

/// A jieba of its own: the built-in dictionary plus `words` kept whole (knowledge search
/// adds its synonyms and domain terms). Loaded afresh rather than cloned from [`jieba`], so
/// a process that never needs the shared one does not hold two dictionaries.
pub fn jieba_with<'a>(words: impl IntoIterator<Item = &'a str>) -> Jieba {
    let mut jieba = Jieba::new();
    for w in words {
        if !w.is_empty() {
            // A high frequency: a listed word stays whole ("止付" is not cut into 止/付).
            jieba.add_word(w, Some(100_000), None);
        }
    }
    jieba
}

/// The longest customer utterance Concierge keeps as text (what the NLU reads, a question,
/// a free-text answer, a line relayed to staff), in characters.
pub const MAX_UTTERANCE_CHARS: usize = 500;

/// `text` cut to [`MAX_UTTERANCE_CHARS`] characters.
pub fn cut_utterance(text: &str) -> String {
    text.chars().take(MAX_UTTERANCE_CHARS).collect()
}
