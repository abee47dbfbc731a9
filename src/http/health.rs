//! `/healthz`: the database and every bucket, checked for real.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let app = &state.app;
    let mut healthy = true;
    let database = match app.db.health_check().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::error!(error = %e, "health check: database");
            healthy = false;
            "unreachable"
        }
    };
    let mut buckets = Map::new();
    for b in app.storage.buckets() {
        let status = match b.health_check().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::error!(bucket = b.name(), error = %e, "health check: bucket");
                healthy = false;
                "unreachable"
            }
        };
        buckets.insert(b.name().to_owned(), Value::String(status.into()));
    }
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({ "status": if healthy { "ok" } else { "unhealthy" }, "database": database, "buckets": buckets });
    (status, Json(body)).into_response()
}
