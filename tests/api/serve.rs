//! Running the service: draining on shutdown, the binary's start and stop, and `migrate`.

use std::process::{Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(600)).await;
    "finished"
}

async fn hang() -> &'static str {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    "never"
}

async fn start(
    drain: Duration,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = Router::new().route("/slow", get(slow)).route("/hang", get(hang));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shoebox::http::serve(
        listener,
        router,
        async {
            let _ = rx.await;
        },
        drain,
    ));
    (base, tx, server)
}

#[tokio::test]
async fn shutting_down_lets_requests_in_flight_finish() {
    let (base, stop, server) = start(Duration::from_secs(25)).await;
    let request = tokio::spawn(async move {
        reqwest::get(format!("{base}/slow")).await.expect("request").text().await.expect("body")
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.send(()).expect("signal");
    assert_eq!(request.await.expect("join"), "finished", "the request in flight was answered");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stopped")
        .expect("join")
        .expect("clean stop");
}

#[tokio::test]
async fn shutting_down_gives_up_on_hung_requests_after_the_drain_period() {
    let (base, stop, server) = start(Duration::from_millis(300)).await;
    let _hung = tokio::spawn(async move { reqwest::get(format!("{base}/hang")).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.send(()).expect("signal");
    // Without the drain limit this would wait for the hour-long request.
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stopped")
        .expect("join")
        .expect("clean stop");
}

/// Start the real binary on a free port with embedded defaults in a temp folder.
fn spawn_binary(dir: &std::path::Path) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let child = Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .arg("serve")
        .env("PORT", port.to_string())
        .env("SHOEBOX_DATA_DIR", dir)
        .env_remove("DATABASE_URL")
        .env_remove("SHOEBOX_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoebox");
    (child, port)
}

#[tokio::test]
async fn the_binary_serves_embedded_defaults_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tmp");
    let (child, port) = spawn_binary(dir.path());
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(res) = reqwest::get(&url).await {
            healthy = res.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the binary answered /healthz with 200");
    assert!(dir.path().join("shoebox.db").exists(), "SQLite file created");
    assert!(
        dir.path().join("s3/shoebox-public").is_dir() && dir.path().join("s3/shoebox-private").is_dir(),
        "embedded buckets created"
    );

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    assert!(exit.status.success(), "exit status {:?}", exit.status);
    let log = String::from_utf8_lossy(&exit.stderr);
    assert!(log.contains("shutting down") && log.contains("stopped"), "{log}");
}

#[test]
fn a_bad_setting_stops_the_binary_with_a_message_that_names_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_shoebox")).arg("serve").env("PORT", "eighty").output().expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PORT must be a port number"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .arg("migrate")
        .env("DATABASE_URL", "mysql://nope")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("postgres://"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn migrate_creates_the_schema_and_is_safe_to_run_twice() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    for _ in 0..2 {
        let out =
            Command::new(env!("CARGO_BIN_EXE_shoebox")).arg("migrate").env("DATABASE_URL", &url).output().expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let db = sqlx::SqlitePool::connect(&url).await.expect("connect");
    for table in ["users", "sessions", "shoebox_photos", "shoebox_variants", "shoebox_migrations"] {
        sqlx::query(&format!("select count(*) from {table}"))
            .execute(&db)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
}
