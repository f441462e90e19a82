//! What the bot says, rendered: step texts and prompts with their choices, the yes/no
//! choices of a confirmation, responses of `responses.yaml`, and slot values in the words
//! a customer reads (dates as 11月24日（周二）, amounts with 元 or 万, currencies by name,
//! services by their label).

use std::collections::BTreeMap;

use kiosk_protocol::{Choice, Field, Ui};

use super::{BotReply, Engine};
use crate::dialog::flow::{Step, Texts};

impl Engine {
    pub(super) fn render_step(
        &self,
        step: &Step,
        t: &Texts,
        slots: &BTreeMap<String, String>,
        variant: usize,
    ) -> BotReply {
        let text = render(t.pick(variant), slots, &self.labels);
        let mut ui = Ui {
            choices: step
                .spec
                .choices
                .iter()
                .map(|c| Choice {
                    label: render(&c.label, slots, &self.labels),
                    value: render(&c.value, slots, &self.labels),
                })
                .collect(),
            ..Ui::default()
        };
        if !step.spec.show.is_empty() {
            ui.fields = step
                .spec
                .show
                .iter()
                .map(|(label, v)| Field {
                    name: label.clone(),
                    label: label.clone(),
                    value: Some(render(v, slots, &self.labels)),
                })
                .collect();
            ui.sensitive = true;
        }
        if let Some(article) = &step.spec.article {
            let id = render(article, slots, &self.labels);
            if !id.is_empty() {
                ui.article = Some(kiosk_protocol::ArticleView {
                    id,
                    ..Default::default()
                });
            }
        }
        let has_ui = !ui.choices.is_empty() || !ui.fields.is_empty() || ui.article.is_some();
        BotReply {
            text,
            speak: None,
            ui: has_ui.then_some(ui),
            end_session: false,
            interruptible: step.spec.interruptible.unwrap_or(true),
        }
    }

    /// A confirmation: its own choices, or 确认 / 不对，要修改.
    pub(super) fn render_confirm(
        &self,
        step: &Step,
        t: &Texts,
        slots: &BTreeMap<String, String>,
        variant: usize,
    ) -> BotReply {
        let mut reply = self.render_step(step, t, slots, variant);
        if step.spec.choices.is_empty() {
            let yes_no = [("确认", "affirm"), ("不对，要修改", "deny")];
            reply.ui = Some(Ui {
                choices: yes_no
                    .iter()
                    .map(|(label, value)| Choice {
                        label: label.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
                ..Ui::default()
            });
        }
        reply
    }

    pub(super) fn reply(&self, key: &str) -> BotReply {
        let spec = &self.responses[key];
        let choices: Vec<Choice> = spec.choices.iter().map(Choice::from).collect();
        BotReply {
            text: spec.text.trim().to_string(),
            speak: spec.speak.clone(),
            ui: (!choices.is_empty()).then(|| Ui {
                choices,
                ..Ui::default()
            }),
            end_session: spec.end_session,
            interruptible: true,
        }
    }

    /// A response of `responses.yaml` by key (the required ones are always there; an
    /// unknown key says the fallback).
    pub fn response(&self, key: &str) -> BotReply {
        self.reply_or(key, "fallback")
    }

    pub(super) fn reply_or(&self, key: &str, fallback: &str) -> BotReply {
        if self.responses.contains_key(key) {
            self.reply(key)
        } else {
            self.reply(fallback)
        }
    }
}

/// Fills `{slot}` with display values: dates as 11月24日（周二）, amounts with 元, services
/// by their label. Unknown slots are left empty.
pub fn render(
    t: &str,
    slots: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                out.push_str(&display(name, slots, labels));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

fn display(
    name: &str,
    slots: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> String {
    let Some(v) = slots.get(name).map(String::as_str) else {
        return String::new();
    };
    match name {
        "date" => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|d| {
                use chrono::Datelike;
                const WD: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
                format!(
                    "{}月{}日（周{}）",
                    d.month(),
                    d.day(),
                    WD[d.weekday().num_days_from_monday() as usize]
                )
            })
            .unwrap_or_else(|_| v.to_string()),
        // An amount is in yuan unless a foreign currency was named with it; round ten
        // thousands read as 万 (200000 → 20万).
        "amount" if v.parse::<f64>().is_ok() => {
            let unit = match slots.get("currency").map(String::as_str) {
                Some(code) if code != "CNY" => currency_name(code),
                _ => "元",
            };
            format!("{}{unit}", in_wan(v))
        }
        "balance" => format!("{v}元"),
        // Identifiers are read back masked: the screen and the loudspeaker are public.
        "phone" | "id_number" | "card_number" => crate::access::masking::mask_pii(v),
        "currency" => currency_name(v).to_string(),
        "service" => labels.get(v).cloned().unwrap_or_else(|| v.to_string()),
        _ => v.to_string(),
    }
}

/// "200000" → "20万", "15000" → "1.5万", "3500" → "3500", "12345" → "12345".
fn in_wan(v: &str) -> String {
    match v.parse::<u64>() {
        Ok(n) if n >= 10_000 && n % 1_000 == 0 => {
            let (w, rest) = (n / 10_000, (n % 10_000) / 1_000);
            if rest == 0 {
                format!("{w}万")
            } else {
                format!("{w}.{rest}万")
            }
        }
        _ => v.to_string(),
    }
}

/// The Chinese name of an ISO 4217 code (the code itself for one it does not know).
fn currency_name(code: &str) -> &str {
    crate::text::currency::name(code).unwrap_or(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_read_naturally() {
        let mut slots = BTreeMap::new();
        slots.insert("date".to_string(), "2026-11-24".to_string());
        slots.insert("amount".to_string(), "5000".to_string());
        let labels = BTreeMap::new();
        assert_eq!(
            render("{date}取{amount}", &slots, &labels),
            "11月24日（周二）取5000元"
        );
        slots.insert("currency".to_string(), "USD".to_string());
        assert_eq!(
            render("换{amount}（{currency}）", &slots, &labels),
            "换5000美元（美元）"
        );
        slots.insert("currency".to_string(), "CNY".to_string());
        slots.insert("amount".to_string(), "200000".to_string());
        assert_eq!(render("{amount}", &slots, &labels), "20万元");
        slots.insert("amount".to_string(), "15000".to_string());
        assert_eq!(render("{amount}", &slots, &labels), "1.5万元");
        slots.insert("amount".to_string(), "12345".to_string());
        assert_eq!(render("{amount}", &slots, &labels), "12345元");
        slots.insert("phone".to_string(), "13812345678".to_string());
        assert_eq!(render("{phone}", &slots, &labels), "138****5678");
        slots.insert("amount".to_string(), "待定".to_string());
        assert_eq!(render("{amount}", &slots, &labels), "待定");
        assert_eq!(render("{missing}好", &slots, &labels), "好");
    }
}
