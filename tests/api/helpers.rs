//! The test harness: a real Shoebox on 127.0.0.1:0 against a fresh database (its own Postgres
//! database or SQLite file) and its own embedded S3 endpoint, with request helpers so each
//! test reads like a story.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use reqwest::multipart::{Form, Part};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use shoebox::{Limits, Shoebox};
use shoebox_app::settings::{
    AppLimits, KindSettings, Secret, Settings, StorageSettings, embedded_buckets, example_kinds,
};
use shoebox_app::web::AppState;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Run one scenario against both backends, as two tests named `<scenario>::postgres` and
/// `<scenario>::sqlite`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await;
            }
        }
    )*};
}

/// The machine's Postgres server; CI starts it. Override with SHOEBOX_TEST_PG.
pub fn postgres_server() -> String {
    std::env::var("SHOEBOX_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A new, empty Postgres database for one test; its name. `TestApp` drops its own; others
/// call [`drop_pg_database`].
pub async fn fresh_pg_database() -> String {
    let name = format!("shoebox_test_{}", &random_token()[..16]);
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", postgres_server()))
        .await
        .expect("Postgres must be running on 127.0.0.1:5432 (see .ci/run)");
    sqlx::query(&format!("create database {name}")).execute(&admin).await.expect("create database");
    admin.close().await;
    name
}

/// 128 random bits as hex, for names nobody else uses.
pub fn random_token() -> String {
    shoebox_app::accounts::random_token()
}

/// Bind `args` to a query of either backend, in order.
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::I(i) => q.bind(*i),
                Arg::S(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The reference app's state: its Shoebox and its accounts.
    pub state: AppState,
    /// The Shoebox the app is built on.
    pub shoebox: Shoebox,
    pub s3_endpoint: String,
    pub s3_credentials: shoebox::SigningCredentials,
    pg_database: Option<String>,
    server: tokio::task::JoinHandle<()>,
    _embedded: Option<shoebox::embedded::EmbeddedS3>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Limits::default(), AppLimits::default()).await
    }

    /// The app with other limits: Shoebox's, and the reference app's own (accounts).
    pub async fn spawn_with(backend: Backend, limits: Limits, app: AppLimits) -> Self {
        Self::spawn_configured(backend, limits, app, example_kinds()).await
    }

    /// The app with other kinds than the examples, as its TOML would describe them.
    pub async fn spawn_with_kinds(backend: Backend, kinds: Vec<KindSettings>) -> Self {
        Self::spawn_configured(backend, Limits::default(), AppLimits::default(), kinds).await
    }

    async fn spawn_configured(backend: Backend, limits: Limits, app: AppLimits, kinds: Vec<KindSettings>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()), None),
            Backend::Postgres => {
                let name = fresh_pg_database().await;
                (format!("{}/{name}", postgres_server()), Some(name))
            }
        };
        let db = shoebox::Db::connect(&database_url, 10).await.expect("database");
        Self::spawn_on(db, dir, pg_database, limits, app, kinds).await
    }

    /// The app on a pool the test opened itself, as a host hands Shoebox its own (`pg_database`
    /// is dropped with the app, on the machine's Postgres server).
    pub async fn spawn_on(
        db: shoebox::Db,
        dir: tempfile::TempDir,
        pg_database: Option<String>,
        limits: Limits,
        app: AppLimits,
        kinds: Vec<KindSettings>,
    ) -> Self {
        // Errors the app logs show up under a failing test's output.
        let _ = tracing_subscriber::fmt().with_env_filter("error").with_test_writer().try_init();
        // The endpoint is started here rather than by the app, so a test can stop it.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let origins = [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")];
        let largest = kinds.iter().map(|k| k.max_bytes).max().unwrap_or(0);
        let embedded = shoebox::embedded::start(
            &dir.path().join("s3"),
            "127.0.0.1:0".parse().expect("addr"),
            &embedded_buckets(),
            &origins,
            largest,
        )
        .await
        .expect("embedded S3");
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            public_url: None,
            allowed_hosts: Vec::new(),
            // Only the pool above is used.
            database_url: Secret::new(String::new()),
            storage: StorageSettings::Endpoint {
                url: embedded.endpoint.clone(),
                credentials: embedded.credentials.clone(),
            },
            buckets: embedded_buckets(),
            kinds,
            limits,
            app,
        };
        let shoebox = shoebox_app::server::shoebox(&settings, db.clone(), &origins).await.expect("shoebox");
        shoebox_app::server::migrate(&shoebox, &db).await.expect("migrate");
        let state = AppState {
            shoebox: shoebox.clone(),
            accounts: shoebox_app::accounts::Accounts::new(db, settings.app.clone()),
        };
        let router = shoebox_app::web::router(state.clone());
        // Served as production serves it: TCP_NODELAY, the peer's address, a drain on shutdown.
        let server = tokio::spawn(async move {
            shoebox::http::serve(listener, router, std::future::pending(), std::time::Duration::from_secs(1))
                .await
                .expect("serve");
        });
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client,
            state,
            shoebox,
            s3_endpoint: embedded.endpoint.clone(),
            s3_credentials: embedded.credentials.clone(),
            pg_database,
            server,
            _embedded: Some(embedded),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A second browser: its own cookies, same app.
    pub fn new_browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// Sign up in the browser `client` and return the signed-in user.
    pub async fn sign_up_with(&self, client: reqwest::Client, email: &str) -> TestUser {
        sign_up_at(&self.base, client, email).await
    }

    /// Sign up in the app's default browser ([`TestApp::client`]).
    pub async fn sign_up(&self, email: &str) -> TestUser {
        self.sign_up_with(self.client.clone(), email).await
    }

    /// Sign up in a browser of their own.
    pub async fn sign_up_elsewhere(&self, email: &str) -> TestUser {
        self.sign_up_with(self.new_browser(), email).await
    }

    /// The CSRF token the home page gives this client's session.
    pub async fn csrf_of(&self, client: &reqwest::Client) -> String {
        csrf_at(&self.base, client).await
    }

    /// Whether an object exists in a configured bucket, asked with the app's own credentials.
    pub async fn object_exists(&self, bucket: &str, key: &str) -> bool {
        self.head(bucket, key).await.is_some()
    }

    /// A plain S3 client for the embedded endpoint, with the app's keys: the tests look at the
    /// buckets the way any S3 client would, not through Shoebox.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_client(&self.s3_endpoint, &self.s3_credentials)
    }

    /// What a HEAD of `key` in the configured bucket `bucket` says: size and content type.
    pub async fn head(&self, bucket: &str, key: &str) -> Option<(u64, Option<String>)> {
        match self.s3().head_object().bucket(format!("shoebox-{bucket}")).key(key).send().await {
            Ok(o) => {
                Some((u64::try_from(o.content_length().unwrap_or(0)).unwrap_or(0), o.content_type().map(str::to_owned)))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => None,
            Err(e) => panic!("HEAD {bucket}/{key}: {e:?}"),
        }
    }

    /// Delete every object whose key starts with `prefix` in the configured bucket `bucket`,
    /// as a plain S3 client would.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) {
        let s3 = self.s3();
        let listed =
            s3.list_objects_v2().bucket(format!("shoebox-{bucket}")).prefix(prefix).send().await.expect("list");
        for o in listed.contents() {
            let key = o.key().expect("key");
            s3.delete_object().bucket(format!("shoebox-{bucket}")).key(key).send().await.expect("delete");
        }
    }

    /// A builder for a second Shoebox on this app's database and buckets (another dyno, a
    /// host), reaching S3 at `endpoint` (the app's own, or a [`Switch`] in front of it). The
    /// caller adds kinds ([`TestApp::example_kinds`]).
    pub fn another_shoebox(&self, endpoint: &str) -> shoebox::ShoeboxBuilder {
        let mut b = Shoebox::builder(self.shoebox.db().clone())
            .credentials(self.s3_credentials.clone())
            .limits(self.shoebox.limits().clone());
        for bucket in embedded_buckets() {
            b = b.bucket(bucket.at_endpoint(endpoint));
        }
        b
    }

    /// `builder` with the reference app's example kinds added, as the app adds them.
    pub fn with_example_kinds(builder: shoebox::ShoeboxBuilder) -> shoebox::ShoeboxBuilder {
        Self::example_kinds().into_iter().fold(builder, shoebox::ShoeboxBuilder::shared_kind)
    }

    /// The reference app's example kinds, as it builds them.
    pub fn example_kinds() -> Vec<std::sync::Arc<dyn shoebox::Kind>> {
        let settings = Settings::from_lookup(|_| None).expect("defaults");
        shoebox_app::settings::configured_kinds(&settings).expect("kinds")
    }

    /// Run `sql` (with `$n` parameters) on this app's database, whichever backend it is;
    /// the rows it changed.
    pub async fn execute(&self, sql: &str, args: &[Arg]) -> u64 {
        match self.shoebox.db() {
            shoebox::Db::Postgres(p) => bind_all!(sqlx::query(sql), args).execute(p).await.expect(sql).rows_affected(),
            shoebox::Db::Sqlite(p) => bind_all!(sqlx::query(sql), args).execute(p).await.expect(sql).rows_affected(),
        }
    }

    /// The single number `sql` selects (a count), on this app's database.
    pub async fn number(&self, sql: &str, args: &[Arg]) -> i64 {
        match self.shoebox.db() {
            shoebox::Db::Postgres(p) => bind_all!(sqlx::query_scalar(sql), args).fetch_one(p).await.expect(sql),
            shoebox::Db::Sqlite(p) => bind_all!(sqlx::query_scalar(sql), args).fetch_one(p).await.expect(sql),
        }
    }

    /// The single text `sql` selects, if a row has it.
    pub async fn text(&self, sql: &str, args: &[Arg]) -> Option<String> {
        match self.shoebox.db() {
            shoebox::Db::Postgres(p) => {
                bind_all!(sqlx::query_scalar(sql), args).fetch_optional(p).await.expect(sql).flatten()
            }
            shoebox::Db::Sqlite(p) => {
                bind_all!(sqlx::query_scalar(sql), args).fetch_optional(p).await.expect(sql).flatten()
            }
        }
    }

    /// Every object key in the embedded bucket's folder (sidecar metadata files excluded).
    pub fn stored_keys(&self, s3_bucket: &str) -> Vec<String> {
        fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let root = self._dir.path().join("s3").join(s3_bucket);
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.retain(|k| !k.starts_with('.') && !k.contains("/."));
        out.sort();
        out
    }

    /// Log `email` in with `client` through the login form (its own page and CSRF token), with
    /// the password every test account has; the answer to the form.
    pub async fn log_in(&self, client: &reqwest::Client, email: &str) -> Response {
        let html = client.get(self.url("/login")).send().await.expect("page").text().await.expect("html");
        let csrf = hidden_value(&html, "csrf").expect("csrf");
        client
            .post(self.url("/login"))
            .form(&[("csrf", csrf.as_str()), ("email", email), ("password", "correct horse battery")])
            .send()
            .await
            .expect("login")
    }

    /// The embedded endpoint's address, for a [`Switch`] in front of it.
    pub fn s3_addr(&self) -> SocketAddr {
        self.s3_endpoint.trim_start_matches("http://").parse().expect("addr")
    }

    /// Where the embedded endpoint keeps an object on disk.
    pub fn s3_path(&self, s3_bucket: &str, key: &str) -> PathBuf {
        self._dir.path().join("s3").join(s3_bucket).join(key)
    }

    /// Stop the embedded S3 endpoint, as if the storage service went away, and wait until it has, so no later request reaches it
    /// (not even over a pooled keep-alive connection).
    pub async fn stop_s3(&mut self) {
        if let Some(e) = self._embedded.take() {
            tokio::time::timeout(std::time::Duration::from_secs(5), e.stop()).await.expect("the endpoint stops");
        }
    }

    pub async fn healthz(&self) -> StatusCode {
        self.client.get(self.url("/healthz")).send().await.expect("healthz").status()
    }
}

/// Sign up at the app served at `base` in the browser `client`, and return the signed-in user:
/// the app may be a [`TestApp`] or a process started as a platform starts it.
pub async fn sign_up_at(base: &str, client: reqwest::Client, email: &str) -> TestUser {
    let page = client.get(format!("{base}/signup")).send().await.expect("signup page").text().await.expect("text");
    let form_csrf = hidden_value(&page, "csrf").expect("form csrf");
    let res = client
        .post(format!("{base}/signup"))
        .form(&[("csrf", form_csrf.as_str()), ("email", email), ("password", "correct horse battery")])
        .send()
        .await
        .expect("signup");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signup should redirect home");
    let csrf = csrf_at(base, &client).await;
    TestUser { base: base.to_owned(), client, csrf }
}

/// The CSRF token the home page of the app at `base` gives this client's session.
pub async fn csrf_at(base: &str, client: &reqwest::Client) -> String {
    let home = client.get(format!("{base}/")).send().await.expect("home").text().await.expect("text");
    meta_csrf(&home).expect("signed in: home page has a csrf meta tag")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(name) = self.pg_database.take() {
            drop_pg_database(name);
        }
    }
}

/// Drop a test's Postgres database. Dropping needs async I/O and `Drop` is sync: it runs on a
/// thread with its own runtime.
pub fn drop_pg_database(name: String) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            if let Ok(admin) = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&format!("{}/postgres", postgres_server()))
                .await
            {
                let _ = sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&admin).await;
                admin.close().await;
            }
        });
    })
    .join();
}

/// A value bound to a query by [`TestApp::execute`] and friends.
#[derive(Debug, Clone)]
pub enum Arg {
    I(i64),
    S(String),
}

/// A plain S3 client for an S3-compatible endpoint.
pub fn s3_client(endpoint: &str, keys: &shoebox::SigningCredentials) -> aws_sdk_s3::Client {
    let credentials = aws_sdk_s3::config::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.clone(),
        None,
        None,
        "test",
    );
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(credentials)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A signed-in user in their own browser: its cookies and the session's CSRF token travel with
/// every call, so tests say what the user does, not how.
#[derive(Clone)]
pub struct TestUser {
    base: String,
    pub client: reqwest::Client,
    pub csrf: String,
}

impl TestUser {
    /// A signed-in user of a server the test started itself (the real binary), at `base`.
    pub fn of(base: &str, client: reqwest::Client, csrf: String) -> Self {
        TestUser { base: base.to_owned(), client, csrf }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The same user sending another CSRF token: a forged or stale page.
    pub fn with_csrf(&self, csrf: &str) -> TestUser {
        TestUser { csrf: csrf.to_owned(), ..self.clone() }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// A JSON API call with the session's CSRF token.
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client.post(self.url(path)).header("x-csrf-token", &self.csrf).json(&body).send().await.expect("API call")
    }

    /// Ask for an upload form.
    pub async fn sign(&self, kind: &str, content_type: &str, size: usize) -> Response {
        let body = json!({"kind": kind, "filename": "photo.jpg", "content_type": content_type, "size": size});
        self.post("/api/uploads", body).await
    }

    /// A JPEG upload form: the photo id, the URL to post to and the ordered fields.
    pub async fn signed_form(&self, kind: &str, size: usize) -> (String, String, Vec<(String, String)>) {
        let signed: Value = self.sign(kind, "image/jpeg", size).await.json().await.expect("json");
        let (url, fields) = form_of(&signed);
        (signed["photo_id"].as_str().expect("photo id").to_owned(), url, fields)
    }

    pub async fn complete(&self, id: &str) -> Response {
        self.post(&format!("/api/uploads/{id}/complete"), json!({})).await
    }

    pub async fn attach(&self, id: &str, body: Value) -> Response {
        self.post(&format!("/api/photos/{id}/attach"), body).await
    }

    /// Sign, upload and complete a photo; returns the photo JSON from `complete`.
    pub async fn upload(&self, kind: &str, bytes: Vec<u8>, content_type: &str) -> Value {
        let signed = self.sign(kind, content_type, bytes.len()).await;
        assert_eq!(signed.status(), StatusCode::CREATED);
        let signed: Value = signed.json().await.expect("json");
        let (url, fields) = form_of(&signed);
        let res = post_to_bucket(&url, &fields, bytes, content_type).await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "bucket accepted the upload: {}",
            res.text().await.unwrap_or_default()
        );
        let done = self.complete(signed["photo_id"].as_str().expect("id")).await;
        assert_eq!(done.status(), StatusCode::OK);
        done.json::<Value>().await.expect("json")["photo"].clone()
    }
}

/// POST a signed form and a file to the bucket, as a browser would.
pub async fn post_to_bucket(url: &str, fields: &[(String, String)], file: Vec<u8>, content_type: &str) -> Response {
    let mut form = Form::new();
    for (k, v) in fields {
        form = form.text(k.clone(), v.clone());
    }
    form = form.part("file", Part::bytes(file).file_name("photo").mime_str(content_type).expect("mime"));
    // A client of its own, as the bucket is another origin; redirects are the test's to follow.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(url)
        .multipart(form)
        .send()
        .await
        .expect("post to bucket")
}

/// The `url` and ordered `fields` of an `/api/uploads` answer.
/// The whole `Set-Cookie` header that sets cookie `name` (value and attributes).
pub fn set_cookie(res: &Response, name: &str) -> String {
    let prefix = format!("{name}=");
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

pub fn form_of(signed: &Value) -> (String, Vec<(String, String)>) {
    let url = signed["upload"]["url"].as_str().expect("url").to_owned();
    let fields = signed["upload"]["fields"]
        .as_object()
        .expect("fields")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string field").to_owned()))
        .collect();
    (url, fields)
}

pub fn set_field(fields: &mut [(String, String)], name: &str, value: &str) {
    for (k, v) in fields.iter_mut() {
        if k == name {
            *v = value.to_owned();
        }
    }
}

pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).expect("field present")
}

/// The value of the first hidden input called `name` in a page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(unescape(&html[start..start + end]))
}

/// Every hidden input of the upload form, in order.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<input type=\"hidden\" name=\"") {
        rest = &rest[i + "<input type=\"hidden\" name=\"".len()..];
        let name_end = rest.find('"').expect("name end");
        let name = rest[..name_end].to_owned();
        let vstart = rest.find("value=\"").expect("value") + "value=\"".len();
        let vend = rest[vstart..].find('"').expect("value end");
        out.push((name, unescape(&rest[vstart..vstart + vend])));
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&#43;", "+")
        .replace("&#x2b;", "+")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&#61;", "=")
        .replace("&#x3d;", "=")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn meta_csrf(html: &str) -> Option<String> {
    let marker = "<meta name=\"csrf-token\" content=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// A file from the shared photo set beside the repository.
pub fn photo(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/photos").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// What Shoebox serves for an uploaded image: the same image data without its metadata.
pub fn as_served(upload: &[u8]) -> Vec<u8> {
    let info = shoebox::imaging::probe(upload).expect("an image");
    shoebox::imaging::strip_metadata(upload, info.image_type, info.orientation).expect("strips")
}

// --- S3 behind a switch: up, down, hung, or failing in the ways a real S3 will not on demand

/// What the [`Switch`] in front of the embedded endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3State {
    /// Passes every request on.
    Up,
    /// Closes every connection at once, before any answer: S3 stopped.
    Down,
    /// Accepts connections and never answers.
    Hung,
    /// Answers every request itself with an S3 error document (`status`, S3's `code`), as
    /// S3 does when it is broken (500 `InternalError`), overloaded (503 `ServiceUnavailable`)
    /// or throttling (503 `SlowDown`); nothing reaches the endpoint.
    Failing(u16, &'static str),
    /// Passes every request on after this long: an S3 that answers, too late.
    Slow(Duration),
    /// Passes requests on, but cuts each answer's body off after this many bytes and closes
    /// the connection: the answer's `Content-Length` promised more.
    CutAfter(usize),
}

/// A front for the embedded endpoint that the test can turn off, hang or make fail: the only
/// fault injection in the tests, for faults a real server will not produce on demand.
///
/// `Down` and `Hung` act on TCP connections. Every other state is an HTTP/1.1 proxy (hyper on
/// both sides) that decides per request, so it can answer as S3 does when it fails, wait, or
/// cut a body short. Requests keep their `Host` header, so the SDK's signatures still match.
/// Switching drops every open connection, so the app's pooled connections see the new state
/// at once.
pub struct Switch {
    pub url: String,
    shared: Arc<SwitchState>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

struct SwitchState {
    upstream: SocketAddr,
    state: Mutex<S3State>,
    /// The next this many requests are answered with this error, whatever the state.
    fail_next: Mutex<(usize, u16, &'static str)>,
    /// Requests the proxy has read, as `METHOD /path?query` (connections `Down` or `Hung`
    /// took carry none).
    seen: Mutex<Vec<String>>,
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Incoming>,
}

type ProxyBody = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Switch {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let shared = Arc::new(SwitchState {
            upstream,
            state: Mutex::new(S3State::Up),
            fail_next: Mutex::new((0, 0, "")),
            seen: Mutex::default(),
            client,
        });
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (shared, conns) = (shared.clone(), conns.clone());
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let now = *shared.state.lock().expect("lock");
                    let task = match now {
                        S3State::Down => continue, // dropped: closed before any answer
                        S3State::Hung => tokio::spawn(async move {
                            let _held = inbound;
                            std::future::pending::<()>().await;
                        }),
                        _ => {
                            let shared = shared.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req| {
                                    let shared = shared.clone();
                                    async move { Ok::<_, std::convert::Infallible>(shared.answer(req).await) }
                                });
                                let io = hyper_util::rt::TokioIo::new(inbound);
                                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                            })
                        }
                    };
                    conns.lock().expect("lock").push(task);
                }
            }
        });
        Self { url, shared, conns, accept }
    }

    pub fn set(&self, to: S3State) {
        *self.shared.state.lock().expect("lock") = to;
        for c in self.conns.lock().expect("lock").drain(..) {
            c.abort();
        }
    }

    /// Answer the next `n` requests with S3's error `code` and `status`, then go on as the
    /// state says: a fault that passes while the SDK retries.
    pub fn fail_next(&self, n: usize, status: u16, code: &'static str) {
        *self.shared.fail_next.lock().expect("lock") = (n, status, code);
    }

    /// How many requests have reached the switch so far.
    pub fn requests(&self) -> usize {
        self.shared.seen.lock().expect("lock").len()
    }

    /// The requests that reached the switch after the first `from`, as `METHOD /path?query`.
    pub fn requests_since(&self, from: usize) -> Vec<String> {
        self.shared.seen.lock().expect("lock")[from..].to_vec()
    }
}

impl SwitchState {
    async fn answer(&self, mut req: hyper::Request<Incoming>) -> hyper::Response<ProxyBody> {
        use http_body_util::BodyExt as _;
        self.seen.lock().expect("lock").push(format!("{} {}", req.method(), req.uri()));
        let failing = {
            let mut next = self.fail_next.lock().expect("lock");
            if next.0 > 0 {
                next.0 -= 1;
                Some((next.1, next.2))
            } else {
                None
            }
        };
        let state = *self.state.lock().expect("lock");
        let failing = failing.or(match state {
            S3State::Failing(status, code) => Some((status, code)),
            _ => None,
        });
        if let Some((status, code)) = failing {
            // The request is read whole first, so the client sees the answer rather than a
            // connection reset over a body it was still sending.
            let _ = req.body_mut().collect().await;
            return s3_error(status, code);
        }
        if let S3State::Slow(delay) = state {
            tokio::time::sleep(delay).await;
        }
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        *req.uri_mut() = format!("http://{}{path}", self.upstream).parse().expect("uri");
        // The client sends bodies at once, so an `Expect` would only make the endpoint send a
        // 100 Continue nobody waits for.
        req.headers_mut().remove(hyper::header::EXPECT);
        match self.client.request(req).await {
            Ok(res) => {
                let (parts, body) = res.into_parts();
                let body = match state {
                    S3State::CutAfter(n) => Cut { inner: body, left: n }.boxed(),
                    _ => body.map_err(BoxError::from).boxed(),
                };
                hyper::Response::from_parts(parts, body)
            }
            Err(e) => {
                let mut res = hyper::Response::new(full(format!("switch: {e}")));
                *res.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                res
            }
        }
    }
}

fn full(text: String) -> ProxyBody {
    use http_body_util::BodyExt as _;
    http_body_util::Full::new(bytes::Bytes::from(text)).map_err(|never| match never {}).boxed()
}

/// What S3 answers when it fails: an XML error document with its code and a request id.
fn s3_error(status: u16, code: &str) -> hyper::Response<ProxyBody> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>Injected by the test's switch.</Message><RequestId>SWITCH</RequestId></Error>"
    );
    let mut res = hyper::Response::new(full(xml));
    *res.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    res.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/xml"));
    res.headers_mut().insert("x-amz-request-id", hyper::header::HeaderValue::from_static("SWITCH"));
    res
}

/// A body passed on until `left` bytes have gone, then broken: hyper closes the connection
/// instead of ending the message, so the client is short of what `Content-Length` promised.
struct Cut {
    inner: Incoming,
    left: usize,
}

impl hyper::body::Body for Cut {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, BoxError>>> {
        use std::task::Poll;
        if self.left == 0 {
            return Poll::Ready(Some(Err("the switch cut the body off".into())));
        }
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    data.truncate(self.left);
                    self.left -= data.len();
                    Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.set(S3State::Down);
        self.accept.abort();
    }
}
