//! The host app: its own trivial login (choose a name), its own page for Steve's photos, and
//! Shoebox nested under `/media` with the same state.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use shoebox::http::{Host, IdentityError, PageChrome, Viewer, layers};
use shoebox::{Actor, Clock, PhotoId, Shoebox, UserId};
use sqlx::SqlitePool;

use super::photo::{STEVE, StevePhoto};

/// Where Shoebox's routes live in this app.
pub const MEDIA: &str = "/media";
/// The trivial login's cookie: the name someone chose.
const COOKIE: &str = "steve_example_user";

/// The host's state: its pool and the Shoebox built on it.
#[derive(Debug, Clone)]
pub struct AppState {
    pub shoebox: Shoebox,
    pub db: SqlitePool,
}

/// Build the app on the host's own pool: Shoebox with the `steve` kind in a private bucket,
/// on the in-process S3 endpoint under `data` (nothing to install), reached by pages served
/// from `origins`.
pub async fn build(
    db: SqlitePool,
    data: &std::path::Path,
    origins: &[String],
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(AppState, Router)> {
    StevePhoto::create_table(&db).await?;
    let shoebox = Shoebox::builder(db.clone())
        .bucket(shoebox::BucketSettings::private("private", "steve-photos").owned())
        .kind(StevePhoto { db: db.clone() })
        .base_path(MEDIA)
        .clock(clock)
        .embedded_s3(shoebox::EmbeddedS3Options {
            root: data.join("s3"),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            origins: origins.to_vec(),
        })
        .build()
        .await?;
    shoebox.migrate().await?;
    let state = AppState { shoebox: shoebox.clone(), db };
    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/steve/{id}/age", post(set_age))
        .nest(MEDIA, shoebox::http::router::<AppState>());
    let app = layers::security(app, &shoebox).with_state(state.clone());
    Ok((state, app))
}

impl Host for AppState {
    fn shoebox(&self) -> &Shoebox {
        &self.shoebox
    }

    /// The name in the cookie. A real app checks a session; this one trusts the name, which is
    /// the point of a trivial login. State-changing requests must come from this origin.
    async fn viewer(&self, request: &mut Parts) -> Result<Option<Viewer>, IdentityError> {
        Ok(signed_in(&request.headers).map(|id| Viewer::same_origin(id.clone()).named(id.as_str())))
    }

    fn login_url(&self) -> Option<String> {
        Some("/".into())
    }

    fn page_chrome(&self, viewer: Option<&Viewer>) -> PageChrome {
        PageChrome::plain(MEDIA, viewer).link("Steve's page", "/").button("Log out", "/logout", None)
    }
}

fn signed_in(headers: &HeaderMap) -> Option<UserId> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let value = cookies.split(';').find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    UserId::new(value).ok().filter(|id| id.as_str().chars().all(|c| c.is_ascii_alphanumeric()))
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Steve's photos</title></head><body>
{% match user %}{% when Some with (u) %}
<p>Signed in as {{ u }}. <form method="post" action="/logout"><button>Log out</button></form></p>
<p><a href="{{ media }}/upload?kind=steve">Upload a photo of Steve</a></p>
<h1>Photos of Steve you uploaded</h1>
<ul>{% for p in photos %}<li><a href="{{ media }}/photos/{{ p.id }}">{{ p.id }}</a> ({{ p.state }})
<form method="post" action="/steve/{{ p.id }}/age"><label>How old is Steve in it? <input name="age" type="number" min="0" max="130"></label><button>Save</button></form></li>{% endfor %}</ul>
{% when None %}
<h1>Who are you?</h1>
<form method="post" action="/login"><label>Your name <input name="name" pattern="[A-Za-z0-9]+" required></label> <button>Log in</button></form>
<p>Only <b>steve</b> may see photos of Steve.</p>
{% endmatch %}
</body></html>"#
)]
struct Home {
    user: Option<String>,
    media: &'static str,
    photos: Vec<Row>,
}

struct Row {
    id: String,
    state: &'static str,
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = signed_in(&headers);
    let photos = match &user {
        Some(u) => state.shoebox.photos_of(u).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let page = Home {
        user: user.map(String::from),
        media: MEDIA,
        photos: photos.iter().map(|p| Row { id: p.id.to_string(), state: p.state.as_str() }).collect(),
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Login {
    name: String,
}

async fn login(Form(form): Form<Login>) -> Response {
    let name = form.name.trim().to_lowercase();
    if name.is_empty() || name.len() > 32 || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return (StatusCode::BAD_REQUEST, "A name is letters and digits.").into_response();
    }
    let cookie = format!("{COOKIE}={name}; Path=/; HttpOnly; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

#[derive(serde::Deserialize)]
struct Age {
    age: i64,
}

/// The host's own handler: record how old Steve is in the photo, then attach it as the
/// application (Shoebox asks the kind for its keep-until, which reads the age just written).
async fn set_age(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Age>,
) -> Response {
    let (Some(user), Ok(id)) = (signed_in(&headers), id.parse::<PhotoId>()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Only the uploader (or Steve) may say how old Steve is in a photo.
    match state.shoebox.photo(id).await {
        Ok(Some(p)) if p.uploader == user || user.as_str() == STEVE => {}
        Ok(_) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
    if !(0..=130).contains(&form.age) {
        return (StatusCode::BAD_REQUEST, "Steve's age is between 0 and 130.").into_response();
    }
    if let Err(e) = StevePhoto::set_age(&state.db, id, form.age).await {
        return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
    }
    match state.shoebox.attach(&Actor::App, id, None).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) if e.fault() == shoebox::Fault::Client => (StatusCode::CONFLICT, e.to_string()).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
