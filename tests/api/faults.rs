//! S3 failing in each way it can, through the [`Switch`](crate::helpers::Switch): answers of
//! 500, 503 and `SlowDown` (retried with backoff, then 503 with `Retry-After`), answers that
//! come too late (503 within 5 s, while pages that need no S3 stay quick), a body cut off
//! part-way (an aborted transfer, never a short body passed off as whole), and S3 coming back
//! (served again by the same process). Postgres restarting under load is in [`postgres`].

mod postgres;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use shoebox_app::settings::example_kinds;

use crate::helpers::{S3State, as_served, photo};
use crate::serving::{Rig, SMALL, assert_unavailable};

/// The camera photo: 4 MB, big enough to be cut off well inside its body.
const CAMERA: &str = "camera/samsung-galaxy-s7-edge_4032x3024.jpg";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_errors_are_retried_with_backoff_then_answered_503_with_retry_after() {
    let rig = Rig::start(example_kinds()).await;
    let served = as_served(&photo(SMALL));
    let path = rig.upload(photo(SMALL)).await;
    let pending = rig.sign_and_send(photo(SMALL)).await;
    let complete = format!("/api/uploads/{pending}/complete");
    let get = || async { rig.client.get(rig.url(&path)).send().await.expect("GET") };

    for (status, code) in [(500, "InternalError"), (503, "ServiceUnavailable"), (503, "SlowDown")] {
        // A fault that passes: the first attempt fails, the retry is served, the viewer sees
        // nothing of it.
        rig.s3.fail_next(1, status, code);
        let before = rig.s3.requests();
        let res = get().await;
        assert_eq!(res.status(), StatusCode::OK, "{code} once");
        assert_eq!(res.bytes().await.expect("body"), served, "{code} once");
        assert_eq!(rig.s3.requests() - before, 2, "{code} once: asked again once: {:?}", rig.s3.requests_since(before));

        // A fault that lasts: three attempts in all, then 503 with Retry-After.
        rig.s3.set(S3State::Failing(status, code));
        let before = rig.s3.requests();
        assert_unavailable(&format!("{code}: proxy"), get()).await;
        assert_eq!(rig.s3.requests() - before, 3, "{code}: three attempts: {:?}", rig.s3.requests_since(before));
        assert_unavailable(&format!("{code}: completion"), rig.post(&complete, json!({}))).await;
        let health = rig.client.get(rig.url("/healthz")).send().await.expect("healthz");
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE, "{code}");

        // S3 comes back: the same process serves again at once.
        rig.s3.set(S3State::Up);
        let res = get().await;
        assert_eq!(res.status(), StatusCode::OK, "{code}: back");
        assert_eq!(res.bytes().await.expect("body"), served, "{code}: back");
    }

    // A long outage is not retried without end: retries spend a quota (the SDK's token bucket,
    // 500 tokens at 5 a retry), so 64 viewers at once cost S3 far fewer than 3 × 64 requests.
    rig.s3.set(S3State::Failing(500, "InternalError"));
    let before = rig.s3.requests();
    let viewers: Vec<_> = (0..64)
        .map(|_| {
            let (client, url) = (rig.client.clone(), rig.url(&path));
            tokio::spawn(async move { client.get(url).send().await.expect("GET").status() })
        })
        .collect();
    for v in viewers {
        assert_eq!(v.await.expect("join"), StatusCode::SERVICE_UNAVAILABLE);
    }
    let asked = rig.s3.requests() - before;
    eprintln!("a failing S3: 64 viewers at once cost {asked} requests to S3");
    assert!(asked < 3 * 64, "the retry quota bounds the load on a failing S3: {asked} requests");
    rig.s3.set(S3State::Up);
    let res = get().await;
    assert_eq!(res.status(), StatusCode::OK, "served again after a long outage");
    assert_eq!(res.bytes().await.expect("body"), served);
    assert_eq!(rig.post(&complete, json!({})).await.status(), StatusCode::OK, "the upload completes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_answering_after_10_s_is_a_503_within_5_s_while_pages_without_s3_stay_under_100_ms() {
    let rig = Rig::start(example_kinds()).await;
    let served = as_served(&photo(SMALL));
    let path = rig.upload(photo(SMALL)).await;
    let id = path.split('/').nth(2).expect("id").to_owned();
    let pending = rig.sign_and_send(photo(SMALL)).await;
    let complete = format!("/api/uploads/{pending}/complete");
    // Pages and API calls that need the database and the signer, never S3.
    let sign = json!({"kind": "id_document", "filename": "p.webp", "content_type": "image/webp", "size": 1000});
    let no_s3 = || async {
        let started = Instant::now();
        for page in ["/", "/upload?kind=id_document", &format!("/api/photos/{id}")] {
            let res = rig.client.get(rig.url(page)).send().await.expect("page");
            assert_eq!(res.status(), StatusCode::OK, "{page}");
            res.bytes().await.expect("body");
        }
        assert_eq!(rig.post("/api/uploads", sign.clone()).await.status(), StatusCode::CREATED, "signing");
        started.elapsed() / 4
    };
    no_s3().await; // warm: the first render of each page is not what is measured

    rig.s3.set(S3State::Slow(Duration::from_secs(10)));
    let needs_s3 = [
        ("proxy", rig.client.get(rig.url(&path))),
        ("ranged proxy", rig.client.get(rig.url(&path)).header("range", "bytes=0-9")),
        ("completion", rig.client.post(rig.url(&complete)).header("x-csrf-token", rig.csrf()).json(&json!({}))),
    ]
    .map(|(what, req)| {
        tokio::spawn(async move {
            let started = Instant::now();
            let res = req.send().await.expect("request");
            (what, started.elapsed(), res.status(), res.headers().get("retry-after").cloned())
        })
    });
    // While those wait on S3, everything else answers as before. A bound, not a benchmark:
    // each round is four requests one after another, and the slowest round's average counts.
    let mut slowest = Duration::ZERO;
    for _ in 0..8 {
        slowest = slowest.max(no_s3().await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for waiting in needs_s3 {
        let (what, took, status, retry_after) = waiting.await.expect("join");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert!(retry_after.is_some(), "{what}: Retry-After");
        assert!(took < Duration::from_secs(5), "{what} answered after {took:?}");
        eprintln!("slow S3: {what} answered 503 after {took:?}");
    }
    eprintln!("slow S3: pages without S3 answered in {slowest:?} at worst");
    assert!(slowest < Duration::from_millis(100), "pages without S3 slowed to {slowest:?}");

    rig.s3.set(S3State::Up);
    let res = rig.client.get(rig.url(&path)).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.expect("body"), served);
    // Nothing was decided about the upload while its read was cut: it completes now.
    assert_eq!(rig.post(&complete, json!({})).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_cutting_a_body_short_aborts_the_transfer_and_never_passes_it_off_as_whole() {
    let rig = Rig::start(example_kinds()).await;
    let camera = photo(CAMERA);
    let served = as_served(&camera);
    let path = rig.upload(camera.clone()).await;
    let pending = rig.sign_and_send(camera).await;

    rig.s3.set(S3State::CutAfter(256 * 1024));
    for range in [None, Some("bytes=1000-2999999")] {
        let mut req = rig.client.get(rig.url(&path));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let res = req.send().await.expect("headers arrive: S3 answered");
        let promised: usize = res.headers()["content-length"].to_str().expect("ascii").parse().expect("length");
        assert!(promised > 1_000_000, "{range:?}: {promised}");
        // The connection ends before the promised length, so the client knows the body is
        // short: an error, not a smaller photo.
        let body = tokio::time::timeout(Duration::from_secs(10), res.bytes()).await.expect("not left hanging");
        assert!(body.is_err(), "{range:?}: a cut body was passed off as whole ({:?} bytes)", body.map(|b| b.len()));
    }
    // Verification reads what it checks whole: a cut read is S3's outage, and the upload is
    // left as it was, to complete later.
    let complete = format!("/api/uploads/{pending}/complete");
    assert_unavailable("completion with its read cut", rig.post(&complete, json!({}))).await;
    rig.s3.set(S3State::Up);
    let res = rig.client.get(rig.url(&path)).send().await.expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.expect("whole") == served, "served whole again");
    // Nothing was decided about the upload while its read was cut: it completes now.
    assert_eq!(rig.post(&complete, json!({})).await.status(), StatusCode::OK);
}
