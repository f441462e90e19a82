//! `banking.*`: the core-banking steps of self-service journeys (identify the customer,
//! check the reserved phone, choose a card, check the PIN, balance, freeze), through the
//! [`CoreBanking`](crate::ports::banking::CoreBanking) port.

use super::{done, failed, Call};
use crate::dialog::EffectResult;
use crate::ports::banking::{cents_to_yuan, BankError};

action!(
    /// The customer with the ID number that was read.
    Identify,
    "banking.identify",
    ["customer_id", "customer_name", "phone_masked"],
    identify
);
action!(
    /// Whether the phone the customer said is the one the bank holds.
    VerifyPhone,
    "banking.verify_phone",
    [],
    verify_phone
);
action!(
    /// The customer's card with the last four digits said (or read).
    ChooseCard,
    "banking.choose_card",
    ["card", "card_masked", "card_status"],
    choose_card
);
action!(
    /// Whether the PIN block entered on the PIN pad matches the card.
    VerifyPin,
    "banking.verify_pin",
    [],
    verify_pin
);
action!(
    /// The card's balance (shown on screen, never spoken).
    Balance,
    "banking.balance",
    ["balance"],
    balance
);
action!(
    /// Freezes the card (loss report).
    FreezeCard,
    "banking.freeze_card",
    ["frozen_at"],
    freeze_card
);

/// A bank step's outcome for the flow: a [`BankError`] becomes a failure with the error's
/// code (`bank_unavailable`, `bank_rejected`, `bank_bad_response`, `internal`), which the
/// step's `on_error` path sees in the `error` slot. Logged here; the error names the call,
/// never an identifier.
fn settle(outcome: Result<EffectResult, BankError>) -> anyhow::Result<EffectResult> {
    Ok(outcome.unwrap_or_else(|e| {
        match e {
            BankError::Internal(_) => {
                tracing::error!(code = e.code(), error = %e, "bank call failed")
            }
            _ => tracing::warn!(code = e.code(), error = %e, "bank call failed"),
        }
        failed(e.code(), &e.to_string())
    }))
}

async fn identify(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let bank = call.services.bank.as_ref();
    let customer = bank.customer_by_id_number(call.get("id_number")).await;
    settle(customer.map(|found| match found {
        Some(c) => done(&[
            ("customer_id", c.id),
            ("customer_name", c.name),
            ("phone_masked", c.phone_masked),
        ]),
        None => failed("customer_not_found", "no customer with this ID number"),
    }))
}

async fn verify_phone(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let bank = call.services.bank.as_ref();
    let matches = bank.phone_matches(call.get("customer_id"), call.get("phone"));
    settle(matches.await.map(|yes| {
        if yes {
            done(&[])
        } else {
            failed("phone_mismatch", "not the reserved phone")
        }
    }))
}

async fn choose_card(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let cards = call.services.bank.cards(call.get("customer_id")).await;
    let last4 = match call.get("card_last4") {
        "" => last_four(call.get("card_number")),
        l => l.to_string(),
    };
    settle(
        cards.map(|cards| match cards.into_iter().find(|c| c.last4 == last4) {
            Some(c) => done(&[
                ("card", c.handle),
                ("card_masked", c.masked),
                ("card_status", c.status),
            ]),
            None => failed("card_not_found", "no such card for this customer"),
        }),
    )
}

/// The last four characters of a card number.
fn last_four(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

async fn verify_pin(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let bank = call.services.bank.as_ref();
    let matches = bank.pin_matches(call.get("card"), call.get("pin_block"));
    settle(matches.await.map(|yes| {
        if yes {
            done(&[])
        } else {
            failed("pin_wrong", "PIN did not match")
        }
    }))
}

async fn balance(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let balance = call.services.bank.balance_cents(call.get("card")).await;
    settle(balance.map(|cents| match cents {
        Some(c) => done(&[("balance", cents_to_yuan(c))]),
        None => failed("card_not_found", "no such card"),
    }))
}

async fn freeze_card(call: &Call<'_>) -> anyhow::Result<EffectResult> {
    let bank = call.services.bank.as_ref();
    let frozen = bank.freeze(call.get("card"), "客户在自助设备挂失").await;
    settle(frozen.map(|known| {
        if known {
            let at = crate::domain::clock::now_local()
                .format("%Y-%m-%d %H:%M")
                .to_string();
            done(&[("frozen_at", at)])
        } else {
            failed("card_not_found", "no such card")
        }
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_last_four_of_a_card_number() {
        assert_eq!(super::last_four("6222021001123456780"), "6780");
        assert_eq!(super::last_four("12"), "12");
        assert_eq!(super::last_four(""), "");
    }
}
