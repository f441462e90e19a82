//! `knowledge.answer` and `knowledge.topic`: answers from the published customer articles
//! in force for this branch today — the best article's spoken summary (`kind: answer`), or
//! the two closest titles to choose from (`kind: clarify`), or `no_answer`: it would rather
//! say it does not know than answer the wrong question.

use super::{done, failed, Call};
use crate::dialog::EffectResult;
use crate::knowledge::index::Hit;

action!(
    /// Answers the customer's question.
    Answer,
    "knowledge.answer",
    [
        "kind",
        "answer",
        "article",
        "article_version",
        "article_title",
        "choice_a",
        "article_a",
        "choice_b",
        "article_b",
    ],
    answer
);
action!(
    /// Answers with the article the customer picked after a clarifying question.
    Topic,
    "knowledge.topic",
    [
        "kind",
        "answer",
        "article",
        "article_version",
        "article_title",
    ],
    topic
);

async fn answer(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    use crate::knowledge::Answer;
    let kb = &call.services.knowledge;
    Ok(
        match kb.answer(call.get("question"), call.branch_id).await {
            Answer::Found { hit, spoken } => found(hit, spoken),
            Answer::Clarify(a, b) => done(&[
                ("kind", "clarify".to_string()),
                ("choice_a", a.title),
                ("article_a", a.id),
                ("choice_b", b.title),
                ("article_b", b.id),
            ]),
            Answer::Unknown => failed("no_answer", "no article answers this well enough"),
        },
    )
}

/// `topic`: an article id from the choices, or the customer's own words, which are
/// searched together with the question.
async fn topic(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    use crate::knowledge::Answer;
    let kb = &call.services.knowledge;
    let (question, topic) = (call.get("question"), call.get("topic"));
    if let Some(doc) = kb.live(topic) {
        let today = call.services.clock.now().date_naive().to_string();
        let d = &doc.draft;
        if d.audience == "customer" && d.in_force(&today) && d.serves(call.branch_id) {
            return Ok(done(&[
                ("kind", "answer".to_string()),
                ("answer", d.spoken_summary()),
                ("article", doc.id.clone()),
                ("article_version", doc.version.to_string()),
                ("article_title", d.title.clone()),
            ]));
        }
    }
    Ok(
        match kb
            .answer(&format!("{question} {topic}"), call.branch_id)
            .await
        {
            Answer::Found { hit, spoken } => found(hit, spoken),
            Answer::Clarify(hit, _) => {
                let spoken = kb
                    .live(&hit.id)
                    .map(|d| d.draft.spoken_summary())
                    .unwrap_or_default();
                found(hit, spoken)
            }
            Answer::Unknown => failed("no_answer", "no article answers this well enough"),
        },
    )
}

fn found(hit: Hit, spoken: String) -> EffectResult {
    done(&[
        ("kind", "answer".to_string()),
        ("answer", spoken),
        ("article", hit.id),
        ("article_version", hit.version.to_string()),
        ("article_title", hit.title),
    ])
}
