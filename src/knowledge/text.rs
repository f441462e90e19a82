//! Chinese text analysis for search: characters folded (width, Traditional → Simplified,
//! case) one to one, words cut by jieba in search mode (a compound also yields its parts:
//! 信用卡挂失 → 信用, 信用卡, 挂失), punctuation and function words dropped. Every token
//! keeps its byte offsets in the original text, so highlights land on what the author wrote.
//! The same analyzer reads articles and questions, and knows every synonym as a word.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use jieba_rs::{Jieba, TokenizeMode};

use crate::datafile::DataError;

/// Words that say nothing about the topic of a question.
const STOP_WORDS: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "呀",
    "嘛",
    "哦",
    "嗯",
    "么",
    "我",
    "你",
    "您",
    "他",
    "她",
    "它",
    "我们",
    "你们",
    "他们",
    "咱们",
    "是",
    "在",
    "有",
    "和",
    "与",
    "及",
    "或",
    "或者",
    "要",
    "想",
    "想要",
    "请",
    "请问",
    "一下",
    "怎么",
    "怎么办",
    "怎么样",
    "怎样",
    "如何",
    "什么",
    "哪些",
    "哪里",
    "哪儿",
    "能",
    "能不能",
    "可以",
    "可不可以",
    "会",
    "就",
    "都",
    "也",
    "还",
    "这",
    "那",
    "这个",
    "那个",
    "个",
    "把",
    "被",
    "给",
    "让",
    "去",
    "来",
    "到",
    "对",
    "从",
    "为",
    "啥",
    "得",
    "地",
    "着",
    "过",
    "又",
    "再",
    "很",
    "太",
    "一个",
    "一些",
    "有没有",
    "是不是",
    "下",
    "上",
    "里",
    "中",
    "么样",
    "该",
    "应该",
    "需不需要",
    "自己",
    "现在",
    "然后",
    "那么",
    "这样",
    "那样",
    "一样",
    "麻烦",
    "谢谢",
    "你好",
    "您好",
];

/// One word of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    /// Byte offsets in the original text.
    pub start: usize,
    pub end: usize,
}

/// The analyzer shared by indexing and querying (cheap to clone: an `Arc`).
#[derive(Clone)]
pub struct Analyzer {
    jieba: Arc<Jieba>,
    stop: Arc<HashSet<&'static str>>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Analyzer")
    }
}

impl Analyzer {
    /// jieba's dictionary plus `words` (synonyms, domain terms) as whole words.
    pub fn new<'a>(words: impl IntoIterator<Item = &'a str>) -> Analyzer {
        let folded: Vec<String> = words.into_iter().map(fold).collect();
        let jieba = crate::text::jieba_with(folded.iter().map(String::as_str));
        Analyzer {
            jieba: Arc::new(jieba),
            stop: Arc::new(STOP_WORDS.iter().copied().collect()),
        }
    }

    /// The words of `text`, in order, with their original byte offsets.
    pub fn terms(&self, text: &str) -> Vec<Term> {
        self.terms_in(text, TokenizeMode::Search)
    }

    fn terms_in(&self, text: &str, mode: TokenizeMode) -> Vec<Term> {
        let mut folded = String::with_capacity(text.len());
        let mut starts = Vec::with_capacity(text.len());
        for (i, c) in text.char_indices() {
            folded.push(crate::text::normalize::fold_char(c));
            starts.push(i);
        }
        starts.push(text.len());
        self.jieba
            .tokenize(&folded, mode, true)
            .into_iter()
            .filter(|t| t.word.chars().any(char::is_alphanumeric) && !self.stop.contains(t.word))
            .map(|t| Term {
                text: t.word.to_string(),
                start: starts[t.start],
                end: starts[t.end.min(starts.len() - 1)],
            })
            .collect()
    }

    /// The distinct words of a question, in order of first appearance.
    pub fn query_terms(&self, text: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.terms(text)
            .into_iter()
            .filter_map(|t| seen.insert(t.text.clone()).then_some(t.text))
            .collect()
    }
}

/// Overlapping pairs of characters within each run of letters and digits ("借记卡年费" →
/// 借记, 记卡, 卡年, 年费): what a word cut misses, a pair still finds. A run of one
/// character is its own gram.
pub fn char_grams(text: &str) -> Vec<Term> {
    let mut out = Vec::new();
    let mut run: Vec<(usize, char)> = Vec::new();
    let mut flush = |run: &mut Vec<(usize, char)>, end: usize| {
        if run.len() == 1 {
            out.push(Term {
                text: run[0].1.to_string(),
                start: run[0].0,
                end,
            });
        }
        for (i, pair) in run.windows(2).enumerate() {
            let stop = run.get(i + 2).map_or(end, |c| c.0);
            out.push(Term {
                text: [pair[0].1, pair[1].1].iter().collect(),
                start: pair[0].0,
                end: stop,
            });
        }
        run.clear();
    };
    for (i, c) in text.char_indices() {
        let f = crate::text::normalize::fold_char(c);
        if f.is_alphanumeric() {
            run.push((i, f));
        } else {
            flush(&mut run, i);
        }
    }
    flush(&mut run, text.len());
    out
}

/// [`char_grams`] as a tantivy tokenizer (registered as `grams`).
#[derive(Clone)]
pub struct GramTokenizer;

impl tantivy::tokenizer::Tokenizer for GramTokenizer {
    type TokenStream<'a> = ZhTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ZhTokenStream {
        ZhTokenStream::of(char_grams(text))
    }
}

fn fold(s: &str) -> String {
    s.trim()
        .chars()
        .map(crate::text::normalize::fold_char)
        .collect()
}

/// The analyzer as a tantivy tokenizer (registered as `zh`).
#[derive(Clone)]
pub struct ZhTokenizer(pub Analyzer);

/// The tokens of one text.
pub struct ZhTokenStream {
    tokens: Vec<tantivy::tokenizer::Token>,
    next: usize,
}

impl tantivy::tokenizer::Tokenizer for ZhTokenizer {
    type TokenStream<'a> = ZhTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ZhTokenStream {
        ZhTokenStream::of(self.0.terms(text))
    }
}

impl ZhTokenStream {
    fn of(terms: Vec<Term>) -> ZhTokenStream {
        let tokens = terms
            .into_iter()
            .enumerate()
            .map(|(position, t)| tantivy::tokenizer::Token {
                offset_from: t.start,
                offset_to: t.end,
                position,
                text: t.text,
                position_length: 1,
            })
            .collect();
        ZhTokenStream { tokens, next: 0 }
    }
}

impl tantivy::tokenizer::TokenStream for ZhTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }
    fn token(&self) -> &tantivy::tokenizer::Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut tantivy::tokenizer::Token {
        &mut self.tokens[self.next - 1]
    }
}

/// The banking synonym dictionary: groups of words customers use for the same thing
/// (`knowledge/synonyms.yaml`; edited by content staff through the API).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synonyms {
    groups: Vec<Vec<String>>,
    of: BTreeMap<String, usize>,
}

/// Longest word in a synonym group, in characters.
const MAX_SYNONYM_CHARS: usize = 16;
/// Most groups in the dictionary.
const MAX_SYNONYM_GROUPS: usize = 2000;

impl Synonyms {
    /// Parses and validates the YAML text of `synonyms.yaml`; errors carry `file:line`.
    pub fn parse(path: &Path, text: &str) -> Result<Synonyms, Vec<DataError>> {
        let mut errors = Vec::new();
        let raw: Option<Vec<serde_norway::Value>> =
            crate::datafile::parse_yaml(path, text, &mut errors);
        let Some(raw) = raw else {
            return Err(errors);
        };
        let err = |line: usize, message: String| DataError {
            file: path.to_path_buf(),
            line,
            message,
        };
        if raw.len() > MAX_SYNONYM_GROUPS {
            errors.push(err(1, format!("more than {MAX_SYNONYM_GROUPS} groups")));
        }
        // Group n starts on the n-th line that begins with "- ".
        let group_lines: Vec<usize> = crate::datafile::item_lines(text);
        let mut syn = Synonyms::default();
        for (n, value) in raw.iter().enumerate() {
            let line = group_lines.get(n).copied().unwrap_or(1);
            let Some(words) = value.as_sequence() else {
                errors.push(err(line, "a group is a list of words: [挂失, 止付]".into()));
                continue;
            };
            let mut group: Vec<String> = Vec::new();
            for w in words {
                let Some(w) = w.as_str().map(fold) else {
                    errors.push(err(line, "every word is text".into()));
                    continue;
                };
                if w.is_empty() || w.chars().count() > MAX_SYNONYM_CHARS {
                    errors.push(err(
                        line,
                        format!("`{w}`: a word has 1 to {MAX_SYNONYM_CHARS} characters"),
                    ));
                } else if group.contains(&w) {
                    errors.push(err(line, format!("`{w}` is twice in this group")));
                } else if syn.of.contains_key(&w) {
                    errors.push(err(line, format!("`{w}` is already in another group")));
                } else {
                    syn.of.insert(w.clone(), syn.groups.len());
                    group.push(w);
                }
            }
            if group.len() < 2 && words.len() < 2 {
                errors.push(err(line, "a group needs at least two words".into()));
            }
            syn.groups.push(group);
        }
        if errors.is_empty() {
            Ok(syn)
        } else {
            Err(errors)
        }
    }

    /// The other words of `word`'s group.
    pub fn of<'a>(&'a self, word: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.of
            .get(word)
            .map(|g| self.groups[*g].as_slice())
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .filter(move |w| *w != word)
    }

    /// Every word of every group.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.of.keys().map(String::as_str)
    }

    pub fn groups(&self) -> &[Vec<String>] {
        &self.groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> Analyzer {
        Analyzer::new(["止付", "交易明细"])
    }

    #[test]
    fn words_are_cut_folded_and_keep_their_original_offsets() {
        let a = analyzer();
        let text = "信用卡掛失，ＡＴＭ吞卡了怎么办？";
        let terms = a.terms(text);
        let words: Vec<&str> = terms.iter().map(|t| t.text.as_str()).collect();
        assert!(words.contains(&"信用卡"), "{words:?}");
        assert!(words.contains(&"挂失"), "{words:?}");
        assert!(words.contains(&"atm"), "{words:?}");
        assert!(!words.contains(&"怎么办"), "{words:?}");
        let t = terms.iter().find(|t| t.text == "挂失").unwrap();
        assert_eq!(&text[t.start..t.end], "掛失");
        let t = terms.iter().find(|t| t.text == "atm").unwrap();
        assert_eq!(&text[t.start..t.end], "ＡＴＭ");
    }

    #[test]
    fn listed_words_stay_whole_and_punctuation_only_gives_nothing() {
        let a = analyzer();
        assert!(a.query_terms("我要止付").contains(&"止付".to_string()));
        assert!(a.query_terms("？？！！…… ,,, ").is_empty());
        assert!(a.query_terms("").is_empty());
    }

    #[test]
    fn grams_pair_characters_within_runs() {
        let grams: Vec<String> = char_grams("借记卡年費，A")
            .into_iter()
            .map(|t| t.text)
            .collect();
        assert_eq!(grams, vec!["借记", "记卡", "卡年", "年费", "a"]);
    }

    #[test]
    fn synonyms_validate_with_lines_and_expand() {
        let p = Path::new("synonyms.yaml");
        let s = Synonyms::parse(p, "# c\n- [挂失, 止付, 冻结]\n- [流水, 交易明细]\n").unwrap();
        let mut of: Vec<&str> = s.of("止付").collect();
        of.sort();
        assert_eq!(of, vec!["冻结", "挂失"]);
        assert_eq!(s.of("存款").count(), 0);
        let e = Synonyms::parse(p, "- [挂失, 止付]\n- [流水, 挂失]\n- [单独]\n").unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3], "{e:?}");
    }
}
