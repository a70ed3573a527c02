//! The shared database: PostgreSQL, with native TIMESTAMPTZ, DATE and BOOLEAN.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate};
use futures_util::TryStreamExt;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow, PgValueFormat};
use sqlx::{ColumnIndex, Postgres, QueryBuilder, Row, ValueRef};

use super::rows::{Get, Loader};
use super::{
    chunk_rows, redact, rows_of, select_sql, Loaded, Migration, Store, StoreError, Val, TABLES,
};
use crate::case::{CaseState, Instant};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "case_tables",
        sql: include_str!("../../migrations/postgres/0001_case_tables.sql"),
        case_tables: true,
    },
    Migration {
        version: 2,
        name: "cpwatch_state",
        sql: include_str!("../../migrations/postgres/0002_cpwatch_state.sql"),
        case_tables: false,
    },
    Migration {
        version: 3,
        name: "cpwatch_notifications",
        sql: include_str!("../../migrations/postgres/0003_cpwatch_notifications.sql"),
        case_tables: false,
    },
];

pub struct PgStore {
    pool: PgPool,
    url: String,
    /// The connection holding the sender's advisory lock, while this replica holds it.
    leader: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StoreError::Connect {
                url: redact(url),
                reason: e.to_string(),
                hint: "check that PostgreSQL is running and that the URL's host, port, user, password and database are right".into(),
            })?;
        Ok(PgStore {
            pool,
            url: redact(url),
            leader: tokio::sync::Mutex::new(None),
        })
    }

    fn err(&self, what: &str, e: sqlx::Error) -> StoreError {
        StoreError::Query {
            url: self.url.clone(),
            what: what.to_string(),
            reason: e.to_string(),
        }
    }
}

/// A row read by position. A load's SELECT lists each table's columns in a
/// known order, so a column is found by name in that short list, the next
/// one tried first (readers mostly go in order), rather than through sqlx's
/// map of names, which hashes the name for every value (millions a load).
struct ByPosition<'r> {
    row: &'r PgRow,
    columns: &'static [&'static str],
    next: std::cell::Cell<usize>,
}

impl ByPosition<'_> {
    fn at(&self, col: &str) -> Result<usize, String> {
        let guess = self.next.get();
        let i = match self.columns.get(guess) {
            Some(c) if *c == col => guess,
            _ => self
                .columns
                .iter()
                .position(|c| *c == col)
                .ok_or_else(|| format!("no column {col:?} in the query"))?,
        };
        self.next.set(i + 1);
        Ok(i)
    }
}

// How each type is read, by name or by position.
fn text(row: &PgRow, i: impl ColumnIndex<PgRow>) -> Result<Option<&str>, String> {
    row.try_get::<Option<&str>, _>(i).map_err(|e| e.to_string())
}

fn boolean(row: &PgRow, i: impl ColumnIndex<PgRow>) -> Result<Option<bool>, String> {
    row.try_get::<Option<bool>, _>(i).map_err(|e| e.to_string())
}

fn int<I: ColumnIndex<PgRow> + Copy>(row: &PgRow, i: I) -> Result<Option<i64>, String> {
    match row.try_get::<Option<i32>, _>(i) {
        Ok(v) => Ok(v.map(i64::from)),
        Err(_) => row.try_get::<Option<i64>, _>(i).map_err(|e| e.to_string()),
    }
}

fn instant<I: ColumnIndex<PgRow> + Copy>(row: &PgRow, i: I) -> Result<Option<Instant>, String> {
    // A timestamptz sent in binary is microseconds since 2000-01-01 UTC:
    // read directly, it costs a fraction of sqlx's decoding through chrono's
    // arithmetic (a national load reads millions). Anything else goes through sqlx.
    if let Ok(v) = row.try_get_raw(i) {
        if v.is_null() {
            return Ok(None);
        }
        if v.format() == PgValueFormat::Binary && v.type_info().oid() == Some(TIMESTAMPTZ) {
            let micros = v
                .as_bytes()
                .ok()
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(i64::from_be_bytes);
            return micros
                .and_then(|us| us.checked_add(POSTGRES_EPOCH_MICROS))
                .and_then(DateTime::from_timestamp_micros)
                .map(Some)
                .ok_or_else(|| "a timestamp out of range (infinity?)".to_string());
        }
    }
    row.try_get::<Option<Instant>, _>(i)
        .map_err(|e| e.to_string())
}

fn date(row: &PgRow, i: impl ColumnIndex<PgRow>) -> Result<Option<NaiveDate>, String> {
    row.try_get::<Option<NaiveDate>, _>(i)
        .map_err(|e| e.to_string())
}

/// By name: the notification log's few rows.
impl Get for PgRow {
    fn text(&self, col: &str) -> Result<Option<&str>, String> {
        text(self, col)
    }
    fn boolean(&self, col: &str) -> Result<Option<bool>, String> {
        boolean(self, col)
    }
    fn int(&self, col: &str) -> Result<Option<i64>, String> {
        int(self, col)
    }
    fn instant(&self, col: &str) -> Result<Option<Instant>, String> {
        instant(self, col)
    }
    fn date(&self, col: &str) -> Result<Option<NaiveDate>, String> {
        date(self, col)
    }
}

impl Get for ByPosition<'_> {
    fn text(&self, col: &str) -> Result<Option<&str>, String> {
        text(self.row, self.at(col)?)
    }
    fn boolean(&self, col: &str) -> Result<Option<bool>, String> {
        boolean(self.row, self.at(col)?)
    }
    fn int(&self, col: &str) -> Result<Option<i64>, String> {
        int(self.row, self.at(col)?)
    }
    fn instant(&self, col: &str) -> Result<Option<Instant>, String> {
        instant(self.row, self.at(col)?)
    }
    fn date(&self, col: &str) -> Result<Option<NaiveDate>, String> {
        date(self.row, self.at(col)?)
    }
}

const TIMESTAMPTZ: Oid = Oid(1184);
/// 2000-01-01T00:00:00Z, PostgreSQL's epoch, in microseconds since the Unix epoch.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

fn bind_row(mut b: sqlx::query_builder::Separated<'_, '_, Postgres, &'static str>, row: Vec<Val>) {
    for v in row {
        match v {
            Val::Text(x) => b.push_bind(x),
            Val::Bool(x) => b.push_bind(x),
            Val::Int(x) => b.push_bind(x.and_then(|n| i32::try_from(n).ok())),
            Val::Instant(x) => b.push_bind(x),
            Val::Date(x) => b.push_bind(x),
        };
    }
}

#[async_trait]
impl Store for PgStore {
    fn describe(&self) -> String {
        self.url.clone()
    }

    async fn migrate(&self, own_tables_only: bool) -> Result<Vec<String>, StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS cpwatch_schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
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
            sqlx::Executor::execute(&mut *tx, m.sql)
                .await
                .map_err(|e| self.err(&what, e))?;
            sqlx::query("INSERT INTO cpwatch_schema_migrations (version, name) VALUES ($1, $2)")
                .bind(m.version)
                .bind(m.name)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(&what, e))?;
            tx.commit().await.map_err(|e| self.err(&what, e))?;
            applied.push(what);
        }
        Ok(applied)
    }

    async fn load_since(&self, since: Option<Instant>) -> Result<Loaded, StoreError> {
        let mut loader = Loader::default();
        // One snapshot for all tables, so a concurrent ETL load is seen whole or not at all.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.err("starting a read", e))?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("starting a read", e))?;
        let newest = TABLES
            .iter()
            .map(|(t, _)| format!("SELECT max(updated_at) AS m FROM {t}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let watermark: Option<Instant> =
            sqlx::query_scalar(&format!("SELECT max(m) FROM ({newest}) AS w"))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.err("reading updated_at", e))?;
        for (table, cols) in TABLES {
            let mut sql = select_sql(table, cols);
            if since.is_some() {
                sql.push_str(" WHERE updated_at > $1");
            }
            let query = sqlx::query(&sql);
            let query = match since {
                Some(t) => query.bind(t),
                None => query,
            };
            let mut rows = query.fetch(&mut *tx);
            while let Some(row) = rows
                .try_next()
                .await
                .map_err(|e| self.err(&format!("reading {table}"), e))?
            {
                let row = ByPosition {
                    row: &row,
                    columns: cols,
                    next: std::cell::Cell::new(0),
                };
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
                let mut qb = QueryBuilder::<Postgres>::new(format!(
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
        sqlx::query("INSERT INTO cpwatch_state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err("writing cpwatch_state", e))
    }

    async fn get_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM cpwatch_state WHERE key = $1")
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
        use sqlx::{ConnectOptions, Connection};
        let mut held = self.leader.lock().await;
        if let Some(conn) = held.as_mut() {
            if conn.ping().await.is_ok() {
                return Ok(true);
            }
            // The session (and with it the lock) is gone: try again like anyone else.
            *held = None;
        }
        let mut conn = self
            .pool
            .connect_options()
            .connect()
            .await
            .map_err(|e| self.err("connecting for the sender lock", e))?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(super::LEADER_LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err("taking the sender lock", e))?;
        if got {
            *held = Some(conn);
        }
        Ok(got)
    }
}

super::notification_log!(PgStore, super::numbered);
