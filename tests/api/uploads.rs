//! Direct upload end to end: signing, the bucket's own checks, verification and attaching,
//! on Postgres and SQLite, against the embedded S3 endpoint over the network.

use crate::helpers::{Switch, TestApp, field, form_of, photo, post_to_bucket, set_field};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shoebox::now_millis;

const JPEG: &str = "orientation/Landscape_1.jpg";

async fn a_photo_goes_from_the_browser_to_the_bucket_and_shows_on_the_home_page(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = photo(JPEG);
    let photo = ann.upload("avatar", bytes.clone(), "image/jpeg").await;
    assert_eq!(photo["state"], "ready");
    assert_eq!(photo["type"], "image/jpeg");
    let info = shoebox::imaging::probe(&bytes).expect("a JPEG");
    let (w, h) = (info.width, info.height);
    assert_eq!((photo["width"].as_u64(), photo["height"].as_u64()), (Some(u64::from(w)), Some(u64::from(h))));
    assert_eq!(photo["byte_size"].as_u64(), Some(crate::helpers::as_served(&bytes).len() as u64), "the size served");
    let id = photo["id"].as_str().expect("id").to_owned();

    let attached = ann.attach(&id, json!({})).await;
    assert_eq!(attached.status(), StatusCode::OK);
    let attached: Value = attached.json().await.expect("json");
    assert_eq!(attached["photo"]["state"], "in_use");

    // Public photos are served straight from the bucket, to anyone, with the sniffed type.
    let public_url = attached["photo"]["urls"]["original"].as_str().expect("url").to_owned();
    assert!(public_url.starts_with(&app.s3_endpoint), "{public_url}");
    let home = app.client.get(app.url("/")).send().await.expect("home").text().await.expect("text");
    assert!(home.contains(&format!("data-photo-id=\"{id}\"")) && home.contains("thumb"), "home page shows its thumb");
    let fetched = reqwest::get(&public_url).await.expect("anonymous GET");
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.headers()["content-type"], "image/jpeg");
    assert_eq!(fetched.bytes().await.expect("bytes").as_ref(), crate::helpers::as_served(&bytes).as_slice());

    // The app's own URL for it redirects there.
    let via_app = app.new_browser().get(app.url(&format!("/photos/{id}/original"))).send().await.expect("get");
    assert_eq!(via_app.status(), StatusCode::SEE_OTHER);
    assert_eq!(via_app.headers()["location"], public_url.as_str());

    // Nothing is left under the incoming prefix.
    assert!(app.stored_keys("shoebox-public").iter().all(|k| !k.starts_with("incoming/")));
}

async fn a_private_photo_is_streamed_only_to_its_owner(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = photo("orientation/Portrait_1.jpg");
    let photo = ann.upload("id_document", bytes.clone(), "image/jpeg").await;
    let id = photo["id"].as_str().expect("id");
    let path = format!("/photos/{id}/original");
    assert_eq!(photo["urls"]["original"], path.as_str());

    let mine = app.client.get(app.url(&path)).send().await.expect("owner GET");
    assert_eq!(mine.status(), StatusCode::OK);
    assert_eq!(mine.headers()["content-type"], "image/jpeg");
    assert_eq!(mine.headers()["x-content-type-options"], "nosniff");
    assert_eq!(mine.headers()["content-disposition"], "inline; filename=\"photo.jpg\"");
    assert!(mine.headers()["cache-control"].to_str().expect("ascii").contains("private"));
    assert_eq!(mine.bytes().await.expect("bytes").as_ref(), crate::helpers::as_served(&bytes).as_slice());

    let anonymous = app.new_browser().get(app.url(&path)).send().await.expect("anonymous GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let bob = app.sign_up_elsewhere("bob@example.com").await;
    assert_eq!(bob.get(&path).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(bob.get(&format!("/api/photos/{id}")).await.status(), StatusCode::FORBIDDEN);

    let missing =
        app.client.get(app.url(&format!("/photos/{}/original", uuid::Uuid::new_v4()))).send().await.expect("GET");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let junk = app.client.get(app.url("/photos/not-an-id/original")).send().await.expect("GET");
    assert_eq!(junk.status(), StatusCode::NOT_FOUND);

    // The bucket itself refuses anonymous reads of the private object.
    let row = app.shoebox.photo(id.parse().expect("id")).await.expect("db").expect("row");
    let key = row.object_key.expect("served key");
    let direct = reqwest::get(format!("{}/shoebox-private/{key}", app.s3_endpoint)).await.expect("GET");
    assert_eq!(direct.status(), StatusCode::FORBIDDEN);
}

async fn uploads_waiting_for_verification_cannot_be_read_anonymously_even_in_a_public_bucket(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = photo(JPEG);
    let signed: Value = ann.sign("avatar", "image/jpeg", bytes.len()).await.json().await.expect("json");
    let (url, fields) = form_of(&signed);
    assert_eq!(post_to_bucket(&url, &fields, bytes, "image/jpeg").await.status(), StatusCode::CREATED);
    let key = field(&fields, "key");
    assert!(key.starts_with("incoming/") && key.len() == "incoming/".len() + 32, "{key}");
    let direct = reqwest::get(format!("{url}/{key}")).await.expect("GET");
    assert_eq!(direct.status(), StatusCode::FORBIDDEN);
    // Nor by walking out of the served prefix with dot segments (sent raw: URL libraries
    // would resolve them before sending).
    let endpoint = app.s3_endpoint.trim_start_matches("http://").to_owned();
    let raw = format!("GET /shoebox-public/photos/../{key} HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(&endpoint).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, raw.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{}", answer.lines().next().unwrap_or_default());
    // …and the app does not show it either until it is verified.
    let id = signed["photo_id"].as_str().expect("id");
    assert_eq!(
        app.client.get(app.url(&format!("/photos/{id}/original"))).send().await.expect("GET").status(),
        StatusCode::NOT_FOUND
    );
}

async fn signing_refuses_bad_requests_with_a_clear_answer(app: TestApp) {
    // Logged out.
    let body = json!({"kind": "avatar", "filename": "photo.jpg", "content_type": "image/jpeg", "size": 100});
    let res =
        app.client.post(app.url("/api/uploads")).header("x-csrf-token", "x").json(&body).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "unauthenticated");

    let ann = app.sign_up("ann@example.com").await;
    let cases: &[(Value, StatusCode, &str)] = &[
        (
            json!({"kind": "passport", "content_type": "image/jpeg", "size": 10}),
            StatusCode::BAD_REQUEST,
            "unknown_kind",
        ),
        (
            json!({"kind": "avatar", "content_type": "image/svg+xml", "size": 10}),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "type_not_accepted",
        ),
        (
            json!({"kind": "avatar", "content_type": "text/html", "size": 10}),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "type_not_accepted",
        ),
        (
            json!({"kind": "avatar", "content_type": "image/jpeg", "size": 50_000_000}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (json!({"kind": "avatar", "content_type": "image/jpeg", "size": 0}), StatusCode::BAD_REQUEST, "empty_file"),
        (json!({"kind": "avatar", "size": 10}), StatusCode::BAD_REQUEST, "bad_request"),
        (json!({"kind": "avatar", "content_type": "image/jpeg", "size": -1}), StatusCode::BAD_REQUEST, "bad_request"),
        (
            json!({"kind": "avatar", "content_type": "image/jpeg", "size": 10, "acl": "public-read"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (body, status, code) in cases {
        let res = ann.post("/api/uploads", body.clone()).await;
        assert_eq!(res.status(), *status, "{body}");
        let answer: Value = res.json().await.expect("json error body");
        assert_eq!(answer["error"], *code, "{body}");
        assert!(answer["message"].as_str().is_some_and(|m| m.len() > 10), "{answer}");
    }

    // Not JSON at all.
    let res = app
        .client
        .post(app.url("/api/uploads"))
        .header("x-csrf-token", &ann.csrf)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Without the CSRF token, or with someone else's.
    let res = app
        .client
        .post(app.url("/api/uploads"))
        .json(&json!({"kind": "avatar", "content_type": "image/jpeg", "size": 10}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "csrf");
    let res = ann.with_csrf("0123456789abcdef0123456789abcdef").sign("avatar", "image/jpeg", 10).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // From another site, even with the token.
    let res = app
        .client
        .post(app.url("/api/uploads"))
        .header("x-csrf-token", &ann.csrf)
        .header("origin", "https://evil.example")
        .json(&json!({"kind": "avatar", "content_type": "image/jpeg", "size": 10}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

async fn signing_is_rate_limited_per_user(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let limit = app.shoebox.limits().forms_per_minute;
    // Page views sign forms too, but are counted apart: they cannot use up the uploads' allowance.
    for _ in 0..3 {
        assert_eq!(app.client.get(app.url("/upload?kind=avatar")).send().await.expect("page").status(), StatusCode::OK);
    }
    for _ in 0..limit {
        assert_eq!(ann.sign("avatar", "image/jpeg", 10).await.status(), StatusCode::CREATED);
    }
    let refused = ann.sign("avatar", "image/jpeg", 10).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // The window opened with the first form and lasts a minute: come back when it closes.
    let retry: u64 = refused.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((50..=60).contains(&retry), "retry after {retry} s");
    // Another user is not affected.
    let bob = app.sign_up_elsewhere("bob@example.com").await;
    assert_eq!(bob.sign("avatar", "image/jpeg", 10).await.status(), StatusCode::CREATED);
}

/// The window is decided by the service's clock, so a held clock can walk it through time: full
/// for a minute from its first form, open again after it, and a refusal says when it closes.
async fn the_form_window_closes_a_minute_after_its_first_form(app: TestApp) {
    use shoebox::{FormStyle, ManualClock, SignRequest, UploadError, UserId};
    let opened = now_millis();
    let clock = std::sync::Arc::new(ManualClock::new(opened));
    let limits = shoebox::Limits { forms_per_minute: 2, ..shoebox::Limits::default() };
    let host = TestApp::with_example_kinds(app.another_shoebox(&app.s3_endpoint).clock(clock.clone()).limits(limits));
    let host = host.build().await.expect("host");
    let user = UserId::new("clocked-user").expect("id");
    let script = || SignRequest {
        kind: "avatar".into(),
        filename: None,
        content_type: Some("image/jpeg".into()),
        size: Some(10),
    };
    let sign_at = |at: i64, style: FormStyle| {
        clock.set(at);
        let (host, user) = (host.clone(), user.clone());
        async move { host.sign(&user, script(), style).await }
    };
    let limited = |r: Result<shoebox::SignedUpload, UploadError>| match r {
        Err(UploadError::RateLimited { retry_after_secs }) => Some(retry_after_secs),
        Ok(_) => None,
        Err(e) => panic!("{e}"),
    };
    // A limit of 2: the first form and one more fit in the window.
    assert_eq!(limited(sign_at(opened, FormStyle::Script).await), None);
    assert_eq!(limited(sign_at(opened + 1, FormStyle::Script).await), None);
    let refused = limited(sign_at(opened + 59_999, FormStyle::Script).await);
    assert_eq!(refused, Some(1), "closes a minute after it opened: one second to wait");
    // A page form (no declared type) is counted in its own window.
    let page = FormStyle::Page { origin: app.base.clone() };
    clock.set(opened + 2);
    let page_form = host.sign(&user, SignRequest { content_type: None, size: None, ..script() }, page).await;
    assert!(page_form.is_ok(), "{page_form:?}");
    // Once the minute is over, the next form opens a new window with room for the limit again.
    let next = opened + 60_000;
    for at in [next, next + 1] {
        assert_eq!(limited(sign_at(at, FormStyle::Script).await), None, "{at}");
    }
    assert_eq!(limited(sign_at(next + 2, FormStyle::Script).await), Some(60));
    let rows = app.number("select count(*) from shoebox_photos where uploader_id = 'clocked-user'", &[]).await;
    assert_eq!(rows, 5, "refused forms wrote no row");
}

/// Concurrent signings are written in batches (group commit), and the window stays exact: of
/// sixty forms of one uploader at once, exactly the limit are recorded, each answered only once
/// its row is committed (another connection sees it the moment the answer arrives), and on
/// Postgres the rows share a handful of transactions rather than one each.
async fn concurrent_signings_share_commits_and_keep_the_limit_exact(app: TestApp) {
    use futures_util::StreamExt as _;
    use shoebox::{FormStyle, SignRequest, UploadError, UserId};
    let limits = shoebox::Limits { forms_per_minute: 30, ..shoebox::Limits::default() };
    let host = TestApp::with_example_kinds(app.another_shoebox(&app.s3_endpoint).limits(limits));
    let host = host.build().await.expect("host");
    let user = UserId::new("batched-user").expect("id");
    let request = || SignRequest {
        kind: "avatar".into(),
        filename: Some("a.jpg".into()),
        content_type: Some("image/jpeg".into()),
        size: Some(10),
    };
    let mut answers: futures_util::stream::FuturesUnordered<_> =
        (0..60).map(|_| host.sign(&user, request(), FormStyle::Script)).collect();
    let (mut created, mut limited) = (0, 0);
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(signed) => {
                created += 1;
                let id = crate::helpers::Arg::S(signed.photo_id.to_string());
                let seen = app.number("select count(*) from shoebox_photos where photo_id = $1", &[id]).await;
                assert_eq!(seen, 1, "answered before its row was committed");
            }
            Err(UploadError::RateLimited { retry_after_secs }) => {
                limited += 1;
                assert!((59..=60).contains(&retry_after_secs), "{retry_after_secs}");
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((created, limited), (30, 30), "exactly the limit, the rest refused");
    let rows = app.number("select count(*) from shoebox_photos where uploader_id = 'batched-user'", &[]).await;
    assert_eq!(rows, 30, "a refused form writes no row");
    if matches!(app.shoebox.db(), shoebox::Db::Postgres(_)) {
        // Rows written by one transaction carry its id (xmin).
        let commits = app
            .number("select count(distinct xmin::text) from shoebox_photos where uploader_id = 'batched-user'", &[])
            .await;
        assert!(commits <= 5, "30 forms took {commits} commits");
    }
    // And a quiet signing afterwards (a batch of one) is decided the same way.
    let later = host.sign(&UserId::new("quiet-user").expect("id"), request(), FormStyle::Script).await;
    assert!(later.is_ok(), "{later:?}");
}

/// A batch the database refuses is written again form by form, so only the form that cannot be
/// written fails, with the database's error mapped as for a single signing (500, a bug of
/// ours), and every other form in the batch is recorded.
async fn a_refused_batch_fails_only_the_form_that_cannot_be_written(app: TestApp) {
    use shoebox::{FormStyle, SignRequest, UploadError, UserId};
    match app.shoebox.db() {
        shoebox::Db::Postgres(_) => {
            app.execute(
                "create function refuse_poison() returns trigger language plpgsql as $$ begin \
                 if new.filename = 'poison.jpg' then raise exception 'refused by the test'; end if; \
                 return new; end $$",
                &[],
            )
            .await;
            app.execute(
                "create trigger refuse_poison before insert on shoebox_photos \
                 for each row execute function refuse_poison()",
                &[],
            )
            .await;
        }
        shoebox::Db::Sqlite(_) => {
            app.execute(
                "create trigger refuse_poison before insert on shoebox_photos \
                 when new.filename = 'poison.jpg' begin select raise(abort, 'refused by the test'); end",
                &[],
            )
            .await;
        }
    }
    let host = TestApp::with_example_kinds(app.another_shoebox(&app.s3_endpoint));
    let host = host.build().await.expect("host");
    let request = |name: &str| SignRequest {
        kind: "avatar".into(),
        filename: Some(name.into()),
        content_type: Some("image/jpeg".into()),
        size: Some(10),
    };
    let users: Vec<UserId> = (0..20).map(|i| UserId::new(format!("user-{i}")).expect("id")).collect();
    let answers = futures_util::future::join_all(users.iter().enumerate().map(|(i, user)| {
        let name = if i == 10 { "poison.jpg" } else { "fine.jpg" };
        host.sign(user, request(name), FormStyle::Script)
    }))
    .await;
    for (i, answer) in answers.iter().enumerate() {
        match (i, answer) {
            (10, Err(e @ UploadError::Db(_))) => assert_eq!(e.fault(), shoebox::Fault::Bug, "{e}"),
            (10, other) => panic!("the poisoned form: {other:?}"),
            (_, Ok(_)) => {}
            (_, Err(e)) => panic!("form {i} failed with the poisoned one: {e}"),
        }
    }
    let rows = app.number("select count(*) from shoebox_photos where filename = 'fine.jpg'", &[]).await;
    assert_eq!(rows, 19);
    assert_eq!(app.number("select count(*) from shoebox_photos where filename = 'poison.jpg'", &[]).await, 0);
}

async fn the_signing_limit_holds_exactly_under_sixty_parallel_requests(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let limit = usize::try_from(app.shoebox.limits().forms_per_minute).expect("small");
    let answers = futures_util::future::join_all((0..60).map(|_| ann.sign("avatar", "image/jpeg", 10))).await;
    let created = answers.iter().filter(|r| r.status() == StatusCode::CREATED).count();
    let limited = answers.iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((created, limited), (limit, 60 - limit), "exactly the limit, the rest refused");
    let rows = app.number("select count(*) from shoebox_photos", &[]).await;
    assert_eq!(rows, i64::try_from(limit).expect("small"), "a refused request writes no row");
}

async fn the_bucket_refuses_forms_that_break_their_policy(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = photo(JPEG);

    // Over the kind's limit (10 MB for avatars): the bucket refuses it and stores nothing.
    let (_, url, fields) = ann.signed_form("avatar", 1000).await;
    let big = vec![0xFFu8; 10_000_001];
    let res = post_to_bucket(&url, &fields, big, "image/jpeg").await;
    assert!(res.status().is_client_error(), "oversized upload refused, got {}", res.status());
    assert!(!app.object_exists("public", field(&fields, "key")).await);

    // A different Content-Type than the one signed.
    let (_, url, mut fields) = ann.signed_form("avatar", bytes.len()).await;
    set_field(&mut fields, "Content-Type", "text/html");
    assert!(post_to_bucket(&url, &fields, bytes.clone(), "text/html").await.status().is_client_error());
    assert!(!app.object_exists("public", field(&fields, "key")).await);

    // A key outside the policy: the served prefix of the public bucket.
    let (_, url, mut fields) = ann.signed_form("avatar", bytes.len()).await;
    set_field(&mut fields, "key", "photos/evil/original.jpg");
    assert!(post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await.status().is_client_error());
    assert!(!app.object_exists("public", "photos/evil/original.jpg").await);

    // A policy edited to allow more, keeping the old signature.
    let (_, url, mut fields) = ann.signed_form("avatar", bytes.len()).await;
    let policy = field(&fields, "policy").to_owned();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = String::from_utf8(b64.decode(&policy).expect("b64")).expect("utf8");
    let widened = text.replace("10000000", "1073741824");
    assert_ne!(text, widened, "the policy names the limit");
    set_field(&mut fields, "policy", &b64.encode(widened));
    assert!(post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await.status().is_client_error());
    assert!(!app.object_exists("public", field(&fields, "key")).await);

    // A tampered signature.
    let (_, url, mut fields) = ann.signed_form("avatar", bytes.len()).await;
    let sig = field(&fields, "x-amz-signature").to_owned();
    let flipped = format!("{}{}", if sig.starts_with('0') { '1' } else { '0' }, &sig[1..]);
    set_field(&mut fields, "x-amz-signature", &flipped);
    assert!(post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await.status().is_client_error());
    assert!(!app.object_exists("public", field(&fields, "key")).await);

    // An expired form, signed with the bucket's real credentials.
    let now = time::OffsetDateTime::now_utc();
    let key = format!("incoming/{}", crate::helpers::random_token());
    let request =
        |signed_at: time::OffsetDateTime, expires_at: time::OffsetDateTime| shoebox::post_policy::PostPolicyRequest {
            bucket: "shoebox-public",
            region: "us-east-1",
            key: &key,
            content_type: "image/jpeg",
            min_bytes: 1,
            max_bytes: 1_000_000,
            success_redirect: None,
            now: signed_at,
            expires_at,
        };
    let minutes = time::Duration::minutes;
    let expired =
        shoebox::post_policy::sign_post_policy(&request(now - minutes(10), now - minutes(1)), &app.s3_credentials);
    let res = post_to_bucket(&url, &expired.fields, bytes.clone(), "image/jpeg").await;
    assert!(res.status().is_client_error(), "expired form refused, got {}", res.status());
    assert!(!app.object_exists("public", &key).await);

    // The same form, unexpired, is accepted: the refusals above are about what was changed.
    let fresh = shoebox::post_policy::sign_post_policy(&request(now, now + minutes(5)), &app.s3_credentials);
    assert_eq!(post_to_bucket(&url, &fresh.fields, bytes, "image/jpeg").await.status(), StatusCode::CREATED);
    assert!(app.object_exists("public", &key).await);
}

async fn completing_has_a_defined_answer_for_every_case(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = photo(JPEG);
    let (id, url, fields) = ann.signed_form("avatar", bytes.len()).await;
    // Before the file arrived: 409, and the form stays usable.
    let early = ann.complete(&id).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    assert_eq!(early.json::<Value>().await.expect("json")["error"], "not_uploaded");
    assert_eq!(post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await.status(), StatusCode::CREATED);

    // Someone else's upload does not exist for them.
    let bob = app.sign_up_elsewhere("bob@example.com").await;
    let theirs = bob.complete(&id).await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    assert!(app.object_exists("public", field(&fields, "key")).await, "bob's attempt removed nothing");

    // The owner completes it; completing again answers the same.
    let first = ann.complete(&id).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.expect("json");
    let again = ann.complete(&id).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.expect("json"), first);

    // Unknown and malformed ids.
    assert_eq!(ann.complete(&uuid::Uuid::new_v4().to_string()).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(ann.complete("42").await.status(), StatusCode::NOT_FOUND);

    // Bob cannot attach Ann's photo either; Ann can, once; attaching a form nobody used is 409.
    assert_eq!(bob.attach(&id, json!({})).await.status(), StatusCode::NOT_FOUND);
    let past = ann.attach(&id, json!({"keep_until": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(past.status(), StatusCode::BAD_REQUEST);
    let junk = ann.attach(&id, json!({"keep_until": "tomorrow"})).await;
    assert_eq!(junk.status(), StatusCode::BAD_REQUEST);
    for body in [json!({"acl": "public-read"}), json!([1, 2])] {
        let res = ann.attach(&id, body.clone()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(res.json::<Value>().await.expect("json error shape")["error"], "bad_request");
    }
    let kept = ann.attach(&id, json!({"keep_until": "2099-01-01T00:00:00Z"})).await;
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(kept.json::<Value>().await.expect("json")["photo"]["keep_until"], "2099-01-01T00:00:00Z");
    let (unused, _, _) = ann.signed_form("avatar", 10).await;
    let not_ready = ann.attach(&unused, json!({})).await;
    assert_eq!(not_ready.status(), StatusCode::CONFLICT);
}

async fn an_upload_that_is_not_what_it_claims_is_refused_and_removed(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = photo(JPEG);
    // Declared PNG, is JPEG.
    let signed: Value = ann.sign("avatar", "image/png", bytes.len()).await.json().await.expect("json");
    let (url, fields) = form_of(&signed);
    assert_eq!(post_to_bucket(&url, &fields, bytes, "image/png").await.status(), StatusCode::CREATED);
    let id = signed["photo_id"].as_str().expect("id");
    let res = ann.complete(id).await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "type_mismatch");
    assert!(body["message"].as_str().expect("message").contains("JPEG"), "{body}");
    assert!(!app.object_exists("public", field(&fields, "key")).await, "refused object removed");
    // The refusal is final and says why.
    let again = ann.complete(id).await;
    assert_eq!(again.status(), StatusCode::GONE);
    let row = app.shoebox.photo(id.parse().expect("id")).await.expect("db").expect("row");
    assert_eq!(row.state, shoebox::PhotoState::Deleted);
    assert!(row.deleted_reason.expect("reason").contains("JPEG"));
}

async fn every_hostile_file_is_refused_removed_and_the_server_stays_healthy(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/photos/hostile");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("hostile dir")
        .flatten()
        .map(|e| e.file_name().into_string().expect("utf8"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "the hostile set is all there: {names:?}");
    for name in names {
        let bytes = photo(&format!("hostile/{name}"));
        let declared = if name.ends_with(".png") { "image/png" } else { "image/jpeg" };
        if bytes.is_empty() {
            // Refused before any form is issued…
            let res = ann.sign("avatar", declared, 0).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name}");
            // …and by the bucket if a client sends it anyway.
            let (_, url, fields) = ann.signed_form("avatar", 1).await;
            assert!(post_to_bucket(&url, &fields, bytes, declared).await.status().is_client_error(), "{name}");
            continue;
        }
        let signed: Value = ann.sign("avatar", declared, bytes.len()).await.json().await.expect("json");
        let (url, fields) = form_of(&signed);
        assert_eq!(post_to_bucket(&url, &fields, bytes, declared).await.status(), StatusCode::CREATED, "{name}");
        let id = signed["photo_id"].as_str().expect("id");
        let res = ann.complete(id).await;
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        assert!(status.is_client_error(), "{name}: {status} {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.len() > 20 && !message.contains("request id"),
            "{name}: a sentence a person can act on: {body}"
        );
        // The decoder's own words stay in the log; the code says which refusal it was.
        let internals = ["marker", "Error", "decod", "entropy", "Huffman"];
        assert!(!internals.iter().any(|w| message.contains(w)), "{name}: no decoder internals: {body}");
        assert!(body["error"].as_str().is_some_and(|c| !c.is_empty() && c != "internal"), "{name}: {body}");
        assert!(!app.object_exists("public", field(&fields, "key")).await, "{name}: object removed");
        assert_eq!(app.healthz().await, StatusCode::OK, "{name}: still healthy");
    }
    assert!(
        app.stored_keys("shoebox-public").is_empty(),
        "nothing left in the bucket: {:?}",
        app.stored_keys("shoebox-public")
    );
}

async fn the_upload_page_works_without_javascript(app: TestApp) {
    app.sign_up("ann@example.com").await;
    let page = app.client.get(app.url("/upload?kind=id_document")).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.expect("html");
    assert!(html.contains("stays valid for 60 minutes"), "the page says how long the form lasts");
    let action = {
        let form = html.find("id=\"upload-form\"").expect("upload form");
        let start = form + html[form..].find("action=\"").expect("form action") + "action=\"".len();
        html[start..start + html[start..].find('"').expect("end")].to_owned()
    };
    assert!(action.starts_with(&app.s3_endpoint), "{action}");
    let fields: Vec<(String, String)> =
        crate::helpers::hidden_fields(&html).into_iter().filter(|(k, _)| k != "csrf").collect();
    let redirect = field(&fields, "success_action_redirect").to_owned();
    assert!(redirect.starts_with(&app.base) && redirect.ends_with("/done"), "{redirect}");

    // The browser posts the form to the bucket, which sends it back to the app.
    let bytes = photo("orientation/Portrait_1.jpg");
    let res = post_to_bucket(&action, &fields, bytes.clone(), "image/jpeg").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{fields:?} {:?}", res.text().await);
    let back = res.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(back.starts_with(&redirect), "{back}");
    let done = app.client.get(&back).send().await.expect("done");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let photo_page = done.headers()["location"].to_str().expect("ascii").to_owned();
    let html = app.client.get(app.url(&photo_page)).send().await.expect("photo page").text().await.expect("html");
    assert!(html.contains(" × ") && html.contains("pixels"), "verified dimensions shown");
    let csrf = crate::helpers::hidden_value(&html, "csrf").expect("save form");

    // Save, then find it on the home page.
    let save_action = format!("{photo_page}/save");
    let saved = app.client.post(app.url(&save_action)).form(&[("csrf", csrf.as_str())]).send().await.expect("save");
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let home = app.client.get(app.url("/")).send().await.expect("home").text().await.expect("html");
    let id = photo_page.trim_start_matches("/photos/");
    assert!(home.contains(&format!("src=\"/photos/{id}/thumb\"")), "private photo shown through the proxy");
    let bytes_back = app
        .client
        .get(app.url(&format!("/photos/{id}/original")))
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes_back.as_ref(), crate::helpers::as_served(&bytes).as_slice());

    // Saving without the token is refused.
    let forged = app.client.post(app.url(&save_action)).form(&[("csrf", "wrong")]).send().await.expect("save");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

async fn the_upload_page_needs_a_session_and_a_known_kind(app: TestApp) {
    let res = app.client.get(app.url("/upload?kind=avatar")).send().await.expect("page");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");
    app.sign_up("ann@example.com").await;
    let res = app.client.get(app.url("/upload?kind=nope")).send().await.expect("page");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.expect("html").contains("no kind of photo called"));
    assert_eq!(app.client.get(app.url("/upload")).send().await.expect("page").status(), StatusCode::BAD_REQUEST);
}

async fn completing_the_same_upload_at_once_from_several_requests_gives_one_photo(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = photo(JPEG);
    let (id, url, fields) = ann.signed_form("avatar", bytes.len()).await;
    assert_eq!(post_to_bucket(&url, &fields, bytes, "image/jpeg").await.status(), StatusCode::CREATED);
    let path = format!("/api/uploads/{id}/complete");
    let answers = futures_util::future::join_all((0..6).map(|_| ann.post(&path, json!({})))).await;
    let mut photos = Vec::new();
    for res in answers {
        assert_eq!(res.status(), StatusCode::OK);
        photos.push(res.json::<Value>().await.expect("json")["photo"].clone());
    }
    assert!(photos.windows(2).all(|w| w[0] == w[1]), "every request saw the same photo");
    // Variants (thumb-…, display-…) are beside it; one original, nothing left under incoming/.
    let keys: Vec<String> =
        app.stored_keys("shoebox-public").into_iter().filter(|k| k.contains("/original.")).collect();
    assert!(app.stored_keys("shoebox-public").iter().all(|k| k.starts_with("photos/")));
    assert_eq!(keys.len(), 1, "one served object, nothing left under incoming/: {keys:?}");
    assert!(keys[0].starts_with("photos/"));
}

/// Two dynos on one database, each reaching S3 through its own switch, so the test sees every
/// request either makes.
async fn two_dynos(app: &TestApp, limits: shoebox::Limits) -> Vec<(shoebox::Shoebox, Switch)> {
    let mut dynos = Vec::new();
    for _ in 0..2 {
        let switch = Switch::start(app.s3_addr()).await;
        let b = TestApp::with_example_kinds(app.another_shoebox(&switch.url).limits(limits.clone()));
        dynos.push((b.build().await.expect("dyno"), switch));
    }
    dynos
}

/// Completion once, across dynos: eight completions of one upload at once, four on each of two
/// processes' Shoeboxes on one database, all answer the same ready photo, and between them they
/// read the upload as often as one completion does and write the served original once. The
/// claim is in the database, so it holds across processes, not only within one.
async fn completions_on_two_dynos_verify_the_upload_once(app: TestApp) {
    use shoebox::{Actor, PhotoId, PhotoState};
    let ann = app.sign_up("ann@example.com").await;
    let actor = Actor::User(first_user(&app).await);
    let dynos = two_dynos(&app, app.shoebox.limits().clone()).await;
    let uploaded = || async {
        let bytes = photo(JPEG);
        let (id, url, fields) = ann.signed_form("avatar", bytes.len()).await;
        assert_eq!(post_to_bucket(&url, &fields, bytes, "image/jpeg").await.status(), StatusCode::CREATED);
        (id.parse::<PhotoId>().expect("id"), field(&fields, "key").to_owned())
    };
    let requests = |dynos: &[(shoebox::Shoebox, Switch)], from: &[usize]| -> Vec<String> {
        dynos.iter().zip(from).flat_map(|((_, s), from)| s.requests_since(*from)).collect()
    };
    let count = |seen: &[String], method: &str, part: &str| {
        seen.iter().filter(|r| r.starts_with(method) && r.contains(part)).count()
    };

    // What one completion alone reads and writes, as the measure for the race.
    let (lone, lone_key) = uploaded().await;
    let from: Vec<usize> = dynos.iter().map(|(_, s)| s.requests()).collect();
    dynos[0].0.complete(&actor, lone).await.expect("completes");
    let seen = requests(&dynos, &from);
    let one_read = count(&seen, "GET ", &lone_key);
    assert!(one_read >= 1, "verification reads the upload: {seen:?}");
    assert_eq!(count(&seen, "PUT ", "/original."), 1, "{seen:?}");

    let (id, incoming) = uploaded().await;
    let from: Vec<usize> = dynos.iter().map(|(_, s)| s.requests()).collect();
    let answers = futures_util::future::join_all((0..8).map(|i| {
        let (dyno, actor) = (dynos[i % 2].0.clone(), actor.clone());
        async move { dyno.complete(&actor, id).await }
    }))
    .await;
    let photos: Vec<_> = answers.into_iter().map(|a| a.expect("every completion answers the photo")).collect();
    assert!(photos.iter().all(|p| p.state == PhotoState::Ready && p.object_key == photos[0].object_key));
    let seen = requests(&dynos, &from);
    assert_eq!(count(&seen, "GET ", &incoming), one_read, "the upload is read once: {seen:?}");
    assert_eq!(count(&seen, "PUT ", "/original."), 1, "the original is written once: {seen:?}");
    let claims = app.number("select count(*) from shoebox_photos where verifying_by is not null", &[]).await;
    assert_eq!(claims, 0, "every claim was given back");
}

/// A verification claim left by a process that died holds until it expires: completions meanwhile
/// answer "still being checked" (409 with `Retry-After` over HTTP), and the first one after it
/// expired takes it over and verifies the upload.
async fn a_verification_claim_left_by_a_dead_process_expires(app: TestApp) {
    use crate::helpers::Arg;
    use shoebox::{Actor, ManualClock, PhotoId, PhotoState, UploadError};
    let ann = app.sign_up("ann@example.com").await;
    let actor = Actor::User(first_user(&app).await);
    let start = now_millis();
    let clock = std::sync::Arc::new(ManualClock::new(start));
    let limits =
        shoebox::Limits { verification_wait: std::time::Duration::from_millis(300), ..app.shoebox.limits().clone() };
    let b = TestApp::with_example_kinds(app.another_shoebox(&app.s3_endpoint).clock(clock.clone()).limits(limits));
    let dyno = b.build().await.expect("dyno");
    let bytes = photo(JPEG);
    let (id, url, fields) = ann.signed_form("avatar", bytes.len()).await;
    assert_eq!(post_to_bucket(&url, &fields, bytes, "image/jpeg").await.status(), StatusCode::CREATED);
    let claimed = "update shoebox_photos set verifying_by = 'died-mid-verification', verifying_until = $1 \
                   where photo_id = $2";
    assert_eq!(app.execute(claimed, &[Arg::I(start + 60_000), Arg::S(id.clone())]).await, 1);
    let pid: PhotoId = id.parse().expect("id");

    let waited = dyno.complete(&actor, pid).await;
    assert!(matches!(waited, Err(UploadError::Verifying)), "{waited:?}");
    let state = app.text("select state from shoebox_photos where photo_id = $1", &[Arg::S(id.clone())]).await;
    assert_eq!(state.as_deref(), Some("signed"), "nothing decided while the claim holds");

    clock.set(start + 60_001);
    let photo = dyno.complete(&actor, pid).await.expect("the expired claim is taken over");
    assert_eq!(photo.state, PhotoState::Ready);
    let left = app.text("select verifying_by from shoebox_photos where photo_id = $1", &[Arg::S(id)]).await;
    assert_eq!(left, None, "the claim was given back");
}

async fn a_form_yields_at_most_one_photo_even_when_posted_again(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let bytes = photo(JPEG);
    let (id, url, fields) = ann.signed_form("avatar", bytes.len()).await;
    assert_eq!(post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await.status(), StatusCode::CREATED);
    let path = format!("/api/uploads/{id}/complete");
    let first: Value = ann.post(&path, json!({})).await.json().await.expect("json");
    // The same form again, with other bytes: it can only write the same incoming key, and the
    // photo it made is already verified, so nothing new is counted or served.
    let other = photo("orientation/Portrait_1.jpg");
    assert_eq!(post_to_bucket(&url, &fields, other, "image/jpeg").await.status(), StatusCode::CREATED);
    let again: Value = ann.post(&path, json!({})).await.json().await.expect("json");
    assert_eq!(again, first);
    let mine = app.shoebox.photos_of(&first_user(&app).await).await.expect("db");
    assert_eq!(mine.len(), 1);
    let served = app.client.get(first["photo"]["urls"]["original"].as_str().expect("url")).send().await.expect("get");
    assert_eq!(
        served.bytes().await.expect("bytes").as_ref(),
        crate::helpers::as_served(&bytes).as_slice(),
        "the verified bytes are what is served"
    );
}

async fn first_user(app: &TestApp) -> shoebox::UserId {
    let id = app.text("select user_id from users where email = 'ann@example.com'", &[]).await;
    shoebox::UserId::new(id.expect("user")).expect("id")
}

async fn served_photos_carry_no_location_or_camera_metadata_but_keep_orientation_and_colour(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let read_exif = |bytes: &[u8]| exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes));
    let cases = [
        ("camera/oppo-r7-plus_3120x4160_420.jpg", "avatar", "image/jpeg"),
        ("camera/leica-t-typ701_4928x3264_orient8.jpg", "id_document", "image/jpeg"),
        ("formats/nikon-p7000_3648x2736_orient6_badxmp.webp", "avatar", "image/webp"),
    ];
    for (name, kind, mime) in cases {
        let original = photo(name);
        assert!(read_exif(&original).is_ok_and(|e| e.fields().count() > 10), "{name}: the upload has EXIF");
        let uploaded = ann.upload(kind, original.clone(), mime).await;
        let src = uploaded["urls"]["original"].as_str().expect("url").to_owned();
        let url = if src.starts_with('/') { app.url(&src) } else { src };
        let served = app.client.get(&url).send().await.expect("get").bytes().await.expect("bytes").to_vec();
        assert_eq!(
            uploaded["byte_size"].as_u64(),
            Some(served.len() as u64),
            "{name}: the recorded size is the served one"
        );
        assert!(served.len() < original.len(), "{name}: metadata removed");
        let before = shoebox::imaging::probe(&original).expect("probe");
        let after = shoebox::imaging::probe(&served).expect("probe");
        assert_eq!(
            (after.width, after.height, after.orientation),
            (before.width, before.height, before.orientation),
            "{name}"
        );
        // Only the orientation survives, and only when the photo needs turning.
        match read_exif(&served) {
            Ok(e) => {
                assert!(e.fields().all(|f| f.tag == exif::Tag::Orientation), "{name}: only the orientation is left");
                assert_ne!(before.orientation, shoebox::imaging::Orientation::Normal);
            }
            Err(_) => assert_eq!(before.orientation, shoebox::imaging::Orientation::Normal, "{name}"),
        }
        for needle in [&b"GPS"[..], b"OPPO", b"LEICA", b"NIKON", b"http://ns.adobe.com", b"XMP "] {
            assert!(!served.windows(needle.len()).any(|w| w == needle), "{name}: {needle:?} left in the served file");
        }
        // The pixels are the very same: nothing was re-encoded.
        let recipe = shoebox::imaging::Recipe::fit(200, 200);
        assert_eq!(
            shoebox::imaging::render(&served, &recipe).expect("decodes").bytes,
            shoebox::imaging::render(&original, &recipe).expect("decodes").bytes,
            "{name}"
        );
    }
}

both_backends!(
    served_photos_carry_no_location_or_camera_metadata_but_keep_orientation_and_colour,
    a_form_yields_at_most_one_photo_even_when_posted_again,
    completing_the_same_upload_at_once_from_several_requests_gives_one_photo,
    completions_on_two_dynos_verify_the_upload_once,
    a_verification_claim_left_by_a_dead_process_expires,
    a_photo_goes_from_the_browser_to_the_bucket_and_shows_on_the_home_page,
    a_private_photo_is_streamed_only_to_its_owner,
    uploads_waiting_for_verification_cannot_be_read_anonymously_even_in_a_public_bucket,
    signing_refuses_bad_requests_with_a_clear_answer,
    signing_is_rate_limited_per_user,
    the_signing_limit_holds_exactly_under_sixty_parallel_requests,
    concurrent_signings_share_commits_and_keep_the_limit_exact,
    a_refused_batch_fails_only_the_form_that_cannot_be_written,
    the_form_window_closes_a_minute_after_its_first_form,
    the_bucket_refuses_forms_that_break_their_policy,
    completing_has_a_defined_answer_for_every_case,
    an_upload_that_is_not_what_it_claims_is_refused_and_removed,
    every_hostile_file_is_refused_removed_and_the_server_stays_healthy,
    the_upload_page_works_without_javascript,
    the_upload_page_needs_a_session_and_a_known_kind,
);

/// Regression: s3s 0.14 failed uploads whose body frames happened to end inside a boundary
/// prefix. Bytes full of `\r` make that likely on every frame; all of them must arrive intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_endpoint_accepts_every_upload_whatever_its_bytes() {
    let _ = tracing_subscriber::fmt().with_env_filter("s3s=error").with_test_writer().try_init();
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let ann = app.sign_up("ann@example.com").await;
    let mut seed: u64 = 0x5eed;
    for round in 0..12 {
        let len = 200_000 + round * 37_000;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // One byte in four is '\r', so frames often end inside "\r\n--boundary".
                if seed >> 62 == 0 { b'\r' } else { (seed >> 33) as u8 }
            })
            .collect();
        let (_, url, fields) = ann.signed_form("avatar", len).await;
        let res = post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await;
        assert_eq!(res.status(), StatusCode::CREATED, "round {round}: {:?}", res.text().await);
        let stored = app.s3().get_object().bucket("shoebox-public").key(field(&fields, "key")).send().await;
        let stored = stored.expect("stored").body.collect().await.expect("read").into_bytes();
        assert_eq!(stored.as_ref(), bytes.as_slice(), "round {round}: bytes intact");
    }
}
