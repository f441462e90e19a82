//! `appointment.book`, `appointment.find` and `appointment.cancel`: the branch's
//! appointments as journeys use them (the rules are [`crate::branch::Branch`]'s). A phone
//! alone finds appointments but never tells their confirmation codes; cancelling takes the
//! code the customer was given as well as the phone.

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
    /// The upcoming appointments of a phone (without their codes).
    Find,
    "appointment.find",
    ["appointment_list", "appointment_count"],
    find
);
action!(
    /// Cancels an appointment by its confirmation code and phone.
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
    if list.is_empty() {
        return Ok(failed(
            "not_found",
            "no upcoming appointment for this phone",
        ));
    }
    let labels = &call.services.service_labels;
    let said: Vec<String> = list
        .iter()
        .map(|a| {
            let label = labels.get(&a.service).unwrap_or(&a.service);
            format!("{} {} {label}", a.day, a.slot)
        })
        .collect();
    Ok(done(&[
        ("appointment_list", said.join("；")),
        ("appointment_count", list.len().to_string()),
    ]))
}

async fn cancel(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let Some(code) = confirmation_code(call.get("code")) else {
        return Ok(failed("not_found", "no confirmation code given"));
    };
    let phone = Phone::new(call.get("phone"));
    Ok(if call.services.branch.cancel(&code, &phone).await? {
        done(&[("code", code)])
    } else {
        failed(
            "not_found",
            "no such booked appointment for this code and phone",
        )
    })
}

/// The confirmation code in what the customer said or typed ("确认码是 k7p 3qx"): the
/// one run of six letters and digits once spaces and dashes are taken out, upper case.
fn confirmation_code(said: &str) -> Option<String> {
    let joined: String = said
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let runs: Vec<String> = joined
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| run.len() == 6)
        .map(str::to_ascii_uppercase)
        .collect();
    match runs.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::confirmation_code;

    #[test]
    fn the_code_is_found_in_what_was_said() {
        assert_eq!(confirmation_code("K7P3QX").as_deref(), Some("K7P3QX"));
        assert_eq!(
            confirmation_code("确认码是 k7p 3qx").as_deref(),
            Some("K7P3QX")
        );
        assert_eq!(confirmation_code("k7p-3qx。").as_deref(), Some("K7P3QX"));
        assert_eq!(confirmation_code(""), None);
        assert_eq!(confirmation_code("不记得了"), None);
        assert_eq!(confirmation_code("K7P3Q"), None, "five characters");
    }
}
