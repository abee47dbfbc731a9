//! Server-rendered pages: home, upload, one photo, and the no-JavaScript upload return.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::auth::{CurrentUser, FormUser, MaybeUser, PageUser, PhotoIdParam};
use super::error::{AppError, PageError};
use super::templates::{IndexPage, KindGroup, KindLink, PhotoCard, PhotoPage, UploadPage, Viewer};
use crate::domain::text::human_bytes;
use crate::domain::{PhotoState, display_time};
use crate::photos;
use crate::uploads::{self, FormStyle, SignRequest};
use crate::variants;

/// The `{id}` of a page's route; a malformed one is a missing page.
type PagePhotoId = PhotoIdParam<PageError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/upload", get(upload_page))
        .route("/uploads/{id}/done", get(upload_done))
        .route("/photos/{id}", get(photo_page))
        .route("/photos/{id}/save", post(save_photo))
        .route("/photos/{id}/delete", post(delete_photo))
        .route("/static/upload.js", get(upload_js))
        .route("/static/style.css", get(style_css))
}

pub(crate) fn viewer(u: &CurrentUser) -> Viewer {
    Viewer { email: u.email.clone(), csrf: u.csrf.clone() }
}

pub(crate) fn render(t: &impl askama::Template) -> Result<Response, PageError> {
    let body = t.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok(Html(body).into_response())
}

async fn index(State(state): State<AppState>, user: MaybeUser) -> Result<Response, PageError> {
    let Some(user) = user.0 else {
        return render(&IndexPage { user: None, groups: vec![], kinds: vec![] });
    };
    let app = &state.app;
    let mine = photos::live_for_user(app, user.id).await?;
    let made = crate::variants::made_for_uploader(app, user.id).await?;
    let groups = app
        .kinds
        .iter()
        .map(|k| KindGroup {
            label: k.label().to_owned(),
            kind: k.name().to_owned(),
            private: photos::is_private(app, k.as_ref()),
            photos: mine
                .iter()
                .filter(|p| p.kind == k.name())
                .filter_map(|p| {
                    photos::original_src(app, p)?;
                    // The grid shows thumbs; high-density screens take the display size.
                    Some(PhotoCard {
                        id: p.id.to_string(),
                        src: variants::src(app, p, "thumb", &made),
                        srcset: format!(
                            "{} 1x, {} 2x",
                            variants::src(app, p, "thumb", &made),
                            variants::src(app, p, "display", &made)
                        ),
                        alt: p.filename.clone().unwrap_or_else(|| k.label().to_owned()),
                        state: p.state.as_str().to_owned(),
                    })
                })
                .collect(),
        })
        .collect();
    let kinds = app.kinds.iter().map(|k| KindLink { name: k.name().to_owned(), label: k.label().to_owned() }).collect();
    render(&IndexPage { user: Some(viewer(&user)), groups, kinds })
}

#[derive(Deserialize)]
struct UploadQuery {
    kind: Option<String>,
}

/// The upload page, with a form signed for it: it works with JavaScript switched off.
async fn upload_page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
) -> Result<Response, PageError> {
    let kind_name = q.kind.ok_or_else(|| {
        AppError::BadInput("Say which kind of photo to upload, for example /upload?kind=avatar.".into())
    })?;
    let app = &state.app;
    let signed = uploads::sign(
        app,
        user.id,
        SignRequest { kind: kind_name.clone(), filename: None, content_type: None, size: None },
        FormStyle::Page { redirect_base: state.web.origin(&headers).ok_or(AppError::UnknownHost)? },
    )
    .await?;
    let kind = app.kinds.get(&kind_name).ok_or(AppError::NotFound)?;
    let private = photos::is_private(app, kind.as_ref());
    let ttl = app.limits.page_form_ttl;
    let page = UploadPage {
        user: Some(viewer(&user)),
        kind: kind.name().to_owned(),
        kind_label: kind.label().to_owned(),
        private,
        accept: kind.accepts().iter().map(|t| t.mime()).collect::<Vec<_>>().join(","),
        max_bytes: kind.max_bytes(),
        max_human: human_bytes(kind.max_bytes()),
        form_url: signed.form.url,
        fields: signed.form.fields,
        expires_at: display_time(signed.form.expires_at.unix_timestamp() * 1000),
        minutes_valid: ttl.as_secs() / 60,
        client_max_edge: 2560,
    };
    let mut res = render(&page)?;
    // The page holds a signed form: never cache it.
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Where S3 sends a browser after a form posted without JavaScript: verify, then show it.
async fn upload_done(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    id: PagePhotoId,
) -> Result<Response, PageError> {
    let photo = uploads::complete(&state.app, user.id, id.id()).await?;
    Ok(Redirect::to(&format!("/photos/{}", photo.id)).into_response())
}

async fn photo_page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    id: PagePhotoId,
) -> Result<Response, PageError> {
    let (photo, kind, _location) = photos::viewable(&state.app, Some(user.id), id.id()).await?;
    let page = PhotoPage {
        user: Some(viewer(&user)),
        id: photo.id.to_string(),
        kind_label: kind.label().to_owned(),
        state: photo.state.as_str().replace('_', " "),
        src: photos::original_src(&state.app, &photo).map(|_| format!("/photos/{}/display", photo.id)),
        original: photos::original_src(&state.app, &photo),
        width: photo.width.unwrap_or(0),
        height: photo.height.unwrap_or(0),
        size: human_bytes(photo.byte_size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)),
        image_type: photo.image_type.map(|t| t.mime().to_owned()).unwrap_or_default(),
        created_at: display_time(photo.created_at),
        keep_until: photo.keep_until.map(display_time),
        deleted_reason: photo.deleted_reason.clone(),
        can_save: photo.uploader == user.id && photo.state == PhotoState::Ready,
        can_delete: photo.uploader == user.id,
    };
    render(&page)
}

/// The page's Save button: attach the photo.
async fn save_photo(
    State(state): State<AppState>,
    id: PagePhotoId,
    FormUser(user): FormUser,
) -> Result<Response, PageError> {
    photos::attach(&state.app, user.id, id.id(), None).await?;
    Ok(Redirect::to("/").into_response())
}

/// The page's Delete button (behind a confirming `<details>` step): delete the photo.
async fn delete_photo(
    State(state): State<AppState>,
    id: PagePhotoId,
    FormUser(user): FormUser,
) -> Result<Response, PageError> {
    photos::delete_by_uploader(&state.app, user.id, id.id()).await?;
    Ok(Redirect::to("/").into_response())
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
