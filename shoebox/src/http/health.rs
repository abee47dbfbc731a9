//! `/healthz`: the health report, as JSON. Which dependency failed is shown; why is only logged,
//! since the endpoint is public and error texts can name hosts.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::Host;
use super::error::health_status;
use crate::health::{self, Dependency};

pub(super) fn router<S: Host>() -> Router<S> {
    Router::new().route("/healthz", get(healthz::<S>))
}

async fn healthz<S: Host>(State(state): State<S>) -> Response {
    let report = health::check(state.shoebox()).await;
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let mut buckets = Map::new();
    let mut database = "unreachable";
    for c in &report.checks {
        match c.dependency {
            Dependency::Database => database = word(c.ok),
            Dependency::Bucket => {
                buckets.insert(c.name.clone(), Value::String(word(c.ok).into()));
            }
        }
    }
    let checks: Vec<Value> = report
        .checks
        .iter()
        .map(|c| json!({ "dependency": c.dependency, "name": c.name, "ok": c.ok, "elapsed_ms": c.elapsed_ms }))
        .collect();
    let healthy = report.healthy();
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "database": database,
        "buckets": buckets,
        "checks": checks,
    });
    let mut res = (health_status(healthy), Json(body)).into_response();
    // A failed check logged its problem already (see `health::check`).
    res.extensions_mut().insert(super::error::Logged);
    res
}
