//! Login and sign-up limits, per client address and per account, counted in the database so
//! that every process sharing it agrees.
//!
//! An attempt is written first and counted after, so concurrent attempts cannot all slip in
//! under the limit between a count and a write. An attempt over the limit is removed again
//! (being refused costs the client nothing more) and answered with when to come back.

use std::net::IpAddr;

use sha2::{Digest as _, Sha256};

use shoebox::{Millis, now_millis};

use super::{AccountError, Accounts, Email, random_token, store};
use crate::settings::AttemptLimit;

#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    Login,
    SignUp,
}

/// The rows one attempt wrote, so that a successful login can take them back.
#[derive(Debug)]
pub(super) struct Attempt {
    address_row: Option<String>,
    account_subject: String,
}

/// Count an attempt against every limit that applies, or refuse it with when to retry.
pub(super) async fn begin(
    app: &Accounts,
    action: Action,
    address: Option<IpAddr>,
    email: &Email,
) -> Result<Attempt, AccountError> {
    let (address_scope, account_scope) = scopes(action);
    let limits = &app.limits;
    let (per_address, per_account) = match action {
        Action::Login => (limits.login_per_address, limits.login_per_account),
        Action::SignUp => (limits.signup_per_address, limits.signup_per_account),
    };
    let account_subject = hex::encode(Sha256::digest(email.as_str().as_bytes()));
    let now = now_millis();
    // Without an address (no socket peer known) only the per-account limit applies.
    let mut checks = vec![(account_scope, account_subject.clone(), per_account)];
    if let Some(a) = address {
        checks.push((address_scope, a.to_string(), per_address));
    }
    let mut written = Vec::new();
    let mut over = Vec::new();
    for (scope, subject, limit) in checks {
        let id = random_token();
        store::record_attempt(&app.db, &id, scope, &subject, now, now.saturating_add(millis(limit))).await?;
        if store::count_live_attempts(&app.db, scope, &subject, now).await? > i64::from(limit.max) {
            over.push((scope, subject.clone(), limit));
        }
        written.push((scope, id));
    }
    if over.is_empty() {
        let address_row = written.into_iter().find(|(s, _)| *s == address_scope).map(|(_, id)| id);
        return Ok(Attempt { address_row, account_subject });
    }
    for (_, id) in &written {
        store::delete_attempt(&app.db, id).await?;
    }
    // One refusal, counted under each limit it broke (the scope names: login_address, ...).
    for (scope, _, _) in &over {
        metrics::counter!(shoebox::telemetry::RATE_LIMITED, "limit" => *scope).increment(1);
    }
    let mut retry_at: Millis = now;
    for (scope, subject, limit) in over {
        // Once the max-th newest attempt has expired, fewer than max remain: room for one more.
        let at = store::nth_newest_attempt_expiry(&app.db, scope, &subject, now, i64::from(limit.max)).await?;
        retry_at = retry_at.max(at.unwrap_or(now));
    }
    let retry_after_secs = u64::try_from((retry_at - now + 999) / 1000).unwrap_or(1).max(1);
    Err(AccountError::RateLimited { retry_after_secs })
}

/// A login succeeded: it was not a guess, and the account's earlier failures are forgiven.
pub(super) async fn succeeded(app: &Accounts, attempt: Attempt) -> Result<(), AccountError> {
    let (_, account_scope) = scopes(Action::Login);
    if let Some(id) = attempt.address_row {
        store::delete_attempt(&app.db, &id).await?;
    }
    store::clear_attempts(&app.db, account_scope, &attempt.account_subject).await?;
    Ok(())
}

fn scopes(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Login => ("login_address", "login_account"),
        Action::SignUp => ("signup_address", "signup_account"),
    }
}

fn millis(limit: AttemptLimit) -> Millis {
    i64::try_from(limit.window.as_millis()).unwrap_or(i64::MAX)
}

/// "3 minutes", "1 minute", "40 seconds": how long to wait, as people say it.
pub(super) fn wait_words(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} second{}", if secs == 1 { "" } else { "s" }),
        _ => {
            let minutes = secs.div_ceil(60);
            format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_in_words_rounded_up() {
        assert_eq!(wait_words(1), "1 second");
        assert_eq!(wait_words(40), "40 seconds");
        assert_eq!(wait_words(60), "1 minute");
        assert_eq!(wait_words(61), "2 minutes");
        assert_eq!(wait_words(900), "15 minutes");
    }
}
