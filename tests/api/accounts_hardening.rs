//! Login and sign-up limits (per client address and per account, shared through the database),
//! the client address behind Heroku's router, and logging out everywhere.

use std::net::IpAddr;
use std::time::Duration;

use crate::helpers::{Arg, Backend, TestApp, hidden_value, meta_csrf};
use reqwest::StatusCode;
use shoebox::{Db, Limits, UserId};
use shoebox_app::accounts::{self, AccountError, Accounts, Email, Password};
use shoebox_app::settings::{AppLimits, AttemptLimit, TrustProxy};

const GOOD: &str = "correct horse battery";

/// Small limits so a test reaches them in a few requests; addresses from X-Forwarded-For.
fn limits() -> AppLimits {
    let window = Duration::from_secs(15 * 60);
    AppLimits {
        login_per_address: AttemptLimit { max: 5, window },
        login_per_account: AttemptLimit { max: 3, window },
        signup_per_address: AttemptLimit { max: 3, window },
        signup_per_account: AttemptLimit { max: 2, window },
        trust_proxy: TrustProxy::Heroku,
        ..AppLimits::default()
    }
}

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, Limits::default(), limits()).await
}

/// POST the login or sign-up form from a fresh browser whose request reached Heroku's router
/// from `xff`'s last entry (earlier entries are whatever the client claims).
async fn submit(app: &TestApp, mode: &str, xff: &str, email: &str, password: &str) -> reqwest::Response {
    let browser = app.new_browser();
    let page = browser.get(app.url(&format!("/{mode}"))).send().await.expect("page").text().await.expect("html");
    let csrf = hidden_value(&page, "csrf").expect("csrf field");
    browser
        .post(app.url(&format!("/{mode}")))
        .header("x-forwarded-for", xff)
        .form(&[("csrf", csrf.as_str()), ("email", email), ("password", password)])
        .send()
        .await
        .expect("submit")
}

/// A 429 with a Retry-After within the window and a sentence on the form.
async fn assert_limited(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: Retry-After in seconds"));
    assert!((1..=15 * 60).contains(&retry), "{what}: Retry-After {retry}");
    let html = res.text().await.expect("html");
    assert!(html.contains("Too many attempts") && html.contains("minute"), "{what}: {html}");
    assert!(hidden_value(&html, "csrf").is_some(), "{what}: the form is shown again");
}

async fn wrong_passwords_lock_the_account_for_every_address(app: TestApp) {
    app.sign_up("ann@example.com").await;
    for i in 0..3 {
        let res = submit(&app, "login", "203.0.113.1", "ann@example.com", "wrong password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "wrong password {i}");
    }
    // Even the right password waits now, from anywhere: the limit is the account's.
    assert_limited(submit(&app, "login", "203.0.113.1", "ann@example.com", GOOD).await, "same address").await;
    assert_limited(submit(&app, "login", "198.51.100.2", "ann@example.com", GOOD).await, "other address").await;
    // Other accounts are not affected, even from the same address.
    app.sign_up_elsewhere("bob@example.com").await;
    let res = submit(&app, "login", "203.0.113.1", "bob@example.com", GOOD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "bob logs in");
}

async fn a_successful_login_forgives_earlier_failures(app: TestApp) {
    app.sign_up("ann@example.com").await;
    for _ in 0..2 {
        let res = submit(&app, "login", "203.0.113.1", "ann@example.com", "wrong password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(submit(&app, "login", "203.0.113.1", "ann@example.com", GOOD).await.status(), StatusCode::SEE_OTHER);
    for _ in 0..2 {
        let res = submit(&app, "login", "203.0.113.1", "ann@example.com", "wrong password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the count started again");
    }
}

async fn guessing_across_accounts_is_limited_per_address_by_the_last_forwarded_entry(app: TestApp) {
    // The client varies the first entries it sends; the router's last entry stays the same.
    for i in 0..5 {
        let xff = format!("10.0.0.{i}, 192.0.2.{i}, 203.0.113.7");
        let res = submit(&app, "login", &xff, &format!("user{i}@example.com"), "wrong password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    assert_limited(submit(&app, "login", "10.9.9.9, 203.0.113.7", "user9@example.com", GOOD).await, "address").await;
    // Someone else, at another address, is not held up.
    let res = submit(&app, "login", "203.0.113.7, 198.51.100.8", "user9@example.com", "wrong password!").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a spoofed first entry does not borrow a limit either");
}

async fn sign_ups_are_limited_per_address_and_per_email(app: TestApp) {
    for i in 0..3 {
        let res = submit(&app, "signup", "203.0.113.1", &format!("new{i}@example.com"), GOOD).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "sign-up {i}");
    }
    assert_limited(submit(&app, "signup", "203.0.113.1", "new3@example.com", GOOD).await, "fourth sign-up").await;
    let res = submit(&app, "signup", "198.51.100.1", "new3@example.com", GOOD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "another address may");

    // Asking again and again whether one address has an account is limited too.
    let res = submit(&app, "signup", "198.51.100.2", "new3@example.com", GOOD).await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "taken");
    assert_limited(submit(&app, "signup", "198.51.100.3", "new3@example.com", GOOD).await, "per email").await;
}

async fn log_out_everywhere_ends_every_session(app: TestApp) {
    let laptop = app.sign_up("ann@example.com").await;
    let phone = app.new_browser();
    let page = phone.get(app.url("/login")).send().await.expect("page").text().await.expect("html");
    let csrf = hidden_value(&page, "csrf").expect("csrf");
    let res = phone
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("email", "ann@example.com"), ("password", GOOD)])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let phone_csrf = app.csrf_of(&phone).await;
    let bob = app.sign_up_elsewhere("bob@example.com").await;

    // A forged request (no token, or another session's) ends nothing.
    let res = phone.post(app.url("/logout/everywhere")).form(&[("csrf", "forged")]).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = phone.post(app.url("/logout/everywhere")).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no form at all");
    let res = app.new_browser().post(app.url("/logout/everywhere")).form(&[("csrf", "x")]).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "not logged in: sent to log in");
    assert_eq!(res.headers().get("location").and_then(|v| v.to_str().ok()), Some("/login"));
    assert!(meta_csrf(&home(&app, &app.client).await).is_some(), "the laptop is still signed in");

    let res =
        phone.post(app.url("/logout/everywhere")).form(&[("csrf", phone_csrf.as_str())]).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(meta_csrf(&home(&app, &phone).await).is_none(), "the phone is signed out");
    assert!(meta_csrf(&home(&app, &app.client).await).is_none(), "so is the laptop");
    let res = laptop.sign("avatar", "image/jpeg", 10).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the laptop's old session is gone");
    assert!(meta_csrf(&home(&app, &bob.client).await).is_some(), "other people's sessions are untouched");
}

/// Another dyno ends the sessions (its "log out everywhere" deletes the rows; this process's
/// cache does not hear of it): this process stops accepting them within the cache's lifetime.
async fn sessions_ended_by_another_process_stop_working_within_a_second(app: TestApp) {
    let ann = app.sign_up("ann@example.com").await;
    assert_eq!(ann.sign("avatar", "image/jpeg", 10).await.status(), StatusCode::CREATED, "looked up and remembered");
    let other = Accounts::new(app.shoebox.db().clone(), limits());
    let id = app.text("select user_id from users where email = $1", &[Arg::S("ann@example.com".into())]).await;
    let id = UserId::new(id.expect("user")).expect("user id");
    let ended = accounts::log_out_everywhere(&other, &id).await.expect("log out");
    assert_eq!(ended, 1);
    tokio::time::sleep(accounts::SESSION_CACHE_TTL + Duration::from_millis(100)).await;
    assert_eq!(ann.sign("avatar", "image/jpeg", 10).await.status(), StatusCode::UNAUTHORIZED);
    assert!(meta_csrf(&home(&app, &app.client).await).is_none(), "signed out here too");
}

async fn home(app: &TestApp, client: &reqwest::Client) -> String {
    client.get(app.url("/")).send().await.expect("home").text().await.expect("html")
}

macro_rules! both_backends_limited {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::spawn(super::Backend::Postgres).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::spawn(super::Backend::Sqlite).await).await;
            }
        }
    )*};
}

both_backends_limited!(
    wrong_passwords_lock_the_account_for_every_address,
    a_successful_login_forgives_earlier_failures,
    guessing_across_accounts_is_limited_per_address_by_the_last_forwarded_entry,
    sign_ups_are_limited_per_address_and_per_email,
    log_out_everywhere_ends_every_session,
    sessions_ended_by_another_process_stop_working_within_a_second,
);

/// Without trust in a proxy, X-Forwarded-For is the client's own claim and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_trusted_proxy_forwarded_addresses_do_not_escape_the_limit() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Limits::default(),
        AppLimits { trust_proxy: TrustProxy::None, ..limits() },
    )
    .await;
    for i in 0..3 {
        let res = submit(&app, "login", &format!("203.0.113.{i}"), "ann@example.com", "wrong password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // The address is the socket peer's, whatever the header claims: changing the claimed
    // address does not reset the limits.
    assert_limited(submit(&app, "login", "198.51.100.99", "ann@example.com", GOOD).await, "account").await;
}

/// Two processes on one database share the counts: two `Accounts` values with their own pools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_hold_across_processes_sharing_the_database() {
    let app = spawn(Backend::Postgres).await;
    app.sign_up("ann@example.com").await;
    let name = app.text("select current_database()::text", &[]).await.expect("name");
    let first = &app.state.accounts;
    let db = Db::connect(&format!("{}/{name}", crate::helpers::postgres_server()), 2).await.expect("second pool");
    let second = Accounts::new(db, limits());

    let email = Email::parse("ann@example.com").expect("email");
    let wrong = || Password::parse("wrong password!".into()).expect("password");
    let address: Option<IpAddr> = Some([203, 0, 113, 1].into());
    for (i, shoebox) in [first, &second, first].into_iter().enumerate() {
        let err = accounts::log_in(shoebox, address, &email, wrong()).await.expect_err("wrong password");
        assert!(matches!(err, AccountError::BadCredentials), "attempt {i}: {err:?}");
    }
    for shoebox in [first, &second] {
        let right = Password::parse(GOOD.into()).expect("password");
        let err = accounts::log_in(shoebox, address, &email, right).await.expect_err("limited");
        let AccountError::RateLimited { retry_after_secs } = err else { panic!("limited, not {err:?}") };
        assert!((1..=15 * 60).contains(&retry_after_secs), "{retry_after_secs}");
    }
    second.db.close().await;
}
