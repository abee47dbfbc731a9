//! The private proxy's HTTP semantics (HEAD, one Range, validators, the headers), that nothing
//! of a private photo reaches anyone its kind does not allow, the answers when S3 is down or
//! hung, and the optional redirect mode.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shoebox::PrivateDelivery;
use shoebox_app::settings::{
    AppLimits, KindSettings, Secret, Settings, StorageSettings, embedded_buckets, example_kinds,
};
use tokio::task::JoinHandle;

use crate::helpers::{
    S3State, Switch, TestApp, as_served, form_of, hidden_value, meta_csrf, photo, post_to_bucket, set_cookie,
};

/// A small private photo (a WebP the id_document kind takes), as uploaded and as served.
pub(crate) const SMALL: &str = "formats/alpha-lossy_400x301.webp";

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).map_or("", |v| v.to_str().unwrap_or(""))
}

/// Whether `body` holds any stretch of `secret` long enough to be a leak rather than chance:
/// every 32-byte chunk of the photo is looked for, so any leaked run of 63 bytes or more is
/// found, and the photo's first 12 bytes (its magic number and size) on their own too.
fn leaks(body: &[u8], secret: &[u8]) -> bool {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    has(&secret[..12]) || secret.chunks_exact(32).any(has)
}

async fn private_photo(app: &TestApp) -> (crate::helpers::TestUser, String, Vec<u8>) {
    let ann = app.sign_up_elsewhere("ann@example.com").await;
    let uploaded = ann.upload("id_document", photo(SMALL), "image/webp").await;
    let id = uploaded["id"].as_str().expect("id").to_owned();
    (ann, format!("/photos/{id}/original"), as_served(&photo(SMALL)))
}

async fn send(client: &reqwest::Client, method: Method, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

async fn a_private_photo_answers_ranges_validators_and_head(app: TestApp) {
    let (ann, path, served) = private_photo(&app).await;
    let url = app.url(&path);
    let len = served.len();
    let get = |h: &'static [(&'static str, &'static str)]| send(&ann.client, Method::GET, &url, h);

    let whole = get(&[]).await;
    assert_eq!(whole.status(), StatusCode::OK);
    let h = whole.headers().clone();
    let etag = header(&h, "etag").to_owned();
    let modified = header(&h, "last-modified").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 2, "a quoted ETag: {etag:?}");
    assert!(httpdate::parse_http_date(&modified).is_ok(), "an HTTP date: {modified:?}");
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    assert_eq!(header(&h, "content-length"), len.to_string());
    assert_eq!(header(&h, "content-type"), "image/webp");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(header(&h, "content-security-policy"), "default-src 'none'; sandbox");
    assert_eq!(header(&h, "content-disposition"), "inline; filename=\"photo.webp\"");
    assert_eq!(header(&h, "cache-control"), "private, no-cache");
    assert_eq!(whole.bytes().await.expect("body"), served);

    // One range, in each form: 206, exactly those bytes, and a Content-Range that says so.
    for (range, from, to) in [("bytes=0-99", 0, 99), ("bytes=100-", 100, len - 1), ("bytes=-10", len - 10, len - 1)] {
        let res = send(&ann.client, Method::GET, &url, &[("range", range)]).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let h = res.headers().clone();
        assert_eq!(header(&h, "content-range"), format!("bytes {from}-{to}/{len}"), "{range}");
        assert_eq!(header(&h, "content-length"), (to - from + 1).to_string(), "{range}");
        assert_eq!(header(&h, "etag"), etag);
        assert_eq!(header(&h, "cache-control"), "private, no-cache");
        assert_eq!(res.bytes().await.expect("body"), &served[from..=to], "{range}");
    }
    let past_end = format!("bytes={len}-");
    for range in [past_end.as_str(), "bytes=-0"] {
        let res = send(&ann.client, Method::GET, &url, &[("range", range)]).await;
        assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header(res.headers(), "content-range"), format!("bytes */{len}"), "{range}");
    }
    // Several ranges, or a malformed one, are answered with the whole photo.
    for range in ["bytes=0-1,5-6", "bytes=9-3", "pages=1-2"] {
        let res = send(&ann.client, Method::GET, &url, &[("range", range)]).await;
        assert_eq!(res.status(), StatusCode::OK, "{range}");
        assert_eq!(res.bytes().await.expect("body"), served, "{range}");
    }

    // Validators: a current copy costs a 304 with no body; a stale one gets the photo.
    let res = send(&ann.client, Method::GET, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(res.headers(), "etag"), etag);
    assert_eq!(header(res.headers(), "cache-control"), "private, no-cache");
    assert!(res.bytes().await.expect("body").is_empty());
    let res = send(&ann.client, Method::GET, &url, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.expect("body"), served);
    let res = send(&ann.client, Method::GET, &url, &[("if-modified-since", &modified)]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = send(&ann.client, Method::GET, &url, &[("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.expect("body"), served);

    // HEAD: the same headers, no body.
    let res = send(&ann.client, Method::HEAD, &url, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(header(&h, "content-length"), len.to_string());
    assert_eq!((header(&h, "etag"), header(&h, "content-type")), (etag.as_str(), "image/webp"));
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    assert!(res.bytes().await.expect("body").is_empty());
    let res = send(&ann.client, Method::HEAD, &url, &[("range", "bytes=10-19")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(res.headers(), "content-range"), format!("bytes 10-19/{len}"));
}

/// Logs `email` in a fresh client and returns the raw session token its cookie carries.
async fn log_in_and_capture_session(app: &TestApp, client: &reqwest::Client, email: &str) -> String {
    let res = app.log_in(client, email).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&res, "shoebox_session");
    let value = cookie.strip_prefix("shoebox_session=").expect("named");
    value.split(';').next().expect("value").to_owned()
}

/// Who asks, in which browser, with which method, for which path, with which extra headers.
type Attempt<'a> = (&'a str, reqwest::Client, Method, String, Vec<(&'a str, &'a str)>);

async fn nothing_of_a_private_photo_reaches_anyone_else(app: TestApp) {
    let (ann, path, served) = private_photo(&app).await;
    let id = path.split('/').nth(2).expect("id").to_owned();
    let own = send(&ann.client, Method::GET, &app.url(&path), &[]).await;
    let etag = header(own.headers(), "etag").to_owned();
    assert!(!leaks(b"unrelated", &served) && leaks(&own.bytes().await.expect("body"), &served), "the check works");
    let key = {
        let photo_id = id.parse().expect("photo id");
        let row = app.shoebox.photo(photo_id).await.expect("db").expect("row");
        row.object_key.expect("served key")
    };

    // A session of ann's, captured, then logged out, then replayed from elsewhere.
    let other_browser = app.new_browser();
    let session = log_in_and_capture_session(&app, &other_browser, "ann@example.com").await;
    let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let with_cookie = format!("shoebox_session={session}");
    let before = send(&replay, Method::GET, &app.url(&path), &[("cookie", &with_cookie)]).await;
    assert_eq!(before.status(), StatusCode::OK, "the captured session works before logout");
    for (client, csrf) in [(&other_browser, app.csrf_of(&other_browser).await), (&ann.client, ann.csrf.clone())] {
        let out = client.post(app.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.expect("logout");
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
    }

    let anonymous = app.new_browser();
    let bob = app.sign_up_elsewhere("bob@example.com").await;
    let unknown = uuid::Uuid::new_v4();
    let tricks = [
        format!("/photos/{id}/original.jpg"),
        format!("/photos/{id}/original%2f"),
        format!("/photos/{id}%2foriginal"),
        format!("/photos/..%2f..%2f{key}"),
        format!("/photos/{id}/..%2foriginal"),
        format!("/photos/{}/original", key.replace('/', "%2f")),
        format!("/photos/{key}/original"),
        format!("/{key}"),
        format!("/shoebox-private/{key}"),
        format!("/photos/{unknown}/original"),
        format!("/photos/{}/original", id.to_uppercase()),
        "/photos/..%2f../original".to_owned(),
        format!("/photos/{id}/original/"),
        format!("/photos/{id}/thumb"),
    ];
    let range = ("range", "bytes=0-99");
    let validator = ("if-none-match", etag.as_str());
    let mut attempts: Vec<Attempt> = Vec::new();
    for (who, client) in
        [("anonymous", anonymous.clone()), ("bob", bob.client.clone()), ("ann, logged out", ann.client.clone())]
    {
        for method in [Method::GET, Method::HEAD] {
            for extra in [vec![], vec![range], vec![validator], vec![range, validator]] {
                attempts.push((who, client.clone(), method.clone(), path.clone(), extra));
            }
        }
        for t in &tricks {
            attempts.push((who, client.clone(), Method::GET, t.clone(), vec![range]));
            attempts.push((who, client.clone(), Method::GET, t.clone(), vec![]));
        }
    }
    for extra in [vec![], vec![range], vec![validator]] {
        for method in [Method::GET, Method::HEAD] {
            let mut h = extra.clone();
            h.push(("cookie", with_cookie.as_str()));
            attempts.push(("a logged-out session replayed", replay.clone(), method, path.clone(), h));
        }
    }
    assert!(attempts.len() > 100);
    for (who, client, method, url, extra) in attempts {
        let res = send(&client, method.clone(), &app.url(&url), &extra).await;
        let status = res.status();
        let h = res.headers().clone();
        let body = res.bytes().await.expect("body");
        let what = format!("{who}: {method} {url} {extra:?} answered {status}");
        // The photo page's route answers a signed-out browser by sending it to log in.
        let to_login = status == StatusCode::SEE_OTHER && header(&h, "location") == "/login";
        assert!(status.is_client_error() || to_login, "{what}");
        assert!(!leaks(&body, &served), "{what}: photo bytes in the body");
        assert_ne!(header(&h, "etag"), etag, "{what}: the ETag leaked");
        assert!(h.get("content-range").is_none(), "{what}: a Content-Range leaked");
        assert!(h.get("last-modified").is_none(), "{what}: Last-Modified leaked");
        assert_ne!(header(&h, "content-length"), served.len().to_string(), "{what}: the length leaked");
        assert_ne!(header(&h, "content-type"), "image/webp", "{what}");
    }
    // The bucket endpoint itself refuses anonymous reads of the private object, ranged or not.
    for extra in [vec![], vec![range]] {
        let res = send(&anonymous, Method::GET, &format!("{}/shoebox-private/{key}", app.s3_endpoint), &extra).await;
        assert!(res.status().is_client_error(), "{}", res.status());
        assert!(!leaks(&res.bytes().await.expect("body"), &served));
    }
}

async fn a_missing_object_for_a_live_photo_is_a_404(app: TestApp) {
    let (ann, path, _) = private_photo(&app).await;
    let id = path.split('/').nth(2).expect("id").parse().expect("id");
    let row = app.shoebox.photo(id).await.expect("db").expect("row");
    let key = row.object_key.as_deref().expect("key");
    app.s3().delete_object().bucket("shoebox-private").key(key).send().await.expect("delete");
    for (method, extra) in [(Method::GET, vec![]), (Method::GET, vec![("range", "bytes=0-9")]), (Method::HEAD, vec![])]
    {
        let res = send(&ann.client, method, &app.url(&path), &extra).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

async fn a_client_that_goes_away_mid_photo_leaves_the_server_healthy(app: TestApp) {
    let ann = app.sign_up_elsewhere("ann@example.com").await;
    let big = photo("camera/samsung-galaxy-s7-edge_4032x3024.jpg");
    let uploaded = ann.upload("id_document", big.clone(), "image/jpeg").await;
    let url = app.url(&format!("/photos/{}/original", uploaded["id"].as_str().expect("id")));
    let served = as_served(&big);
    for _ in 0..8 {
        let mut res = ann.client.get(&url).send().await.expect("GET");
        let first = res.chunk().await.expect("chunk").expect("some bytes");
        assert!(served.starts_with(&first));
        drop(res); // hang up a few kilobytes into a 4 MB photo
    }
    let whole = ann.client.get(&url).send().await.expect("GET");
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.bytes().await.expect("body").len(), served.len());
    assert_eq!(app.healthz().await, StatusCode::OK);
}

async fn a_stopped_endpoint_gets_a_503_with_retry_after(mut app: TestApp) {
    let (ann, path, _) = private_photo(&app).await;
    app.stop_s3().await;
    let started = Instant::now();
    let res = ann.get(&path).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(res.headers(), "retry-after").parse::<u64>().is_ok_and(|s| s > 0));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "storage_unavailable");
    assert!(started.elapsed() < Duration::from_secs(10), "answered in {:?}", started.elapsed());
    assert_eq!(ann.get("/").await.status(), StatusCode::OK, "pages that do not need S3 still work");
}

both_backends!(
    a_private_photo_answers_ranges_validators_and_head,
    nothing_of_a_private_photo_reaches_anyone_else,
    a_missing_object_for_a_live_photo_is_a_404,
    a_client_that_goes_away_mid_photo_leaves_the_server_healthy,
    a_stopped_endpoint_gets_a_503_with_retry_after,
);

/// A Shoebox (SQLite) whose buckets are reached through a [`Switch`], with its own kinds.
pub(crate) struct Rig {
    base: String,
    pub(crate) s3: Switch,
    pub(crate) client: reqwest::Client,
    csrf: String,
    db: shoebox::Db,
    server: JoinHandle<()>,
    _embedded: shoebox::embedded::EmbeddedS3,
    _dir: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Rig {
    pub(crate) async fn start(kinds: Vec<KindSettings>) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let embedded = shoebox::embedded::start(&dir.path().join("s3"), listen, &embedded_buckets(), &[], 20_000_000)
            .await
            .expect("embedded S3");
        let upstream: SocketAddr = embedded.endpoint.trim_start_matches("http://").parse().expect("addr");
        let s3 = Switch::start(upstream).await;
        let settings = Settings {
            listen,
            public_url: None,
            allowed_hosts: Vec::new(),
            database_url: Secret::new(format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())),
            storage: StorageSettings::Endpoint { url: s3.url.clone(), credentials: embedded.credentials.clone() },
            buckets: embedded_buckets(),
            kinds,
            limits: shoebox::Limits::default(),
            app: AppLimits::default(),
        };
        // Built and served as `shoebox serve` does.
        let built = shoebox_app::server::build(&settings).await.expect("build");
        let base = format!("http://{}", built.addr);
        let db = built.state.shoebox.db().clone();
        let server = tokio::spawn(async move {
            shoebox::http::serve(
                built.listener,
                built.router,
                std::future::pending(),
                std::time::Duration::from_secs(1),
            )
            .await
            .expect("serve")
        });
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("c");
        let html = client.get(format!("{base}/signup")).send().await.expect("page").text().await.expect("html");
        let form_csrf = hidden_value(&html, "csrf").expect("csrf");
        let form = [("csrf", form_csrf.as_str()), ("email", "ann@example.com"), ("password", "correct horse battery")];
        let res = client.post(format!("{base}/signup")).form(&form).send().await.expect("signup");
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let home = client.get(format!("{base}/")).send().await.expect("home").text().await.expect("html");
        let csrf = meta_csrf(&home).expect("signed in");
        Self { base, s3, client, csrf, db, server, _embedded: embedded, _dir: dir }
    }

    /// The signed-in user's CSRF token.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).header("x-csrf-token", &self.csrf).json(&body).send().await.expect("post")
    }

    /// Sign a form for a private `id_document` and upload `bytes` with it; the photo id.
    /// Completing is the caller's.
    pub(crate) async fn sign_and_send(&self, bytes: Vec<u8>) -> String {
        // The type the bytes say they are, as a browser would declare it.
        let image_type = shoebox::imaging::probe(&bytes).expect("an image").image_type;
        let (content_type, filename) = (image_type.mime(), format!("photo.{}", image_type.extension()));
        let body =
            json!({"kind": "id_document", "filename": filename, "content_type": content_type, "size": bytes.len()});
        let signed: Value = self.post("/api/uploads", body).await.json().await.expect("json");
        let (url, fields) = form_of(&signed);
        assert_eq!(post_to_bucket(&url, &fields, bytes, content_type).await.status(), StatusCode::CREATED);
        signed["photo_id"].as_str().expect("id").to_owned()
    }

    /// Upload and complete a private photo; the path it is served at. Returns once completion's
    /// background work has made its two variants, so S3 sees nothing more of it unasked.
    pub(crate) async fn upload(&self, bytes: Vec<u8>) -> String {
        let id = self.sign_and_send(bytes).await;
        assert_eq!(self.post(&format!("/api/uploads/{id}/complete"), json!({})).await.status(), StatusCode::OK);
        let shoebox::Db::Sqlite(db) = &self.db else { unreachable!("the rig runs on SQLite") };
        let made = "select count(*) from shoebox_variants where photo_id = $1 and state <> 'making'";
        for _ in 0..1200 {
            let n: i64 = sqlx::query_scalar(made).bind(&id).fetch_one(db).await.expect("count");
            if n == 2 {
                return format!("/photos/{id}/original");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the variants of {id} were not made within a minute");
    }
}

/// The request's answer must be a 503 with Retry-After, and come within a bound (a bound on
/// correctness: far below Heroku's 30 s, not a speed benchmark).
pub(crate) async fn assert_unavailable(what: &str, res: impl std::future::Future<Output = reqwest::Response>) {
    let started = Instant::now();
    let res = res.await;
    let took = started.elapsed();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert!(header(res.headers(), "retry-after").parse::<u64>().is_ok_and(|s| (1..=60).contains(&s)), "{what}");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "storage_unavailable", "{what}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("Try again")), "{what}: {body}");
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_or_hung_gets_503_with_retry_after_and_the_app_recovers_by_itself() {
    let rig = Rig::start(example_kinds()).await;
    let served = as_served(&photo(SMALL));
    let path = rig.upload(photo(SMALL)).await;
    assert_eq!(rig.client.get(rig.url(&path)).send().await.expect("GET").status(), StatusCode::OK);
    let pending = rig.sign_and_send(photo(SMALL)).await;
    let complete = format!("/api/uploads/{pending}/complete");

    for state in [S3State::Down, S3State::Hung] {
        rig.s3.set(state);
        assert_unavailable(&format!("{state:?}: proxy"), async {
            rig.client.get(rig.url(&path)).send().await.expect("GET")
        })
        .await;
        let ranged = async { rig.client.get(rig.url(&path)).header("range", "bytes=0-9").send().await.expect("GET") };
        assert_unavailable(&format!("{state:?}: ranged proxy"), ranged).await;
        assert_unavailable(&format!("{state:?}: completion"), rig.post(&complete, json!({}))).await;
        let home = rig.client.get(rig.url("/")).send().await.expect("home");
        assert_eq!(home.status(), StatusCode::OK, "{state:?}: pages that do not need S3 still render");
        let listed = path.trim_end_matches("/original");
        assert!(home.text().await.expect("html").contains(listed), "{state:?}: the photo is still listed");
        let health = rig.client.get(rig.url("/healthz")).send().await.expect("healthz");
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE, "{state:?}");
    }

    // S3 comes back: the same process serves and completes again, without a restart.
    rig.s3.set(S3State::Up);
    let res = rig.client.get(rig.url(&path)).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.expect("body"), served);
    assert_eq!(rig.post(&complete, json!({})).await.status(), StatusCode::OK);
    assert_eq!(rig.client.get(rig.url("/healthz")).send().await.expect("healthz").status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_mode_answers_a_short_lived_presigned_link_only_to_allowed_viewers() {
    let mut kinds = example_kinds();
    kinds.iter_mut().filter(|k| k.name == "id_document").for_each(|k| k.private_delivery = PrivateDelivery::Redirect);
    let rig = Rig::start(kinds).await;
    let served = as_served(&photo(SMALL));
    let path = rig.upload(photo(SMALL)).await;

    let res = rig.client.get(rig.url(&path)).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(res.headers(), "cache-control"), "no-store");
    let location = header(res.headers(), "location").to_owned();
    assert!(location.starts_with(&format!("{}/shoebox-private/photos/", rig.s3.url)), "{location}");
    assert!(location.contains("X-Amz-Expires=60") && location.contains("X-Amz-Signature="), "{location}");
    let direct = reqwest::get(&location).await.expect("follow");
    assert_eq!(direct.status(), StatusCode::OK);
    assert_eq!(direct.bytes().await.expect("body"), served);
    // The link without its signature is worth nothing.
    let unsigned = location.split('?').next().expect("path");
    assert!(reqwest::get(unsigned).await.expect("GET").status().is_client_error());

    // Anyone the kind does not allow gets no link.
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("c");
    let res = anonymous.get(rig.url(&path)).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("location").is_none());
    assert!(!leaks(&res.bytes().await.expect("body"), &served));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_kinds_keep_private_bytes_behind_the_proxy() {
    let rig = Rig::start(example_kinds()).await;
    let path = rig.upload(photo(SMALL)).await;
    let res = rig.client.get(rig.url(&path)).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK, "streamed, not redirected");
    assert!(res.headers().get("location").is_none());
}
