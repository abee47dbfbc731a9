//! `shoebox doctor` and `s3-config --apply` against two S3 servers nobody here wrote: the
//! embedded s3s endpoint (a correct setup passes; wrong secret, unknown bucket and an
//! unreachable endpoint each get their own finding) and moto's standalone server, which has the
//! bucket-configuration APIs the embedded endpoint lacks (each broken bucket setting gets its
//! own finding, and `--apply` repairs it). `scripts/test` installs moto; without it these tests
//! fail rather than skip.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{Backend, TestApp};
use serde_json::json;
use shoebox::doctor::{Check, Outcome, Report, check_buckets, database, s3_config};
use shoebox::{BucketAccess, BucketSettings, SigningCredentials, Storage};
use shoebox_app::settings::embedded_buckets;

fn embedded_settings(app: &TestApp) -> Vec<BucketSettings> {
    let mut buckets = embedded_buckets();
    for b in &mut buckets {
        b.endpoint = Some(app.s3_endpoint.clone());
    }
    buckets
}

async fn doctor(buckets: &[BucketSettings], creds: &SigningCredentials, origins: &[String]) -> Report {
    let storage = Storage::new(buckets, Some(creds)).await.expect("storage");
    let plan = s3_config::plan(buckets, origins);
    Report { checks: check_buckets(&storage, &plan, origins).await }
}

fn outcome(r: &Report, subject: &str, name: &str) -> Outcome {
    r.get(subject, name).unwrap_or_else(|| panic!("no check {name} for {subject}: {r:#?}")).outcome
}

fn failure<'a>(r: &'a Report, subject: &str, name: &str) -> &'a shoebox::doctor::Check {
    let c = r.get(subject, name).unwrap_or_else(|| panic!("no check {name} for {subject}: {r:#?}"));
    assert_eq!(c.outcome, Outcome::Fail, "{c:#?}");
    assert!(c.fix.as_deref().is_some_and(|f| !f.is_empty()), "every failure says how to fix it: {c:#?}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_embedded_setup_passes_every_check_and_skips_only_unsupported_settings() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let mut report = Report { checks: database::check(app.shoebox.db(), false).await };
    report
        .checks
        .extend(doctor(&embedded_settings(&app), &app.s3_credentials, std::slice::from_ref(&app.base)).await.checks);
    assert!(report.passed(), "{report:#?}");
    for c in &report.checks {
        if c.name.starts_with("bucket.settings.") {
            assert_eq!(c.outcome, Outcome::Skipped, "{c:#?}");
            assert_eq!(c.cause.as_deref(), Some("not supported by this endpoint"));
        } else if c.name != "database.tls" {
            assert_eq!(c.outcome, Outcome::Pass, "{c:#?}");
        }
    }
    for subject in ["public", "private"] {
        for name in
            ["bucket.presigned_post", "bucket.anonymous_served", "bucket.anonymous_incoming", "bucket.cors_preflight"]
        {
            assert_eq!(outcome(&report, subject, name), Outcome::Pass);
        }
    }
    assert_eq!(outcome(&report, "database", "database.migrations"), Outcome::Pass);
    // The probe objects are gone.
    assert!(app.stored_keys("shoebox-public").iter().all(|k| !k.contains("shoebox-doctor")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_key_is_named_as_such() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut wrong = app.s3_credentials.clone();
    wrong.secret_access_key = "not-the-secret".into();
    let r = doctor(&embedded_settings(&app), &wrong, std::slice::from_ref(&app.base)).await;
    let c = failure(&r, "public", "bucket.credentials");
    assert!(c.answer.as_deref().is_some_and(|a| a.contains("SignatureDoesNotMatch")), "{c:#?}");
    assert!(c.cause.as_deref().is_some_and(|a| a.contains("secret access key")), "{c:#?}");
    assert!(!format!("{r:?}").contains("not-the-secret"), "the secret never appears in the report");
    assert_eq!(outcome(&r, "public", "bucket.presigned_post"), Outcome::Skipped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_bucket_is_named_as_such() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut buckets = embedded_settings(&app);
    buckets[0].bucket = "shoebox-nosuch".into();
    let r = doctor(&buckets, &app.s3_credentials, std::slice::from_ref(&app.base)).await;
    let c = failure(&r, "public", "bucket.exists");
    assert!(c.cause.as_deref().is_some_and(|a| a.contains("shoebox-nosuch")), "{c:#?}");
    assert_eq!(outcome(&r, "private", "bucket.exists"), Outcome::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_named_as_such() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let mut buckets = embedded_buckets();
    for b in &mut buckets {
        b.endpoint = Some(format!("http://127.0.0.1:{port}"));
    }
    let creds = SigningCredentials { access_key_id: "x".into(), secret_access_key: "y".into(), session_token: None };
    let r = doctor(&buckets, &creds, &["http://localhost:3000".into()]).await;
    let c = failure(&r, "public", "bucket.endpoint");
    assert!(c.answer.as_deref().is_some_and(|a| a.contains(": no answer: ")), "{c:#?}");
    assert!(!r.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_failed_check_not_a_crash() {
    let checks = database::check_url("postgres://postgres@127.0.0.1:1/nothing?connect_timeout=2").await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].outcome, Outcome::Fail);
    assert_eq!(checks[0].name, "database.reachable");
}

// ---- moto ----

struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's standalone server on a free port. `python3 -m moto.server` rather than the
/// `moto_server` script, which a pyenv Python only puts on PATH after a rehash.
async fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 must be on PATH to start moto (scripts/test installs moto[server])");
    // Owned by the guard at once, so it is killed and reaped however the test ends.
    let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
    for _ in 0..100 {
        if reqwest::get(&moto.endpoint).await.is_ok() {
            return moto;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto did not start on {} (is moto[server] installed? scripts/test installs it)", moto.endpoint);
}

fn moto_creds() -> SigningCredentials {
    SigningCredentials { access_key_id: "testing".into(), secret_access_key: "testing".into(), session_token: None }
}

fn moto_bucket(moto: &Moto, name: &str, s3_name: &str, access: BucketAccess) -> BucketSettings {
    BucketSettings {
        name: name.into(),
        bucket: s3_name.into(),
        access,
        region: "us-east-1".into(),
        endpoint: Some(moto.endpoint.clone()),
        cdn_base_url: None,
        access_key_id_env: None,
        secret_access_key_env: None,
        owned: false,
    }
}

/// A raw SDK client for setting up broken buckets the way someone might by hand.
fn admin_client(moto: &Moto) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(&moto.endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

async fn create(c: &aws_sdk_s3::Client, name: &str, region: Option<&str>) {
    let mut req = c.create_bucket().bucket(name);
    if let Some(r) = region {
        req = req.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(r))
                .build(),
        );
    }
    req.send().await.expect("create bucket");
}

async fn put_policy(c: &aws_sdk_s3::Client, name: &str, resource: &str) {
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{name}/{resource}")}]});
    c.put_bucket_policy().bucket(name).policy(policy.to_string()).send().await.expect("policy");
}

const ORIGIN: &str = "https://app.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_wrong_region_is_named_with_the_buckets_real_region() {
    let moto = moto().await;
    create(&admin_client(&moto), "doc-region", Some("eu-west-1")).await;
    let b = moto_bucket(&moto, "photos", "doc-region", BucketAccess::Private);
    let r = doctor(&[b], &moto_creds(), &[ORIGIN.into()]).await;
    let c = failure(&r, "photos", "bucket.region");
    assert!(c.cause.as_deref().is_some_and(|s| s.contains("eu-west-1") && s.contains("us-east-1")), "{c:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_broken_bucket_settings_each_get_their_own_finding() {
    let moto = moto().await;
    let c = admin_client(&moto);
    for name in ["doc-cors", "doc-private-open", "doc-public-closed", "doc-incoming-open"] {
        create(&c, name, None).await;
    }
    // CORS for another origin only.
    let rule = aws_sdk_s3::types::CorsRule::builder()
        .allowed_origins("https://other.example")
        .allowed_methods("POST")
        .build()
        .expect("rule");
    c.put_bucket_cors()
        .bucket("doc-cors")
        .cors_configuration(aws_sdk_s3::types::CorsConfiguration::builder().cors_rules(rule).build().expect("cors"))
        .send()
        .await
        .expect("cors");
    put_policy(&c, "doc-private-open", "photos/*").await;
    put_policy(&c, "doc-incoming-open", "*").await;
    let buckets = [
        moto_bucket(&moto, "cors", "doc-cors", BucketAccess::Private),
        moto_bucket(&moto, "private_open", "doc-private-open", BucketAccess::Private),
        moto_bucket(&moto, "public_closed", "doc-public-closed", BucketAccess::Public),
        moto_bucket(&moto, "incoming_open", "doc-incoming-open", BucketAccess::Public),
    ];
    let r = doctor(&buckets, &moto_creds(), &[ORIGIN.into()]).await;

    let cors = failure(&r, "cors", "bucket.cors_preflight");
    assert!(cors.cause.as_deref().is_some_and(|s| s.contains(ORIGIN)), "{cors:#?}");
    assert!(cors.fix.as_deref().is_some_and(|s| s.contains("`cors`")), "{cors:#?}");

    let open = failure(&r, "private_open", "bucket.anonymous_served");
    assert!(open.cause.as_deref().is_some_and(|s| s.contains("private bucket lets anyone read")), "{open:#?}");
    assert!(open.fix.as_deref().is_some_and(|s| s.contains("`bucket_policy`")), "{open:#?}");
    assert_eq!(outcome(&r, "private_open", "bucket.anonymous_incoming"), Outcome::Pass);

    let closed = failure(&r, "public_closed", "bucket.anonymous_served");
    assert!(closed.cause.as_deref().is_some_and(|s| s.contains("public bucket refuses")), "{closed:#?}");

    let incoming = failure(&r, "incoming_open", "bucket.anonymous_incoming");
    assert!(incoming.cause.as_deref().is_some_and(|s| s.contains("incoming/")), "{incoming:#?}");
    assert_eq!(outcome(&r, "incoming_open", "bucket.anonymous_served"), Outcome::Pass);

    // The settings comparison points at the same sections.
    assert_eq!(outcome(&r, "private_open", "bucket.settings.bucket_policy"), Outcome::Fail);
    assert_eq!(outcome(&r, "public_closed", "bucket.settings.bucket_policy"), Outcome::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3_config_apply_turns_a_broken_bucket_into_one_the_doctor_passes() {
    let moto = moto().await;
    let c = admin_client(&moto);
    create(&c, "doc-fix-public", None).await;
    create(&c, "doc-fix-private", None).await;
    put_policy(&c, "doc-fix-public", "*").await;
    put_policy(&c, "doc-fix-private", "*").await;
    let buckets = [
        moto_bucket(&moto, "public", "doc-fix-public", BucketAccess::Public),
        moto_bucket(&moto, "private", "doc-fix-private", BucketAccess::Private),
    ];
    let before = doctor(&buckets, &moto_creds(), &[ORIGIN.into()]).await;
    assert!(!before.passed());

    let storage = Storage::new(&buckets, Some(&moto_creds())).await.expect("storage");
    let plan = s3_config::plan(&buckets, &[ORIGIN.into()]);
    let mut shown = Vec::new();
    shoebox_app::cli::s3_config::write_applied(&mut shown, &storage, &plan).await.expect("apply");
    let shown = String::from_utf8(shown).expect("utf8");
    assert!(shown.contains("bucket_policy:") && shown.contains("-> "), "shows the change first: {shown}");
    assert!(shown.contains("written: cors"), "{shown}");

    let after = doctor(&buckets, &moto_creds(), &[ORIGIN.into()]).await;
    assert!(after.passed(), "{after:#?}");
    assert_eq!(outcome(&after, "public", "bucket.settings.lifecycle"), Outcome::Pass);
    assert_eq!(outcome(&after, "private", "bucket.settings.bucket_policy"), Outcome::Pass);
    // A second apply has nothing left to write.
    let mut again = Vec::new();
    shoebox_app::cli::s3_config::write_applied(&mut again, &storage, &plan).await.expect("apply");
    assert!(String::from_utf8(again).expect("utf8").matches("written: nothing").count() == 2);
}

/// The doctor's first findings are the health report `/healthz` renders, one per dependency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_starts_from_the_health_report() {
    let mut app = TestApp::spawn(Backend::Sqlite).await;
    let report = shoebox::health::check(&app.shoebox).await;
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["database", "private", "public"]);
    assert!(report.checks.iter().map(Check::from_health).all(|c| c.outcome == Outcome::Pass));

    app.stop_s3().await;
    let report = shoebox::health::check(&app.shoebox).await;
    let findings: Vec<Check> = report.checks.iter().map(Check::from_health).collect();
    assert_eq!(findings[0].outcome, Outcome::Pass, "the database still answers");
    for bucket in &findings[1..] {
        assert_eq!(bucket.outcome, Outcome::Fail, "{bucket:?}");
        assert!(bucket.answer.as_deref().is_some_and(|a| a.contains("shoebox-")), "names the S3 bucket: {bucket:?}");
    }
}

/// The doctor's `answer:` lines say each call, its bucket, S3's status, code, message and
/// request id; the `cause:` line under each says why in a sentence. A HEAD answer has no body,
/// so the refused HeadBucket is followed by the listing that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctors_answer_lines_say_s3s_answers_in_plain_words() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let origins = std::slice::from_ref(&app.base);
    let printed = |r: &Report| {
        let mut out = Vec::new();
        shoebox_app::cli::doctor::write_report(&mut out, r).expect("write");
        String::from_utf8(out).expect("utf8")
    };
    let answers = |text: &str| -> Vec<String> {
        text.lines().filter_map(|l| l.trim().strip_prefix("answer: ")).map(str::to_owned).collect()
    };

    // A wrong secret: a 403 with no body, then SignatureDoesNotMatch.
    let mut wrong = app.s3_credentials.clone();
    wrong.secret_access_key = "not-the-secret".into();
    let text = printed(&doctor(&embedded_settings(&app), &wrong, origins).await);
    let answer = answers(&text).into_iter().next().expect("an answer line");
    assert!(
        answer.starts_with(
            "HeadBucket on bucket shoebox-public: 403 Forbidden, no error code (a HEAD answer has no body); request id "
        ) && answer.contains(
            "; then ListObjectsV2 on bucket shoebox-public: 403 Forbidden, SignatureDoesNotMatch; request id "
        ),
        "{text}"
    );
    assert!(text.contains("cause:  the secret access key does not belong to the access key id"), "{text}");

    // An unknown bucket: 404, then NoSuchBucket.
    let mut buckets = embedded_settings(&app);
    buckets[0].bucket = "shoebox-nosuch".into();
    let text = printed(&doctor(&buckets, &app.s3_credentials, origins).await);
    let answer = answers(&text).into_iter().next().expect("an answer line");
    assert!(
        answer.starts_with("HeadBucket on bucket shoebox-nosuch: 404 Not Found, no error code")
            && answer.contains("then ListObjectsV2 on bucket shoebox-nosuch: 404 Not Found, NoSuchBucket"),
        "{text}"
    );

    // Nothing listening: no status, no request id, why nothing answered.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut buckets = embedded_settings(&app);
    for b in &mut buckets {
        b.endpoint = Some(format!("http://127.0.0.1:{port}"));
    }
    let text = printed(&doctor(&buckets, &app.s3_credentials, origins).await);
    let answer = answers(&text).into_iter().next().expect("an answer line");
    assert_eq!(answer, "HeadBucket on bucket shoebox-public: no answer: connection refused", "{text}");
    assert!(text.contains("cause:  nothing is listening at the bucket's endpoint"), "{text}");

    // The health findings the doctor starts from carry the same words.
    let storage = Storage::new(&embedded_settings(&app), Some(&wrong)).await.expect("storage");
    let health = shoebox::health::check_parts(app.shoebox.db(), &storage).await;
    let text = printed(&Report { checks: health.checks.iter().map(Check::from_health).collect() });
    assert!(
        answers(&text)
            .iter()
            .any(|a| a.starts_with("HeadBucket on bucket shoebox-private: 403 Forbidden, no error code")),
        "{text}"
    );
    for a in answers(&text) {
        assert!(a.len() < 500 && !a.contains("SDK") && !a.contains("not-the-secret"), "{a}");
    }
}
