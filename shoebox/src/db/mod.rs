//! The database: the pool the host hands over, Shoebox's own migrations, and one file of short
//! queries per table.
//!
//! Postgres in production, SQLite as the embedded default. A host gives Shoebox the pool it
//! already has (a `PgPool` or a `SqlitePool`), so both drivers are spoken natively: each query
//! is written once and [`run!`] instantiates it for the backend behind the pool. Times are
//! bigint milliseconds and ids are text, so the same SQL serves both and the tests exercise
//! every query on both.

pub(crate) mod claims;
pub(crate) mod form_writer;
pub(crate) mod job_locks;
mod migrate;
pub(crate) mod photos;
pub(crate) mod quotas;
pub(crate) mod reconcile;
pub(crate) mod sign_batch;
pub(crate) mod variants;

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{ConnectOptions as _, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};

pub use migrate::MIGRATIONS_TABLE;
pub(crate) use migrate::{applied_versions, known_versions};

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The driver's error: the server refused a statement, or could not be reached.
    #[error("database error")]
    Sqlx(#[from] sqlx::Error),
    /// A migration could not be applied, or an applied one differs from this release's.
    #[error("migrating Shoebox's tables failed: {0}")]
    Migrate(String),
    /// A row Shoebox wrote holds something it cannot read back (a bug, or a hand edit).
    #[error("a row could not be read: {0}")]
    Corrupt(String),
    /// One failure shared by every request of a batched write (see `form_writer`).
    #[error(transparent)]
    Shared(std::sync::Arc<DbError>),
}

impl DbError {
    /// Whose fault this is: an outage when [`DbError::is_outage`], else a bug.
    pub fn fault(&self) -> crate::fault::Fault {
        if self.is_outage() { crate::fault::Fault::Outage } else { crate::fault::Fault::Bug }
    }

    /// Whether the database was unreachable or overloaded (worth retrying shortly), rather than
    /// a statement it refused or a row that makes no sense (a bug).
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Sqlx(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                        | sqlx::Error::Protocol(_)
                ) || matches!(e, sqlx::Error::Database(d) if is_transient_code(d.code().as_deref()))
            }
            Self::Shared(e) => e.is_outage(),
            Self::Migrate(_) | Self::Corrupt(_) => false,
        }
    }
}

/// Postgres codes of a server shutting down, starting up or out of connections (SQLSTATE
/// classes 08 and 57, and 53300), and SQLite's "busy"/"locked": the same statement will work
/// again shortly.
fn is_transient_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c == "53300" || c == "5" || c == "6")
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, what production runs on.
    Postgres,
    /// SQLite, the embedded default.
    Sqlite,
}

/// The pool Shoebox runs its queries on: the host's own, or one [`Db::connect`] opened. Cheap
/// to clone (a pool is a handle).
///
/// ```
/// # async fn f(pool: sqlx::PgPool) {
/// let db = shoebox::Db::from(pool); // the host's PgPool; a SqlitePool works the same way
/// # }
/// ```
#[derive(Debug, Clone)]
pub enum Db {
    /// A Postgres pool.
    Postgres(PgPool),
    /// A SQLite pool.
    Sqlite(SqlitePool),
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

impl From<SqlitePool> for Db {
    fn from(pool: SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

impl Db {
    /// Open a pool for `url` (`postgres://…` or `sqlite://…`), with at most `connections`
    /// Postgres connections (SQLite gets 4: it has one writer at a time anyway).
    ///
    /// A Postgres URL for a host other than this machine that does not say `sslmode` gets
    /// `sslmode=require`: Heroku Postgres refuses plaintext and its `DATABASE_URL` does not ask
    /// for TLS itself. A SQLite file is created, with its folder, if missing, and put in WAL
    /// mode so readers carry on while the single writer writes.
    pub async fn connect(url: &str, connections: u32) -> Result<Self, DbError> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(&with_tls_default(url))?.disable_statement_logging();
            let pool = PgPoolOptions::new()
                .max_connections(connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            create_sqlite_parent_dir(url);
            let options = SqliteConnectOptions::from_str(url)?
                .journal_mode(SqliteJournalMode::Wal)
                // A second writer waits for the first instead of failing with "database is locked".
                .busy_timeout(Duration::from_secs(10))
                .disable_statement_logging();
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Self::Sqlite(pool))
        } else {
            Err(DbError::Sqlx(sqlx::Error::Configuration(
                "DATABASE_URL must start with postgres:// or sqlite://".into(),
            )))
        }
    }

    /// Create or update Shoebox's tables (all named `shoebox_…`), recording what was applied
    /// in `shoebox_migrations`. Safe to run from several processes at once, and beside a
    /// host's own tables and migration history, which it never touches. A database made by an
    /// earlier Shoebox, whose tables had no prefix, has its data carried over.
    pub async fn migrate(&self) -> Result<(), DbError> {
        migrate::run(self).await
    }

    /// One round trip, for `/healthz`.
    pub async fn health_check(&self) -> Result<(), DbError> {
        run!(self, |c| sqlx::query("select 1").execute(c).await.map(|_| ()).map_err(DbError::from))
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Close the pool: what a process does last, after its work has stopped.
    pub async fn close(&self) {
        match self {
            Self::Postgres(p) => p.close().await,
            Self::Sqlite(p) => p.close().await,
        }
    }

    /// Connections open and idle right now, for the operator's view of the pool.
    pub fn pool_size(&self) -> (u32, usize) {
        match self {
            Self::Postgres(p) => (p.size(), p.num_idle()),
            Self::Sqlite(p) => (p.size(), p.num_idle()),
        }
    }

    /// Start a transaction; dropped without [`Tx::commit`], it rolls back.
    pub(crate) async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
            Self::Sqlite(p) => Tx::Sqlite(p.begin().await?),
        })
    }
}

/// An open transaction on either backend.
pub(crate) enum Tx {
    Postgres(sqlx::Transaction<'static, Postgres>),
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), DbError> {
        match self {
            Self::Postgres(t) => t.commit().await?,
            Self::Sqlite(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// Where a query runs: on the pool (taking a connection for itself) or inside a transaction.
/// Every query function takes `impl Into<Ex>`, so it runs the same on `&db` or `&mut tx`.
pub(crate) enum Ex<'a> {
    PgPool(&'a PgPool),
    PgConn(&'a mut PgConnection),
    SqlitePool(&'a SqlitePool),
    SqliteConn(&'a mut SqliteConnection),
}

impl<'a> From<&'a Db> for Ex<'a> {
    fn from(db: &'a Db) -> Self {
        match db {
            Db::Postgres(p) => Self::PgPool(p),
            Db::Sqlite(p) => Self::SqlitePool(p),
        }
    }
}

impl<'a> From<&'a mut Tx> for Ex<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        match tx {
            Tx::Postgres(t) => Self::PgConn(&mut *t),
            Tx::Sqlite(t) => Self::SqliteConn(&mut *t),
        }
    }
}

/// Run `body` with `$c` bound to the executor behind `$ex` (anything `Into<Ex>`): the body is
/// written once and compiled for each driver, so a query reads as plain sqlx.
macro_rules! run {
    ($ex:expr, |$c:ident| $body:expr) => {{
        let ex: $crate::db::Ex<'_> = ($ex).into();
        match ex {
            $crate::db::Ex::PgPool($c) => $body,
            $crate::db::Ex::PgConn($c) => $body,
            $crate::db::Ex::SqlitePool($c) => $body,
            $crate::db::Ex::SqliteConn($c) => $body,
        }
    }};
}
pub(crate) use run;

/// A row of either backend, read by column name.
pub(crate) trait DbRow {
    fn col<T: Col>(&self, name: &str) -> Result<T, DbError>;
}

/// The column types Shoebox stores: text and bigint, either nullable.
pub(crate) trait Col: Sized {
    fn from_pg(row: &PgRow, name: &str) -> Result<Self, sqlx::Error>;
    fn from_sqlite(row: &SqliteRow, name: &str) -> Result<Self, sqlx::Error>;
}

macro_rules! col_type {
    ($($t:ty),*) => {$(
        impl Col for $t {
            fn from_pg(row: &PgRow, name: &str) -> Result<Self, sqlx::Error> {
                sqlx::Row::try_get(row, name)
            }
            fn from_sqlite(row: &SqliteRow, name: &str) -> Result<Self, sqlx::Error> {
                sqlx::Row::try_get(row, name)
            }
        }
    )*};
}
col_type!(String, Option<String>, i64, Option<i64>);

impl DbRow for PgRow {
    fn col<T: Col>(&self, name: &str) -> Result<T, DbError> {
        T::from_pg(self, name).map_err(|e| DbError::Corrupt(format!("{name}: {e}")))
    }
}

impl DbRow for SqliteRow {
    fn col<T: Col>(&self, name: &str) -> Result<T, DbError> {
        T::from_sqlite(self, name).map_err(|e| DbError::Corrupt(format!("{name}: {e}")))
    }
}

/// Read every row with `read`, inside [`run!`] where the row type is known.
pub(crate) fn each<R: DbRow, T>(rows: Vec<R>, read: impl Fn(&R) -> Result<T, DbError>) -> Result<Vec<T>, DbError> {
    rows.iter().map(read).collect()
}

/// Read the row, if there is one, with `read`, inside [`run!`].
pub(crate) fn one<R: DbRow, T>(row: Option<R>, read: impl Fn(&R) -> Result<T, DbError>) -> Result<Option<T>, DbError> {
    row.as_ref().map(read).transpose()
}

/// Read a column, turning a missing or mistyped one into [`DbError::Corrupt`].
pub(crate) fn col<T: Col>(row: &impl DbRow, name: &str) -> Result<T, DbError> {
    row.col(name)
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

    #[test]
    fn outages_are_told_from_bugs() {
        assert!(DbError::Sqlx(sqlx::Error::PoolTimedOut).is_outage());
        assert!(!DbError::Sqlx(sqlx::Error::RowNotFound).is_outage());
        assert!(!DbError::Corrupt("x".into()).is_outage());
        assert!(is_transient_code(Some("57P01")) && is_transient_code(Some("08006")));
        assert!(!is_transient_code(Some("23505")) && !is_transient_code(None));
    }
}
