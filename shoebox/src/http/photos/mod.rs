//! Serving a photo: public ones by redirect to S3 or the CDN, private ones streamed through
//! this process after the kind's authorization check (or, for kinds that ask for it, by a
//! redirect to a presigned GET valid for a minute). Never buffered whole.
//!
//! Authorization comes first: until the kind has said yes, S3 is not asked anything, so
//! nothing about a private object (its length, ETag or bytes) can reach anyone else.

mod range;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio_util::io::ReaderStream;

use super::Host;
use super::error::{ApiError, AppError, Delivery, delivery_status};
use super::identity::{MaybeViewer, PhotoIdParam};
use crate::domain::{Photo, PrivateDelivery};
use crate::imaging::ImageType;
use crate::photos::Location;
use crate::storage::{ObjectMeta, StorageError};
use crate::variants;

/// How long a redirect-mode link works: long enough for the browser to follow it, short enough
/// that a copied link is soon useless.
const PRESIGNED_TTL: Duration = Duration::from_secs(60);

pub(in crate::http) fn router<S: Host>() -> Router<S> {
    // `get` also answers HEAD with this handler; it sees the method and asks S3 for no bytes.
    Router::new().route("/photos/{id}/{variant}", get(serve_variant::<S>))
}

async fn serve_variant<S: Host>(
    State(state): State<S>,
    method: Method,
    headers: HeaderMap,
    MaybeViewer(viewer): MaybeViewer,
    id: PhotoIdParam,
    Path((_, variant)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    // Which object to serve (the original or a variant, made first if missing) is decided in
    // `variants`; this only serves it.
    let app = state.shoebox();
    let served = variants::locate(app, viewer.as_ref().map(|v| &v.id), id.id(), &variant).await?;
    let (photo, kind, image_type) = (&served.photo, &served.kind, served.image_type);
    let (bucket, key) = match served.location {
        Location::Public(url) => return Ok(Redirect::to(&url).into_response()),
        Location::Private { bucket, key } => (bucket, key),
    };
    let bucket = app.storage.bucket(&bucket)?;
    if kind.private_delivery() == PrivateDelivery::Redirect {
        let url = bucket.presigned_get(&key, PRESIGNED_TTL).await?;
        let mut res = Redirect::to(&url).into_response();
        // The link is a bearer credential for a minute: no cache may keep or reuse it.
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(res);
    }

    let wanted = range::requested(&headers);
    let head_only = method == Method::HEAD;
    if head_only || range::is_conditional(&headers) || wanted.is_some_and(|r| r.always_unsatisfiable()) {
        // Decided from a HEAD, so a 304 or a HEAD answer costs S3 no body.
        let meta = bucket.head_meta(&key).await?.ok_or_else(|| missing(photo, &key))?;
        if range::not_modified(&headers, meta.etag.as_deref(), meta.last_modified) {
            return Ok(answer(Delivery::NotModified, image_type, &meta, None, Body::empty()));
        }
        let span = match wanted {
            Some(r) => Some(r.resolve(meta.size).ok_or(StorageError::RangeNotSatisfiable { size: meta.size })?),
            None => None,
        };
        if head_only {
            let d = if span.is_some() { Delivery::Partial } else { Delivery::Whole };
            return Ok(answer(d, image_type, &meta, span, Body::empty()));
        }
    }
    let read = match bucket.get_for_serving(&key, wanted.map(|r| r.header()).as_deref()).await {
        Err(StorageError::NotFound) => return Err(missing(photo, &key).into()),
        other => other?,
    };
    // A dropped response drops this stream and with it the connection to S3: a viewer who goes
    // away stops the read.
    let body = Body::from_stream(ReaderStream::new(read.body.into_async_read()));
    let d = if read.range.is_some() { Delivery::Partial } else { Delivery::Whole };
    let mut res = answer(d, image_type, &read.meta, read.range, body);
    if let Ok(v) = HeaderValue::from_str(&read.length.to_string()) {
        res.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    Ok(res)
}

/// A live photo whose object is not in its bucket: logged for the reconcile job, and answered
/// as a missing photo.
fn missing(photo: &Photo, key: &str) -> AppError {
    tracing::warn!(
        photo = %photo.id, bucket = %photo.bucket, key,
        "a live photo's object is missing from its bucket; reconcile should look at it"
    );
    AppError::NotFound
}

/// A served photo's answer: validators, type, and the headers that keep a private photo out of
/// shared caches and out of any document context. `span` is the inclusive byte range sent.
fn answer(
    d: Delivery,
    image_type: Option<ImageType>,
    meta: &ObjectMeta,
    span: Option<(u64, u64)>,
    body: Body,
) -> Response {
    let mut res = (delivery_status(d), body).into_response();
    let h = res.headers_mut();
    let mut set = |name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    if let Some(etag) = &meta.etag {
        set(header::ETAG, etag.clone());
    }
    if let Some(t) = meta.last_modified {
        set(header::LAST_MODIFIED, httpdate::fmt_http_date(t));
    }
    // The viewer's browser may keep a copy but must ask again each time, so a revoked
    // permission takes effect at once and an unchanged photo costs a 304.
    set(header::CACHE_CONTROL, "private, no-cache".into());
    if d == Delivery::NotModified {
        return res;
    }
    // The type comes from what verification sniffed, never from what S3 or the uploader says.
    let mime = image_type.map_or("application/octet-stream", |t| t.mime());
    let ext = image_type.map_or("bin", |t| t.extension());
    set(header::CONTENT_TYPE, mime.into());
    set(header::CONTENT_DISPOSITION, format!("inline; filename=\"photo.{ext}\""));
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff".into());
    // Even if a browser were talked into rendering these bytes as a document, it could run
    // nothing and reach nothing.
    set(header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox".into());
    match span {
        Some((a, b)) => {
            set(header::CONTENT_RANGE, format!("bytes {a}-{b}/{}", meta.size));
            set(header::CONTENT_LENGTH, (b - a + 1).to_string());
        }
        None => set(header::CONTENT_LENGTH, meta.size.to_string()),
    }
    res
}
