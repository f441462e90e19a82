//! Chinese text handling shared by the NLU, knowledge search and speech: normalisation
//! (width, Traditional → Simplified, case, filler words; [`normalize`]), numerals read and
//! rewritten as digits ([`numbers`]), currency codes and names ([`currency`]), the one jieba
//! word dictionary ([`jieba`]) and the utterance length limit ([`cut_utterance`]).

pub mod currency;
pub mod normalize;
pub mod numbers;

use std::sync::OnceLock;

use jieba_rs::Jieba;

/// jieba with its built-in dictionary, loaded once per process (about 0.3 s). A user that
/// adds words of its own (knowledge synonyms) clones it rather than loading it again.
pub fn jieba() -> &'static Jieba {
    static DICT: OnceLock<Jieba> = OnceLock::new();
    DICT.get_or_init(Jieba::new)
}

/// The longest customer utterance Concierge keeps as text (what the NLU reads, a question,
/// a free-text answer, a line relayed to staff), in characters.
pub const MAX_UTTERANCE_CHARS: usize = 500;

/// `text` cut to [`MAX_UTTERANCE_CHARS`] characters.
pub fn cut_utterance(text: &str) -> String {
    text.chars().take(MAX_UTTERANCE_CHARS).collect()
}
