//! Alerts: a budget passing its target or hitting its ceiling, a job stopped by a kill-switch,
//! an upstream circuit opening. Each is raised once per crossing by the part that detects it,
//! logged as a structured event (`alert` target), and, when `alerts.webhook_url` is set, POSTed
//! there as JSON without holding up the request that caused it.

use std::time::Duration;

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    BudgetTarget,
    BudgetCeiling,
    BudgetLimit,
    LoopBreaker,
    CircuitOpen,
}

/// One alert, as logged and as posted.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub kind: Kind,
    /// What it is about: a budget, a job, a tier.
    pub subject: String,
    /// Who to tell, when known.
    pub owner: String,
    pub message: String,
    pub at_unix_ms: u64,
}

pub struct Alerts {
    webhook: Option<String>,
    http: reqwest::Client,
}

/// A webhook that does not answer within this long is given up on (the alert stays logged).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

impl Alerts {
    pub fn new(webhook_url: &str) -> Self {
        Self {
            webhook: Some(webhook_url.to_string()).filter(|u| !u.is_empty()),
            http: reqwest::Client::new(),
        }
    }

    pub fn raise(&self, kind: Kind, subject: String, owner: &str, message: String) {
        let alert = Alert {
            kind,
            subject,
            owner: owner.to_string(),
            message,
            at_unix_ms: crate::store::now_millis(),
        };
        tracing::warn!(target: "alert", kind = ?alert.kind, subject = %alert.subject, owner = %alert.owner, "{}", alert.message);
        let Some(url) = self.webhook.clone() else {
            return;
        };
        let request = self.http.post(url).timeout(WEBHOOK_TIMEOUT).json(&alert);
        // Raised from inside the runtime by the request that crossed the line; never awaited.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = request.send().await.and_then(|r| r.error_for_status()) {
                    tracing::warn!(%err, "alert webhook failed; the alert is in this log only");
                }
            });
        }
    }
}
