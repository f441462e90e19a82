//! `appointment.book`, `appointment.find` and `appointment.cancel`: the branch's
//! appointments as journeys use them (the rules are [`crate::branch::Branch`]'s).

use super::{done, failed, Call};
use crate::branch::BookRequest;
use crate::dialog::EffectResult;
use crate::domain::pii::Phone;

action!(
    /// Books the service at a date and time for a phone.
    Book,
    "appointment.book",
    ["code", "branch_name"],
    book
);
action!(
    /// The upcoming appointments of a phone.
    Find,
    "appointment.find",
    ["code", "appointment_list", "appointment_count"],
    find
);
action!(
    /// Cancels an appointment by its code and phone.
    Cancel,
    "appointment.cancel",
    ["code"],
    cancel
);

async fn book(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let request = BookRequest {
        branch: call.branch_id,
        service: call.get("service"),
        date: call.get("date"),
        time: call.get("time"),
        phone: Phone::new(call.get("phone")),
        session_id: call.session_id,
    };
    Ok(match call.services.branch.book(&request).await? {
        Ok(code) => done(&[("code", code), ("branch_name", call.branch_id.to_string())]),
        Err(why) => failed(why.code(), why.note()),
    })
}

async fn find(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let phone = Phone::new(call.get("phone"));
    let list = call.services.branch.upcoming(&phone).await?;
    let Some(first) = list.first() else {
        return Ok(failed(
            "not_found",
            "no upcoming appointment for this phone",
        ));
    };
    let labels = &call.services.service_labels;
    let said: Vec<String> = list
        .iter()
        .map(|a| {
            let label = labels.get(&a.service).unwrap_or(&a.service);
            format!("{} {} {label}（确认码 {}）", a.day, a.slot, a.code)
        })
        .collect();
    Ok(done(&[
        ("code", first.code.clone()),
        ("appointment_list", said.join("；")),
        ("appointment_count", list.len().to_string()),
    ]))
}

async fn cancel(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let code = call.get("code");
    Ok(
        if call
            .services
            .branch
            .cancel(code, &Phone::new(call.get("phone")))
            .await?
        {
            done(&[("code", code.to_uppercase())])
        } else {
            failed("not_found", "no such booked appointment for this phone")
        },
    )
}
