//! The GPT-2 byte ↔ unicode table of byte-level BPE vocabularies (openai/whisper, HF
//! tokenizers): printable bytes stand for themselves, the others for code points from 256.

use std::collections::HashMap;

/// `bytes_to_unicode()`: the character that stands for each byte.
pub fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u32| {
        (u32::from('!')..=u32::from('~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).expect("latin-1")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("latin extended")
        };
    }
    table
}

/// The inverse table: the byte each character stands for.
pub fn unicode_to_bytes() -> HashMap<char, u8> {
    bytes_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// The raw bytes of one vocabulary token, or the first character that no byte stands for.
pub fn decode_token(token: &str, table: &HashMap<char, u8>) -> Result<Vec<u8>, char> {
    token
        .chars()
        .map(|c| table.get(&c).copied().ok_or(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_bytes_stand_for_themselves_and_others_are_shifted() {
        let t = bytes_to_unicode();
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[b' ' as usize], 'Ġ'); // U+0120, the famous GPT-2 space
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xAD], 'Ń');
        let inv = unicode_to_bytes();
        assert_eq!(inv.len(), 256);
        assert_eq!(decode_token("Ġhello", &inv).unwrap(), b" hello");
        assert_eq!(decode_token("ä½ł", &inv).unwrap(), "你".as_bytes());
        assert_eq!(decode_token("a€", &inv), Err('€'));
    }
}
