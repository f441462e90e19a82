//! The learned intent classifier: a fastText-style model over hashed character n-grams
//! (1- to 3-grams of the matching form, digits folded to `0`), averaged into an embedding and
//! mapped linearly to the 32 intents. It is trained in-process with candle's autograd
//! (AdamW, cross-entropy) from the examples in `dialogs/`, deterministically (fixed seed,
//! fixed order), then its weights are copied out and inference runs in plain Rust — a
//! handful of vector additions and one 32×32 product, microseconds per utterance.
//!
//! Confidences are calibrated by temperature scaling: before the final model is trained, a
//! model trained on 85 % of the examples picks the temperature that minimises the negative
//! log-likelihood on the other 15 %.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use anyhow::Context;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Hash buckets for n-grams (bucket 0 is padding).
const BUCKETS: usize = 1 << 14;
/// Embedding width.
const DIM: usize = 32;
/// At most this many n-grams of one utterance are used.
const MAX_FEATURES: usize = 256;

/// Training settings (defaults are what `docs/benchmarks.md` reports).
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Fit a temperature on a 15 % split first (doubles training time).
    pub calibrate: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 12,
            batch: 256,
            learning_rate: 0.1,
            seed: 20261125,
            calibrate: true,
        }
    }
}

/// A trained classifier.
#[derive(Debug, Clone)]
pub struct Classifier {
    labels: Vec<String>,
    /// BUCKETS × DIM, row-major.
    embeddings: Vec<f32>,
    /// DIM × K, row-major.
    weights: Vec<f32>,
    bias: Vec<f32>,
    temperature: f32,
    /// Full 64-bit hashes of the 2- and 3-grams that occurred in training (buckets collide
    /// too often to tell seen from unseen).
    seen: std::collections::HashSet<u64>,
}

/// What training did, for logs and `concierge train`.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub examples: usize,
    pub temperature: f32,
    pub final_loss: f32,
    pub millis: u128,
}

/// The hashed n-gram features of a matching-form utterance.
pub fn features(matching: &str) -> Vec<u32> {
    features_by_order(matching)
        .into_iter()
        .map(|(_, f, _)| f)
        .collect()
}

/// Features with their n-gram order (1, 2 or 3) and full hash.
fn features_by_order(matching: &str) -> Vec<(usize, u32, u64)> {
    let chars: Vec<char> = std::iter::once('^')
        .chain(
            matching
                .chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c }),
        )
        .chain(std::iter::once('$'))
        .collect();
    let mut out = Vec::with_capacity(chars.len() * 3);
    for n in 1..=3 {
        for w in chars.windows(n) {
            if n == 1 && (w[0] == '^' || w[0] == '$') {
                continue;
            }
            let mut h = DefaultHasher::new();
            n.hash(&mut h);
            w.hash(&mut h);
            let full = h.finish();
            out.push((n, 1 + (full % (BUCKETS as u64 - 1)) as u32, full));
        }
    }
    out.truncate(MAX_FEATURES);
    out
}

impl Classifier {
    /// Trains on `(matching text, label index)` pairs over `labels`.
    pub fn train(
        labels: &[String],
        examples: &[(String, usize)],
        config: &TrainConfig,
    ) -> anyhow::Result<(Classifier, TrainReport)> {
        anyhow::ensure!(!examples.is_empty(), "no training examples");
        let started = std::time::Instant::now();
        let mut temperature = 1.0;
        if config.calibrate && examples.len() >= 40 {
            let mut shuffled: Vec<&(String, usize)> = examples.iter().collect();
            shuffled.shuffle(&mut StdRng::seed_from_u64(config.seed ^ 0x5eed));
            let cut = shuffled.len() * 85 / 100;
            let fit: Vec<(String, usize)> = shuffled[..cut].iter().map(|e| (*e).clone()).collect();
            let (probe, _) = fit_weights(labels, &fit, config)?;
            let held: Vec<(Vec<f32>, usize)> = shuffled[cut..]
                .iter()
                .map(|(text, y)| (probe.logits(&features(text)), *y))
                .collect();
            temperature = best_temperature(&held);
        }
        let (mut model, final_loss) = fit_weights(labels, examples, config)?;
        model.temperature = temperature;
        let report = TrainReport {
            examples: examples.len(),
            temperature,
            final_loss,
            millis: started.elapsed().as_millis(),
        };
        Ok((model, report))
    }

    /// The intent labels, in output order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Raw scores for the features of one utterance.
    fn logits(&self, feats: &[u32]) -> Vec<f32> {
        let k = self.labels.len();
        let mut hidden = [0f32; DIM];
        for &f in feats {
            let row = &self.embeddings[f as usize * DIM..(f as usize + 1) * DIM];
            for (h, v) in hidden.iter_mut().zip(row) {
                *h += v;
            }
        }
        let n = feats.len().max(1) as f32;
        let mut out = self.bias.clone();
        for (d, h) in hidden.iter().enumerate() {
            let h = h / n;
            let row = &self.weights[d * k..(d + 1) * k];
            for (o, w) in out.iter_mut().zip(row) {
                *o += h * w;
            }
        }
        out
    }

    /// The share of an utterance's 2- and 3-grams that occurred in training. Noise and
    /// languages the model never saw ("呜啦啦", "asdf") score near 0; the caller treats
    /// a low coverage as "not sure" whatever the probabilities say.
    pub fn coverage(&self, matching: &str) -> f32 {
        let grams: Vec<u64> = features_by_order(matching)
            .into_iter()
            .filter(|(n, _, _)| *n >= 2)
            .map(|(_, _, full)| full)
            .collect();
        if grams.is_empty() {
            return 0.0;
        }
        let seen = grams.iter().filter(|h| self.seen.contains(h)).count();
        seen as f32 / grams.len() as f32
    }

    /// Calibrated probabilities of every label for a matching-form utterance, ranked.
    pub fn predict(&self, matching: &str) -> Vec<(String, f32)> {
        let logits = self.logits(&features(matching));
        let probs = softmax(&logits, self.temperature);
        let mut ranked: Vec<(String, f32)> = self.labels.iter().cloned().zip(probs).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }
}

fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits
        .iter()
        .map(|l| ((l - max) / temperature).exp())
        .collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The temperature in [0.25, 4] minimising the negative log-likelihood of `held`.
fn best_temperature(held: &[(Vec<f32>, usize)]) -> f32 {
    let nll = |t: f32| -> f32 {
        held.iter()
            .map(|(logits, y)| -softmax(logits, t)[*y].max(1e-9).ln())
            .sum::<f32>()
    };
    let mut best = (1.0, nll(1.0));
    let mut t = 0.25f32;
    while t <= 4.0 {
        let v = nll(t);
        if v < best.1 {
            best = (t, v);
        }
        t += 0.05;
    }
    best.0
}

/// One training run with candle; returns the model (temperature 1) and the last loss.
fn fit_weights(
    labels: &[String],
    examples: &[(String, usize)],
    config: &TrainConfig,
) -> anyhow::Result<(Classifier, f32)> {
    let dev = Device::Cpu;
    let k = labels.len();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let init = |n: usize, scale: f32, rng: &mut StdRng| -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
    };
    let mut emb_init = init(BUCKETS * DIM, 1.0 / DIM as f32, &mut rng);
    emb_init[..DIM].iter_mut().for_each(|v| *v = 0.0);
    let emb = Var::from_tensor(&Tensor::from_vec(emb_init, (BUCKETS, DIM), &dev)?)?;
    let w = Var::from_tensor(&Tensor::from_vec(
        init(DIM * k, (6.0 / (DIM + k) as f32).sqrt(), &mut rng),
        (DIM, k),
        &dev,
    )?)?;
    let b = Var::from_tensor(&Tensor::zeros(k, DType::F32, &dev)?)?;
    let mut opt = AdamW::new(
        vec![emb.clone(), w.clone(), b.clone()],
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;

    let feats: Vec<Vec<u32>> = examples.iter().map(|(t, _)| features(t)).collect();
    let seen: std::collections::HashSet<u64> = examples
        .iter()
        .flat_map(|(t, _)| features_by_order(t))
        .filter(|(n, _, _)| *n >= 2)
        .map(|(_, _, full)| full)
        .collect();
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut last_loss = f32::NAN;
    for epoch in 0..config.epochs {
        order.shuffle(&mut rng);
        // Linear decay to 10 % of the rate, as fastText does.
        let frac = epoch as f64 / config.epochs.max(1) as f64;
        opt.set_learning_rate(config.learning_rate * (1.0 - 0.9 * frac));
        let mut epoch_loss = 0f32;
        let mut batches = 0;
        for chunk in order.chunks(config.batch.max(1)) {
            let len = chunk
                .iter()
                .map(|&i| feats[i].len())
                .max()
                .unwrap_or(1)
                .max(1);
            let mut ids = Vec::with_capacity(chunk.len() * len);
            let mut mask = Vec::with_capacity(chunk.len() * len);
            let mut counts = Vec::with_capacity(chunk.len());
            let mut targets = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let f = &feats[i];
                ids.extend(
                    f.iter()
                        .copied()
                        .chain(std::iter::repeat_n(0, len - f.len())),
                );
                mask.extend(
                    std::iter::repeat_n(1f32, f.len())
                        .chain(std::iter::repeat_n(0f32, len - f.len())),
                );
                counts.push(f.len().max(1) as f32);
                targets.push(examples[i].1 as u32);
            }
            let n = chunk.len();
            let ids = Tensor::from_vec(ids, n * len, &dev)?;
            let mask = Tensor::from_vec(mask, (n, len, 1), &dev)?;
            let counts = Tensor::from_vec(counts, (n, 1), &dev)?;
            let targets = Tensor::from_vec(targets, n, &dev)?;
            let gathered = emb
                .as_tensor()
                .index_select(&ids, 0)?
                .reshape((n, len, DIM))?;
            let pooled = gathered
                .broadcast_mul(&mask)?
                .sum(1)?
                .broadcast_div(&counts)?;
            let logits = pooled.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
            let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
            opt.backward_step(&loss)?;
            epoch_loss += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        last_loss = epoch_loss / batches.max(1) as f32;
    }
    let to_vec = |v: &Var| -> anyhow::Result<Vec<f32>> {
        v.as_tensor()
            .flatten_all()?
            .to_vec1::<f32>()
            .context("copy weights out")
    };
    Ok((
        Classifier {
            labels: labels.to_vec(),
            embeddings: to_vec(&emb)?,
            weights: to_vec(&w)?,
            bias: to_vec(&b)?,
            temperature: 1.0,
            seen,
        },
        last_loss,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_toy_problem_and_ranks_every_label() {
        let labels: Vec<String> = ["money", "card"].iter().map(|s| s.to_string()).collect();
        let mut examples = Vec::new();
        for t in ["我要转账", "转钱给他", "帮我汇款", "转一笔钱", "汇点钱过去"]
        {
            examples.push((t.to_string(), 0));
        }
        for t in [
            "卡丢了",
            "我的卡找不到了",
            "挂失银行卡",
            "卡被偷了",
            "银行卡丢失",
        ] {
            examples.push((t.to_string(), 1));
        }
        let config = TrainConfig {
            calibrate: false,
            ..TrainConfig::default()
        };
        let (model, report) = Classifier::train(&labels, &examples, &config).unwrap();
        assert!(report.final_loss < 0.5, "{report:?}");
        let ranked = model.predict("卡丢了怎么办");
        assert_eq!(ranked[0].0, "card");
        assert_eq!(ranked.len(), 2);
        let sum: f32 = ranked.iter().map(|r| r.1).sum();
        assert!((sum - 1.0).abs() < 1e-4);
    }

    #[test]
    fn training_is_deterministic() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let examples = vec![("你好".to_string(), 0), ("再见".to_string(), 1)];
        let config = TrainConfig {
            calibrate: false,
            epochs: 3,
            ..TrainConfig::default()
        };
        let (m1, _) = Classifier::train(&labels, &examples, &config).unwrap();
        let (m2, _) = Classifier::train(&labels, &examples, &config).unwrap();
        assert_eq!(m1.predict("你好呀"), m2.predict("你好呀"));
    }

    #[test]
    fn features_fold_digits_and_stay_bounded() {
        assert_eq!(features("转5000"), features("转1234"));
        assert!(features(&"很".repeat(10_000)).len() <= MAX_FEATURES);
        assert!(features("").len() == 1); // the ^$ bigram
    }
}
