//! Postgres restarting while requests run: answers in the gap are 503 with `Retry-After`, the
//! same process recovers by itself, and nothing is half-written.
//!
//! The restart happens on a private Postgres server the test starts for itself (`initdb` and
//! `pg_ctl` in a temporary folder, on a port of its own), so the machine's shared server, which
//! every other test in this binary is using at the same moment, is never restarted.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use shoebox::Limits;
use shoebox_app::settings::{AppLimits, AttemptLimit, example_kinds};

use crate::helpers::{Arg, TestApp, photo};

/// A Postgres server of the test's own, in a temporary folder; stopped when dropped.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// `initdb` a cluster (trust authentication, user `postgres`) and start it on a free port.
    /// Blocking: a second or two.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = dir.path().join("pg");
        std::fs::create_dir(&cluster).expect("cluster dir");
        if running_as_root() {
            // Postgres refuses to run as root: the cluster belongs to the postgres user, who
            // must also be able to reach it through the temporary folder.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
            run(Command::new("chown").arg("postgres").arg(&cluster));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let pg = Self { dir, bin: postgres_bin(), port };
        pg.pg(&pg.bin.join("initdb"), &["-D", &pg.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        pg.start_again();
        pg
    }

    /// A database URL on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stop the server as an operator's restart does (`-m fast`: sessions are ended, each
    /// client told "terminating connection due to administrator command"). Blocking.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// Start it again, returning once it accepts connections. Blocking.
    pub fn start_again(&self) {
        let cluster = self.dir.path().join("pg");
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, cluster.display());
        let log = cluster.join("log").display().to_string();
        self.pg_ctl(&["-l", &log, "-o", &options, "-w", "start"]);
    }

    fn data(&self) -> String {
        self.dir.path().join("pg/data").display().to_string()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.pg(&self.bin.join("pg_ctl"), &all);
    }

    /// Run a Postgres program as the user that owns the cluster.
    fn pg(&self, program: &std::path::Path, args: &[&str]) {
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        run(command.args(args));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ =
            std::panic::catch_unwind(|| self.pg(&self.bin.join("pg_ctl"), &["-D", &data, "-m", "immediate", "stop"]));
    }
}

fn running_as_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Where `initdb` and `pg_ctl` are: Debian keeps them out of `PATH`, under
/// `/usr/lib/postgresql/VERSION/bin` (the newest is taken).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| p.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()));
    versions.pop().unwrap_or_default()
}

fn run(command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One answer during the run: which kind of request, when it came back, its status (0 when
/// no answer came at all), whether it said when to retry.
#[derive(Debug, Clone)]
struct Answer {
    kind: &'static str,
    at: Instant,
    status: u16,
    retry_after: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_under_load_gets_503s_then_recovers_with_nothing_half_written() {
    let pg = Arc::new(tokio::task::spawn_blocking(PrivatePostgres::start).await.expect("join"));
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await.expect("private postgres");
    sqlx::query("create database shoebox").execute(&admin).await.expect("create database");
    admin.close().await;
    // A host's own pool (the app takes any), waiting at most a second for a connection: a
    // 3 s gap then shows both ways a restart fails a request, a statement cut off by the
    // shutdown and no connection to be had, where the reference app's 10 s would wait it out.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(1))
        .connect(&pg.url("shoebox"))
        .await
        .expect("pool");
    // Limits out of the way: every request here is allowed, so any refusal is the restart's.
    let many = AttemptLimit { max: 100_000, window: Duration::from_secs(60) };
    let app_limits = AppLimits { login_per_address: many, login_per_account: many, ..AppLimits::default() };
    let limits = Limits { forms_per_minute: 100_000, ..Limits::default() };
    let dir = tempfile::tempdir().expect("tmp");
    let app = TestApp::spawn_on(shoebox::Db::from(pool), dir, None, limits, app_limits, example_kinds()).await;
    let signer = app.sign_up_elsewhere("signer@example.com").await;
    let viewer = app.sign_up_elsewhere("viewer@example.com").await;
    let uploaded = viewer.upload("avatar", photo("formats/alpha-lossy_400x301.webp"), "image/webp").await;
    let photo_api = format!("/api/photos/{}", uploaded["id"].as_str().expect("id"));

    // Four kinds of request, each in a loop of its own, until told to stop: signing a form
    // (a photo row and its form window, written together), the home page and a photo's JSON
    // (the session and the photo read), and logging in (the account tables written).
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let signed: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for kind in ["sign", "home", "photo", "login"] {
        let (answers, signed, stop) = (answers.clone(), signed.clone(), stop.clone());
        let (signer, viewer, photo_api, base) = (signer.clone(), viewer.clone(), photo_api.clone(), app.base.clone());
        loops.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let res = match kind {
                    "sign" => {
                        let form = serde_json::json!({"kind": "avatar", "filename": "p.jpg", "content_type": "image/jpeg", "size": 1000});
                        let url = format!("{base}/api/uploads");
                        signer.client.post(url).header("x-csrf-token", &signer.csrf).json(&form).send().await
                    }
                    "home" => viewer.client.get(format!("{base}/")).send().await,
                    "photo" => viewer.client.get(format!("{base}{photo_api}")).send().await,
                    _ => log_in(&base, "viewer@example.com").await,
                };
                let answer = match res {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let retry_after = res.headers().contains_key("retry-after");
                        if status == 201 {
                            let body: serde_json::Value = res.json().await.expect("json");
                            signed.lock().expect("lock").push(body["photo_id"].as_str().expect("id").to_owned());
                        }
                        Answer { kind, at: Instant::now(), status, retry_after }
                    }
                    Err(_) => Answer { kind, at: Instant::now(), status: 0, retry_after: false },
                };
                answers.lock().expect("lock").push(answer);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let down = Instant::now();
    let restart = pg.clone();
    tokio::task::spawn_blocking(move || restart.stop()).await.expect("join");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restart = pg.clone();
    tokio::task::spawn_blocking(move || restart.start_again()).await.expect("join");
    let up = Instant::now();
    // Every kind of request must succeed again, in the same process, without anyone's help.
    let ok = |a: &Answer| matches!((a.kind, a.status), ("sign", 201) | ("home" | "photo", 200) | ("login", 303));
    let mut recovered = std::collections::BTreeMap::new();
    while recovered.len() < 4 && up.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        for a in answers.lock().expect("lock").iter().filter(|a| a.at > up && ok(a)) {
            recovered.entry(a.kind).or_insert(a.at - up);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for l in loops {
        l.await.expect("join");
    }

    let answers = answers.lock().expect("lock").clone();
    let unavailable: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    let wrong: Vec<&Answer> = answers.iter().filter(|a| !ok(a) && a.status != 503).collect();
    eprintln!(
        "postgres restart: {} answers, {} were 503 in the gap (stopped at +0, started at +{:?}); \
         first success after the start: {recovered:?}",
        answers.len(),
        unavailable.len(),
        up - down
    );
    assert!(wrong.is_empty(), "only successes and 503s, never a 500 or a dropped connection: {wrong:?}");
    assert!(unavailable.iter().all(|a| a.retry_after), "every 503 says when to retry");
    assert!(!unavailable.is_empty(), "the gap was seen");
    assert_eq!(recovered.len(), 4, "every kind of request succeeded again: {recovered:?}");
    assert!(recovered.values().all(|t| *t < Duration::from_secs(5)), "recovered within 5 s: {recovered:?}");
    assert_eq!(app.healthz().await, StatusCode::OK);

    // Nothing half-written: the signer's form window counts exactly the photo rows signed in
    // it, and every form answered 201 has its row.
    let uploader = app
        .text("select user_id from users where email = $1", &[Arg::S("signer@example.com".into())])
        .await
        .expect("signer");
    let window = [Arg::S(uploader.clone())];
    let forms =
        app.number("select forms from shoebox_form_windows where uploader_id = $1 and style = 'script'", &window).await;
    let rows = app
        .number(
            "select count(*) from shoebox_photos p join shoebox_form_windows w on w.uploader_id = p.uploader_id \
             and w.style = 'script' where p.uploader_id = $1 and p.declared_type is not null \
             and p.created_at >= w.opened_at",
            &window,
        )
        .await;
    assert_eq!(forms, rows, "the form window and the photo rows agree");
    let signed = signed.lock().expect("lock").clone();
    assert!(i64::try_from(signed.len()).expect("count") <= rows, "{} forms answered 201, {rows} rows", signed.len());
    for id in &signed {
        assert_eq!(
            app.number("select count(*) from shoebox_photos where photo_id = $1", &[Arg::S(id.clone())]).await,
            1,
            "{id}"
        );
    }
}

/// Log in through the form in a fresh browser, as `TestApp::log_in` does.
async fn log_in(base: &str, email: &str) -> reqwest::Result<reqwest::Response> {
    let client = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;
    let page = client.get(format!("{base}/login")).send().await?.text().await?;
    let csrf = crate::helpers::hidden_value(&page, "csrf").unwrap_or_default();
    let form = [("csrf", csrf.as_str()), ("email", email), ("password", "correct horse battery")];
    client.post(format!("{base}/login")).form(&form).send().await
}
