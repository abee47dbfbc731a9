//! The embedded S3 endpoint where clients notice it differs from S3: the answer to a form
//! upload (status, `ETag`, `Location`, S3's XML), the CORS headers a browser script needs to
//! read them, and bodies too large to be an upload, refused before they are read; and where it
//! must not differ from day one after months of use: deleted objects leave nothing on disk.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::helpers::{Backend, TestApp, field, photo, post_to_bucket};
use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use shoebox::embedded::FORM_ALLOWANCE;
use shoebox::post_policy::{PostPolicyRequest, sign_post_policy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PUBLIC: &str = "shoebox-public";
/// The largest `max_bytes` of the example kinds the harness configures (`id_document`).
const LARGEST_UPLOAD: u64 = 15_000_000;
const BIG_BODY: u64 = 200_000_000;

/// A form for a fresh key in the public bucket, signed with the endpoint's credentials, allowing
/// up to `max_bytes`; a `redirect` makes it a no-JavaScript form. Returns (key, fields).
fn form(app: &TestApp, max_bytes: u64, redirect: Option<&str>) -> (String, Vec<(String, String)>) {
    let key = format!("incoming/{}", crate::helpers::random_token());
    let now = time::OffsetDateTime::now_utc();
    let signed = sign_post_policy(
        &PostPolicyRequest {
            bucket: PUBLIC,
            region: "us-east-1",
            key: &key,
            content_type: "image/jpeg",
            min_bytes: 1,
            max_bytes,
            success_redirect: redirect,
            now,
            expires_at: now + time::Duration::minutes(5),
        },
        &app.s3_credentials,
    );
    (key, signed.fields)
}

/// The same form without `success_action_status`, re-signed: S3's default answer, 204.
fn without_status(app: &TestApp, fields: &[(String, String)]) -> Vec<(String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut policy: Value = serde_json::from_slice(&b64.decode(field(fields, "policy")).expect("b64")).expect("json");
    let conditions = policy["conditions"].as_array_mut().expect("conditions");
    let before = conditions.len();
    conditions.retain(|c| c.get(1).and_then(Value::as_str) != Some("$success_action_status"));
    assert_eq!(conditions.len(), before - 1, "the signed policy pinned success_action_status");
    let policy_b64 = b64.encode(policy.to_string());
    let date = &field(fields, "x-amz-date")[..8];
    let signature =
        shoebox::post_policy::signature_for(&policy_b64, &app.s3_credentials.secret_access_key, date, "us-east-1");
    fields
        .iter()
        .filter(|(k, _)| k != "success_action_status")
        .map(|(k, v)| match k.as_str() {
            "policy" => (k.clone(), policy_b64.clone()),
            "x-amz-signature" => (k.clone(), signature.clone()),
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

/// The object's ETag as an S3 client sees it (HEAD).
async fn head_etag(app: &TestApp, key: &str) -> String {
    let o = app.s3().head_object().bucket(PUBLIC).key(key).send().await.expect("stored");
    o.e_tag().expect("etag").to_owned()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers().get(name).unwrap_or_else(|| panic!("{name} header")).to_str().expect("ascii").to_owned()
}

/// The children of a `<PostResponse>` document, read with a real XML parser (s3s's).
fn post_response(xml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut d = s3s::xml::Deserializer::new(xml.as_bytes());
    d.named_element("PostResponse", |d| {
        d.for_each_element(|d, name| {
            let text: String = d.content()?;
            out.insert(String::from_utf8_lossy(name).into_owned(), text);
            Ok(())
        })
    })
    .unwrap_or_else(|e| panic!("a PostResponse document: {e:?}\n{xml}"));
    d.expect_eof().expect("nothing after the root element");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_201_form_upload_answers_with_etag_location_and_s3s_xml() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let bytes = photo("orientation/Landscape_1.jpg");
    let (key, fields) = form(&app, 1_000_000, None);
    assert_eq!(field(&fields, "success_action_status"), "201");
    let url = format!("{}/{PUBLIC}", app.s3_endpoint);
    let res = post_to_bucket(&url, &fields, bytes, "image/jpeg").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let etag = header(&res, "etag");
    let location = header(&res, "location");
    assert_eq!(etag, head_etag(&app, &key).await, "the ETag is the stored object's");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "quoted, as S3 sends it: {etag}");
    assert_eq!(location, format!("{}/{PUBLIC}/{key}", app.s3_endpoint), "the object's own URL");
    assert!(header(&res, "content-type").contains("xml"));

    let xml = res.text().await.expect("body");
    let doc = post_response(&xml);
    assert_eq!(doc.keys().map(String::as_str).collect::<Vec<_>>(), ["Bucket", "ETag", "Key", "Location"]);
    assert_eq!(doc["Location"], location);
    assert_eq!(doc["Bucket"], PUBLIC);
    assert_eq!(doc["Key"], key);
    assert_eq!(doc["ETag"], etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_upload_without_a_status_answers_204_with_etag_and_location() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (key, fields) = form(&app, 1_000_000, None);
    let fields = without_status(&app, &fields);
    let url = format!("{}/{PUBLIC}", app.s3_endpoint);
    let res = post_to_bucket(&url, &fields, photo("orientation/Landscape_1.jpg"), "image/jpeg").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&res, "etag"), head_etag(&app, &key).await);
    assert_eq!(header(&res, "location"), format!("{}/{PUBLIC}/{key}", app.s3_endpoint));
    assert!(res.bytes().await.expect("body").is_empty());

    // The re-signing above is what made it pass: the same form with its status field removed
    // but the original policy is refused.
    let (key, fields) = form(&app, 1_000_000, None);
    let unsigned: Vec<_> = fields.into_iter().filter(|(k, _)| k != "success_action_status").collect();
    let res = post_to_bucket(&url, &unsigned, photo("orientation/Landscape_1.jpg"), "image/jpeg").await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert!(!app.object_exists("public", &key).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_form_upload_still_redirects_with_bucket_key_and_etag() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let back = format!("{}/uploads/x/done?from=form", app.base);
    let (key, fields) = form(&app, 1_000_000, Some(&back));
    let url = format!("{}/{PUBLIC}", app.s3_endpoint);
    let res = post_to_bucket(&url, &fields, photo("orientation/Landscape_1.jpg"), "image/jpeg").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let etag = head_etag(&app, &key).await;
    assert_eq!(header(&res, "etag"), etag);
    let location = url::Url::parse(&header(&res, "location")).expect("url");
    assert!(location.as_str().starts_with(&back), "{location}");
    let query: BTreeMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["from"], "form");
    assert_eq!(query["bucket"], PUBLIC);
    assert_eq!(query["key"], key);
    assert_eq!(query["etag"], etag.trim_matches('"'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_scripts_on_the_app_origin_may_post_and_read_etag_and_location() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = format!("{}/{PUBLIC}", app.s3_endpoint);
    let client = reqwest::Client::new();
    let preflight = |origin: String| {
        client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };

    let res = preflight(app.base.clone()).await.expect("preflight");
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(header(&res, "access-control-allow-origin"), app.base);
    assert!(header(&res, "access-control-allow-methods").contains("POST"));
    let foreign = preflight("https://evil.example".into()).await.expect("preflight");
    assert!(foreign.headers().get("access-control-allow-origin").is_none(), "other origins are not allowed");

    // Browsers hide response headers from scripts unless the answer exposes them: S3 sends
    // Access-Control-Expose-Headers with the POST's answer, not with the preflight.
    let (key, fields) = form(&app, 1_000_000, None);
    let mut multipart = Form::new();
    for (k, v) in fields {
        multipart = multipart.text(k, v);
    }
    let file = Part::bytes(photo("orientation/Landscape_1.jpg")).file_name("p.jpg").mime_str("image/jpeg");
    multipart = multipart.part("file", file.expect("mime"));
    let res = client.post(&url).header("origin", &app.base).multipart(multipart).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(header(&res, "access-control-allow-origin"), app.base);
    let exposed = header(&res, "access-control-expose-headers").to_ascii_lowercase();
    let exposed: Vec<&str> = exposed.split(',').map(str::trim).collect();
    assert!(exposed.contains(&"etag") && exposed.contains(&"location"), "{exposed:?}");
    assert_eq!(header(&res, "etag"), head_etag(&app, &key).await);
}

/// What a raw HTTP/1.1 POST of a generated body got back, and how much of the body the client
/// had handed to the socket by the time the answer and the connection's end arrived.
struct RawAnswer {
    status: u16,
    head: String,
    body: String,
    /// Whether the server closed the connection after answering.
    closed: bool,
    sent: u64,
}

/// POST `prefix`, then `file_len` generated zero bytes, then `suffix` to `path`, with a
/// `Content-Length` or chunked, over a socket of our own: the answer is read while the body is
/// still being sent, as a browser does, and the client never holds more than 64 KiB of the
/// file. `keep_alive: false` asks the server to close after answering; with `true`, a closed
/// connection is the server's own choice.
#[expect(clippy::too_many_arguments, reason = "a test helper; each argument is one part of the request")]
async fn raw_post(
    endpoint: &str,
    path: &str,
    boundary: &str,
    prefix: Vec<u8>,
    file_len: u64,
    suffix: Vec<u8>,
    chunked: bool,
    keep_alive: bool,
) -> RawAnswer {
    let addr = endpoint.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // A small send buffer keeps the count close to what the server actually took.
    socket.set_send_buffer_size(64 * 1024).expect("sndbuf");
    let stream = socket.connect(addr.parse().expect("addr")).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let total = prefix.len() as u64 + file_len + suffix.len() as u64;
    let length = if chunked { "Transfer-Encoding: chunked".to_owned() } else { format!("Content-Length: {total}") };
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: {connection}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n{length}\r\n\r\n"
    );
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        const PIECE: u64 = 64 * 1024;
        wr.write_all(head.as_bytes()).await?;
        let zeros = vec![0u8; PIECE as usize];
        let mut left = file_len;
        let pieces = std::iter::once(&prefix[..])
            .chain(std::iter::from_fn(|| {
                let n = left.min(PIECE);
                left -= n;
                (n > 0).then(|| &zeros[..n as usize])
            }))
            .chain(std::iter::once(&suffix[..]));
        for piece in pieces {
            counter.fetch_add(piece.len() as u64, Ordering::Relaxed);
            if chunked {
                wr.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await?;
                wr.write_all(piece).await?;
                wr.write_all(b"\r\n").await?;
            } else {
                wr.write_all(piece).await?;
            }
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        wr.flush().await?;
        std::io::Result::Ok(wr)
    });

    // Read until the server closes the connection; a server that keeps it open after a
    // complete answer is given a few seconds, then counted as not closing.
    let mut answer = Vec::new();
    let mut closed = false;
    let mut buf = vec![0u8; 16 * 1024];
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&answer).contains("</Error>") {
                    deadline = deadline.min(tokio::time::Instant::now() + Duration::from_secs(5));
                }
            }
            Err(_) => break,
        }
    }
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    RawAnswer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
        closed,
        sent: sent.load(Ordering::Relaxed),
    }
}

/// The multipart text before and after the file: `fields`, then a file part's header; then the
/// closing boundary.
fn multipart_around_file(boundary: &str, fields: &[(String, String)]) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = String::new();
    for (k, v) in fields {
        prefix.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"));
    }
    prefix.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    ));
    (prefix.into_bytes(), format!("\r\n--{boundary}--\r\n").into_bytes())
}

/// An anonymous form (no policy, no signature) with a 200 MB file, sent with and without a
/// Content-Length, is refused as S3 refuses it, and the endpoint stops reading: the client got
/// no further than the limit plus what the two sockets' buffers hold. Buffering the body whole
/// before answering (what s3s does on its own) would have taken all 200 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_anonymous_post_is_refused_before_it_is_read() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let limit = LARGEST_UPLOAD + FORM_ALLOWANCE;
    let boundary = "shoebox-test-boundary";
    let key = "incoming/anonymous-big";
    let fields = vec![("key".to_owned(), key.to_owned()), ("Content-Type".to_owned(), "image/jpeg".to_owned())];
    for chunked in [false, true] {
        let (prefix, suffix) = multipart_around_file(boundary, &fields);
        let res =
            raw_post(&app.s3_endpoint, &format!("/{PUBLIC}"), boundary, prefix, BIG_BODY, suffix, chunked, true).await;
        let how = if chunked { "chunked" } else { "with Content-Length" };
        assert_eq!(res.status, 400, "{how}: {}\n{}", res.head, res.body);
        assert!(res.body.contains("<Code>EntityTooLarge</Code>"), "{how}: {}", res.body);
        assert!(res.body.contains(&format!("<MaxSizeAllowed>{limit}</MaxSizeAllowed>")), "{how}: {}", res.body);
        assert!(res.head.contains("connection: close"), "{how}: {}", res.head);
        assert!(res.closed, "{how}: the endpoint closes the connection rather than read the rest");
        let bound = if chunked { limit + 16 * 1024 * 1024 } else { 16 * 1024 * 1024 };
        assert!(res.sent < bound, "{how}: the client handed out {} bytes, expected under {bound}", res.sent);
        eprintln!("{how}: refused after the client handed out {} of {BIG_BODY} bytes", res.sent);
        assert!(!app.object_exists("public", key).await);
    }
    // The endpoint is still there for the next upload.
    let (key, fields) = form(&app, 1_000_000, None);
    let url = format!("{}/{PUBLIC}", app.s3_endpoint);
    let res = post_to_bucket(&url, &fields, photo("orientation/Landscape_1.jpg"), "image/jpeg").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(app.object_exists("public", &key).await);
}

/// A signed form for the largest upload any kind allows, at its full size, still goes through
/// the limit, by Content-Length and chunked; one byte more than the policy allows does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_upload_of_the_largest_allowed_size_still_works() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let boundary = "shoebox-test-boundary";
    for chunked in [false, true] {
        let (key, fields) = form(&app, LARGEST_UPLOAD, None);
        let (prefix, suffix) = multipart_around_file(boundary, &fields);
        let body_len = prefix.len() as u64 + LARGEST_UPLOAD + suffix.len() as u64;
        assert!(body_len > LARGEST_UPLOAD && body_len < LARGEST_UPLOAD + FORM_ALLOWANCE);
        let res =
            raw_post(&app.s3_endpoint, &format!("/{PUBLIC}"), boundary, prefix, LARGEST_UPLOAD, suffix, chunked, false)
                .await;
        assert_eq!(res.status, 201, "chunked: {chunked}: {}\n{}", res.head, res.body);
        let (size, _) = app.head("public", &key).await.expect("stored");
        assert_eq!(size, LARGEST_UPLOAD);
    }
    let (key, fields) = form(&app, LARGEST_UPLOAD, None);
    let (prefix, suffix) = multipart_around_file(boundary, &fields);
    let res =
        raw_post(&app.s3_endpoint, &format!("/{PUBLIC}"), boundary, prefix, LARGEST_UPLOAD + 1, suffix, false, false)
            .await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(!app.object_exists("public", &key).await);
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(path.strip_prefix(dir).expect("under").display().to_string());
            }
        }
    }
    files
}

/// Deleting an object removes everything written for it: photos uploaded (their uploads,
/// originals and variants, with s3s-fs's metadata files beside them) and deleted again, one
/// through Shoebox's API and one object by S3's own calls, leave no file and no folder of
/// theirs behind, so the folder does not grow with every photo ever uploaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_every_object_leaves_nothing_of_it_on_disk() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ann = app.sign_up("ann@example.com").await;
    let root = app.s3_path("", "");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let p = ann.upload("avatar", photo("orientation/Portrait_1.jpg"), "image/jpeg").await;
        let id = p["id"].as_str().expect("id").to_owned();
        crate::variants::wait_for_variants(&app, &id).await;
        ids.push(id);
    }
    let body = aws_sdk_s3::primitives::ByteStream::from_static(b"with metadata");
    let put = app.s3().put_object().bucket(PUBLIC).key("photos/other/a.jpg").content_type("image/jpeg");
    put.metadata("owner", "ann").body(body).send().await.expect("put");
    let written = files_under(&root);
    assert!(written.iter().any(|f| f.contains(".metadata.json")), "s3s-fs writes sidecars: {written:?}");
    assert!(written.len() > 3 * 3, "uploads, originals and variants: {written:?}");

    for id in &ids {
        let res = ann.client.delete(ann.url(&format!("/api/photos/{id}"))).header("x-csrf-token", &ann.csrf);
        assert_eq!(res.send().await.expect("delete").status(), StatusCode::NO_CONTENT);
    }
    app.s3().delete_object().bucket(PUBLIC).key("photos/other/a.jpg").send().await.expect("delete");
    assert_eq!(files_under(&root), Vec::<String>::new(), "nothing of the deleted objects is left");
    let mut folders: Vec<String> = std::fs::read_dir(root.join(PUBLIC))
        .expect("bucket folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert!(folders.is_empty(), "emptied folders are removed, the bucket's own stays: {folders:?}");
}

/// Two deletions of one key at once (a photo's deletion and its variant maker removing what it
/// had just written) both succeed, as on S3: s3s-fs alone fails the one whose remove finds the
/// file already gone. Retries are off, so a failed attempt shows: single deletions race each
/// other and three `DeleteObjects` of every key (whose per-key errors no client retries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_one_key_twice_at_once_succeeds_both_times() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let config = app.s3().config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    let s3 = aws_sdk_s3::Client::from_conf(config.build());
    let keys: Vec<String> = (0..48).map(|i| format!("photos/twice/{i:02}.jpg")).collect();
    for round in 0..4 {
        for key in &keys {
            let body = aws_sdk_s3::primitives::ByteStream::from_static(b"bytes");
            s3.put_object().bucket(PUBLIC).key(key).body(body).send().await.expect("put");
        }
        let single = |key: String| {
            let s3 = s3.clone();
            tokio::spawn(async move { s3.delete_object().bucket(PUBLIC).key(&key).send().await.map(|_| key) })
        };
        let objects: Vec<_> = keys
            .iter()
            .map(|k| aws_sdk_s3::types::ObjectIdentifier::builder().key(k).build().expect("identifier"))
            .collect();
        let delete = aws_sdk_s3::types::Delete::builder().set_objects(Some(objects)).build().expect("delete");
        let batches: Vec<_> = (0..3)
            .map(|_| {
                let (s3, delete) = (s3.clone(), delete.clone());
                tokio::spawn(async move { s3.delete_objects().bucket(PUBLIC).delete(delete).send().await })
            })
            .collect();
        let singles: Vec<_> = keys.iter().flat_map(|k| [single(k.clone()), single(k.clone())]).collect();
        for outcome in futures_util::future::join_all(singles).await {
            let key = outcome.expect("task").unwrap_or_else(|e| panic!("round {round}: a single deletion: {e:?}"));
            assert!(keys.contains(&key));
        }
        for batch in futures_util::future::join_all(batches).await {
            let batch = batch.expect("task").expect("DeleteObjects");
            assert_eq!(batch.errors().len(), 0, "round {round}: no key of a batch fails: {:?}", batch.errors());
            assert_eq!(batch.deleted().len(), keys.len());
        }
        let left = s3.list_objects_v2().bucket(PUBLIC).prefix("photos/twice/").send().await.expect("list");
        assert_eq!(left.key_count(), Some(0), "every key is gone");
    }
}

/// s3s-fs writes an object by making its folders, then renaming the written file into them; a
/// deletion that empties the folder in between (an upload's `incoming/` object, deleted once
/// the photo is promoted, while the next upload lands) must not remove the folder from under
/// the write, which would fail it with a 500. Both are done at once, many times, with the
/// client's retries off, so a lost write shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_beside_a_deletion_that_empties_its_folder_succeeds() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let config = app.s3().config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    let s3 = aws_sdk_s3::Client::from_conf(config.build());
    let put = |key: String| {
        let s3 = s3.clone();
        tokio::spawn(async move {
            let body = aws_sdk_s3::primitives::ByteStream::from_static(b"bytes");
            s3.put_object().bucket(PUBLIC).key(&key).body(body).send().await.map(|_| key)
        })
    };
    let delete = |key: String| {
        let s3 = s3.clone();
        tokio::spawn(async move { s3.delete_object().bucket(PUBLIC).key(&key).send().await.map(|_| key) })
    };
    for round in 0..150 {
        let folder = format!("incoming/race{}", round % 3);
        put(format!("{folder}/old")).await.expect("task").expect("the first write");
        let writes: Vec<_> = (0..6).map(|i| put(format!("{folder}/new{i}"))).collect();
        let deletion = delete(format!("{folder}/old"));
        for write in futures_util::future::join_all(writes).await {
            let key = write.expect("task").unwrap_or_else(|e| panic!("round {round}: a write: {e:?}"));
            s3.head_object().bucket(PUBLIC).key(&key).send().await.expect("the written object is there");
            delete(key).await.expect("task").expect("deleted again");
        }
        deletion.await.expect("task").expect("the deletion");
    }
    let left = s3.list_objects_v2().bucket(PUBLIC).prefix("incoming/race").send().await.expect("list");
    assert_eq!(left.key_count(), Some(0));
}
