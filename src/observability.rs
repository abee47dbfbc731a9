//! What the reference app tells an operator, set up where a host would: log lines (readable
//! text on a terminal, one JSON object per line anywhere else) and, when a token is configured,
//! Prometheus metrics at `GET /metrics`.
//!
//! The library only emits tracing events and spans and records through the `metrics` facade;
//! choosing a subscriber and a recorder is the host's business, so both live here.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::settings::Secret;
use shoebox::Shoebox;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people at a terminal: one readable line each, coloured.
    Text,
    /// For log drains (Heroku's log stream, Papertrail, Datadog): one JSON object per line,
    /// never a colour code.
    Json,
}

impl LogFormat {
    /// `SHOEBOX_LOG_FORMAT` (`json` or `text`) when set, else text on a terminal and JSON
    /// anywhere else.
    pub fn choose(setting: Option<&str>, terminal: bool) -> anyhow::Result<Self> {
        match setting.map(str::trim) {
            None | Some("") => Ok(if terminal { Self::Text } else { Self::Json }),
            Some("json") => Ok(Self::Json),
            Some("text") => Ok(Self::Text),
            Some(other) => anyhow::bail!("SHOEBOX_LOG_FORMAT must be json or text, not {other:?}"),
        }
    }
}

/// Log lines to stderr, filtered by `RUST_LOG` (default: info, with the SDKs' chatter off), in
/// the format [`LogFormat::choose`] picks. Colour only ever goes to a terminal.
pub fn start_logging() -> anyhow::Result<()> {
    let terminal = std::io::stderr().is_terminal();
    let format = LogFormat::choose(std::env::var("SHOEBOX_LOG_FORMAT").ok().as_deref(), terminal)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,aws_config=warn,s3s=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).with_ansi(terminal).init(),
        // Each line: timestamp, level, target, the event's fields at the top level, and the
        // spans it was written in (a request's carries its `request_id`).
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(false).with_span_list(true).with_ansi(false).init();
        }
    }
    Ok(())
}

/// The scrape endpoint: the Prometheus recorder's handle, and the token a scraper must show.
#[derive(Clone)]
pub struct Metrics {
    token: Secret,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("token", &self.token).finish_non_exhaustive()
    }
}

/// Latency buckets, in seconds: from a cached page (a few ms) to a whole photo proxied on a
/// slow link. Histograms rather than summaries, because a histogram's buckets add up across
/// dynos and a summary's quantiles do not.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often histogram samples are folded into their buckets between scrapes, so memory stays
/// flat when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

impl Metrics {
    /// With `SHOEBOX_METRICS_TOKEN` set (and not empty), install the Prometheus recorder for
    /// this process, every series labelled `dyno` with `DYNO` when that is set (Heroku sets it:
    /// `web.1`), and return the endpoint; `None` leaves metrics off and `/metrics` a 404.
    /// Call inside the runtime: it starts the recorder's upkeep.
    pub fn install(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Self>> {
        let Some(token) = env("SHOEBOX_METRICS_TOKEN").filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let mut builder = PrometheusBuilder::new().set_buckets(BUCKETS).context("the metrics' latency buckets")?;
        if let Some(dyno) = env("DYNO").filter(|d| !d.is_empty()) {
            builder = builder.add_global_label("dyno", dyno);
        }
        let handle = builder.install_recorder().context("installing the metrics recorder")?;
        shoebox::telemetry::describe();
        tokio::spawn({
            let handle = handle.clone();
            async move {
                let mut every = tokio::time::interval(UPKEEP);
                loop {
                    every.tick().await;
                    handle.run_upkeep();
                }
            }
        });
        Ok(Some(Self { token: Secret::new(token.trim().to_owned()), handle }))
    }

    /// An endpoint rendering `handle` for scrapers showing `token`: for a host (or a test)
    /// that built its own recorder.
    pub fn new(token: &str, handle: PrometheusHandle) -> Self {
        Self { token: Secret::new(token.to_owned()), handle }
    }

    /// `GET /metrics` for `shoebox`'s gauges and everything recorded, to merge into the app's
    /// router (any state) inside its layers.
    pub fn router<S: Clone + Send + Sync + 'static>(self, shoebox: Shoebox) -> Router<S> {
        let this = Arc::new(self);
        Router::new().route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let (this, shoebox) = (this.clone(), shoebox.clone());
                async move { this.scrape(&shoebox, &headers) }
            }),
        )
    }

    /// The metrics as Prometheus text, for a request showing the token; a 404 like any unknown
    /// path otherwise, so the endpoint does not even say it exists.
    fn scrape(&self, shoebox: &Shoebox, headers: &HeaderMap) -> Response {
        let shown = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !shown.is_some_and(|t| same(t.as_bytes(), self.token.expose().as_bytes())) {
            return StatusCode::NOT_FOUND.into_response();
        }
        shoebox.record_gauges();
        let mut res = self.handle.render().into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
        res
    }
}

/// Equal in time that does not depend on where they differ, so the token cannot be guessed a
/// byte at a time.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_text_on_a_terminal_and_json_elsewhere_unless_a_setting_says() {
        assert_eq!(LogFormat::choose(None, true).expect("ok"), LogFormat::Text);
        assert_eq!(LogFormat::choose(None, false).expect("ok"), LogFormat::Json);
        assert_eq!(LogFormat::choose(Some("json"), true).expect("ok"), LogFormat::Json);
        assert_eq!(LogFormat::choose(Some("text"), false).expect("ok"), LogFormat::Text);
        let err = LogFormat::choose(Some("yaml"), false).expect_err("refused").to_string();
        assert!(err.contains("SHOEBOX_LOG_FORMAT must be json or text"), "{err}");
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same(b"s3cret-token", b"s3cret-token"));
        assert!(!same(b"s3cret-token", b"s3cret-tokem"));
        assert!(!same(b"s3cret", b"s3cret-token"));
        assert!(!same(b"", b"x"));
    }
}
