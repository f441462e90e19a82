//! Dispatches the engine's [`Effect`]s for one session: a device call to the kiosk
//! ([`crate::devices`]), a server action to the registry ([`crate::actions`]), a handoff to
//! [`crate::handoff`]. Each gives the result the flow continues with (every failure a stable
//! code it can branch on, `on_error`) and a masked line for the transcript.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::Instrument;

use crate::actions::{failed, Call};
use crate::devices::audit::{self, Caller};
use crate::dialog::{Effect, EffectResult};
use crate::handoff::NewHandoff;
use crate::state::AppState;

/// Who the effects are for.
pub struct Context<'a> {
    pub app: &'a AppState,
    pub session_id: &'a str,
    pub kiosk_id: &'a str,
    pub branch_id: &'a str,
}

/// Counts a knowledge answer by outcome (the don't-know rate's numerator is `no_answer`).
fn count_answer(app: &AppState, result: &EffectResult) {
    let outcome = match result {
        EffectResult::Done(out) => match out.get("kind").map(String::as_str) {
            Some("clarify") => "clarify",
            _ => "answer",
        },
        EffectResult::Failed { code, .. } if code == "no_answer" => "no_answer",
        EffectResult::Failed { .. } => return,
    };
    app.metrics
        .knowledge_answers_total
        .with_label_values(&[outcome])
        .inc();
}

/// Carries out one effect. Returns the result and a line for the transcript (masked).
pub async fn run(ctx: &Context<'_>, effect: &Effect) -> (EffectResult, String) {
    match effect {
        Effect::Device {
            device,
            action,
            args,
            timeout_ms,
        } => {
            let timeout = Duration::from_millis((*timeout_ms).clamp(1_000, 120_000));
            let caller = Caller {
                kiosk_id: ctx.kiosk_id,
                session_id: ctx.session_id,
            };
            let app = ctx.app;
            match app
                .broker
                .call(&app.db, &caller, device, action, args.clone(), timeout)
                .await
            {
                Ok(value) => (
                    EffectResult::Done(audit::fields(&value)),
                    format!("设备 {device}.{action}：成功"),
                ),
                Err(e) => {
                    let code = audit::failure_code(&e);
                    (
                        failed(&code, &e.to_string()),
                        format!("设备 {device}.{action}：失败（{code}）"),
                    )
                }
            }
        }
        Effect::Action { name, slots } => {
            let call = Call {
                services: &ctx.app.services,
                session_id: ctx.session_id,
                kiosk_id: ctx.kiosk_id,
                branch_id: ctx.branch_id,
                slots,
            };
            let span =
                tracing::info_span!("action", action = %name, outcome = tracing::field::Empty);
            let result = match ctx
                .app
                .actions
                .run(name, &call)
                .instrument(span.clone())
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(action = %name, error = %format!("{e:#}"), "action failed");
                    failed("internal", "the action failed inside")
                }
            };
            span.record(
                "outcome",
                match &result {
                    EffectResult::Done(_) => "done",
                    EffectResult::Failed { code, .. } => code.as_str(),
                },
            );
            if name.starts_with("knowledge.") {
                count_answer(ctx.app, &result);
            }
            let note = match &result {
                // A knowledge answer names its citation, so the transcript (and a case
                // handed to staff) shows which article and version the customer heard.
                EffectResult::Done(out) => match (out.get("article"), out.get("article_version")) {
                    (Some(id), Some(v)) => format!("操作 {name}：成功（引用 {id} 第{v}版）"),
                    _ => format!("操作 {name}：成功"),
                },
                EffectResult::Failed { code, .. } => format!("操作 {name}：未成功（{code}）"),
            };
            (result, note)
        }
        Effect::Handoff {
            to,
            reason,
            intent,
            slots,
            risk,
        } => {
            let note = format!(
                "转交{}（原因：{reason}{}）",
                crate::handoff::said_name(*to),
                if risk.is_empty() {
                    String::new()
                } else {
                    format!("；风险：{}", risk.join(","))
                }
            );
            let opened = async {
                let transcript = super::store::transcript(&ctx.app.db, ctx.session_id).await?;
                let h = NewHandoff {
                    session_id: ctx.session_id,
                    kiosk_id: ctx.kiosk_id,
                    branch_id: ctx.branch_id,
                    to: *to,
                    reason,
                    intent: intent.as_deref(),
                    slots,
                    risk,
                    transcript: serde_json::to_value(transcript)?,
                };
                crate::handoff::open(&ctx.app.db, &ctx.app.tickets, &h).await
            };
            match opened.await {
                Ok(number) => {
                    let mut out = BTreeMap::new();
                    out.insert("handoff_id".to_string(), number);
                    (EffectResult::Done(out), note)
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "handoff could not be recorded");
                    (failed("internal", "handoff not recorded"), note)
                }
            }
        }
    }
}
