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
//! Any other status, a timeout or a malformed body is an error (the flow's `on_error`);
//! bodies larger than 1 MiB are refused. Identifiers are never logged.

use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::{Card, CoreBanking, Customer};

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

    fn url(&self, path: &str) -> anyhow::Result<url::Url> {
        self.base.join(path).context("bad banking path")
    }

    /// Sends a request; `Ok(None)` for 404, the parsed body for 2xx, else an error.
    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<Option<T>> {
        let res = req
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .with_context(|| format!("core banking {what}: no answer"))?;
        let status = res.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            anyhow::bail!("core banking {what}: status {status}");
        }
        if res.content_length().is_some_and(|n| n as usize > MAX_BODY) {
            anyhow::bail!("core banking {what}: answer too large");
        }
        let bytes = res
            .bytes()
            .await
            .with_context(|| format!("core banking {what}: body"))?;
        anyhow::ensure!(
            bytes.len() <= MAX_BODY,
            "core banking {what}: answer too large"
        );
        if bytes.is_empty() {
            // 200 without a body (freeze): only `()`-like answers accept it.
            return serde_json::from_slice(b"null")
                .map(Some)
                .with_context(|| format!("core banking {what}: empty answer"));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("core banking {what}: malformed answer"))
    }

    fn seg(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }
}

impl CoreBanking for HttpBank {
    fn customer_by_id_number<'a>(
        &'a self,
        id_number: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<Customer>>> {
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
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
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

    fn cards<'a>(&'a self, customer_id: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<Card>>> {
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
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
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

    fn balance_cents<'a>(&'a self, card: &'a str) -> BoxFuture<'a, anyhow::Result<Option<i64>>> {
        Box::pin(async move {
            let url = self.url(&format!("cards/{}/balance", Self::seg(card)))?;
            Ok(self
                .call::<Balance>(self.client.get(url), "balance")
                .await?
                .map(|b| b.balance_cents))
        })
    }

    fn freeze<'a>(&'a self, card: &'a str, reason: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
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
