//! The embedded default: an SQLite file. Instants are RFC 3339 text, dates
//! `YYYY-MM-DD` text and booleans integers, as the contract says.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, SecondsFormat};
use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rows::{parse_date, parse_instant, Get, Loader};
use super::{chunk_rows, rows_of, select_sql, Loaded, Migration, Store, StoreError, Val, TABLES};
use crate::domain::case::{CaseState, Instant};
use crate::domain::evaluate::Finding;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "case_tables",
        sql: include_str!("../../migrations/sqlite/0001_case_tables.sql"),
        case_tables: true,
    },
    Migration {
        version: 2,
        name: "cpwatch_state",
        sql: include_str!("../../migrations/sqlite/0002_cpwatch_state.sql"),
        case_tables: false,
    },
    Migration {
        version: 3,
        name: "cpwatch_notifications",
        sql: include_str!("../../migrations/sqlite/0003_cpwatch_notifications.sql"),
        case_tables: false,
    },
    Migration {
        version: 4,
        name: "contract_additions",
        sql: include_str!("../../migrations/sqlite/0004_contract_additions.sql"),
        case_tables: true,
    },
    Migration {
        version: 5,
        name: "cpwatch_snoozes",
        sql: include_str!("../../migrations/sqlite/0005_cpwatch_snoozes.sql"),
        case_tables: false,
    },
    Migration {
        version: 6,
        name: "target_dates",
        sql: include_str!("../../migrations/sqlite/0006_target_dates.sql"),
        case_tables: true,
    },
    Migration {
        version: 7,
        name: "conference_not_required",
        sql: include_str!("../../migrations/sqlite/0007_conference_not_required.sql"),
        case_tables: true,
    },
];

pub struct SqliteStore {
    pool: SqlitePool,
    url: String,
    /// The database file, and the lock held on `<file>.lock` while this process sends.
    file: std::path::PathBuf,
    lock: tokio::sync::Mutex<Option<std::fs::File>>,
}

impl SqliteStore {
    pub async fn connect(url: &str, create: bool) -> Result<Self, StoreError> {
        let fail = |reason: String| StoreError::Connect {
            url: url.to_string(),
            reason,
            hint: if create {
                "check that the directory exists and is writable".into()
            } else {
                "create it with `cpwatch demo` (synthetic data) or `cpwatch migrate` (empty tables), or pass --database".into()
            },
        };
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| fail(e.to_string()))?
            .create_if_missing(create)
            .busy_timeout(Duration::from_secs(10));
        let file = opts.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(SqliteStore {
            pool,
            url: url.to_string(),
            file,
            lock: tokio::sync::Mutex::new(None),
        })
    }

    fn err(&self, what: &str, e: sqlx::Error) -> StoreError {
        super::query_error(&self.url, what, e)
    }
}

impl Get for SqliteRow {
    fn text(&self, col: &str) -> Result<Option<&str>, String> {
        self.try_get::<Option<&str>, _>(col)
            .map_err(|e| e.to_string())
    }
    fn boolean(&self, col: &str) -> Result<Option<bool>, String> {
        match self.try_get::<Option<i64>, _>(col) {
            Ok(v) => Ok(v.map(|n| n != 0)),
            Err(_) => match self.text(col)? {
                None => Ok(None),
                Some("true") | Some("t") | Some("1") => Ok(Some(true)),
                Some("false") | Some("f") | Some("0") => Ok(Some(false)),
                Some(other) => Err(format!("{other:?} is not a boolean")),
            },
        }
    }
    fn int(&self, col: &str) -> Result<Option<i64>, String> {
        self.try_get::<Option<i64>, _>(col)
            .map_err(|e| e.to_string())
    }
    fn instant(&self, col: &str) -> Result<Option<Instant>, String> {
        self.text(col)?.map(parse_instant).transpose()
    }
    fn date(&self, col: &str) -> Result<Option<NaiveDate>, String> {
        self.text(col)?.map(parse_date).transpose()
    }
}

fn bind_row(mut b: sqlx::query_builder::Separated<'_, '_, Sqlite, &'static str>, row: Vec<Val>) {
    for v in row {
        match v {
            Val::Text(x) => b.push_bind(x),
            Val::Bool(x) => b.push_bind(x),
            Val::Int(x) => b.push_bind(x),
            Val::Instant(x) => b.push_bind(x.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))),
            Val::Date(x) => b.push_bind(x.map(|d| d.format("%Y-%m-%d").to_string())),
        };
    }
}

/// Whether a table (or view) has a column.
async fn has_column(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    column: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) > 0 FROM pragma_table_info(?) WHERE name = ?")
        .bind(table)
        .bind(column)
        .fetch_one(conn)
        .await
}

/// The columns of [`super::ADDED`] the database lacks, as `(table, column)`.
async fn absent_columns(
    conn: &mut sqlx::SqliteConnection,
) -> Result<Vec<(&'static str, &'static str)>, sqlx::Error> {
    let mut absent = Vec::new();
    for &(table, column, _) in super::ADDED {
        if !has_column(conn, table, column).await? {
            absent.push((table, column));
        }
    }
    Ok(absent)
}

/// A migration's statements less each `ALTER TABLE t ADD COLUMN c` whose
/// column is already there: SQLite has no `ADD COLUMN IF NOT EXISTS`, and
/// tables an authority made from the current contract have them already.
async fn without_present_columns(
    conn: &mut sqlx::SqliteConnection,
    sql: &str,
) -> Result<String, sqlx::Error> {
    let mut kept = String::new();
    for statement in sql.split_inclusive(';') {
        let words: Vec<&str> = statement
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .flat_map(str::split_whitespace)
            .collect();
        if let ["ALTER", "TABLE", table, "ADD", "COLUMN", column, ..] = words.as_slice() {
            if has_column(conn, table, column).await? {
                continue;
            }
        }
        kept.push_str(statement);
    }
    Ok(kept)
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.url.clone()
    }

    async fn migrate(&self, own_tables_only: bool) -> Result<Vec<String>, StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS cpwatch_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            .execute(&self.pool)
            .await
            .map_err(|e| self.err("creating cpwatch_schema_migrations", e))?;
        let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM cpwatch_schema_migrations")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("reading cpwatch_schema_migrations", e))?;
        let mut applied = Vec::new();
        let pending = super::pending(MIGRATIONS, &done, own_tables_only);
        for m in pending {
            let what = format!("migration {:04}_{}", m.version, m.name);
            let mut tx = self.pool.begin().await.map_err(|e| self.err(&what, e))?;
            let sql = without_present_columns(&mut tx, m.sql)
                .await
                .map_err(|e| self.err(&what, e))?;
            sqlx::Executor::execute(&mut *tx, sql.as_str())
                .await
                .map_err(|e| self.err(&what, e))?;
            sqlx::query("INSERT INTO cpwatch_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
                .bind(m.version)
                .bind(m.name)
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(&what, e))?;
            tx.commit().await.map_err(|e| self.err(&what, e))?;
            applied.push(what);
        }
        Ok(applied)
    }

    async fn ids(&self, sql: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("finding the linked children and conferences", e))
    }

    async fn load_rows(&self, rows: &super::Rows) -> Result<Loaded, StoreError> {
        let mut loader = Loader::default();
        // One transaction, so a concurrent writer is seen whole or not at all.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.err("starting a read", e))?;
        // Instants are text with any offset, or in SQLite's own forms (an
        // ETL writing CURRENT_TIMESTAMP gives '2026-12-04 20:30:00', UTC):
        // compared as instants, not as text. One SQLite cannot read is a
        // finding about its row (at each full read), not a failed load.
        let mut watermark: Option<Instant> = None;
        for (table, _) in TABLES {
            let newest: Option<String> = sqlx::query_scalar(&format!(
                "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', min(max(julianday(updated_at)), julianday('now'))) FROM {table}"
            ))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(&format!("reading {table}.updated_at"), e))?;
            if let Some(t) = newest
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(parse_instant)
            {
                let t = t.map_err(|e| StoreError::Query {
                    url: self.describe(),
                    what: format!("reading {table}.updated_at"),
                    reason: e,
                })?;
                watermark = watermark.max(Some(t));
            }
        }
        if rows.reports_updated_at() {
            for (table, _) in TABLES {
                self.updated_at_findings(&mut tx, table, &mut loader)
                    .await?;
            }
        }
        let absent = absent_columns(&mut tx)
            .await
            .map_err(|e| self.err("reading the case tables' columns", e))?;
        let selected = rows;
        for (table, cols) in TABLES {
            let mut sql = select_sql(table, cols, &absent, false);
            if let Some(condition) = selected.condition(table, |at| {
                format!("julianday(updated_at) > julianday({at})")
            }) {
                sql.push_str(&condition);
            }
            let mut rows = sqlx::query(&sql).fetch(&mut *tx);
            while let Some(row) = rows
                .try_next()
                .await
                .map_err(|e| self.err(&format!("reading {table}"), e))?
            {
                loader.row(table, &row);
            }
        }
        tx.commit()
            .await
            .map_err(|e| self.err("finishing a read", e))?;
        Ok(Loaded {
            state: loader.finish(),
            watermark,
        })
    }

    async fn replace_case_data(&self, state: &CaseState) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.err("replacing case data", e))?;
        for ((table, cols), rows) in TABLES.iter().zip(rows_of(state)) {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(&format!("clearing {table}"), e))?;
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                let chunk: Vec<Vec<Val>> = rows.by_ref().take(chunk_rows(cols.len())).collect();
                let mut qb = QueryBuilder::<Sqlite>::new(format!(
                    "INSERT INTO {table} ({}) ",
                    cols.join(", ")
                ));
                qb.push_values(chunk, bind_row);
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(&format!("writing {table}"), e))?;
            }
        }
        tx.commit()
            .await
            .map_err(|e| self.err("replacing case data", e))
    }

    async fn set_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO cpwatch_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err("writing cpwatch_state", e))
    }

    async fn get_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM cpwatch_state WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err("reading cpwatch_state", e))
    }

    async fn count_children(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM children")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err("counting children", e))
    }

    async fn leadership(&self) -> Result<bool, StoreError> {
        let mut held = self.lock.lock().await;
        if held.is_some() {
            return Ok(true);
        }
        // Beside the file itself, wherever it is reached from: two instances
        // naming one database through a link (or `./`) must meet at one lock.
        let file = std::fs::canonicalize(&self.file).unwrap_or_else(|_| self.file.clone());
        let path = file.with_extension("db.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Connect {
                url: self.url.clone(),
                reason: format!("cannot open the lock file {}: {e}", path.display()),
                hint: "check that the database's directory is writable".into(),
            })?;
        match f.try_lock() {
            Ok(()) => {
                *held = Some(f);
                Ok(true)
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::AlreadyRunning(format!(
                "another cpwatch is already running on {} (it holds {}); with SQLite only one instance may run: stop it, or use PostgreSQL for several replicas",
                self.url,
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Connect { url: self.url.clone(), reason: format!("locking {}: {e}", path.display()), hint: "check the file system supports locks".into() }),
        }
    }
}

impl SqliteStore {
    /// A finding for each row of `table` whose `updated_at` SQLite cannot
    /// read as a time (the row is read whole at every full read, but an
    /// incremental read, which compares `updated_at`, cannot see it change),
    /// and for each one more than a day past the database's clock.
    async fn updated_at_findings(
        &self,
        tx: &mut sqlx::SqliteConnection,
        table: &str,
        loader: &mut Loader,
    ) -> Result<(), StoreError> {
        let id = super::row_id_sql(table);
        let bad: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT {id}, updated_at FROM {table} WHERE julianday(updated_at) IS NULL"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(&format!("reading {table}.updated_at"), e))?;
        for (row, value) in bad {
            loader.finding(Finding::new(
                "unreadable_updated_at",
                table,
                &row,
                format!(
                    "updated_at {value:?} is not a time SQLite can read (RFC 3339, or its own \
                     'YYYY-MM-DD HH:MM:SS'): the row is read at every full read, but incremental \
                     ticks cannot see its changes"
                ),
            ));
        }
        let ahead: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT {id}, updated_at FROM {table} WHERE julianday(updated_at) > julianday('now', '+1 day')"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.err(&format!("reading {table}.updated_at"), e))?;
        for (row, value) in ahead {
            loader.finding(super::future_updated_at(table, &row, &value));
        }
        Ok(())
    }
}

super::notification_log!(SqliteStore, super::as_is);
super::snoozes::snooze_log!(SqliteStore, super::as_is);
