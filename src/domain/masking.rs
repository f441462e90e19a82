//! Masking of personal data in free text, applied before anything is stored or logged:
//! ID numbers keep the region and last four (`110101********1234`), card numbers keep
//! BIN and last four (`622202*********1234`), mobile numbers keep prefix and last four
//! (`138****5678`). Digit groups separated by single spaces or dashes count as one number,
//! and full-width digits count as digits, so `6222 0210 …` and `１３８…` are caught too.

/// Returns `text` with every ID, card and mobile number masked.
pub fn mask_pii(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_digit(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // Collect a number: digits, possibly grouped by single separators, possibly a
        // trailing X (ID check digit).
        let start = i;
        let mut digits = String::new();
        let mut end = i;
        let mut j = i;
        while j < chars.len() {
            let c = chars[j];
            if is_digit(c) {
                digits.push(ascii_digit(c));
                j += 1;
                end = j;
            } else if (c == ' ' || c == '-')
                && j + 1 < chars.len()
                && is_digit(chars[j + 1])
                && !digits.is_empty()
            {
                j += 1;
            } else {
                break;
            }
        }
        if end < chars.len() && matches!(chars[end], 'X' | 'x') && digits.len() == 17 {
            digits.push('X');
            end += 1;
        }
        match mask_number(&digits) {
            Some(masked) => out.push_str(&masked),
            None => out.extend(&chars[start..end]),
        }
        i = end;
    }
    out
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('０'..='９').contains(&c)
}

fn ascii_digit(c: char) -> char {
    if c.is_ascii_digit() {
        c
    } else {
        char::from(b'0' + (c as u32 - '０' as u32) as u8)
    }
}

/// The masked form of a bare number, or `None` when it is not personal data.
fn mask_number(n: &str) -> Option<String> {
    let len = n.len();
    let stars = |k: usize| "*".repeat(k);
    if len == 18 {
        return Some(format!("{}{}{}", &n[..6], stars(8), &n[14..]));
    }
    if len == 11 && n.starts_with('1') {
        return Some(format!("{}{}{}", &n[..3], stars(4), &n[7..]));
    }
    if (12..=19).contains(&len) && !n.ends_with('X') {
        return Some(format!("{}{}{}", &n[..6], stars(len - 10), &n[len - 4..]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_keep_region_and_last_four() {
        assert_eq!(
            mask_pii("我的身份证是11010119900307123X。"),
            "我的身份证是110101********123X。"
        );
        assert_eq!(mask_pii("110101199003071234"), "110101********1234");
    }

    #[test]
    fn mobile_numbers_keep_prefix_and_last_four() {
        assert_eq!(mask_pii("电话13812345678"), "电话138****5678");
        assert_eq!(mask_pii("电话１３８１２３４５６７８"), "电话138****5678");
    }

    #[test]
    fn card_numbers_keep_bin_and_last_four_even_when_grouped() {
        assert_eq!(
            mask_pii("卡号6222021001123456789"),
            "卡号622202*********6789"
        );
        assert_eq!(
            mask_pii("卡号 6222 0210 0112 3456"),
            "卡号 622202******3456"
        );
    }

    #[test]
    fn ordinary_numbers_are_left_alone() {
        for s in [
            "转账5000元",
            "明天上午10点",
            "2026-11-25",
            "排队号A023",
            "密码123456",
        ] {
            assert_eq!(mask_pii(s), s);
        }
    }

    #[test]
    fn masking_is_idempotent() {
        let once = mask_pii("身份证110101199003071234 手机13812345678 卡6222021001123456789");
        assert_eq!(mask_pii(&once), once);
    }
}
