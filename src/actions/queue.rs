//! `queue.take`: a queue number for the service the customer asked for (or the journey's
//! own), with the people ahead, the estimated wait and the counter.

use super::{done, failed, Call};
use crate::dialog::EffectResult;

action!(
    /// Issues a queue number on the line of the service.
    TakeNumber,
    "queue.take",
    ["ticket", "waiting", "wait_minutes", "counter_type"],
    take_number
);

async fn take_number(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let service = match call.get("service") {
        "" => call.get("flow"),
        s => s,
    };
    let branch = &call.services.branch;
    Ok(
        match branch
            .take_number(call.branch_id, service, call.session_id)
            .await?
        {
            Some(n) => done(&[
                ("ticket", n.ticket),
                ("waiting", n.waiting.to_string()),
                ("wait_minutes", n.wait_minutes.to_string()),
                ("counter_type", n.counter),
            ]),
            None => failed("busy", "could not allocate a queue number"),
        },
    )
}
