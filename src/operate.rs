//! The client side of operator commands against a running sidecar: `cachet stats` and
//! `cachet compact`, and the admin connection and token that `cachet report` and `cachet tune`
//! use as well.

use std::fmt::Write as _;

use tonic::transport::Channel;

use crate::proto::admin_client::AdminClient;
use crate::proto::{CompactRequest, GetStatsRequest};

#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    #[error("cannot reach the sidecar at {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    #[error("the sidecar refused: {0}")]
    Call(#[from] tonic::Status),
}

/// An admin client for the sidecar at `endpoint`.
pub async fn admin(endpoint: &str) -> Result<AdminClient<Channel>, OperateError> {
    let connect_error = |message: String| OperateError::Connect {
        endpoint: endpoint.to_string(),
        message,
    };
    let channel = Channel::from_shared(endpoint.to_string())
        .map_err(|e| connect_error(e.to_string()))?
        .connect()
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    Ok(AdminClient::new(channel))
}

/// `message` with `authorization: Bearer <token>` metadata, as admin calls need.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// What the cache decided since start, and the thresholds in force, as text.
pub async fn stats(endpoint: &str, token: &str) -> Result<String, OperateError> {
    let s = admin(endpoint)
        .await?
        .get_stats(with_token(GetStatsRequest {}, token))
        .await?
        .into_inner();
    let mut out = format!(
        "entries: {}\ntokens saved since start: {}\n",
        s.entries, s.tokens_saved
    );
    let mut section = |title: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "{title}");
        for (key, value) in rows {
            let _ = writeln!(out, "  {key:<20} {value}");
        }
    };
    let sorted = |map: std::collections::HashMap<String, u64>| {
        let mut rows: Vec<(String, String)> =
            map.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        rows.sort();
        rows
    };
    section("requests by cache status", sorted(s.requests_by_status));
    section("hits refused, by guard", sorted(s.refusals));
    let mut thresholds: Vec<(String, String)> = s
        .thresholds
        .into_iter()
        .map(|(k, v)| (k, format!("{v:.2}")))
        .collect();
    thresholds.sort();
    section("thresholds in force", thresholds);
    Ok(out)
}

/// Rebuilds the index graphs without their tombstones; returns a line to print.
pub async fn compact(endpoint: &str, token: &str) -> Result<String, OperateError> {
    let r = admin(endpoint)
        .await?
        .compact(with_token(CompactRequest {}, token))
        .await?
        .into_inner();
    Ok(format!(
        "compacted: {} tombstones dropped\n",
        r.tombstones_dropped
    ))
}
