//! Running the service: draining on shutdown, the binary's start and stop (a slow download
//! finishing across SIGTERM), `migrate`, and `clean-up` stopped by SIGTERM.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use reqwest::cookie::CookieStore as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{as_served, fresh_pg_database, postgres_server, sign_up_at};

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

/// Start the real binary on a free port with embedded defaults in a temp folder, and the
/// settings `env` gives.
fn spawn_binary(dir: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let child = Command::new(env!("CARGO_BIN_EXE_shoebox"))
        .arg("serve")
        .env("PORT", port.to_string())
        .env("SHOEBOX_DATA_DIR", dir)
        .env_remove("DATABASE_URL")
        .env_remove("SHOEBOX_CONFIG")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoebox");
    (child, port)
}

/// Wait for the binary on `port` to answer `/healthz` with 200.
async fn wait_until_healthy(port: u16) {
    let url = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..300 {
        if let Ok(res) = reqwest::get(&url).await {
            assert_eq!(res.status(), StatusCode::OK, "the binary answered /healthz");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the binary did not answer /healthz within 30 s");
}

/// Send SIGTERM, as Heroku and Docker do.
fn terminate(child: &std::process::Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn the_binary_serves_embedded_defaults_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tmp");
    let (child, port) = spawn_binary(dir.path(), &[]);
    wait_until_healthy(port).await;
    assert!(dir.path().join("shoebox.db").exists(), "SQLite file created");
    assert!(
        dir.path().join("s3/shoebox-public").is_dir() && dir.path().join("s3/shoebox-private").is_dir(),
        "embedded buckets created"
    );

    terminate(&child);
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

/// What a slow client has read so far: the answer's head, then its body.
#[derive(Debug, Default)]
struct Download {
    head: String,
    body: Vec<u8>,
    /// When the last byte came.
    finished: Option<Instant>,
}

/// GET `path` with `cookie` over a socket whose receive buffer is 16 KiB, read 16 KiB every
/// 5 ms (about 3 MB/s), to the end of the connection. The small buffer keeps the kernel from
/// taking the whole photo off the server's hands at once, so the server is still sending while
/// the test goes on.
async fn slow_download(port: u16, path: String, cookie: String, progress: Arc<Mutex<Download>>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await.expect("read");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        {
            let mut d = progress.lock().expect("lock");
            if d.head.is_empty()
                && let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n")
            {
                d.head = String::from_utf8_lossy(&raw[..end]).into_owned();
                raw.drain(..end + 4);
            }
            if !d.head.is_empty() {
                d.body.append(&mut raw);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    progress.lock().expect("lock").finished = Some(Instant::now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_private_download_finish_byte_exact_while_new_connections_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let drain = Duration::from_secs(10);
    let (child, port) = spawn_binary(dir.path(), &[("SHOEBOX_DRAIN_SECS", "10")]);
    wait_until_healthy(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let ann = sign_up_at(&base, browser, "ann@example.com").await;
    // Bigger than the kernel's largest send buffer, so the server is still writing long after
    // SIGTERM whatever the kernel takes off its hands.
    let send_buffer_max = kernel_send_buffer_max();
    let noise = noise_jpeg(2400, 1800);
    assert!(noise.len() > send_buffer_max + 2 * 1024 * 1024, "{} bytes", noise.len());
    let uploaded = ann.upload("id_document", noise.clone(), "image/jpeg").await;
    let served = as_served(&noise);
    let path = format!("/photos/{}/original", uploaded["id"].as_str().expect("id"));
    let cookie = jar.cookies(&base.parse().expect("url")).expect("session cookie").to_str().expect("ascii").to_owned();

    let progress = Arc::new(Mutex::new(Download::default()));
    let download = tokio::spawn(slow_download(port, path, cookie, progress.clone()));
    let received = || progress.lock().expect("lock").body.len();
    while received() < 256 * 1024 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    terminate(&child);
    let terminated = Instant::now();
    let at_sigterm = received();

    // New connections are refused from now on, while the download goes on.
    let refused = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break received(),
            _ if terminated.elapsed() > Duration::from_secs(3) => {
                panic!("new connections still accepted 3 s after SIGTERM")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert!(
        refused < served.len(),
        "refused while the download was still running ({refused} of {} bytes)",
        served.len()
    );

    // The process stays until the download is over, then exits 0, inside the drain time.
    let mut child = child;
    let exited = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break (status, Instant::now(), received());
        }
        assert!(terminated.elapsed() < drain + Duration::from_secs(5), "still running long after the drain time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    download.await.expect("download");
    let d = progress.lock().expect("lock");
    let (status, exited_at, received_at_exit) = exited;
    let finished = d.finished.expect("finished");
    eprintln!(
        "SIGTERM after {at_sigterm} bytes of {}; new connections refused after {refused} bytes; the process exited \
         {:?} after SIGTERM, with {received_at_exit} bytes received; the last byte came {:?} after SIGTERM",
        served.len(),
        exited_at - terminated,
        finished - terminated,
    );
    // The server kept writing after SIGTERM: it can have finished only once all but what the
    // kernel buffers (its send buffer, the client's small receive buffer) had reached the client.
    let buffered = send_buffer_max + 1024 * 1024;
    assert!(
        received_at_exit + buffered >= served.len(),
        "the process exited before it could have written the photo: {received_at_exit} bytes received"
    );
    assert!(d.head.starts_with("HTTP/1.1 200"), "{}", d.head);
    assert!(d.head.to_ascii_lowercase().contains(&format!("content-length: {}", served.len())), "{}", d.head);
    assert!(d.body == served, "the photo arrived byte-exact ({} of {} bytes)", d.body.len(), served.len());
    assert!(status.success(), "exit status {status:?}");
    assert!(exited_at - terminated < drain, "exited {:?} after SIGTERM, drain {drain:?}", exited_at - terminated);
    let mut log = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut log).expect("log");
    assert!(log.contains("shutting down") && log.contains("(10 s at most)") && log.contains("stopped"), "{log}");
}

/// The most a socket's send buffer grows to (`net.ipv4.tcp_wmem`'s last field; 4 MiB by default).
fn kernel_send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().last()?.parse().ok())
        .unwrap_or(4 * 1024 * 1024)
}

/// A JPEG of noise, which compresses badly (about 3 bytes a pixel at quality 95).
fn noise_jpeg(width: u16, height: u16) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let pixels: Vec<u8> = (0..usize::from(width) * usize::from(height) * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[4]
        })
        .collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 95)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("JPEG encodes");
    jpeg
}

/// Abandoned uploads the interrupted clean-up finds: six batches of 1000.
const ABANDONED: usize = 6000;

/// `shoebox <args>` on the Postgres database `url` with embedded S3 in `data`.
fn shoebox_on(url: &str, data: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shoebox"));
    c.args(args)
        .env("DATABASE_URL", url)
        .env("SHOEBOX_DATA_DIR", data)
        .env("RUST_LOG", "info")
        .env_remove("SHOEBOX_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Object files under `folder` of the embedded public bucket, by key.
fn stored(data: &std::path::Path, folder: &str) -> std::collections::BTreeSet<String> {
    let dir = data.join("s3/shoebox-public").join(folder);
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .map(|n| format!("{folder}/{n}"))
        .collect()
}

/// Start `shoebox clean-up --json` and send it `signal` while a batch is claimed and not yet
/// tombstoned (its objects are being deleted); how many rows that batch held, and the run's
/// end.
async fn interrupt_clean_up(
    url: &str,
    data: &std::path::Path,
    db: &sqlx::PgPool,
    signal: &str,
) -> (i64, std::process::Output) {
    let child = shoebox_on(url, data, &["clean-up", "--json"]).spawn().expect("clean-up");
    let in_batch = "select count(*) from shoebox_photos where claimed_by like 'clean-up-%' and state <> 'deleted'";
    let started = Instant::now();
    let claimed = loop {
        let n: i64 = sqlx::query_scalar(in_batch).fetch_one(db).await.expect("count");
        if n > 0 {
            break n;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "clean-up claimed nothing within a minute");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    (claimed, out)
}

/// The abandoned uploads' rows still live, and their objects still in the bucket.
async fn abandoned_left(
    db: &sqlx::PgPool,
    data: &std::path::Path,
) -> (std::collections::BTreeSet<String>, std::collections::BTreeSet<String>) {
    let live = sqlx::query_scalar(
        "select incoming_key from shoebox_photos where state = 'signed' and incoming_key like 'incoming/abandoned-%'",
    )
    .fetch_all(db)
    .await
    .expect("rows")
    .into_iter()
    .collect();
    let objects = stored(data, "incoming").into_iter().filter(|k| k.starts_with("incoming/abandoned-")).collect();
    (live, objects)
}

fn summary(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the summary, as JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_up_interrupted_mid_batch_converges_at_once_after_sigterm_and_after_the_lease_when_killed() {
    let name = fresh_pg_database().await;
    let url = format!("{}/{name}", postgres_server());
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    let out = shoebox_on(&url, data, &["migrate"]).output().expect("migrate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = sqlx::PgPool::connect(&url).await.expect("connect");

    // Seeded as scripts/bench-clean-up does: rows in one statement, objects written straight
    // into the embedded endpoint's folders. Beside the abandoned uploads (signed two days ago,
    // never finished), photos in use and uploads signed just now, which must all stay.
    let day = 86_400_000;
    let now = shoebox::now_millis();
    let insert = |prefix: &str, state: &str, n: usize, created: i64| {
        format!(
            "insert into shoebox_photos (photo_id, kind, bucket, uploader_id, state, incoming_key, object_key, \
             declared_type, image_type, max_bytes, form_expires_at, created_at, verified_at, attached_at) \
             select gen_random_uuid()::text, 'avatar', 'public', 'u', '{state}', \
             'incoming/{prefix}-' || lpad(i::text, 7, '0'), \
             case when '{state}' = 'in_use' then 'photos/{prefix}-' || lpad(i::text, 7, '0') end, \
             'image/jpeg', case when '{state}' = 'in_use' then 'image/jpeg' end, 10000000, 0, {created}, \
             case when '{state}' = 'in_use' then {created} end, case when '{state}' = 'in_use' then {created} end \
             from generate_series(1, {n}) as i"
        )
    };
    let seeds = [
        insert("abandoned", "signed", ABANDONED, now - 2 * day),
        insert("used", "in_use", 20, now - 2 * day),
        insert("fresh", "signed", 20, now),
    ];
    for sql in seeds {
        sqlx::query(&sql).execute(&db).await.expect("seed");
    }
    for (folder, prefix, n) in [("incoming", "abandoned", ABANDONED), ("photos", "used", 20), ("incoming", "fresh", 20)]
    {
        let dir = data.join("s3/shoebox-public").join(folder);
        std::fs::create_dir_all(&dir).expect("bucket folder");
        for i in 1..=n {
            std::fs::write(dir.join(format!("{prefix}-{i:07}")), b"\xff\xd8 a JPEG's first bytes").expect("object");
        }
    }
    let claims = "select count(*) from shoebox_photos where claimed_by is not null";

    // 1. SIGTERM mid-batch: the run finishes the batch in hand (batches are whole thousands),
    //    claims no other, exits 0 and says it stopped.
    let (claimed, out) = interrupt_clean_up(&url, data, &db, "-TERM").await;
    let first = summary(&out);
    let deleted = usize::try_from(first["deleted"].as_u64().expect("deleted")).expect("count");
    eprintln!("clean-up: SIGTERM with {claimed} rows claimed; that run deleted {deleted} of {ABANDONED} and stopped");
    assert_eq!((&first["stopped"], &first["errors"]), (&serde_json::json!(true), &serde_json::json!(0)), "{first}");
    assert!((1000..ABANDONED).contains(&deleted) && deleted % 1000 == 0, "{first}");
    assert_eq!(sqlx::query_scalar::<_, i64>(claims).fetch_one(&db).await.expect("count"), 0, "no claims left");
    let (live, objects) = abandoned_left(&db, data).await;
    assert_eq!(live.len(), ABANDONED - deleted);
    assert!(live == objects, "an object is left exactly where its row is");

    // 2. SIGKILL mid-batch (a crash, or a platform out of patience): that batch stays claimed,
    //    its objects perhaps half deleted, until its lease (10 minutes) runs out.
    //    (Should the kill land in the instant between two batches, nothing is held: kill again.)
    let mut held = 0;
    for _ in 0..3 {
        let (_, out) = interrupt_clean_up(&url, data, &db, "-KILL").await;
        assert!(!out.status.success(), "killed");
        held = sqlx::query_scalar(claims).fetch_one(&db).await.expect("count");
        if held > 0 {
            break;
        }
    }
    assert!(held > 0 && held <= 1000, "the killed run's batch is still claimed: {held}");
    eprintln!("clean-up: SIGKILL mid-batch left {held} rows claimed until their lease runs out");
    let (live, _) = abandoned_left(&db, data).await;

    // 3. The next run deletes everything else and leaves the claimed batch to its lease: a
    //    claim it cannot tell from a runner still at work.
    let third = summary(&shoebox_on(&url, data, &["clean-up", "--json"]).output().expect("clean-up"));
    let expected = u64::try_from(live.len()).expect("n") - u64::try_from(held).expect("n");
    assert_eq!((third["deleted"].as_u64(), &third["errors"]), (Some(expected), &serde_json::json!(0)), "{third}");
    let (live, objects) = abandoned_left(&db, data).await;
    assert_eq!(i64::try_from(live.len()).expect("n"), held, "only the claimed batch is left");
    assert!(objects.is_subset(&live), "no object without its row");

    // 4. Once the lease has run out (moved into the past here rather than waited for), the
    //    next run takes the claims over and deletes exactly that batch, objects already gone
    //    or not.
    sqlx::query("update shoebox_photos set claimed_until = 0 where claimed_by is not null")
        .execute(&db)
        .await
        .expect("the lease runs out");
    let fourth = summary(&shoebox_on(&url, data, &["clean-up", "--json"]).output().expect("clean-up"));
    assert_eq!(
        (fourth["deleted"].as_u64(), &fourth["errors"]),
        (u64::try_from(held).ok(), &serde_json::json!(0)),
        "{fourth}"
    );

    // Every abandoned upload is gone, row and object; nothing in use or still fresh was touched.
    let states: Vec<(String, i64)> = sqlx::query_as(
        "select split_part(incoming_key, '-', 1) || ' ' || state, count(*) from shoebox_photos group by 1 order by 1",
    )
    .fetch_all(&db)
    .await
    .expect("states");
    let all = i64::try_from(ABANDONED).expect("n");
    let expected = [("incoming/abandoned deleted", all), ("incoming/fresh signed", 20), ("incoming/used in_use", 20)]
        .map(|(k, n)| (k.to_owned(), n));
    assert_eq!(states, expected);
    assert_eq!(sqlx::query_scalar::<_, i64>(claims).fetch_one(&db).await.expect("count"), 0);
    let incoming = stored(data, "incoming");
    assert!(incoming.iter().all(|k| k.starts_with("incoming/fresh-")) && incoming.len() == 20, "{incoming:?}");
    assert_eq!(stored(data, "photos").len(), 20, "the photos in use keep their objects");
    db.close().await;
    crate::helpers::drop_pg_database(name);
}
