//! Text normalisation for reading aloud: turns a reply as displayed on the kiosk screen
//! (Markdown, digits, symbols) into the plain Mandarin the synthesiser should say.
//!
//! [`for_reading`] runs three passes, each linear in the input:
//!
//! 1. **Clean-up**: Markdown markup (`**`, `#`, list markers, links → link text), URLs,
//!    emoji and control characters go; line breaks become pauses (`，` / `。`).
//! 2. **Numbers and symbols**: every run of ASCII letters and digits (with the `.,:-~/*%`
//!    that join them) is read by what it is, judged by its shape and by the words around it:
//!    card tails and phone numbers digit by digit with 幺 for 1, money in 元/角/分, times,
//!    dates, percentages, queue numbers and codes, counts with 两 before measure words.
//!    Leftover ASCII punctuation becomes Chinese punctuation or a space; whitespace between
//!    Chinese characters goes.
//! 3. **Lexicon**: the voice's word → reading table, longest match first.
//!
//! The output never contains an ASCII digit: a digit no rule claims is read on its own.
//! Examples live in the tests below and in `docs/voices.md`.

use std::collections::{BTreeMap, HashMap};

use crate::text::currency;

/// The text the synthesiser should read for `text`, with the voice's `lexicon` applied.
///
/// Never panics; the work is linear in the length of `text` (times the longest lexicon
/// word).
pub fn for_reading(text: &str, lexicon: &BTreeMap<String, String>) -> String {
    let normalised = normalise(text);
    let read = apply_lexicon(&normalised, lexicon);
    // The lexicon is operator data: should a reading hold a digit, say it anyway.
    if read.bytes().any(|b| b.is_ascii_digit()) {
        read.chars()
            .map(|c| match c.to_digit(10) {
                Some(d) if c.is_ascii_digit() => PLAIN_DIGITS[d as usize],
                _ => c,
            })
            .collect()
    } else {
        read
    }
}

/// Passes 1 and 2: clean-up and numbers, without the lexicon.
fn normalise(text: &str) -> String {
    let cleaned = strip_markup(&fold_width(text));
    let spoken = Reader::new(&cleaned).run();
    tidy_spaces(&spoken)
}

// ---------------------------------------------------------------------------------------
// Pass 1: clean-up.

/// Full-width ASCII forms (`１２３`, `％`, `￥`) to their ASCII twins, so one set of rules
/// reads both. The Chinese punctuation (`，。：；！？`) stays as it is.
fn fold_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '０'..='９' | 'Ａ'..='Ｚ' | 'ａ'..='ｚ' | '％' | '．' | '－' | '～' | '＊' | '／' => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            '￥' => '¥',
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Whether `c` is an emoji or pictograph (or one of the joiners and selectors emoji are
/// built of), which nobody wants read aloud.
fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF   // pictographs, emoticons, transport, flags, …
        | 0x2600..=0x27BF   // misc symbols and dingbats (☎ ✓ ★ …)
        | 0x2B00..=0x2BFF   // arrows and stars (⭐)
        | 0x2190..=0x21FF   // arrows
        | 0x2300..=0x23FF   // technical (⌚ ⏰)
        | 0x25A0..=0x25FF   // geometric shapes (▶ ●)
        | 0xFE00..=0xFE0F   // variation selectors
        | 0x200B..=0x200D   // zero-width space, non-joiner, joiner
        | 0x2060 | 0xFEFF
        | 0x20E3            // keycap
        | 0x3030 | 0x303D | 0x3297 | 0x3299
        | 0xE0000..=0xE007F // tags
    )
}

/// Whether `c` ends or breaks a phrase (a pause when read).
fn is_pause(c: char) -> bool {
    matches!(
        c,
        '，' | '。' | '！' | '？' | '；' | '：' | '、' | '…' | ',' | '.' | '!' | '?' | ';' | ':'
    )
}

/// Removes Markdown markup, URLs and emoji; turns line breaks into pauses.
fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_before = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() {
            blank_before = true;
            continue;
        }
        // Code fences, horizontal rules and table separator rows carry no words.
        if line.starts_with("```")
            || line.starts_with("~~~")
            || (line.len() >= 3 && line.chars().all(|c| matches!(c, '-' | '*' | '_' | ' ')))
            || (line.starts_with('|') && line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')))
        {
            blank_before = true;
            continue;
        }
        let (body, heading) = strip_line_marker(line);
        let inline = strip_inline(body);
        let inline = inline.trim();
        if inline.is_empty() {
            continue;
        }
        if !out.is_empty() {
            if let Some(last) = out.chars().next_back() {
                if !is_pause(last) {
                    out.push(if blank_before { '。' } else { '，' });
                }
            }
        }
        out.push_str(inline);
        if heading && !inline.ends_with(is_pause) {
            out.push('。');
        }
        blank_before = heading;
    }
    out
}

/// The line without its block marker (`# `, `> `, `- `, `1. `), and whether it is a heading.
fn strip_line_marker(line: &str) -> (&str, bool) {
    let mut line = line;
    while let Some(rest) = line.strip_prefix('>') {
        line = rest.trim_start();
    }
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    if (1..=6).contains(&hashes) {
        let rest = &line[hashes..];
        if rest.is_empty() || rest.starts_with(char::is_whitespace) {
            return (rest.trim_start(), true);
        }
    }
    for marker in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(marker) {
            let rest = rest.trim_start();
            // `- [ ]` / `- [x]` task lists.
            let rest = ["[ ] ", "[x] ", "[X] "]
                .iter()
                .find_map(|m| rest.strip_prefix(m))
                .unwrap_or(rest);
            return (rest, false);
        }
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=3).contains(&digits) {
        let rest = &line[digits..];
        if let Some(rest) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return (rest.trim_start(), false);
        }
    }
    (line, false)
}

/// Inline Markdown: emphasis, code spans, links and images (their text stays), autolinks,
/// bare URLs and emoji go. Stars that mask digits (`138****5678`) stay for pass 2.
fn strip_inline(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '!' if chars.get(i + 1) == Some(&'[') => {
                if let Some((text, next)) = link_at(&chars, i + 1) {
                    out.push_str(&strip_inline(&text));
                    i = next;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            '[' => {
                if let Some((text, next)) = link_at(&chars, i) {
                    out.push_str(&strip_inline(&text));
                    i = next;
                } else {
                    i += 1;
                }
            }
            ']' | '`' | '#' => i += 1,
            '<' => {
                // <https://…> autolinks and stray HTML tags.
                let end = chars[i..]
                    .iter()
                    .take(200)
                    .position(|&c| c == '>')
                    .map(|p| i + p);
                match end {
                    Some(end)
                        if chars[i + 1..end]
                            .iter()
                            .all(|c| c.is_ascii() && !c.is_ascii_whitespace() || *c == ' ')
                            && end > i + 1 =>
                    {
                        i = end + 1;
                    }
                    _ => i += 1,
                }
            }
            '*' | '_' | '~' => {
                let run = chars[i..].iter().take_while(|&&x| x == c).count();
                let masking = c == '*' && masks_digits(&chars, i, run);
                let strike_or_emphasis = c != '~' || run >= 2;
                if masking {
                    out.extend(std::iter::repeat_n('*', run));
                } else if !strike_or_emphasis {
                    out.push('~');
                }
                i += run;
            }
            'h' | 'H' | 'w' | 'W' if url_at(&chars, i) > 0 => {
                let mut end = i + url_at(&chars, i);
                // Sentence punctuation after a URL belongs to the sentence.
                while end > i && matches!(chars[end - 1], '.' | ',' | ';' | ':' | '!' | '?' | ')') {
                    end -= 1;
                }
                i = end.max(i + 1);
            }
            c if is_emoji(c) => i += 1,
            c if c.is_control() => {
                out.push(' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `[text](target)` starting at `chars[start] == '['`: the text and the index after `)`.
/// Looks a bounded distance ahead so that a line of `[[[[` stays linear.
fn link_at(chars: &[char], start: usize) -> Option<(String, usize)> {
    let close = chars[start + 1..]
        .iter()
        .take(300)
        .position(|&c| c == ']' || c == '[')
        .map(|p| start + 1 + p)?;
    if chars[close] != ']' || chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = chars[close + 2..]
        .iter()
        .take(2000)
        .position(|&c| c == ')' || c.is_whitespace() && c != ' ')
        .map(|p| close + 2 + p)?;
    if chars[end] != ')' {
        return None;
    }
    Some((chars[start + 1..close].iter().collect(), end + 1))
}

/// The length of a URL (`http://…`, `https://…`, `www.…`) at `i`, or 0.
fn url_at(chars: &[char], i: usize) -> usize {
    let starts = |p: &str| {
        p.chars().enumerate().all(|(k, pc)| {
            chars
                .get(i + k)
                .is_some_and(|c| c.eq_ignore_ascii_case(&pc))
        })
    };
    let prefix = if starts("https://") {
        8
    } else if starts("http://") {
        7
    } else if starts("www.") {
        4
    } else {
        return 0;
    };
    if i > 0 && chars[i - 1].is_ascii_alphanumeric() {
        return 0;
    }
    let rest = chars[i + prefix..]
        .iter()
        .take_while(|c| c.is_ascii_graphic() && !matches!(**c, '<' | '>' | '"' | '`'))
        .count();
    prefix + rest
}

/// Whether the run of `run` stars at `i` masks digits (`138****5678`, `6222 **** 6789`)
/// rather than marking emphasis (`**注意**`).
fn masks_digits(chars: &[char], i: usize, run: usize) -> bool {
    if run >= 3 {
        return true;
    }
    let before = chars[..i].iter().rev().find(|c| **c != ' ');
    let after = chars[i + run..].iter().find(|c| **c != ' ');
    let near = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_digit() || *c == '*');
    near(before) && near(after)
}

// ---------------------------------------------------------------------------------------
// Pass 2: numbers and symbols.

/// Digits read one by one, 0 as 零 and 1 as 一 (decimals, years).
const PLAIN_DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// How a lone 2 (and a leading 2 of 百/千/万/亿) is said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Two {
    /// 二 everywhere: ordinals (第2, 2号, 2月) and decimals.
    Er,
    /// 两 before 百/千/万/亿 at the start (两千), a lone 2 as 二.
    Cardinal,
    /// Counting something: 两 also for a lone 2 (两位, 两点).
    Counted,
}

/// Measure words and units a count of 2 takes as 两.
const LIANG_WORDS: &[&str] = &[
    "个", "位", "张", "次", "本", "件", "份", "天", "年", "周", "星期", "小时", "分钟", "秒", "种",
    "项", "台", "名", "人", "家", "条", "笔", "岁", "元", "块", "毛", "角", "倍", "遍", "步", "套",
    "双", "只", "把", "页", "间", "辆", "点", "百", "千", "万", "亿", "趟", "轮", "批", "组", "段",
    "节", "道", "句", "封", "部", "所", "座", "支", "瓶", "盒", "袋", "箱", "克", "斤", "公斤",
    "公里", "米", "杯", "样", "类", "户", "张", "分",
];

/// Units after which even a long number is an amount (一万零八十六人), not a code; so is
/// every currency word of [`crate::text::currency`] (一万零八十六美元).
const AMOUNT_WORDS: &[&str] = &[
    "元", "块", "万", "亿", "积分", "人", "户", "次", "笔", "份", "个", "张", "位", "名", "家",
    "天", "岁", "米", "公里", "克", "公斤", "斤", "倍", "分", "秒", "小时", "分钟",
];

/// Words before a number that make it a code, read digit by digit (卡号 6222…, 验证码 1234).
const CODE_PREFIXES: &[&str] = &[
    "尾号",
    "卡号",
    "账号",
    "帐号",
    "手机号",
    "手机",
    "电话",
    "号码",
    "编号",
    "单号",
    "工号",
    "流水号",
    "码",
    "热线",
    "分机",
];

/// Whether `rest` starts with `word`.
fn starts_with(rest: &[char], word: &str) -> bool {
    let mut n = 0;
    word.chars().all(|wc| {
        let ok = rest.get(n) == Some(&wc);
        n += 1;
        ok
    })
}

/// Whether `rest` starts with one of `words`.
fn starts_with_any(rest: &[char], words: &[&str]) -> bool {
    words.iter().any(|w| starts_with(rest, w))
}

/// Whether `rest` starts with a unit that makes the number before it an amount.
fn starts_with_amount_word(rest: &[char]) -> bool {
    starts_with_any(rest, AMOUNT_WORDS)
        || currency::words().any(|(w, _)| starts_with(rest, w))
        || starts_with_any(rest, LIANG_WORDS)
}

/// Pass 2 over the cleaned text: reads every token of letters and digits.
struct Reader {
    chars: Vec<char>,
    out: String,
    /// A `¥` was just seen: the next number is money.
    currency: bool,
}

impl Reader {
    fn new(text: &str) -> Reader {
        Reader {
            chars: text.chars().collect(),
            out: String::with_capacity(text.len() * 2),
            currency: false,
        }
    }

    fn run(mut self) -> String {
        let mut i = 0;
        while i < self.chars.len() {
            let c = self.chars[i];
            if c == '*' {
                // Stars mask a number that follows (`****6789`); otherwise they are noise.
                let run = self.chars[i..]
                    .iter()
                    .take_while(|c| matches!(c, '*' | ' '))
                    .count();
                if !self.chars.get(i + run).is_some_and(char::is_ascii_digit) {
                    self.push_space();
                    i += run;
                    continue;
                }
            }
            if c.is_ascii_alphanumeric() || c == '*' {
                let end = self.token_end(i);
                let token: String = self.chars[i..end].iter().collect();
                let consumed = self.read_token(&token, end);
                i = end + consumed;
                self.currency = false;
                continue;
            }
            match c {
                '¥' => self.currency = true,
                // A minus sign, not a dash between words: -5元 → 负五元.
                '-' if self.chars.get(i + 1).is_some_and(char::is_ascii_digit)
                    && !(i > 0 && self.chars[i - 1].is_ascii_alphanumeric()) =>
                {
                    self.currency = false;
                    self.out.push('负');
                }
                ' ' | '\t' => self.push_space(),
                _ => {
                    self.currency = false;
                    self.push_symbol(c);
                }
            }
            i += 1;
        }
        self.out
    }

    /// One space, however many there were (keeps look-backs at the output short).
    fn push_space(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with(' ') {
            self.out.push(' ');
        }
    }

    /// Whether a code word (卡号, 尾号, 验证码, …) comes just before, with or without 为/是/：.
    fn after_code_word(&self) -> bool {
        let mut before = self.out.trim_end();
        for filler in ["为", "是", "：", ":"] {
            if let Some(b) = before.strip_suffix(filler) {
                before = b.trim_end();
                break;
            }
        }
        CODE_PREFIXES.iter().any(|p| before.ends_with(p))
    }

    /// The end of the token starting at `start`: letters, digits and the joiners between
    /// them.
    fn token_end(&self, start: usize) -> usize {
        let chars = &self.chars;
        let mut i = start;
        let mut group_digits = 0usize;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let prev = if i > start { Some(chars[i - 1]) } else { None };
            let joins = |n: Option<char>| n.is_some_and(|n| n.is_ascii_alphanumeric() || n == '*');
            let take = match c {
                c if c.is_ascii_alphanumeric() => true,
                '*' => true,
                '.' | ',' | ':' | '-' | '~' | '/' => {
                    prev.is_some_and(|p| {
                        p.is_ascii_alphanumeric() || p == '*' || p == '%' && matches!(c, '-' | '~')
                    }) && joins(next)
                }
                '：' => {
                    prev.is_some_and(|p| p.is_ascii_digit())
                        && next.is_some_and(|n| n.is_ascii_digit())
                }
                '%' => prev.is_some_and(|p| p.is_ascii_digit()),
                ' ' => {
                    // Digit groups of a card number (6222 0212 …) and masks (6222 **** 6789).
                    let star = prev == Some('*') || next == Some('*');
                    let group = group_digits == 4
                        && chars[i + 1..]
                            .iter()
                            .take_while(|c| c.is_ascii_digit())
                            .count()
                            >= 3;
                    (star && (prev.is_some_and(|p| p.is_ascii_digit() || p == '*'))) && joins(next)
                        || group
                }
                _ => false,
            };
            if !take {
                break;
            }
            group_digits = if c.is_ascii_digit() {
                group_digits + 1
            } else {
                0
            };
            i += 1;
            if c == '%' {
                // A percent sign ends a number unless a range goes on (3%-5%).
                if !matches!(chars.get(i), Some('-' | '~')) || !joins(chars.get(i + 1).copied()) {
                    break;
                }
            }
        }
        i.max(start + 1)
    }

    /// The text after the token at `end`, past spaces, and how many spaces that skipped.
    fn rest(&self, end: usize) -> (&[char], usize) {
        let spaces = self.chars[end.min(self.chars.len())..]
            .iter()
            .take_while(|c| **c == ' ')
            .count();
        (&self.chars[(end + spaces).min(self.chars.len())..], spaces)
    }

    /// Whether the output so far ends with `word` (spaces aside).
    fn after(&self, word: &str) -> bool {
        self.out.trim_end().ends_with(word)
    }

    /// Reads `token` (which ends at `end`) into the output; returns how many characters
    /// after it were consumed as part of the reading (`元` of an amount).
    fn read_token(&mut self, token: &str, end: usize) -> usize {
        let has_letter = token.bytes().any(|b| b.is_ascii_alphabetic());
        let has_digit = token.bytes().any(|b| b.is_ascii_digit());
        if !has_digit {
            self.read_word(token);
            return 0;
        }
        if has_letter {
            let spoken = read_code_token(token);
            self.out.push_str(&spoken);
            return 0;
        }
        let (rest, spaces) = self.rest(end);
        let rest: Vec<char> = rest.iter().take(8).copied().collect();

        // Card and phone masks: say the visible tail.
        if token.contains('*') {
            self.read_mask(token);
            return 0;
        }
        if let Some(date) = read_date(token) {
            self.out.push_str(&date);
            return 0;
        }
        if self.read_joined(token, &rest) {
            return 0;
        }
        self.read_plain_number(token, &rest, spaces)
    }

    /// Words (and abbreviations like e.g); joiners other than . and - are noise.
    fn read_word(&mut self, token: &str) {
        let word: String = token
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    ' '
                }
            })
            .collect();
        self.out.push_str(word.trim());
    }

    /// A masked card or phone number (`****6789`): 尾号 and the visible tail, digit by digit.
    fn read_mask(&mut self, token: &str) {
        let tail: String = token
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !tail.is_empty() {
            self.tail_prefix();
            if !self.after("尾号") {
                self.out.push_str("尾号");
            }
            self.out.push_str(&digits_yao(&tail));
        }
    }

    /// Numbers joined by a sign that decides the reading: ranges and digit groups, times
    /// and ratios, fractions, percentages. Whether `token` was one (and is read).
    fn read_joined(&mut self, token: &str, rest: &[char]) -> bool {
        if let Some(sep) = ['~', '-', ' '].into_iter().find(|sep| token.contains(*sep)) {
            self.read_range_or_groups(token, sep, rest);
            return true;
        }
        if token.contains(':') || token.contains('：') {
            self.out.push_str(&read_time_or_ratio(token));
            return true;
        }
        if let Some((a, b)) = token.split_once('/') {
            self.read_fraction(token, a, b);
            return true;
        }
        if let Some(number) = token.strip_suffix('%') {
            self.out.push_str(&read_percent(number));
            return true;
        }
        false
    }

    /// Ranges and grouped numbers split at `sep`: 1-2个, 9:00-17:00, 400-820-8820,
    /// 6222 0212 3456 7890. Groups and long parts are read digit by digit, ranges with 至.
    fn read_range_or_groups(&mut self, token: &str, sep: char, rest: &[char]) {
        let parts: Vec<&str> = token.split(sep).collect();
        let all_digits = parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if sep == ' '
            || all_digits
                && (parts.len() >= 3
                    || total >= 7
                    || parts.iter().any(|p| p.len() >= 5 || p.starts_with('0')))
        {
            let groups: Vec<String> = parts
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| digits_yao(p))
                .collect();
            self.out.push_str(&groups.join("，"));
            return;
        }
        let two = counted_or_cardinal(rest);
        let read: Vec<String> = parts.iter().map(|p| read_simple(p, two)).collect();
        self.out.push_str(&read.join("至"));
    }

    /// `a/b`: a fraction (3/4 → 四分之三) when both are short numbers; otherwise each piece.
    fn read_fraction(&mut self, token: &str, a: &str, b: &str) {
        let simple =
            |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        if simple(a) && simple(b) && !b.contains('/') {
            self.out.push_str(&natural(b, Two::Er));
            self.out.push_str("分之");
            self.out.push_str(&natural(a, Two::Er));
        } else {
            let parts: Vec<String> = token
                .split('/')
                .map(|p| read_simple(p, Two::Cardinal))
                .collect();
            self.out.push_str(&parts.join("，"));
        }
    }

    /// A plain number: digits, thousands separators and a decimal point, read as a code,
    /// money, a decimal, a year, a long digit string or a natural number, by what stands
    /// around it. Returns the characters of `rest` consumed (see [`Reader::read_token`]).
    fn read_plain_number(&mut self, token: &str, rest: &[char], spaces: usize) -> usize {
        let Some((int, frac, grouped)) = split_number(token) else {
            // 1,2,3 or 1.2.3: read the pieces.
            let sep = if token.contains(',') { '，' } else { '点' };
            let parts: Vec<String> = token
                .split([',', '.'])
                .map(|p| read_simple(p, Two::Cardinal))
                .collect();
            self.out.push_str(&parts.join(&sep.to_string()));
            return 0;
        };

        // Codes: 尾号1234, 验证码 5678.
        if frac.is_none() && !grouped && self.after_code_word() {
            self.tail_prefix();
            self.out.push_str(&read_digit_string(int));
            return 0;
        }

        // Money.
        if self.currency || rest.first() == Some(&'元') {
            return self.read_money(int, frac, rest, spaces);
        }

        if let Some(frac) = frac {
            self.out.push_str(&read_decimal(int, Some(frac), Two::Er));
            return 0;
        }
        // Years: 2026年.
        if int.len() == 4 && rest.first() == Some(&'年') {
            self.out.push_str(&digits_year(int));
            return 0;
        }
        let ordinal = self.after("第");
        let amount = grouped || starts_with_amount_word(rest);
        if !amount && (int.len() >= 5 || int.len() > 1 && int.starts_with('0')) {
            self.out.push_str(&read_digit_string(int));
            return 0;
        }
        let two = if ordinal {
            Two::Er
        } else {
            counted_or_cardinal(rest)
        };
        self.out.push_str(&natural(int, two));
        0
    }

    /// An amount after `¥` or before 元: in yuan, jiao and fen, or 一点五万元 before 万/亿.
    /// Returns the characters of `rest` (and the `spaces` before it) consumed.
    fn read_money(&mut self, int: &str, frac: Option<&str>, rest: &[char], spaces: usize) -> usize {
        let currency = self.currency;
        let yuan = rest.first() == Some(&'元');
        let big_unit = matches!(rest.first(), Some('万' | '亿'));
        if big_unit {
            // ¥1.5万 / 1.5万元: 一点五万元.
            self.out.push_str(&read_decimal(int, frac, Two::Counted));
            if currency {
                let unit = rest[0];
                self.out.push(unit);
                self.out.push('元');
                let yuan_after = rest.get(1) == Some(&'元');
                return spaces + 1 + usize::from(yuan_after);
            }
            return 0;
        }
        self.out.push_str(&read_yuan(int, frac));
        if yuan {
            spaces + 1
        } else {
            0
        }
    }

    /// Drops the `为`/`是`/`：` of `尾号为`, which reads better without.
    fn tail_prefix(&mut self) {
        let trimmed = self.out.trim_end().len();
        self.out.truncate(trimmed);
        for filler in ["为", "是", "：", ":"] {
            if self.out.ends_with(&format!("尾号{filler}")) {
                let len = self.out.len() - filler.len();
                self.out.truncate(len);
                return;
            }
        }
    }

    /// A character outside tokens: Chinese punctuation for ASCII punctuation, a space for
    /// symbols nobody should hear.
    fn push_symbol(&mut self, c: char) {
        let mapped: &str = match c {
            ',' => "，",
            '.' => "。",
            ':' => "：",
            ';' => "；",
            '!' => "！",
            '?' => "？",
            '(' => "（",
            ')' => "）",
            '&' => "和",
            '+' => "加",
            '=' => "等于",
            '|' => "，",
            '"' | '\'' | '`' | '<' | '>' | '[' | ']' | '{' | '}' | '^' | '\\' | '#' | '*' | '-'
            | '~' | '/' | '@' | '%' | '_' | '$' | '¥' => " ",
            _ => {
                self.push_pause_or_char(c);
                return;
            }
        };
        for m in mapped.chars() {
            if m == ' ' {
                self.push_space();
            } else {
                self.push_pause_or_char(m);
            }
        }
    }

    /// Pushes `c`, folding runs of pauses into one (the stronger).
    fn push_pause_or_char(&mut self, c: char) {
        if is_pause(c) {
            let last = self.out.trim_end().chars().next_back();
            match last {
                None => return,
                Some(last) if is_pause(last) => {
                    let strong = |x: char| matches!(x, '。' | '！' | '？');
                    if strong(c) && !strong(last) {
                        let keep = self.out.trim_end().len() - last.len_utf8();
                        self.out.truncate(keep);
                    } else {
                        return;
                    }
                }
                _ => {}
            }
        }
        self.out.push(c);
    }
}

/// Two::Counted before a 两 measure word, else Two::Cardinal.
fn counted_or_cardinal(rest: &[char]) -> Two {
    if starts_with_any(rest, LIANG_WORDS) {
        Two::Counted
    } else {
        Two::Cardinal
    }
}

/// A token that mixes letters and digits: a queue number or code (A023 → A零二三), or a
/// quantity with a unit (5G, 10GB).
fn read_code_token(token: &str) -> String {
    let mut out = String::new();
    let lead = token.bytes().take_while(u8::is_ascii_digit).count();
    let rest = if lead > 0 && lead < token.len() && token.as_bytes()[lead].is_ascii_alphabetic() {
        out.push_str(&natural(&token[..lead], Two::Cardinal));
        &token[lead..]
    } else {
        token
    };
    for c in rest.chars() {
        if let Some(d) = c.to_digit(10).filter(|_| c.is_ascii_digit()) {
            out.push(yao_digit(d));
        } else if c.is_ascii_alphabetic() {
            out.push(c);
        } else if c == '.' || c == '-' {
            out.push(' ');
        }
    }
    out
}

/// One part of a range or list: a percentage, a time, a decimal or an integer.
fn read_simple(part: &str, two: Two) -> String {
    if part.is_empty() {
        return String::new();
    }
    if part.bytes().any(|b| b.is_ascii_alphabetic()) {
        return read_code_token(part);
    }
    if part.contains('*') {
        return digits_yao(&part.replace('*', ""));
    }
    if let Some(date) = read_date(part) {
        return date;
    }
    if let Some(n) = part.strip_suffix('%') {
        return read_percent(n);
    }
    if part.contains(':') || part.contains('：') {
        return read_time_or_ratio(part);
    }
    match split_number(part) {
        Some((int, frac, _)) if frac.is_some() => read_decimal(int, frac, Two::Er),
        Some((int, _, _)) if int.len() > 1 && int.starts_with('0') => read_digit_string(int),
        Some((int, _, _)) if int.len() > 8 => read_digit_string(int),
        Some((int, _, _)) => natural(int, two),
        None => read_digit_string(part),
    }
}

/// `digits[,ddd…][.frac]`: the integer digits (separators removed), the fraction, and
/// whether it had thousands separators. None for other shapes.
fn split_number(token: &str) -> Option<(&str, Option<&str>, bool)> {
    let (int, frac) = match token.split_once('.') {
        Some((i, f)) => {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (i, Some(f))
        }
        None => (token, None),
    };
    if int.is_empty() {
        return None;
    }
    if int.bytes().all(|b| b.is_ascii_digit()) {
        return Some((int, frac, false));
    }
    // 5,000 / 1,234,567: groups of three after the first.
    let mut groups = int.split(',');
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some((int, frac, true))
}

/// The digits of `int` without thousands separators.
fn plain_digits(int: &str) -> String {
    int.chars().filter(char::is_ascii_digit).collect()
}

/// Reads an integer the natural way (一万零八十六); over 16 digits, digit by digit.
fn natural(int: &str, two: Two) -> String {
    let digits = plain_digits(int);
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return if int.bytes().any(|b| b.is_ascii_digit()) {
            "零".into()
        } else {
            String::new()
        };
    }
    if digits.len() > 16 {
        return read_digit_string(digits);
    }
    let values: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
    // Sections of four digits from the right: 万, 亿, 万亿.
    let mut sections: Vec<&[u32]> = Vec::new();
    let mut end = values.len();
    while end > 0 {
        let start = end.saturating_sub(4);
        sections.push(&values[start..end]);
        end = start;
    }
    sections.reverse();
    const SECTION_UNITS: [&str; 4] = ["", "万", "亿", "万亿"];
    let count = sections.len();
    let mut out = String::new();
    let mut zero_gap = false;
    for (k, section) in sections.iter().enumerate() {
        let unit = SECTION_UNITS[count - 1 - k];
        let value = section.iter().fold(0, |acc, d| acc * 10 + d);
        if value == 0 {
            zero_gap = !out.is_empty();
            continue;
        }
        if !out.is_empty() && (zero_gap || value < 1000) {
            out.push('零');
        }
        let leading = out.is_empty();
        if leading && value == 2 && !unit.is_empty() && two != Two::Er {
            out.push('两');
        } else {
            read_section(section, leading, two, &mut out);
        }
        out.push_str(unit);
        zero_gap = false;
    }
    out
}

/// One section of up to four digits (千百十个).
fn read_section(section: &[u32], leading: bool, two: Two, out: &mut String) {
    const UNITS: [&str; 4] = ["", "十", "百", "千"];
    let len = section.len();
    let mut started = false;
    let mut zero = false;
    for (k, &d) in section.iter().enumerate() {
        let pos = len - 1 - k;
        if d == 0 {
            zero = started;
            continue;
        }
        if zero {
            out.push('零');
            zero = false;
        }
        let first = leading && !started;
        if first && pos == 1 && d == 1 {
            out.push('十');
        } else if first
            && d == 2
            && two != Two::Er
            && (pos >= 2 || two == Two::Counted && pos == 0 && len == 1)
        {
            out.push('两');
            out.push_str(UNITS[pos]);
        } else {
            out.push(PLAIN_DIGITS[d as usize]);
            out.push_str(UNITS[pos]);
        }
        started = true;
    }
}

/// `3.5` → 三点五 (the fraction digit by digit).
fn read_decimal(int: &str, frac: Option<&str>, two: Two) -> String {
    let two = if frac.is_some() { Two::Er } else { two };
    let mut out = natural(int, two);
    if let Some(frac) = frac {
        out.push('点');
        out.extend(
            frac.bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| PLAIN_DIGITS[usize::from(b - b'0')]),
        );
    }
    out
}

/// An amount in yuan: 5,000.50 → 五千元五角, 0.05 → 五分, 0 → 零元.
fn read_yuan(int: &str, frac: Option<&str>) -> String {
    let frac_digits: Vec<u32> = frac
        .unwrap_or("")
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .collect();
    if frac_digits.len() > 2 {
        let mut out = read_decimal(int, frac, Two::Er);
        out.push('元');
        return out;
    }
    let jiao = frac_digits.first().copied().unwrap_or(0);
    let fen = frac_digits.get(1).copied().unwrap_or(0);
    let whole_zero = plain_digits(int).bytes().all(|b| b == b'0');
    let coin = |d: u32| {
        if d == 2 {
            '两'
        } else {
            PLAIN_DIGITS[d as usize]
        }
    };
    let mut out = String::new();
    if !whole_zero || (jiao == 0 && fen == 0) {
        out.push_str(&natural(int, Two::Counted));
        out.push('元');
    }
    if jiao > 0 {
        out.push(coin(jiao));
        out.push('角');
    }
    if fen > 0 {
        if jiao == 0 && !whole_zero {
            out.push('零');
        }
        out.push(coin(fen));
        out.push('分');
    }
    out
}

/// `3.5` of `3.5%` → 百分之三点五; 100 → 百分之百.
fn read_percent(number: &str) -> String {
    match split_number(number) {
        Some((int, None, _)) if plain_digits(int).trim_start_matches('0') == "100" => {
            "百分之百".into()
        }
        Some((int, frac, _)) => format!("百分之{}", read_decimal(int, frac, Two::Er)),
        None => format!("百分之{}", read_digit_string(number)),
    }
}

/// `10:30` → 十点三十分, `10:00` → 十点, `09:05` → 九点零五分; other shapes as a ratio
/// (3:1 → 三比一).
fn read_time_or_ratio(token: &str) -> String {
    let parts: Vec<&str> = token.split([':', '：']).collect();
    let number = |p: &str| -> Option<u32> {
        (!p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let time = match *parts.as_slice() {
        [h, m] => number(h).zip(number(m)).map(|(h, m)| (h, m, None)),
        [h, m, s] => number(h)
            .zip(number(m))
            .zip(number(s))
            .map(|((h, m), s)| (h, m, Some(s))),
        _ => None,
    };
    match time {
        Some((h, m, s)) if h <= 24 && m < 60 && parts[1].len() == 2 && s.is_none_or(|s| s < 60) => {
            let mut out = natural(&h.to_string(), Two::Counted);
            out.push('点');
            let s = s.unwrap_or(0);
            if m > 0 || s > 0 {
                if m < 10 {
                    out.push('零');
                }
                out.push_str(&natural(&m.to_string(), Two::Er));
                out.push('分');
            }
            if s > 0 {
                out.push_str(&natural(&s.to_string(), Two::Er));
                out.push('秒');
            }
            out
        }
        _ => parts
            .iter()
            .map(|p| read_simple(p, Two::Cardinal))
            .collect::<Vec<_>>()
            .join("比"),
    }
}

/// `2026-11-26`, `2026/11/26`, `2026.11.26` → 二〇二六年十一月二十六日; `2026-11` → 年月.
fn read_date(token: &str) -> Option<String> {
    let sep = [b'-', b'/', b'.']
        .into_iter()
        .find(|s| token.as_bytes().get(4) == Some(s))?;
    let parts: Vec<&str> = token.split(char::from(sep)).collect();
    if !parts
        .iter()
        .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let year: u32 = parts[0].parse().ok()?;
    if parts[0].len() != 4 || !(1900..=2199).contains(&year) {
        return None;
    }
    let month: u32 = parts.get(1)?.parse().ok()?;
    if parts[1].len() > 2 || !(1..=12).contains(&month) {
        return None;
    }
    let mut out = format!(
        "{}年{}月",
        digits_year(parts[0]),
        natural(parts[1], Two::Er)
    );
    match parts.len() {
        2 if sep == b'-' || sep == b'/' => {}
        3 => {
            let day: u32 = parts[2].parse().ok()?;
            if parts[2].len() > 2 || !(1..=31).contains(&day) {
                return None;
            }
            out.push_str(&natural(parts[2], Two::Er));
            out.push('日');
        }
        _ => return None,
    }
    Some(out)
}

/// 幺 for 1, the way Mandarin reads phone numbers, card tails and codes.
fn yao_digit(d: u32) -> char {
    if d == 1 {
        '幺'
    } else {
        PLAIN_DIGITS[(d % 10) as usize]
    }
}

/// Digit by digit with 幺: 1234 → 幺二三四.
fn digits_yao(digits: &str) -> String {
    digits
        .chars()
        .filter_map(|c| c.to_digit(10).filter(|_| c.is_ascii_digit()))
        .map(yao_digit)
        .collect()
}

/// A year: 2026 → 二〇二六.
fn digits_year(digits: &str) -> String {
    digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| match b {
            b'0' => '〇',
            b => PLAIN_DIGITS[usize::from(b - b'0')],
        })
        .collect()
}

/// A long digit string that is not an amount: a mobile number in groups of 3-4-4
/// (幺三八，幺二三四，五六七八), a card number in groups of four, else digit by digit.
fn read_digit_string(digits: &str) -> String {
    let digits = plain_digits(digits);
    let bytes = digits.as_bytes();
    let mobile = bytes.len() == 11 && bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1]);
    let groups: Vec<&str> = if mobile {
        vec![&digits[..3], &digits[3..7], &digits[7..]]
    } else if bytes.len() >= 12 {
        bytes
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect()
    } else {
        vec![digits.as_str()]
    };
    groups
        .iter()
        .map(|g| digits_yao(g))
        .collect::<Vec<_>>()
        .join("，")
}

/// Collapses whitespace; drops it next to Chinese characters and punctuation, where
/// Mandarin has none.
fn tidy_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space {
            let last = out.chars().next_back();
            if last.is_some_and(|l: char| l.is_ascii_alphanumeric()) && c.is_ascii_alphanumeric() {
                out.push(' ');
            }
            pending_space = false;
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Pass 3: lexicon.

/// Replaces lexicon words by their readings, longest match first, left to right.
fn apply_lexicon(text: &str, lexicon: &BTreeMap<String, String>) -> String {
    let table: HashMap<&str, &str> = lexicon
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if table.is_empty() {
        return text.to_string();
    }
    let longest = table.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i + 1 < bounds.len() {
        let longest_here = longest.min(bounds.len() - 1 - i);
        let hit = (1..=longest_here)
            .rev()
            .find_map(|n| table.get(&text[bounds[i]..bounds[i + n]]).map(|r| (n, *r)));
        match hit {
            Some((n, reading)) => {
                out.push_str(reading);
                i += n;
            }
            None => {
                out.push_str(&text[bounds[i]..bounds[i + 1]]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(text: &str) -> String {
        for_reading(text, &BTreeMap::new())
    }

    fn check(cases: &[(&str, &str)]) {
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(input, want)| {
                let got = read(input);
                (got != *want).then(|| format!("{input:?}: want {want:?}, got {got:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn card_tails_and_phone_numbers_are_read_digit_by_digit_with_yao() {
        check(&[
            ("尾号1234", "尾号幺二三四"),
            ("尾号为 1234", "尾号幺二三四"),
            ("尾号是1234的卡", "尾号幺二三四的卡"),
            (
                "您尾号6789的银行卡已冻结。",
                "您尾号六七八九的银行卡已冻结。",
            ),
            ("手机号13812345678", "手机号幺三八，幺二三四，五六七八"),
            ("请拨打13812345678。", "请拨打幺三八，幺二三四，五六七八。"),
            ("预留手机138****5678", "预留手机尾号五六七八"),
            ("尾号****5678", "尾号五六七八"),
            ("卡号6222 **** **** 6789", "卡号尾号六七八九"),
            (
                "卡号 6222 0212 3456 7890",
                "卡号六二二二，零二幺二，三四五六，七八九零",
            ),
            ("客服热线95588", "客服热线九五五八八"),
            ("请拨打10086", "请拨打幺零零八六"),
            ("电话010-12345678", "电话零幺零，幺二三四五六七八"),
            ("400-820-8820", "四零零，八二零，八八二零"),
            ("验证码 2580", "验证码二五八零"),
            ("确认码为 123456", "确认码为幺二三四五六"),
        ]);
    }

    #[test]
    fn money_is_read_in_yuan_jiao_and_fen() {
        check(&[
            ("5000元", "五千元"),
            ("¥5,000.00", "五千元"),
            ("￥5,000.00", "五千元"),
            ("5,000.50元", "五千元五角"),
            ("5000.05元", "五千元零五分"),
            ("0.55元", "五角五分"),
            ("1.5万元", "一点五万元"),
            ("¥1.5万", "一点五万元"),
            ("0元", "零元"),
            ("¥0", "零元"),
            ("2元", "两元"),
            ("2000元", "两千元"),
            ("10086元", "一万零八十六元"),
            ("20000元", "两万元"),
            ("100000000元", "一亿元"),
            ("手续费 10 元", "手续费十元"),
            ("1.234元", "一点二三四元"),
        ]);
    }

    #[test]
    fn times_and_dates_are_read_as_mandarin_says_them() {
        check(&[
            ("10:30", "十点三十分"),
            ("10:00", "十点"),
            ("09:05", "九点零五分"),
            ("2:00", "两点"),
            ("12:10", "十二点十分"),
            ("营业时间9:00-17:00", "营业时间九点至十七点"),
            ("10：30", "十点三十分"),
            ("比分3:1", "比分三比一"),
            ("2026-11-26", "二〇二六年十一月二十六日"),
            ("2026年11月26日", "二〇二六年十一月二十六日"),
            ("2026/01/05", "二〇二六年一月五日"),
            ("11月26日", "十一月二十六日"),
            ("2月2日", "二月二日"),
            ("2026-11-26 10:30", "二〇二六年十一月二十六日十点三十分"),
        ]);
    }

    #[test]
    fn codes_percentages_and_counts_are_read_naturally() {
        check(&[
            ("A023", "A零二三"),
            ("您的号码是A023号", "您的号码是A零二三号"),
            ("VIP011", "VIP零幺幺"),
            ("3.5%", "百分之三点五"),
            ("年利率1.75%", "年利率百分之一点七五"),
            ("100%", "百分之百"),
            ("3%-5%", "百分之三至百分之五"),
            ("前面还有3位", "前面还有三位"),
            ("第2个", "第二个"),
            ("2位", "两位"),
            ("2号窗口", "二号窗口"),
            ("需要1-2个工作日", "需要一至两个工作日"),
            ("10086", "幺零零八六"),
            ("共10,086人", "共一万零八十六人"),
            ("10086人", "一万零八十六人"),
            ("10086美元", "一万零八十六美元"),
            ("10086英镑", "一万零八十六英镑"),
            ("120", "一百二十"),
            ("1001", "一千零一"),
            ("110", "一百一十"),
            ("15", "十五"),
            ("100000", "幺零零零零零"),
            ("0", "零"),
            ("007号", "零零七号"),
            ("5G网络", "五G网络"),
            ("3.14", "三点一四"),
            ("1/2", "二分之一"),
            ("-5元", "负五元"),
            ("温度-3.5", "温度负三点五"),
        ]);
    }

    #[test]
    fn markdown_urls_and_emoji_are_not_read() {
        check(&[
            ("**请注意**：带好身份证", "请注意：带好身份证"),
            ("# 办理须知\n请带好身份证。", "办理须知。请带好身份证。"),
            ("需要：\n- 身份证\n- 银行卡", "需要：身份证，银行卡"),
            ("1. 取号\n2. 等候叫号", "取号，等候叫号"),
            (
                "详见[官网说明](https://bank.example/help)。",
                "详见官网说明。",
            ),
            ("访问 https://bank.example/a?b=1 了解", "访问了解"),
            ("您好😊！欢迎光临🏦", "您好！欢迎光临"),
            ("请 稍 等", "请稍等"),
            ("`代码`和__强调__", "代码和强调"),
            ("> 引用的话", "引用的话"),
            ("好的。。", "好的。"),
            ("Hello  world", "Hello world"),
        ]);
    }

    #[test]
    fn the_lexicon_applies_longest_match_first() {
        let lexicon: BTreeMap<String, String> =
            [("行长", "航长"), ("还款", "环款"), ("还款日", "环款日子")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(
            for_reading("请行长确认还款日和还款", &lexicon),
            "请航长确认环款日子和环款"
        );
        let digits: BTreeMap<String, String> = [("ATM".to_string(), "A T M 1".to_string())].into();
        assert_eq!(for_reading("ATM机", &digits), "A T M 一机");
    }

    #[test]
    fn pathological_input_stays_linear() {
        let cases = [
            "[".repeat(50_000),
            "*".repeat(50_000),
            "1".repeat(50_000),
            "1-".repeat(20_000),
            "http://".repeat(10_000),
            "<".repeat(50_000),
        ];
        for case in cases {
            let start = std::time::Instant::now();
            let out = read(&case);
            assert!(!out.bytes().any(|b| b.is_ascii_digit()));
            assert!(
                start.elapsed() < std::time::Duration::from_secs(2),
                "{}",
                &case[..10]
            );
        }
    }

    proptest! {
        #[test]
        fn reading_never_panics_and_leaves_no_ascii_digit(text in "\\PC{0,80}") {
            let out = normalise(&text);
            prop_assert!(!out.bytes().any(|b| b.is_ascii_digit()), "{text:?} → {out:?}");
        }

        #[test]
        fn number_heavy_text_leaves_no_ascii_digit(
            text in "[0-9０-９.,:：%*¥￥ \\-~/A-Za-z元万第位年月日号尾为#\\[\\]()_\n]{0,60}"
        ) {
            let out = normalise(&text);
            prop_assert!(!out.bytes().any(|b| b.is_ascii_digit()), "{text:?} → {out:?}");
        }
    }
}
