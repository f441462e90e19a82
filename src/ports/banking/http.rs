//! The HTTP adapter of the core-banking port: JSON over HTTP(S) to the bank's host (or an
//! integration layer in front of it), under a configured base URL with a bearer token and a
//! timeout. Endpoints (all JSON):
//!
//! | call | request | answer |
//! |---|---|---|
//! | `POST {base}/customers/lookup` | `{"id_number"}` | `200 Customer` or `404` |
//! | `POST {base}/customers/{id}/verify-phone` | `{"phone"}` | `{"match": bool}` |
//! | `GET {base}/customers/{id}/cards` | — | `[Card]` |
//! | `POST {base}/cards/{handle}/verify-pin` | `{"pin_block"}` | `{"match": bool}` |
//! | `GET {base}/cards/{handle}/balance` | — | `{"balance_cents": i64}` or `404` |
//! | `POST {base}/cards/{handle}/freeze` | `{"reason"}` | `200` or `404` |
//!
//! No answer or a timeout is [`BankError::Unavailable`], any other status
//! [`BankError::Rejected`], a malformed body or one larger than 1 MiB
//! [`BankError::BadResponse`]: the flow's `on_error` path, with the error's code. Identifiers
//! are never logged, nor put in errors (URLs carry them: they are left out).

use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::{BankError, BankResult, Card, CoreBanking, Customer};

/// Largest answer body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// The adapter.
#[derive(Debug, Clone)]
pub struct HttpBank {
    client: reqwest::Client,
    base: url::Url,
    token: SecretString,
}

#[derive(Deserialize)]
struct Match {
    #[serde(rename = "match")]
    matched: bool,
}

#[derive(Deserialize)]
struct Balance {
    balance_cents: i64,
}

impl HttpBank {
    /// `base_url` must be http(s); `timeout` bounds each call.
    pub fn new(base_url: &str, token: SecretString, timeout: Duration) -> anyhow::Result<HttpBank> {
        let mut base = url::Url::parse(base_url).context("banking.base_url is not a URL")?;
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https"),
            "banking.base_url must be http:// or https://"
        );
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .context("http client")?;
        Ok(HttpBank {
            client,
            base,
            token,
        })
    }

    fn url(&self, path: &str) -> BankResult<url::Url> {
        self.base
            .join(path)
            .map_err(|e| BankError::Internal(format!("bad banking path: {e}")))
    }

    /// Sends a request; `Ok(None)` for 404, the parsed body for 2xx, else an error. Traced
    /// as `bank` (the call's name and status; the URL carries identifiers and is left out),
    /// and the host gets the trace context as `traceparent`.
    #[tracing::instrument(name = "bank", skip(self, req), fields(backend = "http", status))]
    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> BankResult<Option<T>> {
        let req = match crate::telemetry::trace::traceparent() {
            Some(parent) => req.header(crate::telemetry::trace::TRACEPARENT, parent),
            None => req,
        };
        let res = req
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| transport(what, e))?;
        let status = res.status();
        tracing::Span::current().record("status", status.as_u16());
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(BankError::Rejected(format!("{what}: status {status}")));
        }
        let too_large = || BankError::BadResponse(format!("{what}: answer too large"));
        if res.content_length().is_some_and(|n| n as usize > MAX_BODY) {
            return Err(too_large());
        }
        let bytes = res.bytes().await.map_err(|e| transport(what, e))?;
        if bytes.len() > MAX_BODY {
            return Err(too_large());
        }
        // 200 without a body (freeze): only `()`-like answers accept it.
        let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        // Where and how it is malformed, not serde's message: that can quote the body.
        serde_json::from_slice(body).map(Some).map_err(|e| {
            BankError::BadResponse(format!(
                "{what}: malformed answer ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })
    }

    fn seg(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }
}

/// A request that got no (whole) answer: the host is unavailable. The URL is left out of
/// the message (it carries identifiers).
fn transport(what: &str, e: reqwest::Error) -> BankError {
    if e.is_builder() {
        return BankError::Internal(format!("{what}: {}", e.without_url()));
    }
    let why = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.without_url().to_string()
    };
    BankError::Unavailable(format!("{what}: no answer ({why})"))
}

impl CoreBanking for HttpBank {
    fn customer_by_id_number<'a>(
        &'a self,
        id_number: &'a str,
    ) -> BoxFuture<'a, BankResult<Option<Customer>>> {
        Box::pin(async move {
            let req = self
                .client
                .post(self.url("customers/lookup")?)
                .json(&json!({ "id_number": id_number.to_uppercase() }));
            self.call(req, "customer lookup").await
        })
    }

    fn phone_matches<'a>(
        &'a self,
        customer_id: &'a str,
        phone: &'a str,
    ) -> BoxFuture<'a, BankResult<bool>> {
        Box::pin(async move {
            let url = self.url(&format!(
                "customers/{}/verify-phone",
                Self::seg(customer_id)
            ))?;
            let req = self.client.post(url).json(&json!({ "phone": phone }));
            Ok(self
                .call::<Match>(req, "phone check")
                .await?
                .is_some_and(|m| m.matched))
        })
    }

    fn cards<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, BankResult<Vec<Card>>> {
        Box::pin(async move {
            let url = self.url(&format!("customers/{}/cards", Self::seg(customer_id)))?;
            Ok(self
                .call::<Vec<Card>>(self.client.get(url), "cards")
                .await?
                .unwrap_or_default())
        })
    }

    fn pin_matches<'a>(
        &'a self,
        card: &'a str,
        pin_block: &'a str,
    ) -> BoxFuture<'a, BankResult<bool>> {
        Box::pin(async move {
            let url = self.url(&format!("cards/{}/verify-pin", Self::seg(card)))?;
            let req = self
                .client
                .post(url)
                .json(&json!({ "pin_block": pin_block }));
            Ok(self
                .call::<Match>(req, "PIN check")
                .await?
                .is_some_and(|m| m.matched))
        })
    }

    fn balance_cents<'a>(&'a self, card: &'a str) -> BoxFuture<'a, BankResult<Option<i64>>> {
        Box::pin(async move {
            let url = self.url(&format!("cards/{}/balance", Self::seg(card)))?;
            Ok(self
                .call::<Balance>(self.client.get(url), "balance")
                .await?
                .map(|b| b.balance_cents))
        })
    }

    fn freeze<'a>(&'a self, card: &'a str, reason: &'a str) -> BoxFuture<'a, BankResult<bool>> {
        Box::pin(async move {
            let url = self.url(&format!("cards/{}/freeze", Self::seg(card)))?;
            let req = self.client.post(url).json(&json!({ "reason": reason }));
            Ok(self
                .call::<serde_json::Value>(req, "freeze")
                .await?
                .is_some())
        })
    }
}
