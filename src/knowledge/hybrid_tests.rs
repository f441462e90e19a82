//! The hybrid knowledge base end to end on SQLite, with a small deterministic embedder
//! (hashed character pairs; tests only, not a product backend): vectors stored at publish,
//! loaded at a restart, re-embedded for another model, embedded in the background when
//! many are missing, and used by answers and the golden check.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use secrecy::SecretString;

use super::model::{ArticleDraft, State};
use super::{Answer, Knowledge};
use crate::embedding::{normalize, EmbedError, Embedder, Kind};
use crate::store::Db;

/// Hashed character unigrams and pairs into 64 dimensions; counts the texts it embeds.
pub(crate) struct PairEmbedder {
    pub model: String,
    pub texts: AtomicUsize,
}

impl PairEmbedder {
    pub(crate) fn new(model: &str) -> Arc<PairEmbedder> {
        Arc::new(PairEmbedder {
            model: model.into(),
            texts: AtomicUsize::new(0),
        })
    }

    fn vector(text: &str) -> Vec<f32> {
        let chars: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).collect();
        let mut v = vec![0f32; 64];
        let mut add = |s: &[char], w: f32| {
            let h = s
                .iter()
                .fold(2166136261u32, |h, c| (h ^ *c as u32).wrapping_mul(16777619));
            v[(h % 64) as usize] += w;
        };
        chars.iter().for_each(|c| add(std::slice::from_ref(c), 0.5));
        chars.windows(2).for_each(|w| add(w, 1.0));
        normalize(&mut v);
        v
    }
}

impl Embedder for PairEmbedder {
    fn model_id(&self) -> &str {
        &self.model
    }
    fn dim(&self) -> usize {
        64
    }
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _kind: Kind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        Box::pin(async move { Ok(texts.iter().map(|t| Self::vector(t)).collect()) })
    }
}

fn draft(title: &str, question: &str, body: &str) -> ArticleDraft {
    ArticleDraft {
        title: title.into(),
        body: body.into(),
        summary: None,
        questions: vec![question.into()],
        tags: vec![],
        audience: "customer".into(),
        branches: vec![],
        effective_from: None,
        effective_to: None,
    }
}

async fn publish(kb: &Knowledge, id: &str, d: &ArticleDraft) {
    let s = kb.store.save("ed", id, None, d).await.unwrap();
    kb.store
        .transition(
            "ed",
            id,
            s.version,
            State::Draft,
            State::Published,
            "",
            None,
            None,
        )
        .await
        .unwrap();
}

async fn open(db: &Db, e: Option<Arc<PairEmbedder>>) -> Arc<Knowledge> {
    let mut ks = crate::config::Settings::for_tests("sqlite://unused", Path::new(".")).knowledge;
    ks.seed_when_empty = false;
    ks.min_dense = 0.5;
    let e = e.map(|e| e as Arc<dyn Embedder>);
    Knowledge::open(db.clone(), ks, Path::new("/nonexistent"), e)
        .await
        .unwrap()
}

#[tokio::test]
async fn vectors_follow_publishes_restarts_and_model_changes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kb.db").display());
    let db = Db::connect(&SecretString::from(url), 4).await.unwrap();
    db.migrate().await.unwrap();

    // Publish: embedded before the refresh returns, and stored.
    let a = PairEmbedder::new("pairs@1");
    let kb = open(&db, Some(a.clone())).await;
    publish(
        &kb,
        "parking",
        &draft("停车指引", "车停哪里", "网点门前有免费停车位，停车方便。"),
    )
    .await;
    publish(
        &kb,
        "ukey",
        &draft("U盾使用", "U盾损坏了", "U盾损坏请带身份证到柜台更换。"),
    )
    .await;
    kb.refresh().await.unwrap();
    let s = kb.embedding_status();
    assert_eq!(
        (s.done, s.total, s.pending, s.embedded, s.loaded),
        (6, 6, 0, 6, 0),
        "{s:?}"
    );
    assert_eq!(kb.vectors.count("pairs@1").await.unwrap(), 6);
    let found = kb
        .search(&super::index::Query1 {
            text: "停车方便吗",
            audience: super::index::Audience::Customer,
            branch: Some("B001"),
            day: super::today(),
            limit: 3,
            explain: false,
        })
        .await
        .unwrap();
    let top = &found.hits[0];
    assert_eq!(top.id, "parking");
    assert!(
        top.dense.unwrap() > 0.5 && top.bm25 > 0.0 && top.fused > 0.0,
        "{top:?}"
    );
    // "U盾坏了": few words in common, close in meaning (here: in character pairs).
    let f = kb
        .search(&super::index::Query1 {
            text: "U盾坏了",
            audience: super::index::Audience::Customer,
            branch: None,
            day: super::today(),
            limit: 3,
            explain: false,
        })
        .await
        .unwrap();
    // BM25 alone would not answer (jieba cuts 盾坏); the meaning does.
    let h = &f.hits[0];
    assert!(h.coverage < 0.4 || h.bm25 < 4.0, "{h:?}");
    assert!(h.dense.unwrap() >= 0.5, "{h:?}");
    match kb.answer("U盾坏了", "B001").await {
        Answer::Found { hit, .. } => assert_eq!(hit.id, "ukey"),
        other => panic!("{other:?}"),
    }

    // Restart on the same model: everything loaded, nothing embedded.
    let b = PairEmbedder::new("pairs@1");
    let again = open(&db, Some(b.clone())).await;
    let s = again.embedding_status();
    assert_eq!((s.done, s.loaded, s.embedded), (6, 6, 0), "{s:?}");
    assert_eq!(b.texts.load(Ordering::SeqCst), 0);

    // Another model: its own vectors, embedded (in the background when many).
    for i in 0..10 {
        publish(
            &kb,
            &format!("extra-{i}"),
            &draft(&format!("第{i}条"), "问题", "正文内容。"),
        )
        .await;
    }
    let c = PairEmbedder::new("pairs@2");
    let other = open(&db, Some(c.clone())).await;
    other.embedded().await;
    let s = other.embedding_status();
    assert_eq!(
        (s.done, s.total, s.loaded, s.embedded),
        (36, 36, 0, 36),
        "{s:?}"
    );
    assert_eq!(other.vectors.count("pairs@2").await.unwrap(), 36);
    assert_eq!(s.model.as_deref(), Some("pairs@2"));

    // A new version replaces the old vectors; a retired article loses them.
    let v2 = draft(
        "停车指引",
        "车停哪里",
        "网点不提供停车位，请使用附近公共停车场。",
    );
    let s2 = kb.store.save("ed", "parking", Some(1), &v2).await.unwrap();
    kb.store
        .transition(
            "ed",
            "parking",
            s2.version,
            State::Draft,
            State::Published,
            "",
            None,
            None,
        )
        .await
        .unwrap();
    kb.store
        .transition(
            "ed",
            "ukey",
            1,
            State::Published,
            State::Retired,
            "",
            None,
            None,
        )
        .await
        .unwrap();
    other.refresh().await.unwrap();
    assert_eq!(other.dense.version_of("parking"), Some(2));
    assert_eq!(other.dense.version_of("ukey"), None);
    assert!(matches!(
        other.answer("U盾坏了", "B001").await,
        Answer::Unknown | Answer::Found { .. }
    ));
    assert!(other.embedding_status().complete());

    // Without an embedder: BM25 as before, no dense scores.
    let plain = open(&db, None).await;
    plain.embedded().await;
    let s = plain.embedding_status();
    assert_eq!((s.model, s.total), (None, 0));
    match plain.answer("车停哪里", "B001").await {
        Answer::Found { hit, .. } => assert!(hit.id == "parking" && hit.dense.is_none()),
        other => panic!("{other:?}"),
    }
}
