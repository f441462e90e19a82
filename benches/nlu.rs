//! NLU parse latency on one core: `cargo bench --bench nlu`. Parses the held-out set
//! (tests/nlu/heldout.yaml) utterance by utterance; the model is trained once before timing.

use std::path::Path;

use concierge::dialog::data::DialogData;
use concierge::nlu::{read_labelled, Nlu};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

type Now = chrono::DateTime<chrono::FixedOffset>;

/// The trained understanding, the held-out utterances and a fixed reference time.
fn setup() -> (Nlu, Vec<(String, String)>, Now) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = DialogData::load(
        &root.join("dialogs"),
        &concierge::actions::Registry::standard(),
    )
    .expect("dialogs load");
    let nlu = Nlu::new(&data.nlu).expect("classifier trains");
    let set = read_labelled(&root.join("tests/nlu/heldout.yaml")).expect("held-out set");
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T09:30:00+08:00").unwrap();
    (nlu, set, now)
}

fn parse(c: &mut Criterion) {
    let (nlu, set, now) = setup();
    c.bench_function(
        "nlu parse, one held-out utterance (mean over the set)",
        |b| {
            let mut i = 0;
            b.iter(|| {
                let (text, _) = &set[i % set.len()];
                i += 1;
                black_box(nlu.parse(black_box(text), now))
            })
        },
    );
    c.bench_function("nlu parse, long sentence with slots", |b| {
        b.iter(|| {
            black_box(nlu.parse(
                black_box("嗯那个，我想帮我儿子预约下周三下午三点半去开户，顺便取五千块钱，手机号13812345678"),
                now,
            ))
        })
    });
}

/// Criterion reports means; the goal is a p99, so also time every parse of the held-out set
/// (20 rounds) one by one and print the percentiles.
fn percentiles(_: &mut Criterion) {
    let (nlu, set, now) = setup();
    let mut ns: Vec<u128> = Vec::new();
    for _ in 0..20 {
        for (text, _) in &set {
            let t = std::time::Instant::now();
            black_box(nlu.parse(black_box(text), now));
            ns.push(t.elapsed().as_nanos());
        }
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    println!(
        "nlu parse per utterance over {} parses: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        ns.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

criterion_group!(benches, parse, percentiles);
criterion_main!(benches);
