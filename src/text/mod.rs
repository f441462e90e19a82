//! Chinese text handling shared by the NLU, knowledge search and speech: normalisation
//! (width, Traditional → Simplified, case, filler words; [`normalize`]), numerals read and
//! rewritten as digits ([`numbers`]), and the one jieba word dictionary ([`jieba`]).

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
