//! Database checks: reachable (the same round trip `/healthz` makes), migrations current, TLS
//! in use when the URL asks for it.

use std::collections::BTreeSet;
use std::time::Instant;

use super::Check;
use crate::db::{Db, applied_versions, known_versions};

const SUBJECT: &str = "database";

/// Connect to `url` and check it. The URL itself is never shown: it holds the password.
pub async fn check_url(url: &str) -> Vec<Check> {
    let started = Instant::now();
    match Db::connect(url, 1).await {
        Ok(db) => {
            let checks = check(&db, asks_for_tls(url)).await;
            db.close().await;
            checks
        }
        Err(e) => vec![
            Check::fail(
                "database.reachable",
                SUBJECT,
                "connecting to DATABASE_URL",
                Some(e.to_string()),
                "the database server is not running, not reachable from here, or refuses these credentials",
                "check DATABASE_URL (host, port, user, password, database name) and that the server accepts \
                 connections from this machine",
            )
            .timed(started),
        ],
    }
}

/// Check an open pool. `asks_tls`: the URL requires TLS.
pub async fn check(db: &Db, asks_tls: bool) -> Vec<Check> {
    let started = Instant::now();
    let mut checks = Vec::new();
    match db.health_check().await {
        Ok(()) => checks.push(Check::pass("database.reachable", SUBJECT, "select 1").timed(started)),
        Err(e) => {
            checks.push(
                Check::fail(
                    "database.reachable",
                    SUBJECT,
                    "select 1",
                    Some(e.to_string()),
                    "connected, but the database does not answer a query",
                    "check the server's logs and that the user may connect to this database",
                )
                .timed(started),
            );
            return checks;
        }
    }
    checks.push(migrations(db).await);
    checks.push(tls(db, asks_tls).await);
    checks
}

async fn migrations(db: &Db) -> Check {
    let started = Instant::now();
    let tried = "comparing shoebox_migrations with the migrations built into this release";
    let known: BTreeSet<i64> = known_versions().into_iter().collect();
    let applied: BTreeSet<i64> = applied_versions(db).await.unwrap_or_default().into_iter().collect();
    let missing: Vec<String> = known.difference(&applied).map(i64::to_string).collect();
    let unknown: Vec<String> = applied.difference(&known).map(i64::to_string).collect();
    let check = if !missing.is_empty() {
        Check::fail(
            "database.migrations",
            SUBJECT,
            tried,
            Some(format!("not applied: {}", missing.join(", "))),
            "the database is older than this release",
            "run `shoebox migrate`",
        )
    } else if !unknown.is_empty() {
        Check::fail(
            "database.migrations",
            SUBJECT,
            tried,
            Some(format!("applied but unknown to this binary: {}", unknown.join(", "))),
            "a newer release migrated this database",
            "deploy the release that matches the database",
        )
    } else {
        Check::pass("database.migrations", SUBJECT, tried)
    };
    check.timed(started)
}

async fn tls(db: &Db, asks_tls: bool) -> Check {
    let started = Instant::now();
    let Db::Postgres(pool) = db else {
        return Check::skipped("database.tls", SUBJECT, "the database URL does not ask for TLS");
    };
    if !asks_tls {
        return Check::skipped("database.tls", SUBJECT, "the database URL does not ask for TLS");
    }
    let tried = "reading pg_stat_ssl for this connection";
    let q = "select case when ssl then 1 else 0 end from pg_stat_ssl where pid = pg_backend_pid()";
    let check = match sqlx::query_scalar::<_, i32>(q).fetch_optional(pool).await {
        Ok(Some(1)) => Check::pass("database.tls", SUBJECT, tried),
        Ok(_) => Check::fail(
            "database.tls",
            SUBJECT,
            tried,
            Some("this connection is not encrypted".into()),
            "the URL asks for TLS but the connection is in plain text",
            "enable TLS on the server, or fix sslmode in DATABASE_URL",
        ),
        Err(e) => Check::fail(
            "database.tls",
            SUBJECT,
            tried,
            Some(e.to_string()),
            "could not read whether this connection uses TLS",
            "grant the user read access to pg_stat_ssl",
        ),
    };
    check.timed(started)
}

/// The URL requires TLS: it says so, or `Db::connect` adds `sslmode=require` because the host is
/// not this machine.
pub fn asks_for_tls(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else { return false };
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return false;
    }
    match u.query_pairs().find(|(k, _)| k == "sslmode") {
        Some((_, mode)) => matches!(mode.as_ref(), "require" | "verify-ca" | "verify-full"),
        None => !matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]") | None),
    }
}

#[cfg(test)]
mod tests {
    use super::asks_for_tls;

    #[test]
    fn tls_is_asked_for_by_sslmode_or_a_remote_host() {
        assert!(asks_for_tls("postgres://u@db.example/x"));
        assert!(asks_for_tls("postgres://u@127.0.0.1/x?sslmode=require"));
        assert!(!asks_for_tls("postgres://u@127.0.0.1/x"));
        assert!(!asks_for_tls("postgres://u@db.example/x?sslmode=disable"));
        assert!(!asks_for_tls("sqlite://data/shoebox.db"));
    }
}
