//! Shoebox as a library, as a host adopts it: in a database that already has the host's own
//! tables and migration history, with the data of an earlier Shoebox carried over, nested under
//! a prefix in a host's router with the host's own login, and the seed's `StevePhoto` example
//! driven through a photo's whole life with a held clock.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shoebox::{Actor, Db, ManualClock, Millis, PhotoId, PhotoState, Shoebox, UserId, now_millis};

use crate::helpers::{
    Backend, drop_pg_database, fresh_pg_database, hidden_fields, photo, post_to_bucket, postgres_server,
};

// The example's own modules, compiled here as they are in `cargo run --example steve`.
#[path = "../../examples/steve/app.rs"]
mod app;
#[path = "../../examples/steve/photo.rs"]
mod photo;

const DAY: Millis = 24 * 60 * 60 * 1000;
const YEAR: Millis = 365 * DAY;

/// A database of each backend, empty, with a way to reach it by URL; dropped at the end.
struct Database {
    url: String,
    pg: Option<String>,
    _dir: tempfile::TempDir,
}

impl Database {
    async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("host.db").display());
                Self { url, pg: None, _dir: dir }
            }
            Backend::Postgres => {
                let name = fresh_pg_database().await;
                Self { url: format!("{}/{name}", postgres_server()), pg: Some(name), _dir: dir }
            }
        }
    }

    async fn pool(&self) -> Db {
        Db::connect(&self.url, 4).await.expect("pool")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(name) = self.pg.take() {
            drop_pg_database(name);
        }
    }
}

/// Run `sql` on either pool.
async fn exec(db: &Db, sql: &str) {
    match db {
        Db::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        Db::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The text of every row `sql` selects, one string per row (columns joined by `|`).
async fn rows(db: &Db, sql: &str) -> Vec<String> {
    use sqlx::Row as _;
    macro_rules! texts {
        ($p:expr) => {{
            let rows = sqlx::query(sql).fetch_all($p).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.iter()
                .map(|r| {
                    (0..r.len()).map(|i| r.try_get::<String, _>(i).expect("text column")).collect::<Vec<_>>().join("|")
                })
                .collect()
        }};
    }
    match db {
        Db::Postgres(p) => texts!(p),
        Db::Sqlite(p) => texts!(p),
    }
}

/// A host's own migrations, in a folder of its own, run by sqlx's migrator as a host runs them.
async fn host_migrations(db: &Db, dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("20240101000001_host.sql"),
        "create table users (id text primary key, name text not null);\n\
         create table sessions (id text primary key, user_id text not null);\n\
         create table photos (id text primary key, caption text not null);\n",
    )
    .expect("write");
    let migrator = sqlx::migrate::Migrator::new(dir).await.expect("migrator");
    match db {
        Db::Postgres(p) => migrator.run(p).await,
        Db::Sqlite(p) => migrator.run(p).await,
    }
    .expect("the host's migrations run");
}

both_backends_plain!(
    shoebox_migrates_beside_a_hosts_own_tables_and_history,
    an_earlier_shoebox_database_is_carried_over,
    a_host_nests_shoebox_under_a_prefix_with_its_own_login,
);

/// Each scenario on both backends, given only which (these tests build their own apps).
macro_rules! both_backends_plain {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }
        }
    )*};
}
use both_backends_plain;

/// A host already has `users`, `sessions` and `photos` and its own rows in `_sqlx_migrations`:
/// Shoebox's migrations add their own tables and history, touch none of the host's, and the
/// host's migrator still runs afterwards (it would refuse rows it does not know).
async fn shoebox_migrates_beside_a_hosts_own_tables_and_history(backend: Backend) {
    let database = Database::new(backend).await;
    let db = database.pool().await;
    let host_dir = tempfile::tempdir().expect("tmp");
    host_migrations(&db, host_dir.path()).await;
    exec(
        &db,
        "insert into users (id, name) values ('u1', 'Ann'); insert into photos (id, caption) values ('p1', 'hers')",
    )
    .await;
    let history = rows(&db, "select cast(version as text), description from _sqlx_migrations").await;

    let shoebox = Shoebox::builder(db.clone()).bucket(shoebox::BucketSettings::public("public", "x")).build().await;
    let shoebox = shoebox.expect("built");
    shoebox.migrate().await.expect("migrated");
    shoebox.migrate().await.expect("and again: nothing to do");

    assert_eq!(rows(&db, "select id, name from users").await, ["u1|Ann"]);
    assert_eq!(rows(&db, "select id, caption from photos").await, ["p1|hers"], "the host's photos are untouched");
    assert_eq!(rows(&db, "select cast(version as text), description from _sqlx_migrations").await, history);
    let ours = rows(&db, "select cast(version as text), description from shoebox_migrations order by version").await;
    assert_eq!(ours, ["1|tables", "2|adopt unprefixed tables", "3|quotas", "4|placeholders", "6|verification claims"]);
    assert!(rows(&db, "select photo_id from shoebox_photos").await.is_empty());
    // The host's own migrator still accepts the database (no foreign rows in its history).
    host_migrations(&db, host_dir.path()).await;
    db.close().await;
}

/// A database made by Shoebox 0.1 (tables without the prefix, history in `_sqlx_migrations`)
/// keeps its photos, variants, form windows and locks; the reference app keeps its accounts.
async fn an_earlier_shoebox_database_is_carried_over(backend: Backend) {
    let database = Database::new(backend).await;
    let db = database.pool().await;
    let legacy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fixtures/legacy");
    let migrator = sqlx::migrate::Migrator::new(legacy).await.expect("0.1's migrations");
    match &db {
        Db::Postgres(p) => migrator.run(p).await,
        Db::Sqlite(p) => migrator.run(p).await,
    }
    .expect("a 0.1 database");
    exec(
        &db,
        "insert into users (user_id, email, password_hash, created_at) values ('u1', 'ann@example.com', 'h', 1);
         insert into sessions (token_hash, user_id, csrf_token, created_at, expires_at) values ('t', 'u1', 'c', 1, 9);
         insert into photos (photo_id, kind, bucket, uploader_id, state, incoming_key, object_key, image_type, max_bytes,
             byte_size, width, height, form_expires_at, created_at, verified_at, attached_at, claimed_by, claimed_until)
             values ('4c1e4a0e-8d2a-4c0b-9d59-2f7f6f0d7a11', 'avatar', 'public', 'u1', 'in_use', 'incoming/tok',
             'photos/tok/original.jpg', 'image/jpeg', 100, 90, 10, 20, 5, 2, 3, 4, 'retry', 7);
         insert into variants (photo_id, name, recipe_hash, state, object_key, image_type, claimed_at, made_at)
             values ('4c1e4a0e-8d2a-4c0b-9d59-2f7f6f0d7a11', 'thumb', 'abc', 'ready', 'photos/tok/thumb-abc.jpg',
             'image/jpeg', 3, 4);
         insert into form_windows (uploader_id, style, opened_at, forms) values ('u1', 'script', 10, 3);
         insert into job_locks (name, holder, held_until) values ('clean-up', 'web.1', 11);",
    )
    .await;

    // What `shoebox migrate` does in the reference app: Shoebox's tables, then its accounts.
    let shoebox = Shoebox::builder(db.clone()).bucket(shoebox::BucketSettings::public("public", "x")).build().await;
    shoebox_app::server::migrate(&shoebox.expect("built"), &db).await.expect("migrated");

    let photos = rows(
        &db,
        "select photo_id, uploader_id, state, object_key, cast(byte_size as text), claimed_by from shoebox_photos",
    )
    .await;
    assert_eq!(
        photos,
        ["4c1e4a0e-8d2a-4c0b-9d59-2f7f6f0d7a11|u1|in_use|photos/tok/original.jpg|90|retry"],
        "the photo, its claim included"
    );
    assert_eq!(rows(&db, "select name, object_key from shoebox_variants").await, ["thumb|photos/tok/thumb-abc.jpg"]);
    assert_eq!(rows(&db, "select uploader_id, cast(forms as text) from shoebox_form_windows").await, ["u1|3"]);
    assert_eq!(rows(&db, "select holder from shoebox_job_locks").await, ["web.1"]);
    assert_eq!(rows(&db, "select email from users").await, ["ann@example.com"], "the accounts stay");
    assert_eq!(rows(&db, "select user_id from sessions").await, ["u1"]);
    for old in ["photos", "variants", "form_windows", "job_locks"] {
        let sql = format!("select count(*) from {old}");
        let gone = match &db {
            Db::Postgres(p) => sqlx::query(&sql).execute(p).await.is_err(),
            Db::Sqlite(p) => sqlx::query(&sql).execute(p).await.is_err(),
        };
        assert!(gone, "{old} was moved under the prefix");
    }
    // Running again changes nothing.
    let shoebox = Shoebox::builder(db.clone()).bucket(shoebox::BucketSettings::public("public", "x")).build().await;
    shoebox_app::server::migrate(&shoebox.expect("built"), &db).await.expect("migrated again");
    assert_eq!(rows(&db, "select photo_id from shoebox_photos").await.len(), 1);
    db.close().await;
}

/// A host's state: its pool, its Shoebox, and its own login (a header set by its own proxy).
#[derive(Clone)]
struct Host {
    shoebox: Shoebox,
}

impl shoebox::http::Host for Host {
    fn shoebox(&self) -> &Shoebox {
        &self.shoebox
    }

    async fn viewer(
        &self,
        request: &mut axum::http::request::Parts,
    ) -> Result<Option<shoebox::http::Viewer>, shoebox::http::IdentityError> {
        let user = request.headers.get("x-host-user").and_then(|v| v.to_str().ok()).and_then(|v| UserId::new(v).ok());
        Ok(user.map(|u| shoebox::http::Viewer::with_token(u, "host-csrf-token").named("Host user")))
    }

    fn login_url(&self) -> Option<String> {
        Some("/account/login".into())
    }
}

/// Every URL-like string in a JSON answer or a page that points at the app must start with the
/// prefix: paths, and absolute URLs on the app's own origin.
fn assert_within_prefix(what: &str, texts: &[String], origin: &str) {
    for t in texts {
        let path = t.strip_prefix(origin).unwrap_or(t);
        if path.starts_with('/') && !path.starts_with("//") {
            assert!(path.starts_with("/media/") || path == "/media", "{what}: {t:?} escapes /media");
        }
    }
}

/// Every string value in a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Every `href`, `src`, `action` and `data-base` value in a page.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\"", "action=\"", "data-base=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// A host nests Shoebox under `/media` in its own router, with its own routes and its own
/// login. Sign, upload to the bucket, complete, attach and view all work end to end, and no
/// URL in any answer escapes the prefix.
async fn a_host_nests_shoebox_under_a_prefix_with_its_own_login(backend: Backend) {
    let database = Database::new(backend).await;
    let db = database.pool().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let dir = tempfile::tempdir().expect("tmp");
    let kind = shoebox::ConfiguredKind::new(
        "passport",
        Some("Passport"),
        "private",
        &["image/jpeg".into()],
        5_000_000,
        shoebox::ImageLimits::default(),
    )
    .expect("kind");
    let shoebox = Shoebox::builder(db.clone())
        .kind(kind)
        .base_path("/media")
        .embedded_s3(shoebox::EmbeddedS3Options::new(dir.path(), &[origin.as_str()]))
        .build()
        .await
        .expect("built");
    shoebox.migrate().await.expect("migrated");
    let host = Host { shoebox: shoebox.clone() };
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the host's own home page" }))
        .nest("/media", shoebox::http::router::<Host>());
    let app = shoebox::http::layers::security(app, &shoebox).with_state(host);
    let server = tokio::spawn(async move {
        shoebox::http::serve(listener, app, std::future::pending(), Duration::from_secs(1)).await.expect("serve");
    });
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let as_ann =
        |req: reqwest::RequestBuilder| req.header("x-host-user", "ann-42").header("x-csrf-token", "host-csrf-token");
    let mut seen = Vec::new();

    assert_eq!(
        client.get(format!("{origin}/")).send().await.expect("home").text().await.expect("text"),
        "the host's own home page"
    );
    // Not signed in: the pages send people to the host's login, the API says 401.
    let res = client.get(format!("{origin}/media")).send().await.expect("page");
    assert_eq!(res.status(), StatusCode::OK, "the home page shows, signed out");
    let res = client.get(format!("{origin}/media/upload?kind=passport")).send().await.expect("page");
    assert_eq!(
        (res.status(), res.headers()["location"].to_str().expect("loc")),
        (StatusCode::SEE_OTHER, "/account/login")
    );
    let res = client.post(format!("{origin}/media/api/uploads")).json(&json!({})).send().await.expect("api");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Under the prefix, what matches no route still gets a readable answer: the error page
    // with the host's header, the API's JSON (405 with Allow for a wrong method), a plain 404
    // for a static file.
    let res = as_ann(client.get(format!("{origin}/media/no/such/page"))).send().await.expect("page");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let html = res.text().await.expect("html");
    assert!(html.contains("There is no such page or photo.") && html.contains("Host user"), "{html}");
    assert!(html.contains("href=\"/media\""), "a link home, under the prefix: {html}");
    let res = as_ann(client.get(format!("{origin}/media/api/nothing"))).send().await.expect("api");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "not_found");
    let res = as_ann(client.put(format!("{origin}/media/api/uploads"))).send().await.expect("api");
    assert_eq!(
        (res.status(), res.headers()["allow"].to_str().expect("allow")),
        (StatusCode::METHOD_NOT_ALLOWED, "POST")
    );
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "method_not_allowed");
    let res = client.get(format!("{origin}/media/static/nothing.css")).send().await.expect("static");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.text().await.expect("body"), "Not found.\n");

    // The script's way: sign, post to the bucket, complete, attach, view.
    let bytes = photo("orientation/Portrait_1.jpg");
    let body = json!({"kind": "passport", "filename": "p.jpg", "content_type": "image/jpeg", "size": bytes.len()});
    let res = as_ann(client.post(format!("{origin}/media/api/uploads"))).json(&body).send().await.expect("sign");
    assert_eq!(res.status(), StatusCode::CREATED);
    let signed: Value = res.json().await.expect("json");
    strings(&signed, &mut seen);
    let id = signed["photo_id"].as_str().expect("id").to_owned();
    let (url, fields) = crate::helpers::form_of(&signed);
    assert_eq!(post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await.status(), StatusCode::CREATED);
    let res = as_ann(client.post(format!("{origin}/media/api/uploads/{id}/complete"))).send().await.expect("complete");
    assert_eq!(res.status(), StatusCode::OK);
    let done: Value = res.json().await.expect("json");
    strings(&done, &mut seen);
    assert_eq!(done["photo"]["urls"]["original"], format!("/media/photos/{id}/original"));
    let res = as_ann(client.post(format!("{origin}/media/api/photos/{id}/attach"))).send().await.expect("attach");
    assert_eq!(res.status(), StatusCode::OK);
    let res = as_ann(client.get(format!("{origin}/media/api/photos/{id}"))).send().await.expect("get");
    let got: Value = res.json().await.expect("json");
    strings(&got, &mut seen);
    assert_eq!(got["photo"]["urls"]["display"], format!("/media/photos/{id}/display"));
    let res = as_ann(client.get(format!("{origin}/media/photos/{id}/original"))).send().await.expect("view");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), crate::helpers::as_served(&bytes).as_slice());
    // Someone else is refused the bytes; the host's own API can still attach for anyone.
    let res = client.get(format!("{origin}/media/photos/{id}/original")).header("x-host-user", "bob-7").send().await;
    assert_eq!(res.expect("view").status(), StatusCode::FORBIDDEN);
    let again = shoebox.attach(&Actor::App, id.parse().expect("id"), None).await.expect("the app attaches");
    assert_eq!(again.state, PhotoState::InUse);

    // The pages: the upload page's form, script and links, and the photo page's buttons.
    let page = as_ann(client.get(format!("{origin}/media/upload?kind=passport"))).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    let redirect = hidden_fields(&html).into_iter().find(|(k, _)| k == "success_action_redirect").expect("redirect");
    assert!(
        redirect.1.starts_with(&format!("{origin}/media/uploads/")) && redirect.1.ends_with("/done"),
        "{redirect:?}"
    );
    assert!(html.contains("data-base=\"/media\""), "the script calls the API under the prefix");
    seen.push(redirect.1);
    seen.extend(links(&html));
    let html = as_ann(client.get(format!("{origin}/media/photos/{id}")))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(html.contains(&format!("action=\"/media/photos/{id}/delete\"")), "{html}");
    seen.extend(links(&html));
    // A page form's redirect stays under the prefix.
    let res = as_ann(client.post(format!("{origin}/media/photos/{id}/delete")))
        .form(&[("csrf", "host-csrf-token")])
        .send()
        .await
        .expect("delete");
    assert_eq!((res.status(), res.headers()["location"].to_str().expect("loc")), (StatusCode::SEE_OTHER, "/media"));
    let script = client.get(format!("{origin}/media/static/upload.js")).send().await.expect("js");
    assert_eq!(script.status(), StatusCode::OK);

    let s3 = url.split('/').take(3).collect::<Vec<_>>().join("/");
    let app_urls: Vec<String> = seen.into_iter().filter(|s| !s.starts_with(&s3)).collect();
    assert!(app_urls.len() > 10, "{app_urls:?}");
    assert_within_prefix("answers and pages", &app_urls, &origin);
    server.abort();
    db.close().await;
}

/// The seed's `StevePhoto`, through the example app with a held clock: signed, uploaded,
/// attached, kept, kept again with a new time while under ten years, deleted with the reason
/// once over, and a tombstone left. Only Steve is ever given its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_steve_photo_lives_and_dies_by_the_seeds_rules() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("steve.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("pool");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let start = now_millis();
    let clock = Arc::new(ManualClock::new(start));
    let (state, router) =
        app::build(pool.clone(), dir.path(), std::slice::from_ref(&origin), clock.clone()).await.expect("app");
    let server = tokio::spawn(async move {
        shoebox::http::serve(listener, router, std::future::pending(), Duration::from_secs(1)).await.expect("serve");
    });
    let browser = |name: &str| {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        (client, format!("steve_example_user={name}"))
    };
    let (ann, ann_cookie) = browser("ann");
    let shoebox = &state.shoebox;

    // Ann uploads a photo of Steve, taken when he was 30 (2020).
    let bytes = photo("orientation/Landscape_1.jpg");
    let body = json!({"kind": "steve", "filename": "steve.jpg", "content_type": "image/jpeg", "size": bytes.len()});
    let res = ann
        .post(format!("{origin}/media/api/uploads"))
        .header("cookie", &ann_cookie)
        .header("origin", &origin)
        .json(&body)
        .send()
        .await
        .expect("sign");
    assert_eq!(res.status(), StatusCode::CREATED);
    let signed: Value = res.json().await.expect("json");
    let id: PhotoId = signed["photo_id"].as_str().expect("id").parse().expect("id");
    assert_eq!(shoebox.photo(id).await.expect("q").expect("row").state, PhotoState::Signed);
    let (url, fields) = crate::helpers::form_of(&signed);
    assert_eq!(post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await.status(), StatusCode::CREATED);
    let res = ann
        .post(format!("{origin}/media/api/uploads/{id}/complete"))
        .header("cookie", &ann_cookie)
        .header("origin", &origin)
        .send()
        .await
        .expect("complete");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(shoebox.photo(id).await.expect("q").expect("row").state, PhotoState::Ready);

    // The host records Steve's age in its own table and attaches the photo as the
    // application, keeping it at least a year.
    photo::StevePhoto::set_age(&pool, id, 30).await.expect("age");
    let attached = shoebox.attach(&Actor::App, id, Some(start + YEAR)).await.expect("attached");
    assert_eq!((attached.state, attached.keep_until), (PhotoState::InUse, Some(start + YEAR)));

    // Only Steve gets the bytes; Ann (who uploaded it) and anyone else get not one byte.
    let get = |client: reqwest::Client, cookie: Option<String>| {
        let url = format!("{origin}/media/photos/{id}/original");
        async move {
            let mut req = client.get(url);
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let res = req.send().await.expect("GET");
            (res.status(), res.bytes().await.expect("body").to_vec())
        }
    };
    let served = crate::helpers::as_served(&bytes);
    let (steve_client, steve_cookie) = browser("steve");
    let (status, body) = get(steve_client.clone(), Some(steve_cookie.clone())).await;
    assert_eq!((status, body == served), (StatusCode::OK, true), "Steve sees it");
    for (who, cookie) in
        [("ann", Some(ann_cookie.clone())), ("bob", Some("steve_example_user=bob".into())), ("nobody", None)]
    {
        let (status, body) = get(ann.clone(), cookie).await;
        assert!(
            matches!(status, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND),
            "{who}: {status}"
        );
        assert!(!body.windows(4).any(|w| served.windows(4).next() == Some(w)), "{who}: not one byte of the photo");
        assert!(body.len() < 400, "{who}: an error, not a photo");
    }

    // A year and a day on: the photo is seven years old, so the kind keeps it, with a new time
    // from the ten-year rule (three years left, plus ten days of fudge).
    clock.set(start + YEAR + DAY);
    let opts = shoebox::jobs::clean_up::Options::new(shoebox.now());
    let s = shoebox.clean_up_no_longer_needed(&opts).await.expect("runs");
    assert_eq!((s.deleted, s.kept_longer), (0, 1), "{s:?}");
    let kept = shoebox.photo(id).await.expect("q").expect("row");
    let taken = photo::taken(30).expect("taken");
    let years_left = photo::KEEP_YEARS - photo::photo_age_years(taken, shoebox.now());
    assert!((1..10).contains(&years_left), "{years_left}");
    let expected = shoebox.now() + (years_left * 365 + photo::FUDGE_DAYS) * DAY;
    assert_eq!((kept.state, kept.keep_until), (PhotoState::InUse, Some(expected)), "kept again, until {expected}");

    // Past that time the photo is over ten years old: deleted, with the kind's reason.
    clock.set(expected + DAY);
    let s = shoebox.clean_up_no_longer_needed(&shoebox::jobs::clean_up::Options::new(shoebox.now())).await;
    let s = s.expect("runs");
    assert_eq!((s.deleted, s.kept_longer, s.errors), (1, 0, 0), "{s:?}");
    let tomb = shoebox.photo(id).await.expect("q").expect("the tombstone stays");
    assert_eq!(tomb.state, PhotoState::Deleted);
    assert_eq!(tomb.deleted_at, Some(shoebox.now()));
    let reason = tomb.deleted_reason.expect("a reason");
    assert!(reason.contains("years old, and they are kept for 10"), "{reason}");
    let (status, _) = get(steve_client, Some(steve_cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "gone for Steve too");
    let key = tomb.object_key.expect("key");
    let left = files_under(&dir.path().join("s3/steve-photos"));
    assert!(left.is_empty(), "no object of {key} left in the bucket: {left:?}");
    server.abort();
    pool.close().await;
}

/// The object files under a folder of the embedded endpoint (its hidden sidecars left out).
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(path);
        }
    }
    out
}
