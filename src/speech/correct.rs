//! Domain correction after speech recognition. Whisper often returns a near-homophone of the
//! word a customer said (伴离开户 for 办理开户, 挂虚 for 挂失, 因行卡 for 银行卡); the
//! [`Corrector`] maps such near misses onto a domain lexicon by comparing toneless pinyin
//! syllable by syllable, and is built to leave correct text alone. The rules are on
//! [`Corrector::correct`]; the lexicon's sources on [`Corrector::from_content`]; how it was
//! measured and how operators add terms: `docs/correction.md`.
//!
//! Layout: the pinyin tables (`Phonetics`, built once per process from the `pinyin` crate's
//! embedded data), the corrector, term mining ([`mine_terms`]) and the operator's lexicon file
//! (`dialogs/lexicon.yaml`, [`load_lexicon`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jieba_rs::Jieba;
use pinyin::ToPinyinMulti;
use serde::Deserialize;

use crate::datafile::DataError;
use crate::datafile::{line_of_after, parse_yaml, read_data_file};

/// Shortest and longest term, in characters.
pub const MIN_TERM_CHARS: usize = 2;
pub const MAX_TERM_CHARS: usize = 8;

/// The operator's extra terms, beside `intents.yaml` in the dialogs folder.
pub const LEXICON_FILE: &str = "lexicon.yaml";

/// Cost of a confusable initial or final (z/zh, an/ang, …), and of the same syllable through
/// a character's less common reading (号 read xiāo).
const NEAR: u8 = 3;
/// Cost of a syllable that sounds different: it rules the window out.
const FAR: u8 = 10;

/// No window may cut through a jieba dictionary word at least this frequent (离开, 大唐, 不去):
/// a correction replaces whole words. (A window that *is* a dictionary word, however rare —
/// 网店 has 3 — is never rewritten.)
const COMMON_WORD_FREQ: usize = 50;

/// See [`is_reliable_char`]. 去 (123,402) stays correctable: 去号 for 取号 is a classic.
const FREQUENT_CHAR: usize = 150_000;
const FREQUENT_FUNCTION_CHAR: usize = 60_000;

/// Words this frequent in general Chinese (可以, 需要, 时间, 现在) are everyday words, not
/// domain terms: mining skips them.
const EVERYDAY_WORD_FREQ: usize = 20_000;

/// A mined word must occur in at least this many distinct domain texts, a mined phrase in
/// [`MIN_PHRASE_TEXTS`]: a one-off (often itself an ASR error in the training examples) is not
/// a domain term.
const MIN_WORD_TEXTS: usize = 2;
const MIN_PHRASE_TEXTS: usize = 3;

/// Mined words shorter than this, and mined phrases shorter than [`MIN_MINED_PHRASE_CHARS`],
/// only protect (text that is one of them is never changed) and are never put in place of
/// something heard: short general words (了解, 钱包, 报告) sound like too much correct text.
/// Short terms that are worth correcting to are curated.
const MIN_MINED_TARGET_CHARS: usize = 3;
const MIN_MINED_PHRASE_CHARS: usize = 4;

/// At most this many toneless readings are kept per character (the most common first).
const MAX_READINGS: usize = 4;

/// Han characters with readings: CJK Extension A and the Unified Ideographs block.
const FIRST_HAN: u32 = 0x3400;
const LAST_HAN: u32 = 0x9FFF;

/// Terms every Concierge lexicon has, whatever the data says: the services and the words
/// customers use for them. Operators add theirs in `dialogs/lexicon.yaml`.
#[rustfmt::skip]
pub const CURATED_TERMS: &[&str] = &[
    // cards, loss, accounts
    "挂失", "补办", "换卡", "激活", "冻结", "解冻", "办理", "开户", "销户", "办理开户",
    "银行卡", "储蓄卡", "借记卡", "信用卡", "社保卡", "存折", "身份证", "户口本",
    "密码", "重置密码", "余额", "查余额", "对账单", "流水", "验证码", "预留手机号", "手机号",
    // people, queue, appointments
    "转人工", "人工服务", "大堂经理", "理财经理", "工作人员", "柜员", "柜台", "取号", "叫号",
    "排队", "预约", "取消预约", "远程专家", "视频柜员", "营业时间", "停车场", "网点",
    // money
    "转账", "转账限额", "限额", "汇款", "存款", "定期存款", "活期", "取款", "存钱", "取钱",
    "存现", "大额取现", "零钱", "存款证明", "理财", "理财产品", "基金", "风险评估",
    "外汇", "外币", "换汇", "美元", "港币", "欧元", "日元",
    "贷款", "房贷", "车贷", "住房贷款", "提前还款", "利息", "利率", "手续费",
    "投诉", "缴费", "电费", "水费", "燃气费", "话费", "物业费", "安全账户", "诈骗",
];

/// One rewrite: the recognised span and the term put in its place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub from: String,
    pub to: String,
}

/// The corrected text and every rewrite, left to right (empty when nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Corrected {
    pub text: String,
    pub changes: Vec<Change>,
}

/// The domain lexicon indexed by pinyin. Immutable: build it once per data set and share it.
#[derive(Clone)]
pub struct Corrector {
    /// What a near miss may become.
    terms: Vec<Term>,
    /// The terms' texts and the protect-only mined words: text that is one of them is correct
    /// by definition, and no rewrite touches its characters.
    known: HashSet<String>,
    /// Term ids by (length, position, character at that position): since a rewrite keeps at
    /// least one character in place, these lists hold every candidate of a window, so a window
    /// costs a few hash look-ups, not a scan of the lexicon.
    index: HashMap<u64, Vec<u32>, BuildHasherDefault<KeyHasher>>,
}

impl std::fmt::Debug for Corrector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Corrector({} terms)", self.terms.len())
    }
}

#[derive(Debug, Clone)]
struct Term {
    text: String,
    chars: Vec<char>,
    readings: Vec<Readings>,
}

/// A window of the text that one term fits.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    start: usize,
    len: usize,
    term: u32,
    cost: u32,
}

impl Corrector {
    /// Builds from domain terms (2–8 Han characters each; others ignored).
    pub fn new<I: IntoIterator<Item = String>>(terms: I) -> Corrector {
        Corrector::with_protected(terms, Vec::new())
    }

    /// Terms to correct to, plus words that are only protected from rewriting.
    fn with_protected<I: IntoIterator<Item = String>>(
        terms: I,
        protected: Vec<String>,
    ) -> Corrector {
        let phon = phonetics();
        let texts: BTreeSet<String> = terms
            .into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| is_term(t))
            .collect();
        let mut index: HashMap<u64, Vec<u32>, BuildHasherDefault<KeyHasher>> = HashMap::default();
        let mut list = Vec::with_capacity(texts.len());
        for (id, text) in texts.iter().enumerate() {
            let chars: Vec<char> = text.chars().collect();
            let readings: Vec<Readings> = chars.iter().map(|&c| phon.readings(c)).collect();
            for (pos, &c) in chars.iter().enumerate() {
                index
                    .entry(index_key(chars.len(), pos, c))
                    .or_default()
                    .push(id as u32);
            }
            list.push(Term {
                text: text.clone(),
                chars,
                readings,
            });
        }
        let mut known: HashSet<String> = texts.into_iter().collect();
        known.extend(protected.into_iter().filter(|t| is_term(t)));
        Corrector {
            terms: list,
            known,
            index,
        }
    }

    /// The lexicon Concierge uses. Terms to correct to:
    /// - [`CURATED_TERMS`];
    /// - the `services`, `label` and (for service intents) `exact` phrases of `intents.yaml`;
    /// - the words of 3 or more characters mined from the intents' examples and
    ///   `knowledge_texts` (article titles and questions) or found in the seed articles' tags,
    ///   and the mined phrases of 4 or more (see [`mine_terms`]);
    /// - `dialogs/lexicon.yaml` when present (an invalid file is logged and its valid terms
    ///   used; [`load_lexicon`] reports its problems as `file:line: message`).
    ///
    /// The shorter mined words, tags and phrases only protect: text that is one of them is never
    /// changed.
    pub fn from_content(
        content: &crate::content::Content,
        knowledge_texts: &[String],
    ) -> Corrector {
        let mut terms: Vec<String> = CURATED_TERMS.iter().map(|t| t.to_string()).collect();
        for intent in &content.dialogs.nlu.intents {
            terms.extend(intent.services.iter().cloned());
            terms.extend(intent.label.iter().cloned());
            // Conversational intents: their exact phrases (你好, 不用了, 算了) are not
            // domain terms.
            let conversational = crate::nlu::intent::SystemIntent::of(&intent.name)
                .is_some_and(|i| i.is_conversational());
            if !conversational {
                terms.extend(intent.exact.iter().cloned());
            }
        }
        let mut texts: Vec<&str> = content
            .dialogs
            .nlu
            .examples
            .iter()
            .map(|e| e.text.as_str())
            .collect();
        texts.extend(knowledge_texts.iter().map(String::as_str));
        let mut mined = mine_terms(&texts);
        for article in &content.articles {
            mined.words.extend(article.front.tags.iter().cloned());
        }
        if let Some(path) = dialogs_dir(content).map(|d| d.join(LEXICON_FILE)) {
            if path.is_file() {
                match load_lexicon(&path) {
                    Ok(list) => terms.extend(list),
                    Err(errors) => {
                        for e in errors {
                            tracing::warn!(error = %e, "lexicon entry ignored");
                        }
                        terms.extend(lexicon_terms_lenient(&path));
                    }
                }
            }
        }
        let (long, short): (Vec<String>, Vec<String>) = mined
            .words
            .into_iter()
            .partition(|w| w.chars().count() >= MIN_MINED_TARGET_CHARS);
        terms.extend(long);
        let (long, short_phrases): (Vec<String>, Vec<String>) = mined
            .phrases
            .into_iter()
            .partition(|p| p.chars().count() >= MIN_MINED_PHRASE_CHARS);
        terms.extend(long);
        Corrector::with_protected(terms, short.into_iter().chain(short_phrases).collect())
    }

    /// Rewrites near misses of domain terms. A window of the text (a run of Han characters as
    /// long as a term) may become that term only when all of these hold:
    /// 1. the window is not itself a term, a protected word or any jieba dictionary word (a
    ///    real word that fits is left alone);
    /// 2. it does not cut through a dictionary word at least `COMMON_WORD_FREQ` (50) frequent
    ///    (it may contain one: 伴离开户 contains 离开), and the characters it changes are
    ///    neither part of a term or protected word written correctly nor among the most
    ///    frequent characters and function words (是, 要, 不, 了, 和, 个, 对: see
    ///    `is_reliable_char`);
    /// 3. each syllable sounds alike: 0 when identical, 3 for a confusable initial (z/zh, n/l,
    ///    f/h, x/sh, …) or final (an/ang, in/ing, ü/u, ü/i, …) or for an identical syllable
    ///    through a less common reading of a polyphonic character, 6 for both a confusable
    ///    initial and final but only in a two-character term; any other syllable rules the
    ///    window out. The total is at most 6 for terms of 2–4 characters and 9 for longer ones;
    /// 4. at least one syllable is heard exactly (same character or same common reading) and
    ///    at least one character is the same: a recogniser's near miss keeps part of the word;
    ///    and no common word of the text is replaced whole (转接 does not become 专家);
    /// 5. no other term of the same length fits the window equally well (same cost and as many
    ///    characters in common).
    ///
    /// Then the closest fits are taken first, longer before shorter, then left to right,
    /// without overlaps. Digits, Latin letters, punctuation and spaces are never changed.
    pub fn correct(&self, text: &str) -> Corrected {
        let unchanged = || Corrected {
            text: text.to_string(),
            changes: Vec::new(),
        };
        if self.terms.is_empty() {
            return unchanged();
        }
        let phon = phonetics();
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let n = chars.len();
        let readings: Vec<Readings> = chars.iter().map(|&(_, c)| phon.readings(c)).collect();
        if readings.iter().filter(|r| r.len > 0).count() < MIN_TERM_CHARS {
            return unchanged();
        }
        let byte = |i: usize| chars.get(i).map_or(text.len(), |c| c.0);
        let guard = self.guard(text, &chars);

        let han: Vec<char> = chars.iter().map(|c| c.1).collect();
        let mut scratch: Vec<u32> = Vec::new();
        let mut candidates = Vec::new();
        let mut i = 0;
        while i < n {
            if readings[i].len == 0 {
                i += 1;
                continue;
            }
            let run_end = (i..n).find(|&j| readings[j].len == 0).unwrap_or(n);
            for start in i..run_end {
                if guard.inside[start] {
                    continue;
                }
                let longest = MAX_TERM_CHARS.min(run_end - start);
                for len in MIN_TERM_CHARS..=longest {
                    if guard.inside[start + len] {
                        continue;
                    }
                    let window = &text[byte(start)..byte(start + len)];
                    let found = self.best_term(
                        window,
                        start,
                        &han[start..start + len],
                        &readings[start..start + len],
                        &guard,
                        &mut scratch,
                    );
                    if let Some((term, cost)) = found {
                        candidates.push(Candidate {
                            start,
                            len,
                            term,
                            cost,
                        });
                    }
                }
            }
            i = run_end;
        }
        if candidates.is_empty() {
            return unchanged();
        }
        candidates.sort_by_key(|c| (c.cost, std::cmp::Reverse(c.len), c.start));
        let mut taken = vec![false; n];
        let mut chosen: Vec<Candidate> = Vec::new();
        for c in candidates {
            if taken[c.start..c.start + c.len].iter().any(|t| *t) {
                continue;
            }
            taken[c.start..c.start + c.len].fill(true);
            chosen.push(c);
        }
        chosen.sort_by_key(|c| c.start);

        let mut out = String::with_capacity(text.len());
        let mut changes = Vec::with_capacity(chosen.len());
        let mut copied = 0;
        for c in chosen {
            let (start, end) = (byte(c.start), byte(c.start + c.len));
            let term = &self.terms[c.term as usize].text;
            out.push_str(&text[copied..start]);
            out.push_str(term);
            copied = end;
            changes.push(Change {
                from: text[start..end].to_string(),
                to: term.clone(),
            });
        }
        out.push_str(&text[copied..]);
        Corrected { text: out, changes }
    }

    /// Number of terms a near miss may become.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `text` is a term or a protected word: text that is never changed.
    pub fn contains(&self, text: &str) -> bool {
        self.known.contains(text)
    }

    /// The terms a near miss may become, in order.
    pub fn terms(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.text.as_str())
    }

    /// Rule 2 of [`Corrector::correct`] for one text: which character boundaries lie
    /// strictly inside a common dictionary word or a known word written correctly, and which
    /// characters belong to a known word written correctly.
    fn guard(&self, text: &str, chars: &[(usize, char)]) -> Guard {
        let n = chars.len();
        let byte = |i: usize| chars.get(i).map_or(text.len(), |c| c.0);
        let mut inside = vec![false; n + 1];
        let mut fixed = vec![false; n];
        for i in 0..n {
            for len in MIN_TERM_CHARS..=MAX_TERM_CHARS.min(n - i) {
                if self.known.contains(&text[byte(i)..byte(i + len)]) {
                    inside[i + 1..i + len].fill(true);
                    fixed[i..i + len].fill(true);
                }
            }
        }
        let mut word_of = vec![None; n];
        for token in dictionary().cut(text, false) {
            if token.end - token.start >= MIN_TERM_CHARS
                && word_freq(token.word) >= COMMON_WORD_FREQ
            {
                inside[token.start + 1..token.end].fill(true);
                word_of[token.start..token.end].fill(Some((token.start, token.end)));
            }
        }
        Guard {
            inside,
            fixed,
            word_of,
        }
    }

    /// The one term of the window's length that fits it under rules 1 and 3–5 of
    /// [`Corrector::correct`], with its cost.
    fn best_term(
        &self,
        window: &str,
        start: usize,
        chars: &[char],
        readings: &[Readings],
        guard: &Guard,
        candidates: &mut Vec<u32>,
    ) -> Option<(u32, u32)> {
        let phon = phonetics();
        let len = chars.len();
        candidates.clear();
        for (pos, &c) in chars.iter().enumerate() {
            if let Some(ids) = self.index.get(&index_key(len, pos, c)) {
                candidates.extend_from_slice(ids);
            }
        }
        if candidates.is_empty() || self.known.contains(window) {
            return None;
        }
        candidates.sort_unstable();
        candidates.dedup();
        let budget = budget(len);
        // The worst a single syllable may be: one confusable step, or two (虚 xu ~ 失 shi) in
        // a two-character term whose other character is the same.
        let worst = if len == 2 { 2 * NEAR } else { NEAR };
        // (cost, characters not the same) of the best term so far.
        let mut best: Option<(u32, (u32, usize))> = None;
        let mut tied = false;
        'terms: for &id in candidates.iter() {
            let term = &self.terms[id as usize];
            let (mut cost, mut exact, mut same) = (0u32, false, 0usize);
            for k in 0..len {
                if term.chars[k] == chars[k] {
                    same += 1;
                    exact = true;
                    continue;
                }
                if guard.fixed[start + k] {
                    continue 'terms;
                }
                let c = phon.distance(readings[k], term.readings[k]);
                if c > worst {
                    continue 'terms;
                }
                exact |= c == 0;
                cost += u32::from(c);
                if cost > budget {
                    continue 'terms;
                }
            }
            if !exact || same == 0 {
                continue;
            }
            let key = (cost, len - same);
            match best {
                Some((_, b)) if key > b => {}
                Some((_, b)) if key == b => tied = true,
                _ => {
                    best = Some((id, key));
                    tied = false;
                }
            }
        }
        let (id, (cost, _)) = best.filter(|_| !tied)?;
        let term = &self.terms[id as usize];
        // A common word of the text is never replaced whole (转接 is no near miss of 专家),
        // unless the window is a long exact homophone of the term: 大汤精力 sounds
        // exactly like 大堂经理, and four syllables heard right are no coincidence.
        let exact_homophone = cost == 0 && len >= 4;
        let changed = |k: usize| chars[k] != term.chars[k];
        let replaces_a_word = !exact_homophone
            && (0..len).filter(|&k| changed(k)).any(|k| {
                guard.word_of[start + k].is_some_and(|(ws, we)| {
                    ws >= start && we <= start + len && (ws..we).all(|i| changed(i - start))
                })
            });
        if replaces_a_word {
            return None;
        }
        let changes_reliable_char = chars
            .iter()
            .zip(&term.chars)
            .any(|(a, b)| a != b && is_reliable_char(*a));
        if changes_reliable_char || dictionary().has_word(window) {
            return None;
        }
        Some((id, cost))
    }
}

/// Per-text facts for rule 2 of [`Corrector::correct`].
struct Guard {
    /// Boundary `b` (before character `b`) lies strictly inside a protected span.
    inside: Vec<bool>,
    /// Character `i` is part of a known word written correctly.
    fixed: Vec<bool>,
    /// The common dictionary word (start, end) that character `i` is part of.
    word_of: Vec<Option<(usize, usize)>>,
}

/// Largest total distance allowed for a term of `len` syllables.
fn budget(len: usize) -> u32 {
    if len <= 4 {
        6
    } else {
        9
    }
}

fn index_key(len: usize, pos: usize, c: char) -> u64 {
    ((len as u64) << 40) | ((pos as u64) << 32) | u64::from(u32::from(c))
}

/// A multiplicative hash for the index's integer keys (SipHash is needlessly slow here and
/// the keys come from the lexicon, not from customers).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// 2–8 characters, each a Han character with a reading.
fn is_term(text: &str) -> bool {
    let n = text.chars().count();
    (MIN_TERM_CHARS..=MAX_TERM_CHARS).contains(&n) && text.chars().all(is_han)
}

fn is_han(c: char) -> bool {
    phonetics().readings(c).len > 0
}

/// jieba's built-in dictionary, shared with the rest of the process.
fn dictionary() -> &'static Jieba {
    crate::text::jieba()
}

/// jieba's frequency of a dictionary word (0 when it is none).
fn word_freq(word: &str) -> usize {
    let dict = dictionary();
    if dict.has_word(word) {
        // For a dictionary word this is its count (or more, when a cut into parts is likelier).
        dict.suggest_freq(word)
    } else {
        0
    }
}

/// A character heard reliably and right far more often than not, so never changed: one of
/// the most frequent characters (是, 在, 要, 说, 都 — jieba frequency at least
/// [`FREQUENT_CHAR`]) or a frequent function word (不, 了, 和, 个, 对, 把, 给 — at least
/// [`FREQUENT_FUNCTION_CHAR`], tagged as such by jieba).
fn is_reliable_char(c: char) -> bool {
    let mut buf = [0u8; 4];
    let s: &str = c.encode_utf8(&mut buf);
    let freq = word_freq(s);
    freq >= FREQUENT_CHAR
        || (freq >= FREQUENT_FUNCTION_CHAR
            && dictionary()
                .tag(s, false)
                .first()
                .is_some_and(|t| is_function_tag(t.tag)))
}

// ---------------------------------------------------------------------------------------------
// Pinyin

/// Up to [`MAX_READINGS`] toneless syllable ids of one character, the most common first; none
/// for a non-Han character.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Readings {
    ids: [u16; MAX_READINGS],
    len: u8,
}

impl Readings {
    fn as_slice(&self) -> &[u16] {
        &self.ids[..usize::from(self.len)]
    }
}

/// Every toneless syllable, the distance between any two, and each Han character's readings.
struct Phonetics {
    /// `cost[a * n + b]`: the distance between syllables `a` and `b`.
    cost: Vec<u8>,
    n: usize,
    /// Readings of U+3400..=U+9FFF, by code point.
    chars: Vec<Readings>,
}

fn phonetics() -> &'static Phonetics {
    static PHONETICS: OnceLock<Phonetics> = OnceLock::new();
    PHONETICS.get_or_init(Phonetics::build)
}

impl Phonetics {
    fn build() -> Phonetics {
        let mut names: Vec<&'static str> = Vec::new();
        let mut ids: HashMap<&'static str, u16> = HashMap::new();
        let mut chars = vec![Readings::default(); (LAST_HAN - FIRST_HAN + 1) as usize];
        for cp in FIRST_HAN..=LAST_HAN {
            let Some(multi) = char::from_u32(cp).and_then(|c| c.to_pinyin_multi()) else {
                continue;
            };
            let r = &mut chars[(cp - FIRST_HAN) as usize];
            for p in multi {
                let plain = p.plain();
                let id = *ids.entry(plain).or_insert_with(|| {
                    names.push(plain);
                    (names.len() - 1) as u16
                });
                if usize::from(r.len) < MAX_READINGS && !r.as_slice().contains(&id) {
                    r.ids[usize::from(r.len)] = id;
                    r.len += 1;
                }
            }
        }
        let parts: Vec<(&str, String)> = names.iter().map(|s| split_syllable(s)).collect();
        let n = names.len();
        let mut cost = vec![FAR; n * n];
        for a in 0..n {
            for b in 0..n {
                cost[a * n + b] = syllable_cost(&parts[a], &parts[b]);
            }
        }
        Phonetics { cost, n, chars }
    }

    fn readings(&self, c: char) -> Readings {
        let cp = u32::from(c);
        if (FIRST_HAN..=LAST_HAN).contains(&cp) {
            self.chars[(cp - FIRST_HAN) as usize]
        } else {
            Readings::default()
        }
    }

    /// How alike two characters sound: the syllable distance of their common readings; when
    /// the common reading of one is a less common reading of the other, [`NEAR`]; anything
    /// else through less common readings is [`FAR`] (号 may be xiāo, but a near miss of xiāo
    /// is no reason to hear 号).
    fn distance(&self, a: Readings, b: Readings) -> u8 {
        let mut best = FAR;
        for (i, &x) in a.as_slice().iter().enumerate() {
            for (j, &y) in b.as_slice().iter().enumerate() {
                let c = self.cost[usize::from(x) * self.n + usize::from(y)];
                let c = match (i, j, c) {
                    (0, 0, c) => c,
                    (0, _, 0) | (_, 0, 0) => NEAR,
                    _ => FAR,
                };
                best = best.min(c);
            }
        }
        best
    }
}

const INITIALS: &[&str] = &[
    "zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r",
    "z", "c", "s", "y", "w",
];

/// Initials a Mandarin recogniser (or a regional accent) confuses.
const NEAR_INITIALS: &[(&str, &str)] = &[
    ("z", "zh"),
    ("c", "ch"),
    ("s", "sh"),
    ("n", "l"),
    ("f", "h"),
    ("r", "l"),
    ("j", "zh"),
    ("q", "ch"),
    ("x", "sh"),
];

/// Finals it confuses (ü written as such: ju → j + ü).
const NEAR_FINALS: &[(&str, &str)] = &[
    ("an", "ang"),
    ("en", "eng"),
    ("in", "ing"),
    ("ian", "iang"),
    ("uan", "uang"),
    ("ü", "u"),
    ("ü", "i"),
    ("üe", "ie"),
    ("üan", "uan"),
    ("ün", "un"),
    ("eng", "ong"),
];

/// Initial and final of a toneless syllable; after j, q, x and y a written u is ü.
fn split_syllable(s: &str) -> (&'static str, String) {
    for &initial in INITIALS {
        if let Some(rest) = s.strip_prefix(initial) {
            if rest.is_empty() {
                break;
            }
            let fin = match (initial, rest.strip_prefix('u')) {
                ("j" | "q" | "x" | "y", Some(tail)) => format!("ü{tail}"),
                _ => rest.to_string(),
            };
            return (initial, fin);
        }
    }
    ("", s.to_string())
}

fn near(pairs: &[(&str, &str)], a: &str, b: &str) -> bool {
    pairs
        .iter()
        .any(|&(x, y)| (x == a && y == b) || (x == b && y == a))
}

fn syllable_cost(a: &(&str, String), b: &(&str, String)) -> u8 {
    let part = |same: bool, close: bool| match (same, close) {
        (true, _) => 0,
        (false, true) => NEAR,
        _ => FAR,
    };
    let i = part(a.0 == b.0, near(NEAR_INITIALS, a.0, b.0));
    let f = part(a.1 == b.1, near(NEAR_FINALS, &a.1, &b.1));
    (i + f).min(FAR)
}

// ---------------------------------------------------------------------------------------------
// Lexicon sources

/// What [`mine_terms`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mined {
    pub words: Vec<String>,
    pub phrases: Vec<String>,
}

/// Domain words and phrases of `texts` (intent examples, knowledge titles and questions), cut
/// by jieba with its dictionary only (no guessing of unknown words):
/// - words of 2–8 Han characters tagged as a noun, verb, adjective, idiom or abbreviation,
///   not everyday words (jieba frequency below `EVERYDAY_WORD_FREQ`, 20,000), found in at
///   least `MIN_WORD_TEXTS` (2) distinct texts;
/// - phrases of two or three adjacent such words, 3–8 Han characters, found in at least
///   `MIN_PHRASE_TEXTS` (3) distinct texts.
pub fn mine_terms(texts: &[&str]) -> Mined {
    let dict = dictionary();
    let mut words: HashMap<String, usize> = HashMap::new();
    let mut phrases: HashMap<String, usize> = HashMap::new();
    for text in texts {
        let tags = dict.tag(text, false);
        let mut words_here = HashSet::new();
        let mut phrases_here = HashSet::new();
        for t in &tags {
            if is_term(t.word) && is_content_tag(t.tag) && word_freq(t.word) < EVERYDAY_WORD_FREQ {
                words_here.insert(t.word.to_string());
            }
        }
        for size in 2..=3 {
            for group in tags.windows(size) {
                if group.iter().any(|t| !is_content_tag(t.tag)) {
                    continue;
                }
                let phrase: String = group.iter().map(|t| t.word).collect();
                if phrase.chars().count() >= 3 && is_term(&phrase) {
                    phrases_here.insert(phrase);
                }
            }
        }
        for w in words_here {
            *words.entry(w).or_default() += 1;
        }
        for p in phrases_here {
            *phrases.entry(p).or_default() += 1;
        }
    }
    let keep = |map: HashMap<String, usize>, min: usize| {
        let mut list: Vec<String> = map
            .into_iter()
            .filter(|(_, n)| *n >= min)
            .map(|(w, _)| w)
            .collect();
        list.sort();
        list
    };
    Mined {
        words: keep(words, MIN_WORD_TEXTS),
        phrases: keep(phrases, MIN_PHRASE_TEXTS),
    }
}

/// Nouns, verbs, adjectives, idioms, set phrases, abbreviations, distinguishing words.
fn is_content_tag(tag: &str) -> bool {
    matches!(tag.chars().next(), Some('n' | 'v' | 'a')) || matches!(tag, "l" | "i" | "j" | "b")
}

/// Pronouns, prepositions, conjunctions, particles, adverbs, modal words, interjections,
/// onomatopoeia, numerals, measure words.
fn is_function_tag(tag: &str) -> bool {
    matches!(
        tag.chars().next(),
        Some('r' | 'p' | 'c' | 'u' | 'd' | 'y' | 'e' | 'o' | 'm' | 'q')
    )
}

/// `dialogs/` for the loaded content: where its examples came from.
fn dialogs_dir(content: &crate::content::Content) -> Option<PathBuf> {
    let file = &content.dialogs.nlu.examples.first()?.file;
    let parent = file.parent()?;
    if parent.file_name().is_some_and(|n| n == "examples") {
        parent.parent().map(Path::to_path_buf)
    } else {
        Some(parent.to_path_buf())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LexiconFile {
    #[serde(default)]
    terms: Vec<String>,
}

/// Reads and checks a lexicon file (`dialogs/lexicon.yaml`): `terms:`, a list of 2–8 Han
/// characters each, none listed twice. Every problem is reported as `file:line: message`.
pub fn load_lexicon(path: &Path) -> Result<Vec<String>, Vec<DataError>> {
    let mut errors = Vec::new();
    let Some(text) = read_data_file(path, &mut errors) else {
        return Err(errors);
    };
    let Some(file) = parse_yaml::<LexiconFile>(path, &text, &mut errors) else {
        return Err(errors);
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut cursor = 1;
    let mut terms = Vec::new();
    for term in file.terms {
        let t = term.trim().to_string();
        let line = line_of_after(&text, &t, cursor);
        cursor = line + 1;
        let err = |message: String| DataError {
            file: path.to_path_buf(),
            line,
            message,
        };
        if !is_term(&t) {
            errors.push(err(format!(
                "`{term}` is not a term: write {MIN_TERM_CHARS}–{MAX_TERM_CHARS} Chinese characters, nothing else"
            )));
        } else if let Some(first) = seen.get(&t) {
            errors.push(err(format!("`{t}` is already listed on line {first}")));
        } else {
            seen.insert(t.clone(), line);
            terms.push(t);
        }
    }
    if errors.is_empty() {
        Ok(terms)
    } else {
        Err(errors)
    }
}

/// The valid terms of a lexicon file with problems (they are logged by the caller).
fn lexicon_terms_lenient(path: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    read_data_file(path, &mut errors)
        .and_then(|text| parse_yaml::<LexiconFile>(path, &text, &mut errors))
        .map(|f| f.terms.into_iter().filter(|t| is_term(t.trim())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corrector(terms: &[&str]) -> Corrector {
        Corrector::new(terms.iter().map(|t| t.to_string()))
    }

    fn small() -> Corrector {
        corrector(&[
            "办理开户",
            "挂失",
            "转人工",
            "银行卡",
            "大堂经理",
            "预约",
            "取号",
            "开户",
        ])
    }

    #[test]
    fn homophone_near_misses_become_the_domain_term() {
        let c = small();
        let out = c.correct("我想伴离开户");
        assert_eq!(out.text, "我想办理开户");
        assert_eq!(
            out.changes,
            vec![Change {
                from: "伴离开户".into(),
                to: "办理开户".into()
            }]
        );
        assert_eq!(c.correct("转人功").text, "转人工");
        assert_eq!(c.correct("我的因行卡丢了").text, "我的银行卡丢了");
        assert_eq!(c.correct("叫大唐经理过来").text, "叫大堂经理过来");
        assert_eq!(c.correct("我想欲约明天上午").text, "我想预约明天上午");
        assert_eq!(c.correct("帮我去号").text, "帮我取号");
    }

    #[test]
    fn a_confusable_initial_and_final_are_forgiven_when_the_rest_is_exact() {
        // xu ~ shi: x/sh and ü/i.
        assert_eq!(small().correct("我要挂虚").text, "我要挂失");
    }

    #[test]
    fn terms_are_two_to_eight_han_characters() {
        let c = corrector(&[
            "挂失",
            "卡",
            "ATM机",
            "一二三四五六七八九",
            "  开户  ",
            "挂失",
        ]);
        assert_eq!(c.terms().collect::<Vec<_>>(), vec!["开户", "挂失"]);
        assert_eq!(c.len(), 2);
        assert!(!c.is_empty());
        assert!(Corrector::new(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn correct_text_and_real_words_are_left_alone() {
        let c = small();
        for text in [
            "我要挂失",
            "办理开户",
            "我想去一下洗手间",
            "他在大唐工作",
            "我要挂号",
            "预约取号都可以",
            "请问在哪里取号",
        ] {
            let out = c.correct(text);
            assert_eq!(out.text, text, "{:?}", out.changes);
            assert!(out.changes.is_empty());
        }
    }

    #[test]
    fn words_written_correctly_are_never_rewritten_into_a_longer_term() {
        let c = corrector(&["预约取消", "取号", "预约", "专家视频", "补办", "取个号"]);
        // 取号 is a term written correctly: 预约取号 does not become 预约取消.
        assert!(c.correct("预约取号都可以").changes.is_empty());
        // 转接 is a common word: it is not replaced whole by 专家.
        assert!(c.correct("帮我转接视频客服").changes.is_empty());
        // 不 is heard right far more often than not: 不办了 is no near miss of 补办.
        assert!(c.correct("不办了").changes.is_empty());
        // 出 ~ 取 takes two steps (ch/q, u/ü): only a two-character term allows that.
        assert!(c.correct("给我出个号").changes.is_empty());
    }

    #[test]
    fn a_window_sounding_like_two_terms_equally_is_left_alone() {
        let c = corrector(&["挂失", "挂湿"]);
        // 挂施 is as close to 挂失 as to 挂湿: nothing is changed.
        assert!(c.correct("挂施").changes.is_empty());
    }

    #[test]
    fn empty_punctuation_latin_and_digits_pass_through() {
        let c = small();
        for text in [
            "",
            "，。！？",
            "...",
            "ATM 123 abc",
            "6222 0212 3456 7890",
            "🙂",
        ] {
            assert_eq!(c.correct(text).text, text);
            assert!(c.correct(text).changes.is_empty());
        }
    }

    #[test]
    fn mixed_text_keeps_everything_but_the_near_miss() {
        let c = small();
        let out = c.correct("您好！ATM机吞了我的因行卡，尾号6789，能挂虚吗？");
        assert_eq!(out.text, "您好！ATM机吞了我的银行卡，尾号6789，能挂失吗？");
        assert_eq!(out.changes.len(), 2);
        // A term never spans punctuation or digits.
        assert!(c.correct("挂，虚").changes.is_empty());
        assert!(c.correct("因1行卡").changes.is_empty());
    }

    #[test]
    fn a_very_long_input_is_corrected_in_one_pass() {
        let c = small();
        let sentence = "我的因行卡丢了，想先挂虚再伴离开户。";
        let text = sentence.repeat(10_000 / sentence.chars().count() + 1);
        let started = std::time::Instant::now();
        let out = c.correct(&text);
        eprintln!(
            "{} characters corrected in {:?}",
            text.chars().count(),
            started.elapsed()
        );
        assert_eq!(
            out.changes.len(),
            3 * (10_000 / sentence.chars().count() + 1)
        );
        assert!(!out.text.contains("因行卡"));
    }

    #[test]
    fn syllables_split_into_initial_and_final() {
        assert_eq!(split_syllable("zhuang"), ("zh", "uang".to_string()));
        assert_eq!(split_syllable("xu"), ("x", "ü".to_string()));
        assert_eq!(split_syllable("yuan"), ("y", "üan".to_string()));
        assert_eq!(split_syllable("an"), ("", "an".to_string()));
        assert_eq!(split_syllable("lü"), ("l", "ü".to_string()));
        let p = phonetics();
        let d = |a: char, b: char| p.distance(p.readings(a), p.readings(b));
        assert_eq!(d('伴', '办'), 0);
        assert_eq!(
            d('行', '杭'),
            NEAR,
            "every reading of 行 counts, a less common one costs"
        );
        assert_eq!(d('有', '机'), FAR, "two less common readings do not count");
        assert_eq!(d('四', '是'), NEAR);
        assert_eq!(d('虚', '失'), 2 * NEAR);
        assert_eq!(d('好', '人'), FAR);
    }

    #[test]
    fn the_lexicon_file_is_checked_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEXICON_FILE);
        std::fs::write(&path, "# terms\nterms:\n  - 挂失\n  - 开户\n").unwrap();
        assert_eq!(load_lexicon(&path).unwrap(), vec!["挂失", "开户"]);
        std::fs::write(&path, "terms:\n  - 挂失\n  - ATM\n  - 挂失\n").unwrap();
        let errors = load_lexicon(&path).unwrap_err();
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{lines:?}");
        assert_eq!(errors[0].line, 3);
        assert!(errors[0].message.contains("`ATM`"));
        assert_eq!(errors[1].line, 4);
        assert!(errors[1].message.contains("line 2"));
        std::fs::write(&path, "words: [挂失]\n").unwrap();
        assert_eq!(load_lexicon(&path).unwrap_err()[0].line, 1);
    }

    /// The project's real data and the fixture of recorded-style near misses.
    mod project {
        use super::super::*;
        use crate::content::Content;

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fixture {
            pairs: Vec<Pair>,
            example_pairs: Vec<Pair>,
            misheard_examples: Vec<String>,
            correct: Vec<String>,
        }

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Pair {
            heard: String,
            expected: String,
        }

        fn root() -> PathBuf {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        }

        fn content() -> Content {
            let data = crate::config::DataSettings {
                dialogs_dir: root().join("dialogs"),
                knowledge_dir: root().join("knowledge"),
                voices_dir: root().join("voices"),
            };
            Content::load(&data, &crate::actions::Registry::standard())
                .unwrap_or_else(|e| panic!("{e:?}"))
        }

        fn knowledge_texts(content: &Content) -> Vec<String> {
            content
                .articles
                .iter()
                .flat_map(|a| {
                    std::iter::once(a.front.title.clone()).chain(a.front.questions.clone())
                })
                .collect()
        }

        fn fixture() -> Fixture {
            let path = root().join("tests/fixtures/asr_near_misses.yaml");
            serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        }

        fn setup() -> (Content, Vec<String>, Corrector, Fixture) {
            let content = content();
            let texts = knowledge_texts(&content);
            let corrector = Corrector::from_content(&content, &texts);
            (content, texts, corrector, fixture())
        }

        /// Corrects every pair; returns the rate and the failures.
        fn rate(corrector: &Corrector, pairs: &[Pair]) -> (f64, Vec<String>) {
            let failures: Vec<String> = pairs
                .iter()
                .filter_map(|p| {
                    let out = corrector.correct(&p.heard);
                    (out.text != p.expected).then(|| {
                        format!(
                            "{} → {} (expected {}) {:?}",
                            p.heard, out.text, p.expected, out.changes
                        )
                    })
                })
                .collect();
            let ok = pairs.len() - failures.len();
            (ok as f64 / pairs.len() as f64, failures)
        }

        #[test]
        fn the_recorded_near_misses_are_corrected() {
            let (_, _, corrector, fixture) = setup();
            assert!(fixture.pairs.len() >= 40);
            for (name, pairs) in [
                ("written pairs", &fixture.pairs),
                ("misheard examples", &fixture.example_pairs),
            ] {
                let (rate, failures) = rate(&corrector, pairs);
                eprintln!(
                    "lexicon {} terms; {name}: {:.1} % of {} corrected\n{}",
                    corrector.len(),
                    100.0 * rate,
                    pairs.len(),
                    failures.join("\n")
                );
                assert!(
                    rate >= 0.9,
                    "{name}: rate {rate:.3}; failures:\n{}",
                    failures.join("\n")
                );
            }
        }

        #[test]
        fn no_correct_sentence_is_changed() {
            let (content, texts, corrector, fixture) = setup();
            // Examples written as a recogniser mis-hears them (叫大唐经理, 去号) are listed
            // in the fixture's pairs, which check them; every other example is correct text.
            let misheard: HashSet<&str> = fixture
                .example_pairs
                .iter()
                .map(|p| p.heard.as_str())
                .chain(fixture.misheard_examples.iter().map(String::as_str))
                .collect();
            let examples: HashSet<&str> = content
                .dialogs
                .nlu
                .examples
                .iter()
                .map(|e| e.text.as_str())
                .collect();
            for m in fixture
                .example_pairs
                .iter()
                .map(|p| &p.heard)
                .chain(&fixture.misheard_examples)
            {
                assert!(examples.contains(m.as_str()), "`{m}` is no example");
            }
            let mut sentences: Vec<(&str, &str)> = Vec::new();
            for e in &content.dialogs.nlu.examples {
                if !misheard.contains(e.text.as_str()) {
                    sentences.push(("example", &e.text));
                }
            }
            for intent in &content.dialogs.nlu.intents {
                for x in intent.exact.iter().chain(&intent.services) {
                    sentences.push(("exact", x));
                }
            }
            sentences.extend(texts.iter().map(|t| ("knowledge", t.as_str())));
            sentences.extend(fixture.correct.iter().map(|t| ("fixture", t.as_str())));
            sentences.extend(
                fixture
                    .pairs
                    .iter()
                    .chain(&fixture.example_pairs)
                    .map(|p| ("expected", p.expected.as_str())),
            );
            let changed: Vec<String> = sentences
                .iter()
                .filter_map(|(kind, s)| {
                    let out = corrector.correct(s);
                    (!out.changes.is_empty())
                        .then(|| format!("{kind}: {s} → {} {:?}", out.text, out.changes))
                })
                .collect();
            eprintln!(
                "{} correct sentences, {} changed\n{}",
                sentences.len(),
                changed.len(),
                changed.join("\n")
            );
            assert!(changed.is_empty(), "changed:\n{}", changed.join("\n"));
        }

        #[test]
        fn the_seed_lexicon_file_is_valid_and_used() {
            let (content, texts, corrector, _) = setup();
            let path = root().join("dialogs").join(LEXICON_FILE);
            let terms = load_lexicon(&path).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(!terms.is_empty());
            for t in &terms {
                assert!(corrector.contains(t), "{t}");
            }
            for t in CURATED_TERMS {
                assert!(corrector.contains(t), "{t}");
            }
            assert_eq!(dialogs_dir(&content), Some(root().join("dialogs")));
            assert!(texts.len() > 50);
        }

        /// Average time of correcting `sentence` with `corrector`.
        fn time(corrector: &Corrector, sentence: &str) -> std::time::Duration {
            corrector.correct(sentence);
            let rounds = 1_000;
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(corrector.correct(std::hint::black_box(sentence)));
            }
            started.elapsed() / rounds
        }

        #[test]
        fn correcting_a_sentence_takes_microseconds() {
            let (content, texts, corrector, _) = setup();
            let sentence = "您好，我的因行卡昨天丢了，我想先挂虚，再找大唐经理欲约开户吧";
            assert_eq!(sentence.chars().count(), 30);
            let out = corrector.correct(sentence);
            assert_eq!(out.changes.len(), 4, "{:?}", out.changes);
            // A lexicon of a few thousand: also every word of the article bodies and examples.
            let mut big: Vec<String> = corrector.terms().map(str::to_string).collect();
            let bodies = content.articles.iter().map(|a| a.body.as_str());
            let examples = content.dialogs.nlu.examples.iter().map(|e| e.text.as_str());
            for text in bodies.chain(examples) {
                big.extend(
                    dictionary()
                        .cut(text, false)
                        .iter()
                        .map(|t| t.word.to_string()),
                );
            }
            big.extend(texts);
            let big = Corrector::new(big);
            assert!(big.len() > 2_000, "{}", big.len());
            eprintln!(
                "30-character sentence: {:?} with {} terms, {:?} with {} terms → {}",
                time(&corrector, sentence),
                corrector.len(),
                time(&big, sentence),
                big.len(),
                out.text
            );
        }
    }
}
