//! The sandbox bank: fake customers, cards and balances in the database (both engines),
//! seeded from `deploy/sandbox/customers.yaml` by `concierge sandbox seed`. ID, phone and
//! card numbers are stored as keyed lookup hashes (HMAC-SHA256 with the database's lookup
//! secret, [`crate::domain::vault`]; a card's hash is its handle) plus masked forms, never
//! in clear; PIN blocks as argon2 hashes.

use std::path::Path;
use tracing::Instrument;

use anyhow::Context;
use serde::Deserialize;
use sqlx::Row;

use futures_util::future::BoxFuture;

use super::{yuan_to_cents, BankResult, Card, CoreBanking, Customer};
use crate::access::masking::mask_pii;
use crate::access::tokens::{hash_password, verify_password};
use crate::domain::ids::{gb11643_ok, luhn_ok};
use crate::domain::vault;
use crate::store::{now_ms, Db};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    customers: Vec<SeedCustomer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedCustomer {
    id: String,
    name: String,
    id_number: String,
    phone: String,
    cards: Vec<SeedCard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedCard {
    number: String,
    kind: String,
    /// The PIN block the (simulated) PIN pad sends when this card's PIN is typed.
    pin_block: String,
    balance: String,
    daily_transfer_limit: String,
    #[serde(default = "active")]
    status: String,
}

fn active() -> String {
    "active".into()
}

/// The sandbox bank over a database.
#[derive(Debug, Clone)]
pub struct SandboxBank {
    db: Db,
}

impl SandboxBank {
    pub fn new(db: Db) -> SandboxBank {
        SandboxBank { db }
    }

    /// The lookup hash of an ID or phone number.
    fn lookup(&self, value: &str) -> String {
        vault::of_pool(&self.db.pool).lookup_hash(value)
    }

    /// Loads a seed file (replacing customers with the same id); returns how many customers
    /// and cards were written. Every identifier is checked first; nothing is written if any
    /// is wrong.
    pub async fn seed(&self, path: &Path) -> anyhow::Result<(usize, usize)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file: SeedFile = serde_norway::from_str(&text)
            .with_context(|| format!("{}: not a sandbox seed file", path.display()))?;
        for c in &file.customers {
            anyhow::ensure!(
                gb11643_ok(&c.id_number),
                "{}: customer {}: ID number fails the GB 11643 check",
                path.display(),
                c.id
            );
            for card in &c.cards {
                anyhow::ensure!(
                    luhn_ok(&card.number),
                    "{}: customer {}: card ending {} fails the Luhn check",
                    path.display(),
                    c.id,
                    card.number.chars().rev().take(4).collect::<String>()
                );
                anyhow::ensure!(
                    yuan_to_cents(&card.balance).is_some()
                        && yuan_to_cents(&card.daily_transfer_limit).is_some(),
                    "{}: customer {}: a card has an unreadable amount",
                    path.display(),
                    c.id
                );
            }
        }
        let mut tx = self.db.begin_write().await?;
        let mut cards = 0;
        for c in &file.customers {
            sqlx::query("DELETE FROM bank_cards WHERE customer_id = $1")
                .bind(&c.id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM bank_customers WHERE id = $1")
                .bind(&c.id)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "INSERT INTO bank_customers (id, name, id_number_hash, id_number_masked, \
                 phone_hash, phone_masked, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&c.id)
            .bind(&c.name)
            .bind(self.lookup(&c.id_number.to_uppercase()))
            .bind(mask_pii(&c.id_number.to_uppercase()))
            .bind(self.lookup(&c.phone))
            .bind(mask_pii(&c.phone))
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
            for card in &c.cards {
                sqlx::query(
                    "INSERT INTO bank_cards (card_hash, customer_id, last4, masked, kind, status, \
                     pin_hash, balance_cents, daily_transfer_limit_cents) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(self.lookup(&card.number))
                .bind(&c.id)
                .bind(&card.number[card.number.len() - 4..])
                .bind(mask_pii(&card.number))
                .bind(&card.kind)
                .bind(&card.status)
                .bind(hash_password(&card.pin_block)?)
                .bind(yuan_to_cents(&card.balance).unwrap_or(0))
                .bind(yuan_to_cents(&card.daily_transfer_limit).unwrap_or(0))
                .execute(&mut **tx)
                .await?;
                cards += 1;
            }
        }
        tx.commit().await?;
        Ok((file.customers.len(), cards))
    }

    /// The customer an ID card belongs to.
    pub async fn customer_by_id_number(&self, id_number: &str) -> BankResult<Option<Customer>> {
        let row = sqlx::query(
            "SELECT id, name, id_number_masked, phone_masked FROM bank_customers \
             WHERE id_number_hash = $1",
        )
        .bind(self.lookup(&id_number.to_uppercase()))
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.map(|r| Customer {
            id: r.get("id"),
            name: r.get("name"),
            id_number_masked: r.get("id_number_masked"),
            phone_masked: r.get("phone_masked"),
        }))
    }

    /// Whether `phone` is the customer's reserved phone.
    pub async fn phone_matches(&self, customer_id: &str, phone: &str) -> BankResult<bool> {
        let row = sqlx::query("SELECT phone_hash FROM bank_customers WHERE id = $1")
            .bind(customer_id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.is_some_and(|r| r.get::<String, _>("phone_hash") == self.lookup(phone)))
    }

    /// The customer's cards, in a stable order.
    pub async fn cards(&self, customer_id: &str) -> BankResult<Vec<Card>> {
        let rows = sqlx::query(
            "SELECT card_hash, last4, masked, kind, status FROM bank_cards \
             WHERE customer_id = $1 ORDER BY last4, card_hash",
        )
        .bind(customer_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Card {
                handle: r.get("card_hash"),
                last4: r.get("last4"),
                masked: r.get("masked"),
                kind: r.get("kind"),
                status: r.get("status"),
            })
            .collect())
    }

    /// Whether `pin_block` (from the PIN pad) is the card's PIN.
    pub async fn pin_matches(&self, card: &str, pin_block: &str) -> BankResult<bool> {
        let row = sqlx::query("SELECT pin_hash FROM bank_cards WHERE card_hash = $1")
            .bind(card)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.is_some_and(|r| verify_password(pin_block, &r.get::<String, _>("pin_hash"))))
    }

    /// The card's balance in cents (for the screen only: never spoken, never logged).
    pub async fn balance_cents(&self, card: &str) -> BankResult<Option<i64>> {
        let row = sqlx::query("SELECT balance_cents FROM bank_cards WHERE card_hash = $1")
            .bind(card)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.map(|r| r.get::<i64, _>("balance_cents")))
    }

    /// Freezes a card (loss report). Freezing a frozen card is a no-op that still succeeds,
    /// so a retried request cannot fail the customer. Returns false for an unknown card.
    pub async fn freeze(&self, card: &str, reason: &str) -> BankResult<bool> {
        let done = sqlx::query(
            "UPDATE bank_cards SET status = 'frozen', frozen_reason = $2, frozen_at = $3 \
             WHERE card_hash = $1 AND status <> 'frozen'",
        )
        .bind(card)
        .bind(reason)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        if done > 0 {
            return Ok(true);
        }
        let exists = sqlx::query("SELECT 1 AS one FROM bank_cards WHERE card_hash = $1")
            .bind(card)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(exists.is_some())
    }
}

/// The `bank` span of a sandbox call (as the HTTP adapter's, without a status).
fn bank_span(what: &'static str) -> tracing::Span {
    tracing::info_span!("bank", what, backend = "sandbox")
}

impl CoreBanking for SandboxBank {
    fn customer_by_id_number<'a>(
        &'a self,
        id_number: &'a str,
    ) -> BoxFuture<'a, BankResult<Option<Customer>>> {
        Box::pin(
            SandboxBank::customer_by_id_number(self, id_number)
                .instrument(bank_span("customer lookup")),
        )
    }
    fn phone_matches<'a>(
        &'a self,
        customer_id: &'a str,
        phone: &'a str,
    ) -> BoxFuture<'a, BankResult<bool>> {
        Box::pin(
            SandboxBank::phone_matches(self, customer_id, phone)
                .instrument(bank_span("phone check")),
        )
    }
    fn cards<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, BankResult<Vec<Card>>> {
        Box::pin(SandboxBank::cards(self, customer_id).instrument(bank_span("cards")))
    }
    fn pin_matches<'a>(
        &'a self,
        card: &'a str,
        pin_block: &'a str,
    ) -> BoxFuture<'a, BankResult<bool>> {
        Box::pin(SandboxBank::pin_matches(self, card, pin_block).instrument(bank_span("pin check")))
    }
    fn balance_cents<'a>(&'a self, card: &'a str) -> BoxFuture<'a, BankResult<Option<i64>>> {
        Box::pin(SandboxBank::balance_cents(self, card).instrument(bank_span("balance")))
    }
    fn freeze<'a>(&'a self, card: &'a str, reason: &'a str) -> BoxFuture<'a, BankResult<bool>> {
        Box::pin(SandboxBank::freeze(self, card, reason).instrument(bank_span("freeze")))
    }
}
