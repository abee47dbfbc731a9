//! The JSON API used by the upload page's script and by other clients.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::{ApiUser, MaybeUser, PhotoIdParam};
use super::error::{ApiError, AppError};
use crate::app::Shoebox;
use crate::domain::{Photo, from_millis};
use crate::photos;
use crate::uploads::{self, FormStyle, SignRequest};
use crate::variants;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/uploads", post(create_upload))
        .route("/api/uploads/{id}/complete", post(complete_upload))
        .route("/api/photos/{id}/attach", post(attach_photo))
        .route("/api/photos/{id}", get(get_photo).delete(delete_photo))
}

/// Turn a body that is not the JSON we expect into a 400 with our error shape.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, AppError> {
    body.map(|Json(v)| v)
        .map_err(|e| AppError::BadInput(format!("The request body is not valid JSON for this call: {}", e.body_text())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUpload {
    kind: String,
    #[serde(default)]
    filename: Option<String>,
    content_type: String,
    size: u64,
}

async fn create_upload(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    body: Result<Json<CreateUpload>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let signed = uploads::sign(
        &state.app,
        user.id,
        SignRequest {
            kind: body.kind,
            filename: body.filename,
            content_type: Some(body.content_type),
            size: Some(body.size),
        },
        FormStyle::Script,
    )
    .await?;
    let fields: Map<String, Value> = signed.form.fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let body = json!({
        "photo_id": signed.photo_id,
        "upload": { "url": signed.form.url, "fields": fields },
        "expires_at": signed.form.expires_at.format(&Rfc3339).unwrap_or_default(),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn complete_upload(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    id: PhotoIdParam,
) -> Result<Response, ApiError> {
    let photo = uploads::complete(&state.app, user.id, id.id()).await?;
    Ok(Json(json!({ "photo": photo_json(&state.app, &photo) })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Attach {
    #[serde(default)]
    keep_until: Option<String>,
}

async fn attach_photo(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    id: PhotoIdParam,
    body: Result<Option<Json<Attach>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body.map(|b| Json(b.map(|Json(a)| a).unwrap_or_default())))?;
    let keep_until = body
        .keep_until
        .map(|t| {
            time::OffsetDateTime::parse(&t, &Rfc3339)
                .map(|d| i64::try_from(d.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
                .map_err(|_| {
                    AppError::BadInput(format!("keep_until must be a time like 2027-01-31T12:00:00Z, not {t:?}."))
                })
        })
        .transpose()?;
    let photo = photos::attach(&state.app, user.id, id.id(), keep_until).await?;
    Ok(Json(json!({ "photo": photo_json(&state.app, &photo) })).into_response())
}

async fn get_photo(State(state): State<AppState>, user: MaybeUser, id: PhotoIdParam) -> Result<Response, ApiError> {
    let viewer = user.0.map(|u| u.id);
    let (photo, _kind, _loc) = photos::viewable(&state.app, viewer, id.id()).await?;
    let mut json = photo_json(&state.app, &photo);
    // Every rendition's URL: the bucket's once made (public), else the route that makes it.
    for (name, url) in variants::urls(&state.app, &photo).await? {
        json.urls.insert(name, Value::String(url));
    }
    Ok(Json(json!({ "photo": json })).into_response())
}

/// The uploader deletes their photo: 204, and it is gone; anyone else gets 404.
async fn delete_photo(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    id: PhotoIdParam,
) -> Result<Response, ApiError> {
    photos::delete_by_uploader(&state.app, user.id, id.id()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A photo as the API shows it.
#[derive(Serialize)]
struct PhotoJson {
    id: String,
    kind: String,
    state: &'static str,
    #[serde(rename = "type")]
    image_type: Option<&'static str>,
    width: Option<i64>,
    height: Option<i64>,
    byte_size: Option<i64>,
    created_at: String,
    keep_until: Option<String>,
    urls: Map<String, Value>,
}

fn photo_json(app: &Shoebox, p: &Photo) -> PhotoJson {
    let rfc = |ms: i64| from_millis(ms).format(&Rfc3339).unwrap_or_default();
    let mut urls = Map::new();
    if let Some(src) = photos::original_src(app, p) {
        urls.insert("original".into(), Value::String(src));
    }
    PhotoJson {
        id: p.id.to_string(),
        kind: p.kind.clone(),
        state: p.state.as_str(),
        image_type: p.image_type.map(|t| t.mime()),
        width: p.width,
        height: p.height,
        byte_size: p.byte_size,
        created_at: rfc(p.created_at),
        keep_until: p.keep_until.map(rfc),
        urls,
    }
}
