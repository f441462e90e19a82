//! Element encodings of ggml tensors: f16 (round to nearest even, as numpy's
//! `astype(float16)`) and q8_0 (blocks of 32: an f16 scale and 32 int8), numpy-exact.

/// Bytes of one q8_0 block: f16 scale + 32 int8.
pub const Q8_0_BLOCK_BYTES: usize = 34;
/// Values per q8_0 block.
pub const Q8_0_BLOCK: usize = 32;

/// f32 → f16 bits, rounding to nearest even.
#[inline]
pub fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// One q8_0 block: `d = amax / 127` in f32, `inv = 1 / d` (0 when `d` is 0),
/// `q = round_half_even(x * inv)`, `d` stored as f16.
pub fn q8_0_block(x: &[f32; Q8_0_BLOCK], out: &mut [u8; Q8_0_BLOCK_BYTES]) {
    let amax = x.iter().fold(0.0f32, |m, v| {
        let a = v.abs();
        if a > m || a.is_nan() {
            a
        } else {
            m
        }
    });
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    for (o, v) in out[2..].iter_mut().zip(x) {
        *o = ((v * inv).round_ties_even() as i8) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounds_ties_to_even() {
        // 1 + 2^-11 is halfway between 1 and the next f16 (1 + 2^-10): even is 1.
        assert_eq!(f16_bits(1.0 + f32::powi(2.0, -11)), 0x3c00);
        // 1 + 3·2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: even is 1 + 2^-9.
        assert_eq!(f16_bits(1.0 + 3.0 * f32::powi(2.0, -11)), 0x3c02);
        assert_eq!(f16_bits(65520.0), 0x7c00); // rounds up to infinity
        assert_eq!(f16_bits(-0.0), 0x8000);
        assert_eq!(f16_bits(1e-8), 0x0000);
    }

    #[test]
    fn an_all_zero_block_has_scale_zero_and_zero_quants() {
        let mut out = [0xffu8; Q8_0_BLOCK_BYTES];
        q8_0_block(&[0.0; 32], &mut out);
        assert_eq!(out, [0u8; Q8_0_BLOCK_BYTES]);
    }

    #[test]
    fn q8_0_matches_numpy_on_a_known_block() {
        // x = [-16..16) / 4; amax = 4, d = 4/127, round-half-even of x*127/4.
        let x: [f32; 32] = std::array::from_fn(|i| (i as f32 - 16.0) / 4.0);
        let mut out = [0u8; Q8_0_BLOCK_BYTES];
        q8_0_block(&x, &mut out);
        let d = u16::from_le_bytes([out[0], out[1]]);
        assert_eq!(d, half::f16::from_f32(4.0f32 / 127.0).to_bits());
        let q: Vec<i8> = out[2..].iter().map(|&b| b as i8).collect();
        // Computed with numpy: np.round(x * np.float32(1/(np.float32(4)/127))).astype(np.int8)
        assert_eq!(q[0], -127);
        assert_eq!(q[16], 0);
        assert_eq!(q[17], 8); // 0.25 * 31.75 = 7.9375
        assert_eq!(q[18], 16); // 15.875
        assert_eq!(q[22], 48); // 1.5 * 31.75 = 47.625
        assert_eq!(q[31], 119); // 3.75 * 31.75 = 119.0625
    }

    #[test]
    fn q8_0_rounds_halves_to_even() {
        // amax 127 → d = 1, inv = 1: 0.5 → 0, 1.5 → 2, 2.5 → 2, -0.5 → 0, -1.5 → -2.
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        x[1] = 0.5;
        x[2] = 1.5;
        x[3] = 2.5;
        x[4] = -0.5;
        x[5] = -1.5;
        let mut out = [0u8; Q8_0_BLOCK_BYTES];
        q8_0_block(&x, &mut out);
        assert_eq!(u16::from_le_bytes([out[0], out[1]]), 0x3c00);
        let q: Vec<i8> = out[2..8].iter().map(|&b| b as i8).collect();
        assert_eq!(q, [127, 0, 2, 2, 0, -2]);
    }
}
