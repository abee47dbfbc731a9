//! The JSON API used by the upload page's script and by other clients.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use tower_http::set_header::SetResponseHeaderLayer;

use super::Host;
use super::error::{ApiError, AppError};
use super::identity::{ApiViewer, MaybeViewer, PhotoIdParam};
use crate::app::Shoebox;
use crate::domain::{Millis, PhotoId, UserId};
use crate::photos::{Actor, PhotoView};
use crate::uploads::{FormStyle, SignRequest};

pub(super) fn router<S: Host>() -> Router<S> {
    Router::new()
        .route("/api/uploads", post(create_upload::<S>))
        .route("/api/uploads/{id}/complete", post(complete_upload::<S>))
        .route("/api/photos/{id}/attach", post(attach_photo::<S>))
        .route("/api/photos/{id}/release", post(release_photo::<S>))
        .route("/api/photos/{id}", get(get_photo::<S>).delete(delete_photo::<S>))
        // Answers carry signed forms and private metadata: no cache may keep them, whatever
        // layers the host adds or leaves.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
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

async fn create_upload<S: Host>(
    State(state): State<S>,
    ApiViewer(viewer): ApiViewer,
    body: Result<Json<CreateUpload>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let request = SignRequest {
        kind: body.kind,
        filename: body.filename,
        content_type: Some(body.content_type),
        size: Some(body.size),
    };
    let signed = state.shoebox().sign(&viewer.id, request, FormStyle::Script).await?;
    let fields: Map<String, Value> = signed.form.fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let body = json!({
        "photo_id": signed.photo_id,
        "upload": { "url": signed.form.url, "fields": fields },
        "expires_at": signed.form.expires_at.format(&Rfc3339).unwrap_or_default(),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn complete_upload<S: Host>(
    State(state): State<S>,
    ApiViewer(viewer): ApiViewer,
    id: PhotoIdParam,
) -> Result<Response, ApiError> {
    let app = state.shoebox();
    let photo = app.complete(&Actor::User(viewer.id.clone()), id.id()).await?;
    let view = PhotoView::of(app, &photo).with_placeholder(app.placeholder_for(Some(&viewer.id), &photo).await);
    Ok(Json(json!({ "photo": view })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeepUntil {
    #[serde(default)]
    keep_until: Option<String>,
}

impl KeepUntil {
    fn parse(body: Result<Option<Json<KeepUntil>>, JsonRejection>) -> Result<Option<Millis>, AppError> {
        let body = json_body(body.map(|b| Json(b.map(|Json(a)| a).unwrap_or_default())))?;
        body.keep_until
            .map(|t| {
                time::OffsetDateTime::parse(&t, &Rfc3339)
                    .map(|d| i64::try_from(d.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
                    .map_err(|_| {
                        AppError::BadInput(format!("keep_until must be a time like 2027-01-31T12:00:00Z, not {t:?}."))
                    })
            })
            .transpose()
    }
}

async fn attach_photo<S: Host>(
    State(state): State<S>,
    ApiViewer(viewer): ApiViewer,
    id: PhotoIdParam,
    body: Result<Option<Json<KeepUntil>>, JsonRejection>,
) -> Result<Response, ApiError> {
    keep_or_release(state.shoebox(), viewer.id, id.id(), body, Move::Attach).await
}

/// The uploader no longer uses the photo: it falls to its kind's keep rules.
async fn release_photo<S: Host>(
    State(state): State<S>,
    ApiViewer(viewer): ApiViewer,
    id: PhotoIdParam,
    body: Result<Option<Json<KeepUntil>>, JsonRejection>,
) -> Result<Response, ApiError> {
    keep_or_release(state.shoebox(), viewer.id, id.id(), body, Move::Release).await
}

/// Which of the two moves that take an optional keep-until.
enum Move {
    Attach,
    Release,
}

async fn keep_or_release(
    app: &Shoebox,
    uploader: UserId,
    id: PhotoId,
    body: Result<Option<Json<KeepUntil>>, JsonRejection>,
    to: Move,
) -> Result<Response, ApiError> {
    let keep_until = KeepUntil::parse(body)?;
    let actor = Actor::User(uploader.clone());
    let photo = match to {
        Move::Attach => app.attach(&actor, id, keep_until).await?,
        Move::Release => app.release(&actor, id, keep_until).await?,
    };
    let view = PhotoView::of(app, &photo).with_placeholder(app.placeholder_for(Some(&uploader), &photo).await);
    Ok(Json(json!({ "photo": view })).into_response())
}

async fn get_photo<S: Host>(
    State(state): State<S>,
    MaybeViewer(viewer): MaybeViewer,
    id: PhotoIdParam,
) -> Result<Response, ApiError> {
    let app = state.shoebox();
    let viewable = app.viewable(viewer.as_ref().map(|v| &v.id), id.id()).await?;
    // `viewable` has checked that this viewer may see the photo, so its placeholder too.
    let mut view = PhotoView::of(app, &viewable.photo).with_placeholder(viewable.photo.placeholder.as_deref());
    // Every rendition's URL: the bucket's once made (public), else the route that makes it.
    view.urls.extend(app.variant_urls(&viewable.photo).await?);
    Ok(Json(json!({ "photo": view })).into_response())
}

/// The uploader deletes their photo: 204, and it is gone; anyone else gets 404.
async fn delete_photo<S: Host>(
    State(state): State<S>,
    ApiViewer(viewer): ApiViewer,
    id: PhotoIdParam,
) -> Result<Response, ApiError> {
    state.shoebox().delete(&Actor::User(viewer.id), id.id()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
