//! Shoebox's own migrations, recorded in their own table.
//!
//! sqlx's migrator keeps its history in `_sqlx_migrations`, the table a host's own migrations
//! use: Shoebox's rows there would make the host's migrator refuse to run ("applied but
//! missing"), and the host's would make ours refuse. So Shoebox records its history in
//! [`MIGRATIONS_TABLE`] and applies its migrations itself: all pending ones in one transaction,
//! under a lock (an advisory lock on Postgres, the single writer on SQLite), each checked
//! against the checksum it was applied with, since a migration is never edited once released.
//!
//! A database made before Shoebox could be embedded has its tables without the `shoebox_`
//! prefix (`photos`, `variants`, `form_windows`, `job_locks`) and its history in
//! `_sqlx_migrations`. The second migration finds those tables, by the checksum of the first
//! migration that made them, copies their rows into the new tables and drops them; a host's own
//! `photos` table, recorded under other checksums, is never taken for one of them.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use super::{Backend, Db, DbError, Tx, col, run};

/// Where Shoebox records which of its migrations a database has.
pub const MIGRATIONS_TABLE: &str = "shoebox_migrations";

/// One step of the schema. `sql` runs on both backends; `adopt` steps run code instead.
struct Migration {
    version: i64,
    description: &'static str,
    step: Step,
}

enum Step {
    Sql(&'static str),
    /// Carry the rows of a database made by an earlier Shoebox into the new tables.
    AdoptLegacy,
}

impl Migration {
    /// What is recorded and compared on every later run.
    fn checksum(&self) -> String {
        let text = match self.step {
            Step::Sql(sql) => sql,
            Step::AdoptLegacy => {
                "adopt the unprefixed tables of Shoebox 0.1 (photos, variants, form_windows, job_locks)"
            }
        };
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, description: "tables", step: Step::Sql(include_str!("../../migrations/0001_tables.sql")) },
    Migration { version: 2, description: "adopt unprefixed tables", step: Step::AdoptLegacy },
    Migration { version: 3, description: "quotas", step: Step::Sql(include_str!("../../migrations/0003_quotas.sql")) },
    Migration {
        version: 4,
        description: "placeholders",
        step: Step::Sql(include_str!("../../migrations/0004_placeholders.sql")),
    },
    Migration {
        version: 6,
        description: "verification claims",
        step: Step::Sql(include_str!("../../migrations/0006_verification_claims.sql")),
    },
];

/// The versions this release knows, for the doctor.
pub(crate) fn known_versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

/// The versions a database has applied (empty when it has none), for the doctor.
pub(crate) async fn applied_versions(db: &Db) -> Result<Vec<i64>, DbError> {
    let sql = format!("select version from {MIGRATIONS_TABLE} order by version");
    let rows: Result<Vec<i64>, DbError> = run!(db, |c| {
        let rows = sqlx::query(&sql).fetch_all(c).await?;
        rows.iter().map(|r| col(r, "version")).collect()
    });
    match rows {
        Ok(v) => Ok(v),
        // No table yet: nothing applied.
        Err(DbError::Sqlx(sqlx::Error::Database(_))) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

pub(super) async fn run(db: &Db) -> Result<(), DbError> {
    let mut tx = db.begin().await?;
    lock(&mut tx).await?;
    let create = format!(
        "create table if not exists {MIGRATIONS_TABLE} (version bigint primary key, description text not null, \
         checksum text not null, applied_at bigint not null)"
    );
    run!(&mut tx, |c| sqlx::query(&create).execute(c).await.map(|_| ()))?;
    let applied = applied(&mut tx).await?;
    for m in MIGRATIONS {
        match applied.get(&m.version) {
            Some(sum) if *sum == m.checksum() => continue,
            Some(_) => {
                return Err(DbError::Migrate(format!(
                    "migration {} ({}) was applied with other contents than this release's; \
                     this release cannot run on that database",
                    m.version, m.description
                )));
            }
            None => {}
        }
        match m.step {
            Step::Sql(sql) => execute_script(&mut tx, sql).await?,
            Step::AdoptLegacy => adopt_legacy(&mut tx).await?,
        }
        let record = format!(
            "insert into {MIGRATIONS_TABLE} (version, description, checksum, applied_at) values ($1, $2, $3, $4)"
        );
        let now = crate::domain::now_millis();
        run!(&mut tx, |c| sqlx::query(&record)
            .bind(m.version)
            .bind(m.description)
            .bind(m.checksum())
            .bind(now)
            .execute(c)
            .await
            .map(|_| ()))?;
        tracing::info!(version = m.version, description = m.description, "applied a Shoebox migration");
    }
    let newest = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(v) = applied.keys().find(|v| **v > newest) {
        return Err(DbError::Migrate(format!(
            "the database has Shoebox migration {v}, newer than this release knows ({newest}): run the newer release"
        )));
    }
    tx.commit().await
}

/// One migrator at a time: Postgres takes a transaction-scoped advisory lock; SQLite's first
/// write (the `create table if not exists` that follows) takes its single writer lock.
async fn lock(tx: &mut Tx) -> Result<(), DbError> {
    if let Tx::Postgres(t) = tx {
        // A fixed key: "shoebox" as a number.
        sqlx::query("select pg_advisory_xact_lock(7353245136484442488)").execute(&mut **t).await?;
    }
    Ok(())
}

async fn applied(tx: &mut Tx) -> Result<BTreeMap<i64, String>, DbError> {
    let sql = format!("select version, checksum from {MIGRATIONS_TABLE}");
    run!(tx, |c| {
        let rows = sqlx::query(&sql).fetch_all(c).await?;
        rows.iter().map(|r| Ok((col(r, "version")?, col(r, "checksum")?))).collect()
    })
}

/// Run a file of statements separated by `;` at line ends (no statement in our files contains
/// one elsewhere). Both drivers would take the whole file in one call, but sqlx runs a
/// multi-statement string on SQLite only up to the first error without saying which statement.
async fn execute_script(tx: &mut Tx, sql: &str) -> Result<(), DbError> {
    for statement in statements(sql) {
        run!(&mut *tx, |c| sqlx::query(&statement).execute(c).await.map(|_| ()))
            .map_err(|e| DbError::Migrate(format!("{e}: in `{}`", first_line(&statement))))?;
    }
    Ok(())
}

fn statements(sql: &str) -> Vec<String> {
    let without_comments: String =
        sql.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    without_comments.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn first_line(statement: &str) -> &str {
    statement.lines().next().unwrap_or(statement)
}

/// The first migration of Shoebox 0.1 as sqlx recorded it: the checksum of the shared file, and
/// of the SQLite twin that SQLite databases were first made from.
const LEGACY_INITIAL: i64 = 20_261_128_000_001;
const LEGACY_INITIAL_SHA384: [&str; 2] = [
    "715e4537d4d278f2a787de62fa88ab5588e765cd6afc43c703e8ea9e54a60584f5479867cab271fcda8450ed3bbaf6e6",
    "3577882a84f1b09e078b2983c76fb1d124be681ce367995d4840c42fb39b14d44f974d129fd34a4bba0f35a969e8baef",
];
/// The later 0.1 migrations that added claims and `job_locks`, `variants`, and `form_windows`.
const LEGACY_CLAIMS: i64 = 20_261_201_000_002;
const LEGACY_VARIANTS: i64 = 20_261_201_000_003;
const LEGACY_FORM_WINDOWS: i64 = 20_261_201_000_004;

const PHOTO_COLUMNS: &str = "photo_id, kind, bucket, uploader_id, state, incoming_key, object_key, declared_type, \
    image_type, max_bytes, byte_size, width, height, filename, form_expires_at, created_at, verified_at, \
    attached_at, keep_until, deleted_at, deleted_reason";
const VARIANT_COLUMNS: &str = "photo_id, name, recipe_hash, state, object_key, image_type, width, height, byte_size, claimed_at, made_at, failure";

/// Copy a Shoebox 0.1 database's rows into the `shoebox_` tables and drop the old tables. Does
/// nothing on a database that has none (a new one, or a host's).
async fn adopt_legacy(tx: &mut Tx) -> Result<(), DbError> {
    let legacy = legacy_versions(tx).await?;
    if !legacy.contains(&LEGACY_INITIAL) || !table_exists(tx, "photos").await? {
        return Ok(());
    }
    let has = |v| legacy.contains(&v);
    let claims = if has(LEGACY_CLAIMS) { "claimed_by, claimed_until" } else { "null, null" };
    let mut steps = vec![format!(
        "insert into shoebox_photos ({PHOTO_COLUMNS}, claimed_by, claimed_until) \
         select {PHOTO_COLUMNS}, {claims} from photos"
    )];
    if has(LEGACY_VARIANTS) {
        steps.push(format!("insert into shoebox_variants ({VARIANT_COLUMNS}) select {VARIANT_COLUMNS} from variants"));
        steps.push("drop table variants".into());
    }
    if has(LEGACY_FORM_WINDOWS) {
        steps.push(
            "insert into shoebox_form_windows (uploader_id, style, opened_at, forms) \
             select uploader_id, style, opened_at, forms from form_windows"
                .into(),
        );
        steps.push("drop table form_windows".into());
    }
    if has(LEGACY_CLAIMS) {
        steps.push(
            "insert into shoebox_job_locks (name, holder, held_until) select name, holder, held_until from job_locks"
                .into(),
        );
        steps.push("drop table job_locks".into());
    }
    steps.push("drop table photos".into());
    for step in steps {
        run!(&mut *tx, |c| sqlx::query(&step).execute(c).await.map(|_| ()))
            .map_err(|e| DbError::Migrate(format!("carrying over the earlier tables: {e}: in `{step}`")))?;
    }
    tracing::info!("carried the photos of an earlier Shoebox database over into the shoebox_ tables");
    Ok(())
}

/// The 0.1 migrations recorded in `_sqlx_migrations`, provided its first one is Shoebox's own
/// (by checksum); empty otherwise.
async fn legacy_versions(tx: &mut Tx) -> Result<Vec<i64>, DbError> {
    if !table_exists(tx, "_sqlx_migrations").await? {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, Vec<u8>)> = run!(&mut *tx, |c| {
        sqlx::query_as::<_, (i64, Vec<u8>)>("select version, checksum from _sqlx_migrations where success")
            .fetch_all(c)
            .await
    })?;
    let ours =
        rows.iter().any(|(v, sum)| *v == LEGACY_INITIAL && LEGACY_INITIAL_SHA384.contains(&hex::encode(sum).as_str()));
    Ok(if ours { rows.into_iter().map(|(v, _)| v).collect() } else { Vec::new() })
}

async fn table_exists(tx: &mut Tx, name: &str) -> Result<bool, DbError> {
    let backend = match tx {
        Tx::Postgres(_) => Backend::Postgres,
        Tx::Sqlite(_) => Backend::Sqlite,
    };
    let sql = match backend {
        // The schema search path decides which `photos` an unqualified name means, as it did
        // for the 0.1 migrations.
        Backend::Postgres => "select 1 as one where to_regclass($1) is not null",
        Backend::Sqlite => "select 1 as one from sqlite_master where type = 'table' and name = $1",
    };
    let found = run!(&mut *tx, |c| sqlx::query(sql).bind(name).fetch_optional(c).await.map(|r| r.is_some()))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_statements_without_comments() {
        let sql = "-- a table; with a comment\ncreate table a (x text); -- trailing\n\ncreate index b on a (x);\n";
        assert_eq!(statements(sql), ["create table a (x text)", "create index b on a (x)"]);
    }

    #[test]
    fn versions_are_increasing_and_checksums_stable() {
        let versions = known_versions();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        // Changing a released migration would strand every database that applied it.
        assert_eq!(MIGRATIONS[1].checksum(), MIGRATIONS[1].checksum());
        assert_eq!(MIGRATIONS[0].checksum().len(), 64);
    }
}
