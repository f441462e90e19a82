//! The core-banking port: what journeys ask of the bank's host (find a customer by ID
//! number, verify the reserved phone and the PIN, list cards, read a balance, freeze a
//! card), as the [`CoreBanking`] trait. Two implementations: the sandbox bank in the
//! database ([`sandbox`], the embedded default) and an HTTP adapter for a real host
//! ([`http`], endpoints under a configured base URL). Calls fail with a [`BankError`],
//! whose [`code`](BankError::code) a flow's `on_error` path sees in its `error` slot.

pub mod http;
pub mod sandbox;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// Why a call to the bank failed. The messages name the call, never an identifier.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The host could not be reached, or did not answer within `banking.timeout_ms`.
    #[error("core banking unavailable: {0}")]
    Unavailable(String),
    /// The host refused the call: it answered with a status other than success or
    /// not-found (a 500, a 401 for a wrong token).
    #[error("core banking refused: {0}")]
    Rejected(String),
    /// The host answered with something unreadable: not the JSON agreed, or too large.
    #[error("core banking answer unreadable: {0}")]
    BadResponse(String),
    /// Concierge itself failed: the sandbox's database, an URL that cannot be built.
    #[error("core banking internal error: {0}")]
    Internal(String),
}

impl BankError {
    /// The stable code a flow sees (its `error` slot and `on_error` path) and logs show.
    pub fn code(&self) -> &'static str {
        match self {
            BankError::Unavailable(_) => "bank_unavailable",
            BankError::Rejected(_) => "bank_rejected",
            BankError::BadResponse(_) => "bank_bad_response",
            BankError::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for BankError {
    /// A database failure (the sandbox bank's tables).
    fn from(e: sqlx::Error) -> BankError {
        BankError::Internal(format!("database: {e}"))
    }
}

/// What a [`CoreBanking`] call returns.
pub type BankResult<T> = Result<T, BankError>;

/// What journeys need from the bank's host. Identifiers cross this boundary only as the
/// customer said or the device read them; what comes back is masked (except the opaque
/// card handle and the balance, which is for the screen only).
pub trait CoreBanking: Send + Sync {
    /// The customer an ID number belongs to.
    fn customer_by_id_number<'a>(
        &'a self,
        id_number: &'a str,
    ) -> BoxFuture<'a, BankResult<Option<Customer>>>;
    /// Whether `phone` is the customer's reserved phone.
    fn phone_matches<'a>(
        &'a self,
        customer_id: &'a str,
        phone: &'a str,
    ) -> BoxFuture<'a, BankResult<bool>>;
    /// The customer's cards.
    fn cards<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, BankResult<Vec<Card>>>;
    /// Whether a PIN block from the PIN pad is the card's PIN.
    fn pin_matches<'a>(
        &'a self,
        card: &'a str,
        pin_block: &'a str,
    ) -> BoxFuture<'a, BankResult<bool>>;
    /// The card's balance in cents; `None` for an unknown card.
    fn balance_cents<'a>(&'a self, card: &'a str) -> BoxFuture<'a, BankResult<Option<i64>>>;
    /// Freezes a card (idempotent); false for an unknown card.
    fn freeze<'a>(&'a self, card: &'a str, reason: &'a str) -> BoxFuture<'a, BankResult<bool>>;
}

/// A customer as journeys see them: identifiers only in masked form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub id_number_masked: String,
    pub phone_masked: String,
}

/// A card of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// Opaque handle (a hash of the number), for later calls.
    pub handle: String,
    pub last4: String,
    pub masked: String,
    /// `debit` or `credit`.
    pub kind: String,
    /// `active`, `frozen` or `inactive`.
    pub status: String,
}

/// Parses a yuan amount ("52380.75", "5000") into cents; at most two decimals, not negative.
pub fn yuan_to_cents(amount: &str) -> Option<i64> {
    let (int, frac) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: i64 = int.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    int.checked_mul(100)?.checked_add(frac)
}

/// Cents as a yuan decimal string with two decimals ("52380.75").
pub fn cents_to_yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn yuan_amounts_parse_exactly() {
        assert_eq!(yuan_to_cents("52380.75"), Some(5_238_075));
        assert_eq!(yuan_to_cents("5000"), Some(500_000));
        assert_eq!(yuan_to_cents("0.5"), Some(50));
        for bad in ["", "-1", "1.234", "abc", "1.x", ".5"] {
            assert_eq!(yuan_to_cents(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn cents_round_trip(c in 0i64..10_000_000_000) {
            prop_assert_eq!(yuan_to_cents(&cents_to_yuan(c)), Some(c));
        }
    }
}
