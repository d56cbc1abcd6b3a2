//! The webhook executor: POST the action as JSON to a configured URL so
//! Rundeck, StackStorm, Argo or a chat bot can carry it out.
//!
//! The receiver can trust and de-duplicate it:
//! - `X-Remedy-Signature: sha256=<hex>`: HMAC-SHA256 of the exact body
//!   under the shared key (from the environment variable the policy names);
//! - `Idempotency-Key: <action id>`: the same on every retry and every
//!   re-run, so a receiver that saw it already can answer 2xx and do nothing;
//! - `X-Remedy-Attempt: <n>`.
//!
//! Connection errors, timeouts, 408, 429 and 5xx are retried with
//! exponential backoff up to `max_attempts`; any other 4xx fails at once
//! (retrying a request the receiver rejects would not change its answer).

use super::config::{ExecutionConfig, Settings};
use super::{BoxFuture, Executor, Outcome, Registration, Report};
use crate::policy::Policy;
use crate::Error;
use hmac::{Hmac, Mac};
use models::{Action, ActionName};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

const NAME: &str = "webhook";

/// The webhook executor in the registry: any action (the receiver decides
/// how to carry it out), the default for none (it needs a receiver).
pub const EXECUTOR: Registration = Registration {
    name: NAME,
    actions: &ActionName::ALL,
    default_for: &[],
    check,
    build: |config| {
        Ok(Some(Arc::new(WebhookExecutor::from_config(
            &config.settings()?,
        )?)))
    },
};

/// `[execution.webhook]`: where webhooks go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// The receiver (`http://` or `https://`).
    pub url: String,
    /// The environment variable holding the HMAC-SHA256 key; the key itself
    /// never sits in the policy file.
    pub secret_env: String,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles after each.
    pub initial_backoff_ms: u64,
    /// Seconds one attempt may take.
    pub timeout_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            secret_env: "REMEDY_WEBHOOK_SECRET".into(),
            max_attempts: 5,
            initial_backoff_ms: 500,
            timeout_secs: 10,
        }
    }
}

impl Settings for WebhookConfig {
    const SECTION: &'static str = NAME;
}

/// A policy that sends an action to the webhook must say where; the key is
/// read only when the executor is built (the environment of the process
/// that executes, not of the one that checks the policy).
fn check(config: &ExecutionConfig, chosen_for: &[ActionName]) -> crate::Result<()> {
    let c: WebhookConfig = config.settings()?;
    if let Some(action) = chosen_for.first() {
        if c.url.is_empty() {
            return Err(Error::Policy(format!(
                "execution.executors.{action} = \"webhook\" needs execution.webhook.url"
            )));
        }
    }
    if c.max_attempts == 0 {
        return Err(Error::Policy(
            "execution.webhook.max_attempts must be at least 1".into(),
        ));
    }
    Ok(())
}

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Remedy-Signature";
/// The header carrying the idempotency key (the action id).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Posts actions to a receiver.
pub struct WebhookExecutor {
    client: reqwest::Client,
    url: String,
    key: Vec<u8>,
    max_attempts: u32,
    initial_backoff: Duration,
}

impl WebhookExecutor {
    /// From the policy's `[execution.webhook]`; the key is read from the
    /// environment variable it names, which must be set and not empty.
    pub fn from_config(config: &WebhookConfig) -> crate::Result<WebhookExecutor> {
        let key = std::env::var(&config.secret_env).unwrap_or_default();
        if key.is_empty() {
            return Err(Error::exec(
                NAME,
                format!(
                    "the signing key variable {} is not set; webhooks are never sent unsigned",
                    config.secret_env
                ),
            ));
        }
        WebhookExecutor::new(config, key.into_bytes())
    }

    /// With an explicit signing key.
    pub fn new(config: &WebhookConfig, key: Vec<u8>) -> crate::Result<WebhookExecutor> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(Error::exec(
                NAME,
                format!("url {:?} must start with http:// or https://", config.url),
            ));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::exec(NAME, format!("building the HTTP client: {e}")))?;
        Ok(WebhookExecutor {
            client,
            url: config.url.clone(),
            key,
            max_attempts: config.max_attempts.max(1),
            initial_backoff: Duration::from_millis(config.initial_backoff_ms),
        })
    }

    /// The signature header value for `body`.
    pub fn sign(key: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    async fn post(&self, action: &Action) -> crate::Result<Report> {
        let body = serde_json::to_vec(&serde_json::json!({
            "source": "remedy",
            "action": action,
        }))
        .map_err(|e| Error::exec(NAME, format!("encoding action {}: {e}", action.id)))?;
        let signature = Self::sign(&self.key, &body);
        let mut backoff = self.initial_backoff;
        let mut last_error = String::new();
        for attempt in 1..=self.max_attempts {
            let sent = self
                .client
                .post(&self.url)
                .header("Content-Type", "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .header(IDEMPOTENCY_HEADER, &action.id)
                .header("X-Remedy-Attempt", attempt.to_string())
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    return Ok(Report {
                        objects: vec![action.id.clone()],
                        bytes: 0,
                        retries: attempt - 1,
                        detail: format!(
                            "posted to {} (HTTP {}) after {attempt} attempt(s)",
                            self.url,
                            resp.status().as_u16()
                        ),
                    });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    last_error = format!("HTTP {status}");
                    let retryable = status == 408 || status == 429 || status >= 500;
                    if !retryable {
                        return Err(Error::exec(
                            NAME,
                            format!(
                                "{} refused action {} with HTTP {status}",
                                self.url, action.id
                            ),
                        ));
                    }
                }
                Err(e) => last_error = e.to_string(),
            }
            tracing::warn!(action = %action.id, attempt, error = %last_error, "webhook attempt failed");
            if attempt < self.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        Err(Error::exec(
            NAME,
            format!(
                "{} did not accept action {} after {} attempts: {last_error}",
                self.url, action.id, self.max_attempts
            ),
        ))
    }
}

impl Executor for WebhookExecutor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn execute<'a>(
        &'a self,
        action: &'a Action,
        _policy: &'a Policy,
    ) -> BoxFuture<'a, crate::Result<Outcome>> {
        Box::pin(async move { Ok(Outcome::Done(self.post(action).await?)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            WebhookExecutor::sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_bad_url_is_named() {
        let cfg = WebhookConfig {
            url: "ftp://x".into(),
            ..Default::default()
        };
        let e = WebhookExecutor::new(&cfg, b"k".to_vec())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ftp://x"), "{e}");
    }
}
