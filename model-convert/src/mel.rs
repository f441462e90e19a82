//! Slaney mel filter bank (`librosa.filters.mel(sr, n_fft, n_mels)`, Slaney scale and
//! norm, as openai/whisper uses), computed in f64 step by step as numpy does, then
//! rounded to f32 — so the bytes equal the Python reference's, down to the sign of zero.

/// `np.linspace(start, stop, num)`: `i * step + start`, the last value exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut y: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if num > 1 {
        y[num - 1] = stop;
    }
    y
}

/// `np.maximum(a, b)` without NaNs: `b` when equal (so `max(0, -0.0)` is `-0.0`).
fn np_maximum(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

/// `np.minimum(a, b)` without NaNs: `b` when equal.
fn np_minimum(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(f: f64) -> f64 {
    let min_log_mel = MIN_LOG_HZ / F_SP;
    if f >= MIN_LOG_HZ {
        min_log_mel + (f.max(1e-10) / MIN_LOG_HZ).ln() / logstep()
    } else {
        f / F_SP
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let min_log_mel = MIN_LOG_HZ / F_SP;
    if m >= min_log_mel {
        MIN_LOG_HZ * (logstep() * (m - min_log_mel)).exp()
    } else {
        F_SP * m
    }
}

/// The filters, `n_mels` rows of `1 + n_fft / 2` values, row-major.
pub fn slaney_filters(sr: f64, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_freqs = 1 + n_fft / 2;
    let fftfreqs = linspace(0.0, sr / 2.0, n_freqs);
    let mel_f: Vec<f64> = linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2)
        .into_iter()
        .map(mel_to_hz)
        .collect();
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();
    let mut out = Vec::with_capacity(n_mels * n_freqs);
    for i in 0..n_mels {
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for &f in &fftfreqs {
            let lower = -(mel_f[i] - f) / fdiff[i];
            let upper = (mel_f[i + 2] - f) / fdiff[i + 1];
            let w = np_maximum(0.0, np_minimum(lower, upper));
            out.push((w * enorm) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whisper_filters_match_numpy_spot_values() {
        // Values computed once with numpy 2.4.6 (mel_filters_slaney() of ct2_to_ggml.py,
        // printed as f32 bit patterns).
        let w = slaney_filters(16000.0, 400, 80);
        assert_eq!(w.len(), 80 * 201);
        let at = |i: usize, j: usize| w[i * 201 + j].to_bits();
        assert_eq!(at(0, 1), 1_019_980_964);
        assert_eq!(at(30, 30), 1_007_868_054);
        assert_eq!(at(0, 2), 0);
        assert_eq!(at(79, 200), 0);
        // numpy's maximum(0, -0.0) keeps the negative zero of the very first value.
        assert_eq!(at(0, 0), 0x8000_0000);
    }
}
