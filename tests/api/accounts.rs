//! Sign up, log in, log out, sessions and CSRF, on Postgres and SQLite.

use crate::helpers::{TestApp, hidden_value, meta_csrf, set_cookie};
use reqwest::StatusCode;

async fn form_token(app: &TestApp, client: &reqwest::Client, page: &str) -> String {
    let html = client.get(app.url(page)).send().await.expect("page").text().await.expect("html");
    hidden_value(&html, "csrf").expect("csrf field")
}

async fn someone_can_sign_up_log_out_and_log_in_again(app: TestApp) {
    let ann = app.sign_up("Ann@Example.com").await;
    let home = app.client.get(app.url("/")).send().await.expect("home").text().await.expect("html");
    assert!(home.contains("ann@example.com"), "signed in, email normalised");

    let out = app.client.post(app.url("/logout")).form(&[("csrf", ann.csrf.as_str())]).send().await.expect("logout");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let home = app.client.get(app.url("/")).send().await.expect("home").text().await.expect("html");
    assert!(meta_csrf(&home).is_none(), "logged out");
    // The old session cannot be used any more.
    let res = ann.sign("avatar", "image/jpeg", 10).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = app.log_in(&app.client, "ann@example.com").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&res, "shoebox_session");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let home = app.client.get(app.url("/")).send().await.expect("home").text().await.expect("html");
    assert!(meta_csrf(&home).is_some(), "logged in again");
}

async fn account_forms_refuse_bad_input_with_a_message_and_keep_the_email(app: TestApp) {
    app.sign_up("ann@example.com").await;
    let other = app.new_browser();
    let mut token = form_token(&app, &other, "/signup").await;
    let cases = [
        ("ann@example.com", "another good password", StatusCode::CONFLICT, "already has an account"),
        ("not-an-email", "another good password", StatusCode::BAD_REQUEST, "email address"),
        ("bob@example.com", "short", StatusCode::BAD_REQUEST, "at least 8"),
    ];
    for (email, password, status, says) in cases {
        let res = other
            .post(app.url("/signup"))
            .form(&[("csrf", token.as_str()), ("email", email), ("password", password)])
            .send()
            .await
            .expect("signup");
        assert_eq!(res.status(), status, "{email}");
        let html = res.text().await.expect("html");
        assert!(html.contains(says), "{email}: {html}");
        assert!(html.contains(&format!("value=\"{email}\"")), "the email is kept");
        // Each page carries a fresh token for the next try.
        token = hidden_value(&html, "csrf").expect("csrf field");
    }
    let mut token = form_token(&app, &other, "/login").await;
    for (email, password) in
        [("ann@example.com", "wrong password!"), ("nobody@example.com", "correct horse battery"), ("junk", "x")]
    {
        let res = other
            .post(app.url("/login"))
            .form(&[("csrf", token.as_str()), ("email", email), ("password", password)])
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{email}");
        let html = res.text().await.expect("html");
        assert!(html.contains("do not match"), "same answer whether or not the account exists");
        token = hidden_value(&html, "csrf").expect("csrf field");
    }
}

async fn account_forms_need_their_csrf_token(app: TestApp) {
    let fresh = app.new_browser();
    // No token and no cookie: a cross-site form post.
    let res = fresh
        .post(app.url("/signup"))
        .form(&[("email", "eve@example.com"), ("password", "correct horse battery")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A token that does not match the cookie.
    form_token(&app, &fresh, "/signup").await;
    let res = fresh
        .post(app.url("/signup"))
        .form(&[
            ("csrf", "0123456789abcdef0123456789abcdef"),
            ("email", "eve@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Logging out needs the session's token.
    let ann = app.sign_up("ann@example.com").await;
    let res = app.client.post(app.url("/logout")).form(&[("csrf", "wrong")]).send().await.expect("logout");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let home = app.client.get(app.url("/")).send().await.expect("home").text().await.expect("html");
    assert_eq!(meta_csrf(&home).as_deref(), Some(ann.csrf.as_str()), "still logged in");
    // A malformed session cookie is simply no session.
    let res =
        app.new_browser().get(app.url("/")).header("cookie", "shoebox_session=../../etc").send().await.expect("home");
    assert_eq!(res.status(), StatusCode::OK);
}

async fn health_names_the_buckets_it_cannot_reach(mut app: TestApp) {
    assert_eq!(app.healthz().await, StatusCode::OK);
    app.stop_s3().await;
    let health = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = health.json().await.expect("json");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["buckets"]["public"], "unreachable");
    assert_eq!(body["buckets"]["private"], "unreachable");
}

async fn pages_carry_security_headers_and_health_is_checked_for_real(app: TestApp) {
    let res = app.client.get(app.url("/")).send().await.expect("home");
    let h = res.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("script-src 'self'") && csp.contains(&app.s3_endpoint), "{csp}");
    assert!(h.contains_key("x-request-id"));

    let health = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    let body: serde_json::Value = health.json().await.expect("json");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["buckets"]["public"], "ok");
    assert_eq!(body["buckets"]["private"], "ok");

    // With the database gone, health says so.
    app.shoebox.db().close().await;
    let health = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json::<serde_json::Value>().await.expect("json")["database"], "unreachable");
}

/// Without SHOEBOX_PUBLIC_URL the origin follows `Host` only for allowed hosts, so a forged
/// `Host` cannot choose where S3 sends a browser back to; over HTTPS, HSTS is sent; nothing a
/// signed-in person sees may be kept by a cache.
async fn the_origin_comes_from_allowed_hosts_and_private_answers_are_not_cached(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let forged = ann.client.get(app.url("/upload?kind=avatar")).header("host", "evil.example").send().await;
    let forged = forged.expect("page");
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let html = forged.text().await.expect("html");
    assert!(!html.contains("evil.example/uploads"), "no form redirecting to the forged host");
    assert!(html.contains("does not answer to that address"), "{html}");

    let page = ann.get("/upload?kind=avatar").await;
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(!page.headers().contains_key("strict-transport-security"), "plain HTTP: no HSTS");
    let redirect = hidden_value(&page.text().await.expect("html"), "success_action_redirect").expect("no-JS form");
    assert!(redirect.starts_with(&format!("{}/uploads/", app.base)), "{redirect}");

    let home = ann.get("/").await;
    assert_eq!(home.headers()["cache-control"], "no-store", "the home page carries the CSRF token");
    let signed = ann.sign("avatar", "image/jpeg", 10).await;
    assert_eq!(signed.status(), StatusCode::CREATED);
    assert_eq!(signed.headers()["cache-control"], "no-store", "a signed form is a credential");
    let css = ann.get("/static/style.css").await;
    assert_eq!(css.headers()["cache-control"], "no-cache", "static files keep their own policy");

    let https = ann.client.get(app.url("/")).header("x-forwarded-proto", "https").send().await.expect("home");
    assert_eq!(https.headers()["strict-transport-security"], "max-age=31536000");
    // A cross-site POST whose Origin is the forged host is still refused.
    let res = ann
        .client
        .post(app.url("/api/uploads"))
        .header("host", "evil.example")
        .header("origin", "http://evil.example")
        .header("x-csrf-token", &ann.csrf)
        .json(&serde_json::json!({"kind": "avatar", "content_type": "image/jpeg", "size": 10}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// An error page shown to a signed-in person has the signed-in header (their email, log out),
/// not the signed-out one.
async fn error_pages_know_who_is_signed_in(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    let missing = ann.get(&format!("/photos/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let html = missing.text().await.expect("html");
    assert!(html.contains("ann@example.com") && html.contains("/logout"), "{html}");
    assert!(!html.contains("href=\"/login\""), "not the signed-out header: {html}");
    let anonymous = app.new_browser().get(app.url("/upload")).send().await.expect("page");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER, "signed out: sent to log in");
}

both_backends!(
    error_pages_know_who_is_signed_in,
    the_origin_comes_from_allowed_hosts_and_private_answers_are_not_cached,
    health_names_the_buckets_it_cannot_reach,
    someone_can_sign_up_log_out_and_log_in_again,
    account_forms_refuse_bad_input_with_a_message_and_keep_the_email,
    account_forms_need_their_csrf_token,
    pages_carry_security_headers_and_health_is_checked_for_real,
);
