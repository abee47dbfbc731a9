//! What an operator sees: the real binary's log lines (JSON when stderr is not a terminal,
//! every request's lines carrying its id, a 5xx logged once, no secret anywhere), its
//! `/metrics` (counts that move by exactly the traffic sent, every series labelled with the
//! dyno), and S3's failures in plain words wherever they are reported.
//!
//! The log and metrics tests start `shoebox serve` as a process of its own against Postgres and
//! an embedded S3 endpoint this test owns: its stderr is the log a drain would read, and its
//! Prometheus recorder is its own (the recorder is process-wide, and the other tests' apps
//! share this test binary).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, TestUser, drop_pg_database, form_of, fresh_pg_database, hidden_value, meta_csrf, photo,
    post_to_bucket, postgres_server, random_token,
};

/// A password nobody else uses, to search the logs for.
const PASSWORD: &str = "obs-Password-7Kq horse staple";

/// The buckets the test's own endpoint serves, and a third bucket name for the same S3 bucket
/// with a wrong secret: a failing S3 call on demand.
fn config(endpoint: &str, forms_per_minute: u32) -> String {
    let bucket = |name: &str, s3: &str, access: &str, secret_env: &str| {
        format!(
            "[[buckets]]\nname = \"{name}\"\nbucket = \"{s3}\"\naccess = \"{access}\"\nregion = \"us-east-1\"\n\
             endpoint = \"{endpoint}\"\naccess_key_id_env = \"OBS_S3_KEY\"\nsecret_access_key_env = \"{secret_env}\"\n\
             owned = true\n\n"
        )
    };
    format!(
        "forms_per_minute = {forms_per_minute}\n\n{}{}{}\
         [[kinds]]\nname = \"photo\"\nbucket = \"private\"\n\n[[kinds]]\nname = \"broken\"\nbucket = \"misconfigured\"\n",
        bucket("public", "shoebox-public", "public", "OBS_S3_SECRET"),
        bucket("private", "shoebox-private", "private", "OBS_S3_SECRET"),
        bucket("misconfigured", "shoebox-private", "private", "OBS_S3_WRONG_SECRET"),
    )
}

/// `shoebox serve` as its own process, its stderr in a file; stopped with SIGTERM.
struct Served {
    base: String,
    child: Option<Child>,
    log: PathBuf,
    env: Vec<(String, String)>,
    pg_database: String,
    endpoint: Option<shoebox::embedded::EmbeddedS3>,
    secret: String,
    dir: tempfile::TempDir,
}

impl Served {
    async fn start(forms_per_minute: u32, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let buckets = [
            shoebox::BucketSettings::public("public", "shoebox-public"),
            shoebox::BucketSettings::private("private", "shoebox-private"),
        ];
        let endpoint = shoebox::embedded::start(
            &dir.path().join("s3"),
            "127.0.0.1:0".parse().expect("addr"),
            &buckets,
            &[],
            20_000_000,
        )
        .await
        .expect("embedded S3");
        let config_path = dir.path().join("shoebox.toml");
        std::fs::write(&config_path, config(&endpoint.endpoint, forms_per_minute)).expect("config");
        let pg_database = fresh_pg_database().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let secret = endpoint.credentials.secret_access_key.clone();
        let mut env: Vec<(String, String)> = [
            ("PORT", port.to_string()),
            ("DATABASE_URL", format!("{}/{pg_database}", postgres_server())),
            ("SHOEBOX_CONFIG", config_path.display().to_string()),
            ("SHOEBOX_DATA_DIR", dir.path().display().to_string()),
            ("SHOEBOX_ORIGINS", base.clone()),
            ("OBS_S3_KEY", endpoint.credentials.access_key_id.clone()),
            ("OBS_S3_SECRET", secret.clone()),
            ("OBS_S3_WRONG_SECRET", format!("wrong-{}", random_token())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let log = dir.path().join("serve.log");
        let child = command("serve", &env)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .expect("spawn shoebox serve");
        let served = Self { base, child: Some(child), log, env, pg_database, endpoint: Some(endpoint), secret, dir };
        // Any answer will do: /healthz is 503 while the misconfigured bucket refuses.
        for _ in 0..600 {
            if reqwest::get(served.url("/healthz")).await.is_ok() {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("shoebox serve did not answer: {}", std::fs::read_to_string(&served.log).unwrap_or_default());
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn wrong_secret(&self) -> &str {
        &self.env.iter().find(|(k, _)| k == "OBS_S3_WRONG_SECRET").expect("set").1
    }

    /// Another subcommand with the same environment: its exit status and everything it printed.
    fn run(&self, subcommand: &str) -> (bool, String) {
        let out = command(subcommand, &self.env).output().expect("run");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// SIGTERM, wait for the exit, and the log it wrote.
    async fn stop(&mut self) -> String {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        let exit = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
        assert!(exit.success(), "exit status {exit:?}");
        std::fs::read_to_string(&self.log).expect("log")
    }

    /// Where the test's endpoint keeps an object.
    fn object_path(&self, s3_bucket: &str, key: &str) -> PathBuf {
        self.dir.path().join("s3").join(s3_bucket).join(key)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        drop_pg_database(std::mem::take(&mut self.pg_database));
    }
}

fn command(subcommand: &str, env: &[(String, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shoebox"));
    c.arg(subcommand);
    for k in ["RUST_LOG", "SHOEBOX_LOG_FORMAT", "SHOEBOX_METRICS_TOKEN", "DYNO", "SHOEBOX_CLEAN_UP_EVERY"] {
        c.env_remove(k);
    }
    c.envs(env.iter().map(|(k, v)| (k, v)));
    c
}

/// The value of cookie `name` in a response's `Set-Cookie` headers.
fn cookie_value(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}="))?.split(';').next().map(str::to_owned))
        .filter(|v| !v.is_empty())
}

/// Sign up `email` in a browser of its own through the real pages; the user, and every secret
/// the exchange handed out (cookies, CSRF tokens).
async fn sign_up(base: &str, email: &str, secrets: &mut Vec<String>) -> TestUser {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client.get(format!("{base}/signup")).send().await.expect("page");
    secrets.extend(cookie_value(&page, "shoebox_form_csrf"));
    let form_csrf = hidden_value(&page.text().await.expect("html"), "csrf").expect("csrf");
    let res = client
        .post(format!("{base}/signup"))
        .form(&[("csrf", form_csrf.as_str()), ("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("signup");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    secrets.extend(cookie_value(&res, "shoebox_session"));
    secrets.push(form_csrf);
    let home = client.get(format!("{base}/")).send().await.expect("home").text().await.expect("html");
    let csrf = meta_csrf(&home).expect("signed in");
    secrets.push(csrf.clone());
    TestUser::of(base, client, csrf)
}

/// Log `email` in with a fresh browser through the login form.
async fn log_in(base: &str, email: &str, secrets: &mut Vec<String>) -> TestUser {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client.get(format!("{base}/login")).send().await.expect("page");
    secrets.extend(cookie_value(&page, "shoebox_form_csrf"));
    let form_csrf = hidden_value(&page.text().await.expect("html"), "csrf").expect("csrf");
    let res = client
        .post(format!("{base}/login"))
        .form(&[("csrf", form_csrf.as_str()), ("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    secrets.extend(cookie_value(&res, "shoebox_session"));
    secrets.push(form_csrf);
    let home = client.get(format!("{base}/")).send().await.expect("home").text().await.expect("html");
    let csrf = meta_csrf(&home).expect("logged in");
    secrets.push(csrf.clone());
    TestUser::of(base, client, csrf)
}

/// Sign, upload and complete a photo of `kind`; its id. The form's signature and policy go into
/// `secrets`.
async fn upload(user: &TestUser, kind: &str, bytes: &[u8], secrets: &mut Vec<String>) -> String {
    let signed = user.sign(kind, "image/jpeg", bytes.len()).await;
    assert_eq!(signed.status(), StatusCode::CREATED);
    let signed: Value = signed.json().await.expect("json");
    let (url, fields) = form_of(&signed);
    for (k, v) in &fields {
        if ["policy", "x-amz-signature"].contains(&k.to_ascii_lowercase().as_str()) {
            secrets.push(v.clone());
        }
    }
    let posted = post_to_bucket(&url, &fields, bytes.to_vec(), "image/jpeg").await;
    assert_eq!(posted.status(), StatusCode::CREATED);
    let id = signed["photo_id"].as_str().expect("id").to_owned();
    assert_eq!(user.complete(&id).await.status(), StatusCode::OK);
    id
}

/// The request ids of the spans a JSON log line was written in.
fn request_ids(line: &Value) -> Vec<&str> {
    line["spans"].as_array().into_iter().flatten().filter_map(|s| s["request_id"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_run_logs_one_json_object_a_line_each_with_its_request_id_and_never_a_secret() {
    let mut served = Served::start(30, &[]).await;
    let mut secrets = vec![served.secret.clone(), served.wrong_secret().to_owned(), PASSWORD.to_owned()];
    let email = format!("obs-{}@example.com", &random_token()[..8]);
    let _first = sign_up(&served.base, &email, &mut secrets).await;
    let user = log_in(&served.base, &email, &mut secrets).await;
    let jpeg = photo("orientation/Landscape_1.jpg");
    let id = upload(&user, "photo", &jpeg, &mut secrets).await;
    let original = user.get(&format!("/photos/{id}/original")).await;
    assert_eq!(original.status(), StatusCode::OK);
    let proxied = original.bytes().await.expect("body").len();

    // A failing S3 call: this kind's bucket has a wrong secret, so completion's HEAD is refused.
    let failing_id = format!("obs-failing-{}", random_token());
    let signed: Value = user.sign("broken", "image/jpeg", 1000).await.json().await.expect("json");
    let (_, fields) = form_of(&signed);
    secrets.extend(fields.iter().filter(|(k, _)| k == "policy" || k == "x-amz-signature").map(|(_, v)| v.clone()));
    let broken = signed["photo_id"].as_str().expect("id");
    let res = user
        .client
        .post(served.url(&format!("/api/uploads/{broken}/complete")))
        .header("x-csrf-token", &user.csrf)
        .header("x-request-id", &failing_id)
        .json(&json!({}))
        .send()
        .await
        .expect("complete");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["x-request-id"], failing_id.as_str(), "Heroku's id is kept and echoed");
    assert!(res.text().await.expect("body").contains(&failing_id), "the answer quotes the id");
    assert_eq!(reqwest::get(served.url("/healthz")).await.expect("healthz").status(), StatusCode::SERVICE_UNAVAILABLE);

    let (passed, doctor) = served.run("doctor");
    assert!(!passed, "the misconfigured bucket fails the doctor: {doctor}");
    assert!(
        doctor.contains(
            "answer: HeadBucket on bucket shoebox-private: 403 Forbidden, no error code (a HEAD answer has no body)"
        ) && doctor.contains("then ListObjectsV2 on bucket shoebox-private: 403 Forbidden, SignatureDoesNotMatch"),
        "{doctor}"
    );

    // S3 goes away: the proxy answers 503, logged once in plain words.
    served.endpoint = None;
    let down = user.get(&format!("/photos/{id}/original")).await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let down_id = down.headers()["x-request-id"].to_str().expect("id").to_owned();
    let log = served.stop().await;

    assert!(!log.contains('\u{1b}') && !doctor.contains('\u{1b}'), "no colour codes off a terminal");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}")))
        .collect();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(!log.contains(secret.as_str()), "a secret ({}…) is in the log:\n{log}", &secret[..4]);
        assert!(!doctor.contains(secret.as_str()), "a secret ({}…) is in the doctor's output:\n{doctor}", &secret[..4]);
    }

    // Between start and shutdown every line was written inside a request, and carries its id.
    let message = |l: &Value| l["message"].as_str().unwrap_or_default().to_owned();
    let start = lines.iter().position(|l| message(l).starts_with("Shoebox is running")).expect("start line");
    let end = lines.iter().position(|l| message(l).starts_with("shutting down")).expect("shutdown line");
    for l in &lines[start + 1..end] {
        assert_eq!(request_ids(l).len(), 1, "a line without its request id: {l}");
    }

    // The failing request: one error line with the cause chain (the SDK's account last), and
    // its access line.
    let of = |id: &str| lines.iter().filter(|l| request_ids(l).contains(&id)).cloned().collect::<Vec<_>>();
    let failing = of(&failing_id);
    let (access, others): (Vec<_>, Vec<_>) = failing.iter().partition(|l| l["target"] == "shoebox::access");
    assert_eq!(others.len(), 1, "a 5xx is logged once: {failing:#?}");
    assert_eq!(others[0]["level"], "ERROR");
    let chain = others[0]["error"].as_str().expect("error");
    assert!(
        chain.starts_with("HeadObject on bucket shoebox-private: 403 Forbidden, no error code")
            && chain.contains("Likely cause: the credentials were refused")
            && chain.contains(": the SDK's account: "),
        "{chain}"
    );
    assert_eq!(access.len(), 1);
    let a = access[0];
    assert_eq!((a["method"].as_str(), a["route"].as_str()), (Some("POST"), Some("/api/uploads/{id}/complete")));
    assert_eq!(a["status"], 500);
    assert!(a["bytes"].as_u64().is_some_and(|b| b > 0) && a["ms"].as_u64().is_some(), "{a}");

    // The proxied download's access line: the route's template, never the id.
    let download = lines
        .iter()
        .find(|l| l["target"] == "shoebox::access" && l["route"] == "/photos/{id}/{variant}" && l["status"] == 200)
        .expect("the download's access line");
    assert_eq!(download["bytes"].as_u64(), Some(proxied as u64), "{download}");
    assert_eq!(download["complete"], true);
    assert!(!log.contains(&format!("/photos/{id}/original")), "raw paths with ids stay out of the log");

    // /healthz's problem, in plain words, without the SDK's account; logged once.
    let health = lines.iter().find(|l| message(l) == "health check failed").expect("health line");
    let health_lines = of(request_ids(health)[0]);
    assert_eq!(health_lines.iter().filter(|l| l["target"] != "shoebox::access").count(), 1, "{health_lines:#?}");
    let problem = health["problem"].as_str().expect("problem");
    assert!(
        problem.starts_with("HeadBucket on bucket shoebox-private: 403 Forbidden, no error code")
            && problem.contains("; request id ")
            && problem.contains("Likely cause: "),
        "{problem}"
    );
    assert!(!problem.contains("SDK") && !problem.contains("ServiceError") && problem.len() < 500, "{problem}");

    // S3 gone: a warning (an outage, not a bug), once, saying that nothing answered.
    let down_lines = of(&down_id);
    let warnings: Vec<_> = down_lines.iter().filter(|l| l["target"] != "shoebox::access").collect();
    assert_eq!(warnings.len(), 1, "{down_lines:#?}");
    let chain = warnings[0]["error"].as_str().expect("error");
    assert!(chain.starts_with("GetObject on bucket shoebox-private: no answer: "), "{chain}");
}

/// Every sample of a Prometheus text page: `name{labels}` with its labels, and the value.
fn samples(page: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in page.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("a sample");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("labels end")),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while let Some((key, tail)) = rest.split_once("=\"") {
            // Values here never hold an escaped quote.
            let (value, tail) = tail.split_once('"').expect("quoted");
            map.insert(key.trim_start_matches(',').to_owned(), value.to_owned());
            rest = tail;
        }
        out.push((name.to_owned(), map, value.parse().expect("a number")));
    }
    out
}

/// The sum of the samples of `name` whose labels include `labels`.
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(page)
        .into_iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_by_exactly_the_traffic_sent_and_only_for_the_token() {
    let token = format!("obs-metrics-{}", random_token());
    let extra = [("SHOEBOX_METRICS_TOKEN", token.as_str()), ("DYNO", "web.7"), ("SHOEBOX_CLEAN_UP_EVERY", "1s")];
    let served = Served::start(3, &extra).await;
    let http = reqwest::Client::new();
    let scrape = || async {
        let res = http.get(served.url("/metrics")).bearer_auth(&token).send().await.expect("scrape");
        assert_eq!(res.status(), StatusCode::OK);
        res.text().await.expect("text")
    };
    assert_eq!(http.get(served.url("/metrics")).send().await.expect("get").status(), StatusCode::NOT_FOUND);
    let wrong = http.get(served.url("/metrics")).bearer_auth("obs-metrics-wrong").send().await.expect("get");
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND, "refused like an unknown path");

    let mut secrets = Vec::new();
    let user = sign_up(&served.base, &format!("m-{}@example.com", &random_token()[..8]), &mut secrets).await;
    let jpeg = photo("orientation/Landscape_1.jpg");
    let before = scrape().await;

    // Two uploads, one form left unused, one refused for its size, one over the limit of 3.
    let first = upload(&user, "photo", &jpeg, &mut secrets).await;
    let second = upload(&user, "photo", &jpeg, &mut secrets).await;
    assert_eq!(user.sign("photo", "image/jpeg", 99_000_000).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(user.sign("photo", "image/jpeg", 1000).await.status(), StatusCode::CREATED);
    assert_eq!(user.sign("photo", "image/jpeg", 1000).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // Completion makes the variants after it answers: wait for them (and a clean-up round).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut scrapes = 1.0;
    let after = loop {
        let page = scrape().await;
        scrapes += 1.0;
        let made = |v| value(&page, "shoebox_variant_makes_total", &[("variant", v), ("outcome", "made")]);
        let jobs = value(&page, "shoebox_job_runs_total", &[("job", "clean_up")]);
        if made("thumb") >= 2.0 && made("display") >= 2.0 && jobs >= 1.0 {
            break page;
        }
        assert!(Instant::now() < deadline, "variants or clean-up never recorded:\n{page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    let requests = "shoebox_http_requests_total";
    let signing = [("method", "POST"), ("route", "/api/uploads")];
    assert_eq!(moved(requests, &[signing[0], signing[1], ("status", "201")]), 3.0);
    assert_eq!(moved(requests, &[signing[0], signing[1], ("status", "413")]), 1.0);
    assert_eq!(moved(requests, &[signing[0], signing[1], ("status", "429")]), 1.0);
    assert_eq!(moved(requests, &[("route", "/api/uploads/{id}/complete"), ("status", "200")]), 2.0);
    assert_eq!(moved("shoebox_http_request_duration_seconds_count", &[("route", "/api/uploads/{id}/complete")]), 2.0);
    assert_eq!(moved(requests, &[("route", "/metrics"), ("status", "200")]), scrapes - 1.0, "each scrape but this one");
    assert_eq!(moved("shoebox_uploads_signed_total", &[("kind", "photo")]), 3.0);
    assert_eq!(moved("shoebox_uploads_completed_total", &[("kind", "photo")]), 2.0);
    let too_large = [("kind", "photo"), ("reason", "too_large"), ("at", "sign")];
    assert_eq!(moved("shoebox_uploads_refused_total", &too_large), 1.0);
    assert_eq!(moved("shoebox_rate_limited_total", &[("limit", "upload_forms")]), 1.0);
    assert_eq!(moved("shoebox_verification_duration_seconds_count", &[("kind", "photo")]), 2.0);
    for variant in ["thumb", "display"] {
        assert_eq!(moved("shoebox_variant_makes_total", &[("variant", variant), ("outcome", "made")]), 2.0);
        assert_eq!(moved("shoebox_variant_make_duration_seconds_count", &[("variant", variant)]), 2.0);
    }
    assert_eq!(moved("shoebox_resize_duration_seconds_count", &[]), 2.0, "one decode per upload");
    assert_eq!(value(&after, "shoebox_job_runs_total", &[("job", "clean_up"), ("outcome", "failed")]), 0.0);
    assert_eq!(value(&after, "shoebox_job_items_total", &[("job", "clean_up"), ("count", "deleted")]), 0.0);

    // Three private downloads: three requests, three GetObjects, three photos' bytes.
    let before = scrape().await;
    let mut proxied = 0.0;
    for id in [&first, &second, &first] {
        let res = user.get(&format!("/photos/{id}/original")).await;
        assert_eq!(res.status(), StatusCode::OK);
        proxied += res.bytes().await.expect("body").len() as f64;
    }
    // A fourth whose object went missing: S3 answers 404, counted as an S3 error.
    let key = object_key(&served, &second).await;
    std::fs::remove_file(served.object_path("shoebox-private", &key)).expect("remove the object");
    assert_eq!(user.get(&format!("/photos/{second}/original")).await.status(), StatusCode::NOT_FOUND);
    let after = scrape().await;
    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    let download = [("method", "GET"), ("route", "/photos/{id}/{variant}")];
    assert_eq!(moved(requests, &[download[0], download[1], ("status", "200")]), 3.0);
    assert_eq!(moved(requests, &[download[0], download[1], ("status", "404")]), 1.0);
    assert_eq!(moved("shoebox_proxy_bytes_total", &[("bucket", "shoebox-private")]), proxied);
    let get = [("operation", "GetObject"), ("bucket", "shoebox-private")];
    assert_eq!(moved("shoebox_s3_requests_total", &get), 4.0);
    assert_eq!(moved("shoebox_s3_request_duration_seconds_count", &get), 4.0);
    assert_eq!(moved("shoebox_s3_errors_total", &[get[0], get[1], ("status", "404")]), 1.0);
    assert_eq!(moved(requests, &[("route", "/metrics"), ("status", "200")]), 1.0);
    assert_eq!(moved(requests, &[("route", "/metrics"), ("status", "404")]), 0.0);

    // Gauges read at the scrape, and every series says which dyno it came from.
    assert!(value(&after, "shoebox_db_pool_connections", &[]) >= 1.0);
    assert_eq!(value(&after, "shoebox_image_permits", &[]), 2.0);
    assert_eq!(value(&after, "shoebox_image_permits_in_use", &[]), 0.0);
    let all = samples(&after);
    assert!(all.len() > 50, "{after}");
    for (name, labels, _) in &all {
        assert_eq!(labels.get("dyno").map(String::as_str), Some("web.7"), "{name} {labels:?}");
    }
    assert!(after.contains("# HELP shoebox_http_requests_total"), "described: {after}");
}

/// The key photo `id`'s served original has in its bucket.
async fn object_key(served: &Served, id: &str) -> String {
    let pool = sqlx::PgPool::connect(&format!("{}/{}", postgres_server(), served.pg_database)).await.expect("db");
    let key: String = sqlx::query_scalar("select object_key from shoebox_photos where photo_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("the photo's key");
    pool.close().await;
    key
}

/// Requests keep Heroku's `X-Request-ID` when it is sane, and get a fresh one otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sane_x_request_id_is_kept_and_anything_else_replaced() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let heroku = "5f0b1a4e-9c1d-4c4e-8a53-2f1e6b7d9a10";
    let echo = |id: &'static str| {
        let (client, url) = (app.client.clone(), app.url("/healthz"));
        async move {
            let res = client.get(url).header("x-request-id", id).send().await.expect("healthz");
            res.headers()["x-request-id"].to_str().expect("ascii").to_owned()
        }
    };
    assert_eq!(echo(heroku).await, heroku);
    assert_eq!(echo("abcdefghij0123456789+/=_-").await, "abcdefghij0123456789+/=_-");
    for insane in
        ["too-short", "twenty chars but spaces in it", "quote\"s-and-more-chars-here", "line\tbreak-0123456789ab"]
    {
        let fresh = echo(insane).await;
        assert_ne!(fresh, insane);
        assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "a fresh UUID: {fresh}");
    }
    let long: &'static str = Box::leak("a".repeat(201).into_boxed_str());
    assert_ne!(echo(long).await, long);
}

/// `/healthz`'s logged problem for a bucket says the call, the bucket, S3's answer and the
/// likely cause; a HEAD answer has no body, so a refused or missing bucket has a status and no
/// code there (the doctor asks again to get one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_reports_problems_say_s3s_answer_in_plain_words() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let buckets = |endpoint: &str, s3_name: &str| {
        vec![shoebox::BucketSettings::private("private", s3_name).at_endpoint(endpoint)]
    };
    let mut wrong = app.s3_credentials.clone();
    wrong.secret_access_key = format!("wrong-{}", random_token());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let cases = [
        (
            buckets(&app.s3_endpoint, "shoebox-private"),
            &wrong,
            "HeadBucket on bucket shoebox-private: 403 Forbidden, no error code (a HEAD answer has no body); request id ",
            "Likely cause: the credentials were refused or may not read this bucket",
        ),
        (
            buckets(&app.s3_endpoint, "shoebox-nosuch"),
            &app.s3_credentials,
            "HeadBucket on bucket shoebox-nosuch: 404 Not Found, no error code (a HEAD answer has no body); request id ",
            "Likely cause: there is no bucket named shoebox-nosuch at this endpoint",
        ),
        (
            buckets(&format!("http://{closed}"), "shoebox-private"),
            &app.s3_credentials,
            "HeadBucket on bucket shoebox-private: no answer: connection refused",
            "Likely cause: nothing is listening at the bucket's endpoint",
        ),
    ];
    for (settings, creds, starts, cause) in cases {
        let storage = shoebox::Storage::new(&settings, Some(creds)).await.expect("storage");
        let report = shoebox::health::check_parts(app.shoebox.db(), &storage).await;
        let problem = report.checks[1].problem.clone().expect("a problem");
        assert!(problem.starts_with(starts) && problem.contains(cause), "{problem}");
        assert!(!problem.contains("SDK") && !problem.contains(&wrong.secret_access_key) && problem.len() < 500);
    }
}

/// Text can be forced off a terminal (a developer piping to `less`): still no colour codes.
/// A format Shoebox does not know stops it with a sentence naming the setting.
#[test]
fn forced_text_logs_carry_no_colour_off_a_terminal_and_an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let migrate = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_shoebox"))
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("SHOEBOX_LOG_FORMAT", format)
            .env_remove("RUST_LOG")
            .output()
            .expect("run")
    };
    let out = migrate("text");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("migrations applied") && !log.contains('\u{1b}') && !log.starts_with('{'), "{log}");
    let out = migrate("json");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "{log}");
    let out = migrate("yaml");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("SHOEBOX_LOG_FORMAT must be json or text, not \"yaml\""), "{said}");
}
