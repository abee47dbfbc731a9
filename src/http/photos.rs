//! Serving a photo: public ones by redirect to S3 or the CDN, private ones streamed through
//! this process after the kind's authorization check. Never buffered whole.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio_util::io::ReaderStream;

use super::AppState;
use super::auth::{MaybeUser, PhotoIdParam};
use super::error::{ApiError, AppError};
use crate::photos::Location;
use crate::storage::StorageError;
use crate::variants;

pub fn router() -> Router<AppState> {
    Router::new().route("/photos/{id}/{variant}", get(serve_variant))
}

async fn serve_variant(
    State(state): State<AppState>,
    user: MaybeUser,
    id: PhotoIdParam,
    Path((_, variant)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    // Which object to serve (the original or a variant, made first if missing) is decided in
    // `variants`; this only serves it.
    let served = variants::locate(&state.app, user.0.map(|u| u.id), id.id(), &variant).await?;
    let (bucket, key) = match served.location {
        Location::Public(url) => return Ok(Redirect::to(&url).into_response()),
        Location::Private { bucket, key } => (bucket, key),
    };
    let bucket = state.app.storage.bucket(&bucket)?;
    let (info, stream) = match bucket.get_stream(&key).await {
        Ok(v) => v,
        Err(StorageError::NotFound) => return Err(AppError::NotFound.into()),
        Err(e) => return Err(e.into()),
    };
    // The type comes from what verification sniffed, never from what S3 or the uploader says.
    let mime = served.image_type.map_or("application/octet-stream", |t| t.mime());
    let ext = served.image_type.map_or("bin", |t| t.extension());
    let body = Body::from_stream(ReaderStream::new(stream.into_async_read()));
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&info.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"photo.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    // Even if a browser were talked into rendering these bytes as a document, it could run
    // nothing and reach nothing.
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    Ok(res)
}
