//! Server-rendered pages: the viewer's photos, the upload page, one photo, and the no-JavaScript
//! upload return. Optional for a host, which may have pages of its own.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_http::set_header::SetResponseHeaderLayer;

use super::Host;
use super::error::{AppError, PageError};
use super::identity::{FormViewer, MaybeViewer, PageViewer, PhotoIdParam};
use super::templates::{IndexPage, KindGroup, KindLink, PhotoCard, PhotoPage, UploadPage};
use crate::domain::text::human_bytes;
use crate::domain::{PhotoState, display_time};
use crate::photos::{Actor, Viewable};
use crate::uploads::{FormStyle, SignRequest};
use crate::variants;

/// The `{id}` of a page's route; a malformed one is a missing page.
type PagePhotoId = PhotoIdParam<PageError>;

pub(super) fn router<S: Host>() -> Router<S> {
    Router::new()
        .route("/", get(index::<S>))
        .route("/upload", get(upload_page::<S>))
        .route("/uploads/{id}/done", get(upload_done::<S>))
        .route("/photos/{id}", get(photo_page::<S>))
        .route("/photos/{id}/save", post(save_photo::<S>))
        .route("/photos/{id}/delete", post(delete_photo::<S>))
        .route("/static/upload.js", get(upload_js))
        .route("/static/style.css", get(style_css))
        // Pages carry CSRF tokens and private photos' details: no cache may keep them.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

fn render(t: &impl askama::Template) -> Result<Response, PageError> {
    let body = t.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok(Html(body).into_response())
}

async fn index<S: Host>(State(state): State<S>, MaybeViewer(viewer): MaybeViewer) -> Result<Response, PageError> {
    let chrome = state.page_chrome(viewer.as_ref());
    let Some(viewer) = viewer else {
        return render(&IndexPage { chrome, signed_in: false, groups: vec![], kinds: vec![] });
    };
    let app = state.shoebox();
    let mine = app.photos_of(&viewer.id).await?;
    let made = variants::made_for_uploader(app, &viewer.id).await?;
    let mut groups = Vec::new();
    for k in app.kinds().iter() {
        let mut photos = Vec::new();
        for p in mine.iter().filter(|p| p.kind == k.name()) {
            if app.original_url(p).is_none() {
                continue;
            }
            // The grid shows thumbs; high-density screens take the display size.
            photos.push(PhotoCard {
                id: p.id.to_string(),
                src: variants::src(app, p, "thumb", &made),
                srcset: format!(
                    "{} 1x, {} 2x",
                    variants::src(app, p, "thumb", &made),
                    variants::src(app, p, "display", &made)
                ),
                webp_srcset: variants::webp_src(app, p, "thumb", &made).map(|thumb| {
                    let display = variants::webp_src(app, p, "display", &made);
                    display.map_or_else(|| thumb.clone(), |d| format!("{thumb} 1x, {d} 2x"))
                }),
                avif_srcset: variants::avif_src(app, p, "thumb", &made).map(|thumb| {
                    let display = variants::avif_src(app, p, "display", &made);
                    display.map_or_else(|| thumb.clone(), |d| format!("{thumb} 1x, {d} 2x"))
                }),
                alt: p.filename.clone().unwrap_or_else(|| k.label().to_owned()),
                state: p.state.as_str().to_owned(),
                width: p.width.unwrap_or(0),
                height: p.height.unwrap_or(0),
                placeholder: app.placeholder_for(Some(&viewer.id), p).await.and_then(placeholder_url),
            });
        }
        groups.push(KindGroup {
            label: k.label().to_owned(),
            kind: k.name().to_owned(),
            private: app.is_private(k.as_ref()),
            photos,
        });
    }
    let kinds =
        app.kinds().iter().map(|k| KindLink { name: k.name().to_owned(), label: k.label().to_owned() }).collect();
    render(&IndexPage { chrome, signed_in: true, groups, kinds })
}

#[derive(Deserialize)]
struct UploadQuery {
    kind: Option<String>,
}

/// The upload page, with a form signed for it: it works with JavaScript switched off.
async fn upload_page<S: Host>(
    State(state): State<S>,
    PageViewer(viewer): PageViewer,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
) -> Result<Response, PageError> {
    let app = state.shoebox();
    let kind_name = q.kind.ok_or_else(|| {
        AppError::BadInput(format!(
            "Say which kind of photo to upload, for example {}/upload?kind=avatar.",
            app.base_path()
        ))
    })?;
    let origin = app.origin(&headers).ok_or(AppError::UnknownHost)?;
    let request = SignRequest { kind: kind_name.clone(), filename: None, content_type: None, size: None };
    let signed = app.sign(&viewer.id, request, FormStyle::Page { origin }).await?;
    let kind = app.kinds().get(&kind_name).ok_or(AppError::NotFound)?;
    let quota = match kind.max_bytes_per_user().or(kind.max_photos_per_user()) {
        Some(_) => app.usage(&viewer.id, &kind_name).await?.summary(),
        None => None,
    };
    let ttl = app.limits().page_form_ttl;
    let page = UploadPage {
        chrome: state.page_chrome(Some(&viewer)),
        kind: kind.name().to_owned(),
        kind_label: kind.label().to_owned(),
        private: app.is_private(kind.as_ref()),
        accept: kind.accepts().iter().map(|t| t.mime()).collect::<Vec<_>>().join(","),
        max_bytes: kind.max_bytes(),
        max_human: human_bytes(kind.max_bytes()),
        quota,
        form_url: signed.form.url,
        fields: signed.form.fields,
        expires_at: display_time(signed.form.expires_at.unix_timestamp() * 1000),
        minutes_valid: ttl.as_secs() / 60,
        client_max_edge: 2560,
        multiple: !kind.one_per_user(),
    };
    let mut res = render(&page)?;
    // The page holds a signed form: never cache it.
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Where S3 sends a browser after a form posted without JavaScript: verify, then show it.
async fn upload_done<S: Host>(
    State(state): State<S>,
    PageViewer(viewer): PageViewer,
    id: PagePhotoId,
) -> Result<Response, PageError> {
    let app = state.shoebox();
    let photo = app.complete(&Actor::User(viewer.id), id.id()).await?;
    Ok(Redirect::to(&app.url(&format!("/photos/{}", photo.id))).into_response())
}

async fn photo_page<S: Host>(
    State(state): State<S>,
    PageViewer(viewer): PageViewer,
    id: PagePhotoId,
) -> Result<Response, PageError> {
    let app = state.shoebox();
    let Viewable { photo, kind, .. } = app.viewable(Some(&viewer.id), id.id()).await?;
    let mine = photo.uploader == viewer.id;
    let made = variants::made_for_photo(app, &photo).await?;
    let page = PhotoPage {
        chrome: state.page_chrome(Some(&viewer)),
        id: photo.id.to_string(),
        kind_label: kind.label().to_owned(),
        state: photo.state.as_str().replace('_', " "),
        src: app.original_url(&photo).map(|_| app.url(&format!("/photos/{}/display", photo.id))),
        webp_src: app.original_url(&photo).and_then(|_| variants::webp_src(app, &photo, "display", &[])),
        avif_src: app.original_url(&photo).and_then(|_| variants::avif_src(app, &photo, "display", &made)),
        original: app.original_url(&photo),
        width: photo.width.unwrap_or(0),
        height: photo.height.unwrap_or(0),
        // `viewable` has checked that this viewer may see the photo, so its placeholder too.
        placeholder: photo.placeholder.as_deref().and_then(placeholder_url),
        size: human_bytes(photo.byte_size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)),
        image_type: photo.image_type.map(|t| t.mime().to_owned()).unwrap_or_default(),
        created_at: display_time(photo.created_at),
        keep_until: photo.keep_until.map(display_time),
        deleted_reason: photo.deleted_reason.clone(),
        can_save: mine && matches!(photo.state, PhotoState::Ready | PhotoState::Released),
        can_delete: mine,
    };
    render(&page)
}

/// A placeholder as a `data:` URL of its PNG: shown with no script and no request, and allowed
/// by the security layer's `img-src data:` (an inline style would need `style-src` opened).
fn placeholder_url(hash: &[u8]) -> Option<String> {
    use base64::Engine as _;
    let png = crate::imaging::placeholder_png(hash)?;
    Some(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)))
}

/// The page's Save button: attach the photo.
async fn save_photo<S: Host>(
    State(state): State<S>,
    id: PagePhotoId,
    FormViewer(viewer): FormViewer,
) -> Result<Response, PageError> {
    let app = state.shoebox();
    app.attach(&Actor::User(viewer.id), id.id(), None).await?;
    Ok(Redirect::to(&app.url("/")).into_response())
}

/// The page's Delete button (behind a confirming `<details>` step): delete the photo.
async fn delete_photo<S: Host>(
    State(state): State<S>,
    id: PagePhotoId,
    FormViewer(viewer): FormViewer,
) -> Result<Response, PageError> {
    let app = state.shoebox();
    app.delete(&Actor::User(viewer.id), id.id()).await?;
    Ok(Redirect::to(&app.url("/")).into_response())
}

async fn upload_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        include_str!("../../static/upload.js"),
    )
}

async fn style_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        include_str!("../../static/style.css"),
    )
}
