//! The database: pool, migrations and one file of short queries per table.
//!
//! Postgres in production, SQLite as the embedded default. Both go through sqlx's `Any`
//! driver with the same SQL (numbered `$n` parameters work on both), times as bigint
//! milliseconds and ids as text, so every query is exercised by the tests on both backends.

pub mod attempts;
pub mod claims;
pub mod job_locks;
pub mod photos;
pub mod reconcile;
pub mod sessions;
pub mod users;
pub mod variants;

use std::str::FromStr as _;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, AnyPool, ConnectOptions as _, Describe, Either, Execute, Executor};

/// Errors from the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("that email address already has an account")]
    EmailTaken,
    #[error("a row could not be read: {0}")]
    Corrupt(String),
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Postgres connections per pool unless configured: entry Heroku Postgres plans allow 20 for
/// all dynos and one-off jobs together. SQLite always has 4 (one writer at a time anyway).
pub const DEFAULT_CONNECTIONS: u32 = 10;

/// A cheap-to-clone handle on the pool.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connect to `url` (`postgres://…` or `sqlite://…`). A Postgres URL for a host other than
    /// this machine that does not say `sslmode` gets `sslmode=require`: Heroku Postgres refuses
    /// plaintext and its `DATABASE_URL` does not ask for TLS itself.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        Self::connect_with(url, DEFAULT_CONNECTIONS).await
    }

    /// [`Db::connect`] with at most `connections` Postgres connections.
    pub async fn connect_with(url: &str, connections: u32) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(DbError::Sqlx(sqlx::Error::Configuration(
                "DATABASE_URL must start with postgres:// or sqlite://".into(),
            )));
        };
        let url = match backend {
            Backend::Postgres => with_tls_default(url),
            Backend::Sqlite => {
                create_sqlite_parent_dir(url);
                url.to_owned()
            }
        };
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Postgres => connections.max(1),
                Backend::Sqlite => 4,
            })
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers carry on while the single writer writes; the busy timeout makes
            // a second writer wait instead of failing with "database is locked".
            sqlx::query("pragma journal_mode = wal").execute(&pool).await?;
        }
        Ok(Self { pool, backend })
    }

    /// Apply the migrations that have not run yet. One set of files serves both backends: the
    /// schema uses only what Postgres and SQLite share (text, bigint, named constraints).
    pub async fn migrate(&self) -> Result<(), DbError> {
        if self.backend == Backend::Sqlite {
            adopt_sqlite_twin_checksum(&self.pool).await?;
        }
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// One round trip, for `/healthz`.
    pub async fn health_check(&self) -> Result<(), DbError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Start a transaction. Every query function takes an executor, so it runs the same on the
    /// pool (`&db`) or inside a transaction (`&mut *tx`).
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(self.pool.begin().await?)
    }
}

/// A transaction; dropped without `commit`, it rolls back.
pub type Tx = sqlx::Transaction<'static, Any>;

/// Queries run on `&Db` as on the pool: each takes a connection for itself.
impl<'d> Executor<'d> for &'d Db {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'd: 'e,
        E: 'q + Execute<'q, Any>,
    {
        self.pool.fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'd: 'e,
        E: 'q + Execute<'q, Any>,
    {
        self.pool.fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'd: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'd: 'e,
    {
        self.pool.describe(sql)
    }
}

/// Until the two backends shared one set of migrations, SQLite databases were created from a
/// twin of the first migration that differed from the Postgres file only in its comments.
/// sqlx refuses to run when an applied migration's checksum changed, so such a database is told
/// that it applied the shared file: the schema it holds is the same.
async fn adopt_sqlite_twin_checksum(pool: &AnyPool) -> Result<(), DbError> {
    const TWIN_SHA384: &str =
        "3577882a84f1b09e078b2983c76fb1d124be681ce367995d4840c42fb39b14d44f974d129fd34a4bba0f35a969e8baef";
    const VERSION: i64 = 20_261_128_000_001;
    let has_table = sqlx::query("select 1 from sqlite_master where type = 'table' and name = '_sqlx_migrations'")
        .fetch_optional(pool)
        .await?
        .is_some();
    if !has_table {
        return Ok(());
    }
    let Some(shared) = sqlx::migrate!("./migrations").iter().find(|m| m.version == VERSION) else {
        return Ok(());
    };
    let twin = hex::decode(TWIN_SHA384).unwrap_or_default();
    sqlx::query("update _sqlx_migrations set checksum = $1 where version = $2 and checksum = $3")
        .bind(shared.checksum.to_vec())
        .bind(VERSION)
        .bind(twin)
        .execute(pool)
        .await?;
    Ok(())
}

fn with_tls_default(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let local = matches!(parsed.host_str(), None | Some("" | "localhost" | "127.0.0.1" | "[::1]" | "::1"));
    if local || parsed.query_pairs().any(|(k, _)| k == "sslmode") {
        return url.to_owned();
    }
    let mut parsed = parsed;
    parsed.query_pairs_mut().append_pair("sslmode", "require");
    parsed.to_string()
}

fn create_sqlite_parent_dir(url: &str) {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or("");
    if let Some(parent) = std::path::Path::new(path).parent() {
        // Best effort: if this fails, connecting reports the real problem.
        let _ = std::fs::create_dir_all(parent);
    }
}

/// Read a column, turning a missing or mistyped one into [`DbError::Corrupt`].
pub(crate) fn col<'r, T>(row: &'r sqlx::any::AnyRow, name: &str) -> Result<T, DbError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row as _;
    row.try_get(name).map_err(|e| DbError::Corrupt(format!("{name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_postgres_defaults_to_tls_but_local_and_explicit_urls_are_kept() {
        assert_eq!(
            with_tls_default("postgres://u:p@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d"),
            "postgres://u:p@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d?sslmode=require"
        );
        assert_eq!(with_tls_default("postgres://u@127.0.0.1/d"), "postgres://u@127.0.0.1/d");
        assert_eq!(with_tls_default("postgres://u@db/d?sslmode=disable"), "postgres://u@db/d?sslmode=disable");
    }

    #[tokio::test]
    async fn a_sqlite_database_made_from_the_old_twin_migration_still_starts() {
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("fresh database");
        // What a database created before the merge records for the first migration.
        let twin = hex::decode(
            "3577882a84f1b09e078b2983c76fb1d124be681ce367995d4840c42fb39b14d44f974d129fd34a4bba0f35a969e8baef",
        )
        .expect("hex");
        // Only the first migration had a twin; later ones keep their own checksums.
        sqlx::query("update _sqlx_migrations set checksum = $1 where version = 20261128000001")
            .bind(twin)
            .execute(&db)
            .await
            .expect("pretend");
        db.migrate().await.expect("adopted, not refused as a changed migration");
        // Anything else that changed is still refused, as sqlx intends.
        sqlx::query("update _sqlx_migrations set checksum = $1")
            .bind(vec![0u8; 48])
            .execute(&db)
            .await
            .expect("tamper");
        assert!(db.migrate().await.is_err(), "a really changed migration is refused");
    }
}
