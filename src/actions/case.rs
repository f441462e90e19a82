//! `case.prepare`: a short case id a teller can find the prepared case by.

use super::{done, Call};
use crate::dialog::EffectResult;

action!(
    /// A new case id (eight characters).
    Prepare,
    "case.prepare",
    ["case_id"],
    prepare
);

async fn prepare(_call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let id = uuid::Uuid::new_v4().to_string();
    Ok(done(&[("case_id", id[..8].to_uppercase())]))
}
