//! The shared database: PostgreSQL, with native TIMESTAMPTZ, DATE and BOOLEAN.
//! Case tables are read by binary COPY, each value decoded in place.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use futures_util::TryStreamExt;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Column, Postgres, QueryBuilder, Row, Statement, TypeInfo};

use super::rows::{Get, Loader};
use super::{
    chunk_rows, redact, rows_of, select_sql, Loaded, Migration, Store, StoreError, Val, TABLES,
};
use crate::domain::case::{CaseState, Instant};

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
    Migration {
        version: 4,
        name: "contract_additions",
        sql: include_str!("../../migrations/postgres/0004_contract_additions.sql"),
        case_tables: true,
    },
    Migration {
        version: 5,
        name: "cpwatch_snoozes",
        sql: include_str!("../../migrations/postgres/0005_cpwatch_snoozes.sql"),
        case_tables: false,
    },
    Migration {
        version: 6,
        name: "target_dates",
        sql: include_str!("../../migrations/postgres/0006_target_dates.sql"),
        case_tables: true,
    },
    Migration {
        version: 7,
        name: "conference_not_required",
        sql: include_str!("../../migrations/postgres/0007_conference_not_required.sql"),
        case_tables: true,
    },
];

pub struct PgStore {
    pool: PgPool,
    url: String,
    /// The connection holding the sender's advisory lock, while this replica holds it.
    leader: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
    /// Set once a load could not have a second connection (a role's
    /// connection limit, say): loads read on one from then on.
    one_connection: std::sync::atomic::AtomicBool,
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
                hint: connect_hint(url, &e),
            })?;
        Ok(PgStore {
            pool,
            url: redact(url),
            leader: tokio::sync::Mutex::new(None),
            one_connection: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A finding for each row whose `updated_at` is more than a day past the
    /// database's clock (found through the `updated_at` index).
    async fn future_updated_at(
        &self,
        conn: &mut sqlx::PgConnection,
        loader: &mut Loader,
    ) -> Result<(), StoreError> {
        for (table, _) in TABLES {
            let id = super::row_id_sql(table);
            let ahead: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT {id}, updated_at::text FROM {table} WHERE updated_at > now() + interval '1 day'"
            ))
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.err(&format!("reading {table}.updated_at"), e))?;
            for (row, value) in ahead {
                loader.finding(super::future_updated_at(table, &row, &value));
            }
        }
        Ok(())
    }

    /// A second reading of the same snapshot, unless the database refused
    /// one before: then the load reads on one connection from now on.
    async fn second_reading(&self, snapshot: &str) -> Option<Reading> {
        if self.one_connection.load(Ordering::Relaxed) {
            return None;
        }
        match self.read(Some(snapshot)).await {
            Ok(tx) => Some(tx),
            Err(e) => {
                self.one_connection.store(true, Ordering::Relaxed);
                tracing::warn!(
                    "{e}; reading the case tables on one connection from now on, which is slower \
                     (allow cpwatch five connections: docs/case-schema.md)"
                );
                None
            }
        }
    }

    /// A read-only transaction of its own snapshot, or of one another exported.
    async fn read(&self, snapshot: Option<&str>) -> Result<Reading, StoreError> {
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.err("starting a read", e))?;
        let mut tx = Reading {
            conn,
            committed: false,
        };
        sqlx::Executor::execute(&mut *tx, "BEGIN")
            .await
            .map_err(|e| self.err("starting a read", e))?;
        begin_read(&mut tx, snapshot)
            .await
            .map_err(|e| self.err("starting a read", e))?;
        Ok(tx)
    }

    fn err(&self, what: &str, e: sqlx::Error) -> StoreError {
        super::query_error(&self.url, what, e)
    }

    fn failed(&self, what: &str, reason: String) -> StoreError {
        query_failed(&self.url, what, reason)
    }
}

/// What to do about a connection that failed: a TLS failure or an
/// unreadable `sslrootcert` is about the URL's TLS settings, not about
/// whether the server is there.
pub fn connect_hint(url: &str, e: &sqlx::Error) -> String {
    if let Some(root) = super::url_param(url, "sslrootcert") {
        if let Err(io) = std::fs::metadata(&root) {
            return format!(
                "sslrootcert={root} cannot be read ({io}): give the path of the PEM file of the certificate authority that signed the server's certificate"
            );
        }
    }
    if let sqlx::Error::Tls(tls) = e {
        let mode = super::url_param(url, "sslmode").unwrap_or_else(|| "prefer".into());
        if tls.to_string().contains("does not support TLS") {
            return format!(
                "the server offers no TLS, which sslmode={mode} requires: turn on ssl in its postgresql.conf, or, for a database on this machine only, use sslmode=disable"
            );
        }
        return format!(
            "the server's certificate was not accepted (sslmode={mode}): with verify-full the URL's host must be a name the certificate was issued for, and sslrootcert=PATH must name the authority that signed it unless the system trusts that authority; verify-ca checks the authority only; require encrypts without checking the certificate"
        );
    }
    "check that PostgreSQL is running and that the URL's host, port, user, password and database are right".into()
}

fn query_err(url: &str, what: &str, e: sqlx::Error) -> StoreError {
    super::query_error(url, what, e)
}

fn query_failed(url: &str, what: &str, reason: String) -> StoreError {
    StoreError::Query {
        url: url.to_string(),
        what: what.to_string(),
        reason,
    }
}

/// Reads tables of `plan` into a loader of its own, each the next not yet
/// taken (`next`), until none is left. `url` (redacted) names the database
/// in errors.
async fn read_tables(
    url: &str,
    tx: &mut sqlx::PgConnection,
    plan: &ReadPlan,
    next: &AtomicUsize,
    conditions: &Conditions,
) -> Result<Loader, StoreError> {
    let mut loader = Loader::default();
    // Each load describes its tables afresh: a statement this connection
    // kept from an earlier load would give the column types as they were
    // then, and an ETL may have changed one since.
    sqlx::Connection::clear_cached_statements(&mut *tx)
        .await
        .map_err(|e| query_err(url, "starting a read", e))?;
    while let Some(taken) = plan.take(next) {
        let (table, cols) = (taken.table, taken.cols);
        let sql = taken.select_sql();
        let what = format!("reading {table}");
        // The columns' types, from the statement without a condition.
        let described = sqlx::Executor::prepare(&mut *tx, sql.as_str())
            .await
            .map_err(|e| query_err(url, &what, e))?;
        let types = described.columns().iter().map(|c| c.type_info());
        let columns = Columns::new(
            cols,
            types.clone().map(|t| t.oid().map_or(0, |o| o.0)).collect(),
            types.map(|t| t.name().to_string()).collect(),
        );
        let condition = conditions
            .iter()
            .find(|(t, _)| *t == table)
            .and_then(|(_, c)| c.as_deref());
        let copy = taken.copy_sql(condition);
        let mut chunks = tx
            .copy_out_raw(&copy)
            .await
            .map_err(|e| query_err(url, &what, e))?;
        let mut reader = BinaryCopy::default();
        while let Some(chunk) = chunks
            .try_next()
            .await
            .map_err(|e| query_err(url, &what, e))?
        {
            reader
                .feed(&chunk, &mut |data, fields| {
                    let row = Tuple {
                        data,
                        fields,
                        columns: &columns,
                        next: std::cell::Cell::new(0),
                    };
                    loader.row(table, &row);
                })
                .map_err(|reason| query_failed(url, &what, reason))?;
        }
        if !reader.ended {
            return Err(query_failed(
                url,
                &what,
                "the COPY ended before its last row".into(),
            ));
        }
    }
    Ok(loader)
}

/// Each case table's WHERE clause for a read, if it has one. COPY takes no
/// parameters: the values are literals, quoted ([`super::literal`]).
type Conditions = Vec<(&'static str, Option<String>)>;

fn conditions(rows: &super::Rows) -> Conditions {
    TABLES
        .iter()
        .map(|(t, _)| {
            (
                *t,
                rows.condition(t, |at| format!("updated_at > {at}::timestamptz")),
            )
        })
        .collect()
}

/// A read's transaction on a connection of the pool, which goes back to the
/// pool only once the read is committed. A read that failed or was dropped
/// half-way (in the middle of a COPY, when the other connection's read
/// failed) closes its connection instead: sqlx would hand the next user a
/// connection with the rest of a COPY or a failed transaction still on it.
struct Reading {
    conn: sqlx::pool::PoolConnection<Postgres>,
    committed: bool,
}

impl Reading {
    async fn commit(mut self) -> Result<(), sqlx::Error> {
        sqlx::Executor::execute(&mut *self.conn, "COMMIT").await?;
        self.committed = true;
        Ok(())
    }
}

impl std::ops::Deref for Reading {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &sqlx::PgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Reading {
    fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
        &mut self.conn
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}

/// Makes a transaction just begun read-only, of its own snapshot or of one
/// another transaction exported (`pg_export_snapshot`).
pub async fn begin_read(
    tx: &mut sqlx::PgConnection,
    snapshot: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut set = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY".to_string();
    if let Some(id) = snapshot {
        // The server's own id, quoted as a literal all the same.
        set.push_str(&format!(
            "; SET TRANSACTION SNAPSHOT '{}'",
            id.replace('\'', "''")
        ));
    }
    sqlx::Executor::execute(tx, set.as_str()).await.map(|_| ())
}

/// The case tables in the order connections take them, and how each is read.
pub struct ReadPlan {
    /// Places in [`TABLES`], largest on disk first (a table's reading takes
    /// time in proportion to its size), so that two connections taking them
    /// in turn finish together. Views and partitioned tables have no size of
    /// their own and keep the contract's order.
    order: Vec<usize>,
    /// Whether each of [`TABLES`] is a plain table without child tables,
    /// which COPY reads directly, without the executor a query needs (about
    /// a tenth less of the server's time a row). A view, a partitioned table
    /// or a table with inheritance children (an ETL's choice) is read
    /// through its SELECT: COPY of the table itself would refuse the first
    /// two and leave out the children's rows.
    plain: Vec<bool>,
    /// The columns of [`super::ADDED`] the database lacks, as `(table, column)`.
    absent: Vec<(&'static str, &'static str)>,
}

impl ReadPlan {
    /// Asks the database for the tables' sizes and kinds.
    pub async fn new(conn: &mut sqlx::PgConnection) -> Result<ReadPlan, sqlx::Error> {
        let found: Vec<(i64, bool)> = sqlx::query_as(
            "SELECT coalesce(pg_relation_size(c.oid), 0), coalesce(c.relkind = 'r' AND NOT c.relhassubclass, false) \
             FROM unnest($1::text[]) WITH ORDINALITY AS t(name, i) \
             LEFT JOIN pg_class c ON c.oid = to_regclass(t.name) ORDER BY t.i",
        )
        .bind(TABLES.iter().map(|(t, _)| *t).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        // An added column is looked for in the relation the name finds, as a
        // table's or a view's attribute: no privilege beyond the catalogue's.
        let there: Vec<bool> = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass(t.tbl) \
             AND a.attname = t.col AND a.attnum > 0 AND NOT a.attisdropped) \
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(tbl, col, i) ORDER BY t.i",
        )
        .bind(super::ADDED.iter().map(|a| a.0).collect::<Vec<_>>())
        .bind(super::ADDED.iter().map(|a| a.1).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        let absent = (super::ADDED.iter().zip(there))
            .filter(|(_, there)| !there)
            .map(|(a, _)| (a.0, a.1))
            .collect();
        let mut order: Vec<usize> = (0..TABLES.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(found.get(i).map_or(0, |f| f.0)));
        Ok(ReadPlan {
            order,
            plain: found.iter().map(|f| f.1).collect(),
            absent,
        })
    }

    /// The next table no other connection has taken (`next`).
    pub fn take(&self, next: &AtomicUsize) -> Option<Taken> {
        let i = *self.order.get(next.fetch_add(1, Ordering::Relaxed))?;
        let &(table, cols) = TABLES.get(i)?;
        let absent: Vec<_> = (self.absent.iter())
            .filter(|(t, _)| *t == table)
            .copied()
            .collect();
        Some(Taken {
            table,
            cols,
            plain: self.plain.get(i).copied().unwrap_or(false) && absent.is_empty(),
            absent,
        })
    }
}

/// A case table a connection has taken to read.
pub struct Taken {
    pub table: &'static str,
    pub cols: &'static [&'static str],
    plain: bool,
    absent: Vec<(&'static str, &'static str)>,
}

impl Taken {
    /// Its columns' SELECT, an added column it lacks as a typed NULL.
    pub fn select_sql(&self) -> String {
        select_sql(self.table, self.cols, &self.absent, true)
    }

    /// The binary COPY that reads it, its rows limited by `condition` (a
    /// WHERE clause) if any. Binary: the server sends each value as it
    /// stores it, and the client reads it in place, at a fraction of a
    /// query's cost per row (a national load reads millions).
    pub fn copy_sql(&self, condition: Option<&str>) -> String {
        let (table, cols) = (self.table, self.cols);
        match condition {
            None if self.plain => {
                format!(
                    "COPY {table} ({}) TO STDOUT (FORMAT binary)",
                    cols.join(", ")
                )
            }
            _ => format!(
                "COPY ({}{}) TO STDOUT (FORMAT binary)",
                self.select_sql(),
                condition.unwrap_or("")
            ),
        }
    }
}

/// By name: the notification log's few rows.
impl Get for PgRow {
    fn text(&self, col: &str) -> Result<Option<&str>, String> {
        self.try_get::<Option<&str>, _>(col)
            .map_err(|e| e.to_string())
    }
    fn boolean(&self, col: &str) -> Result<Option<bool>, String> {
        self.try_get::<Option<bool>, _>(col)
            .map_err(|e| e.to_string())
    }
    fn int(&self, col: &str) -> Result<Option<i64>, String> {
        match self.try_get::<Option<i32>, _>(col) {
            Ok(v) => Ok(v.map(i64::from)),
            Err(_) => self
                .try_get::<Option<i64>, _>(col)
                .map_err(|e| e.to_string()),
        }
    }
    fn instant(&self, col: &str) -> Result<Option<Instant>, String> {
        self.try_get::<Option<Instant>, _>(col)
            .map_err(|e| e.to_string())
    }
    fn date(&self, col: &str) -> Result<Option<NaiveDate>, String> {
        self.try_get::<Option<NaiveDate>, _>(col)
            .map_err(|e| e.to_string())
    }
}

/// Where a column's bytes are in a tuple's data, or `None` for NULL.
type Field = Option<(usize, usize)>;

/// A table's columns as the database describes them: what a value in binary
/// COPY format is depends on its type, which COPY itself does not say.
struct Columns {
    names: &'static [&'static str],
    oids: Vec<u32>,
    types: Vec<String>,
    /// By column: the list of types it was found to be one of, by address
    /// (each column is read the same way in every row, so checked once).
    checked: Vec<std::cell::Cell<usize>>,
    days: Days,
}

/// The dates of day numbers lately read. A table's instants and dates fall
/// on a few thousand days, and chrono works a date out from its number with
/// divisions: a national load reads millions.
struct Days(std::cell::RefCell<Vec<Option<(i32, NaiveDate)>>>);

/// Room for about five years of days, each in the place of its number.
const DAYS: usize = 2048;
/// [`DAYS`] as the day numbers it divides.
const DAYS_I32: i32 = 2048;

impl Days {
    fn new() -> Self {
        Days(std::cell::RefCell::new(vec![None; DAYS]))
    }

    /// The date `days` after 0001-12-31, as `NaiveDate::from_num_days_from_ce_opt`.
    fn date(&self, days: i32) -> Option<NaiveDate> {
        let mut known = self.0.borrow_mut();
        let place = known.get_mut(usize::try_from(days.rem_euclid(DAYS_I32)).ok()?)?;
        match place {
            Some((d, date)) if *d == days => Some(*date),
            _ => {
                let date = NaiveDate::from_num_days_from_ce_opt(days)?;
                *place = Some((days, date));
                Some(date)
            }
        }
    }

    /// The instant `micros` after 1970-01-01 UTC, as `DateTime::from_timestamp_micros`.
    fn instant(&self, micros: i64) -> Option<Instant> {
        const PER_DAY: i64 = 86_400_000_000;
        let day = micros.div_euclid(PER_DAY);
        let of_day = micros.rem_euclid(PER_DAY);
        let date = self.date(i32::try_from(day.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?).ok()?)?;
        let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
            u32::try_from(of_day / 1_000_000).ok()?,
            u32::try_from(of_day % 1_000_000 * 1_000).ok()?,
        )?;
        Some(date.and_time(time).and_utc())
    }
}

/// 1970-01-01 as days after 0001-12-31.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

impl Columns {
    fn new(names: &'static [&'static str], oids: Vec<u32>, types: Vec<String>) -> Self {
        let checked = oids.iter().map(|_| std::cell::Cell::new(0)).collect();
        Columns {
            names,
            oids,
            types,
            checked,
            days: Days::new(),
        }
    }
}

/// One row of a binary COPY: the bytes of each column (`None` for NULL), read
/// by position. Readers mostly go in the SELECT's order, so the next column
/// is tried first.
struct Tuple<'r> {
    data: &'r [u8],
    fields: &'r [Field],
    columns: &'r Columns,
    next: std::cell::Cell<usize>,
}

impl Tuple<'_> {
    /// The column's bytes and type, or why there are none to read. Readers
    /// mostly go in the SELECT's order and read a column the same way in every
    /// row: that is a few comparisons, inlined, and the rest kept apart (`#[cold]`).
    #[inline(always)]
    fn field(&self, col: &str, want: &str, oids: &[u32]) -> Result<Option<&[u8]>, String> {
        let guess = self.next.get();
        let i = match self.columns.names.get(guess) {
            // The reader's column names are mostly the very strings of `TABLES`.
            Some(c) if std::ptr::eq(*c, col) || *c == col => guess,
            _ => self.position(col)?,
        };
        self.next.set(i + 1);
        let checked = self.columns.checked.get(i);
        if checked.is_none_or(|c| c.get() != oids.as_ptr() as usize) {
            self.check(i, want, oids)?;
        }
        Ok(self
            .fields
            .get(i)
            .copied()
            .flatten()
            .and_then(|(from, to)| self.data.get(from..to)))
    }

    #[cold]
    fn position(&self, col: &str) -> Result<usize, String> {
        (self.columns.names.iter())
            .position(|c| *c == col)
            .ok_or_else(|| format!("no column {col:?} in the query"))
    }

    /// Whether column `i` is of one of the types `oids`, remembered when it is.
    #[cold]
    fn check(&self, i: usize, want: &str, oids: &[u32]) -> Result<(), String> {
        let oid = self.columns.oids.get(i).copied().unwrap_or_default();
        if !oids.contains(&oid) {
            let ty = self.columns.types.get(i).map_or("unknown", String::as_str);
            return Err(format!(
                "the column is {ty} in the database, not {want} as the case-table contract has it (migrations/postgres/0001_case_tables.sql); cast it in the view, or change the column"
            ));
        }
        if let Some(c) = self.columns.checked.get(i) {
            c.set(oids.as_ptr() as usize);
        }
        Ok(())
    }
}

fn be<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    <[u8; N]>::try_from(b)
        .map_err(|_| format!("a value of {} bytes where {N} were expected", b.len()))
}

impl Get for Tuple<'_> {
    fn text(&self, col: &str) -> Result<Option<&str>, String> {
        self.raw_text(col)?.map(super::rows::utf8).transpose()
    }
    fn raw_text(&self, col: &str) -> Result<Option<&[u8]>, String> {
        // text, varchar, bpchar, name, unknown: the bytes are the UTF-8 text.
        self.field(col, "text", &[25, 1043, 1042, 19, 705])
    }
    fn boolean(&self, col: &str) -> Result<Option<bool>, String> {
        self.field(col, "a boolean", &[16])?
            .map(|b| be::<1>(b).map(|[v]| v != 0))
            .transpose()
    }
    fn int(&self, col: &str) -> Result<Option<i64>, String> {
        self.field(col, "an integer", &[21, 23, 20])?
            .map(|b| match b.len() {
                2 => be::<2>(b).map(|v| i64::from(i16::from_be_bytes(v))),
                4 => be::<4>(b).map(|v| i64::from(i32::from_be_bytes(v))),
                _ => be::<8>(b).map(i64::from_be_bytes),
            })
            .transpose()
    }
    fn instant(&self, col: &str) -> Result<Option<Instant>, String> {
        // A timestamptz is microseconds since 2000-01-01 UTC.
        self.field(col, "a timestamptz", &[1184])?
            .map(|b| {
                i64::from_be_bytes(be::<8>(b)?)
                    .checked_add(POSTGRES_EPOCH_MICROS)
                    .and_then(|micros| self.columns.days.instant(micros))
                    .ok_or_else(|| "a timestamp out of range (infinity?)".to_string())
            })
            .transpose()
    }
    fn date(&self, col: &str) -> Result<Option<NaiveDate>, String> {
        // A date is days since 2000-01-01.
        self.field(col, "a date", &[1082])?
            .map(|b| {
                i32::from_be_bytes(be::<4>(b)?)
                    .checked_add(POSTGRES_EPOCH_DAYS_FROM_CE)
                    .and_then(|days| self.columns.days.date(days))
                    .ok_or_else(|| "a date out of range (infinity?)".to_string())
            })
            .transpose()
    }
}

/// PostgreSQL's binary COPY format, read as its messages arrive. A tuple may
/// span messages (the header comes with the first), so what is left of one
/// waits for the next.
#[derive(Default)]
struct BinaryCopy {
    pending: Vec<u8>,
    header: bool,
    ended: bool,
    fields: Vec<Field>,
}

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

impl BinaryCopy {
    fn feed(&mut self, chunk: &[u8], each: &mut dyn FnMut(&[u8], &[Field])) -> Result<(), String> {
        let mut pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            let used = self.tuples(chunk, each)?;
            pending.extend_from_slice(chunk.get(used..).unwrap_or_default());
        } else {
            pending.extend_from_slice(chunk);
            let used = self.tuples(&pending, each)?;
            pending.drain(..used);
        }
        self.pending = pending;
        Ok(())
    }

    /// Calls `each` for every whole tuple of `data`; returns the bytes used.
    fn tuples(
        &mut self,
        data: &[u8],
        each: &mut dyn FnMut(&[u8], &[Field]),
    ) -> Result<usize, String> {
        let int = |at: usize| {
            data.get(at..at + 4)
                .and_then(|b| be::<4>(b).ok())
                .map(i32::from_be_bytes)
        };
        let mut at = 0;
        if !self.header {
            let Some(ext) = int(15) else { return Ok(0) };
            if data.get(..11) != Some(SIGNATURE.as_slice()) {
                return Err("the database sent something other than binary COPY data".into());
            }
            at = 19 + usize::try_from(ext).map_err(|_| "a malformed COPY header")?;
            if at > data.len() {
                return Ok(0);
            }
            self.header = true;
        }
        while !self.ended {
            let Some(count) = data.get(at..at + 2).and_then(|b| be::<2>(b).ok()) else {
                break;
            };
            let count = i16::from_be_bytes(count);
            if count < 0 {
                self.ended = true;
                return Ok(at + 2);
            }
            let mut p = at + 2;
            self.fields.clear();
            for _ in 0..count {
                let Some(len) = int(p) else { return Ok(at) };
                p += 4;
                match usize::try_from(len) {
                    Ok(len) if p + len <= data.len() => {
                        self.fields.push(Some((p, p + len)));
                        p += len;
                    }
                    Ok(_) => return Ok(at),
                    Err(_) => self.fields.push(None),
                }
            }
            each(data, &self.fields);
            at = p;
        }
        Ok(at)
    }
}

/// 2000-01-01T00:00:00Z, PostgreSQL's epoch, in microseconds since the Unix epoch.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// 2000-01-01 in days from 0001-01-01 (day 1), as chrono counts them.
const POSTGRES_EPOCH_DAYS_FROM_CE: i32 = 730_120;

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

    async fn ids(&self, sql: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("finding the linked children and conferences", e))
    }

    async fn load_rows(&self, rows: &super::Rows) -> Result<Loaded, StoreError> {
        // One snapshot for all tables, so a concurrent ETL load is seen whole
        // or not at all. Two connections share it and take the tables in turn,
        // largest first: a national load keeps a backend busy on each core
        // rather than one backend and a client waiting on each other.
        let mut first = self.read(None).await?;
        let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut *first)
            .await
            .map_err(|e| self.err("sharing the read's snapshot", e))?;
        let newest = TABLES
            .iter()
            .map(|(t, _)| format!("SELECT max(updated_at) AS m FROM {t}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        // Never past the database's own clock: a row stamped in the future
        // would otherwise hide every later change from incremental reads.
        let watermark: Option<Instant> =
            sqlx::query_scalar(&format!("SELECT least(max(m), now()) FROM ({newest}) AS w"))
                .fetch_one(&mut *first)
                .await
                .map_err(|e| self.err("reading updated_at", e))?;
        let plan = ReadPlan::new(&mut first)
            .await
            .map_err(|e| self.err("reading the tables' sizes and kinds", e))?;
        // One child's rows are few: a second connection would cost more than it saves.
        let second = match rows {
            super::Rows::Linked(_) => None,
            _ => self.second_reading(&snapshot).await,
        };
        // The second connection's rows are decoded on a task of its own, so
        // on another core than the first's: one thread decoding both would
        // hold the load to its speed while the backends wait.
        let plan = std::sync::Arc::new(plan);
        let next = std::sync::Arc::new(AtomicUsize::new(0));
        let conditions = std::sync::Arc::new(conditions(rows));
        let other = second.map(|mut tx| {
            let (url, plan, next, conditions) = (
                self.url.clone(),
                plan.clone(),
                next.clone(),
                conditions.clone(),
            );
            tokio::spawn(async move {
                let read = read_tables(&url, &mut tx, &plan, &next, &conditions).await;
                (tx, read)
            })
        });
        let mine = read_tables(&self.url, &mut first, &plan, &next, &conditions).await;
        let other = match other {
            // The first connection's error is the one to report; the other
            // stops reading, and its connection is closed (`Reading`).
            Some(task) if mine.is_err() => {
                task.abort();
                None
            }
            Some(task) => Some(task.await.map_err(|e| {
                self.failed(
                    "reading the case tables",
                    format!("the reading task failed: {e}"),
                )
            })?),
            None => None,
        };
        let mut loader = mine?;
        if rows.reports_updated_at() {
            self.future_updated_at(&mut first, &mut loader).await?;
        }
        let second = match other {
            None => None,
            Some((tx, read)) => {
                loader.join(read?);
                Some(tx)
            }
        };
        for tx in std::iter::once(first).chain(second) {
            tx.commit()
                .await
                .map_err(|e| self.err("finishing a read", e))?;
        }
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
super::snoozes::snooze_log!(PgStore, super::numbered);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    /// A binary COPY stream of two tuples, as PostgreSQL frames it: header,
    /// tuples (field count, then each field's length, -1 for NULL, and bytes), trailer.
    fn stream() -> Vec<u8> {
        let mut s = SIGNATURE.to_vec();
        s.extend(0i32.to_be_bytes());
        s.extend(0i32.to_be_bytes());
        for (text, n) in [(Some("CONF-1"), 7i32), (None, -3)] {
            s.extend(2i16.to_be_bytes());
            match text {
                Some(t) => {
                    s.extend(i32::try_from(t.len()).expect("short").to_be_bytes());
                    s.extend(t.as_bytes());
                }
                None => s.extend((-1i32).to_be_bytes()),
            }
            s.extend(4i32.to_be_bytes());
            s.extend(n.to_be_bytes());
        }
        s.extend((-1i16).to_be_bytes());
        s
    }

    type Rows = Vec<(Option<String>, Option<i64>)>;

    fn read(chunks: &[&[u8]]) -> (Rows, bool) {
        let columns = Columns::new(
            &["id", "n"],
            vec![25, 23],
            vec!["TEXT".into(), "INT4".into()],
        );
        let mut copy = BinaryCopy::default();
        let mut got = Vec::new();
        for chunk in chunks {
            copy.feed(chunk, &mut |data, fields| {
                let row = Tuple {
                    data,
                    fields,
                    columns: &columns,
                    next: std::cell::Cell::new(0),
                };
                let id = row.text("id").expect("text").map(str::to_string);
                got.push((id, row.int("n").expect("int")));
            })
            .expect("well formed");
        }
        (got, copy.ended)
    }

    #[test]
    fn tuples_are_read_however_the_stream_is_cut() {
        let s = stream();
        let want = vec![(Some("CONF-1".to_string()), Some(7)), (None, Some(-3))];
        assert_eq!(read(&[&s]), (want.clone(), true));
        for cut in 1..s.len() {
            let (a, b) = s.split_at(cut);
            assert_eq!(read(&[a, b]), (want.clone(), true), "cut at byte {cut}");
        }
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(read(&bytes), (want, true));
        assert!(!read(&[&s[..s.len() - 2]]).1, "no trailer, not ended");
    }

    #[test]
    fn a_column_of_another_type_is_an_error_naming_it() {
        let columns = Columns::new(&["held_at"], vec![25], vec!["TEXT".into()]);
        let data = b"2026-01-01";
        let row = Tuple {
            data,
            fields: &[Some((0, data.len()))],
            columns: &columns,
            next: std::cell::Cell::new(0),
        };
        let e = row
            .instant("held_at")
            .expect_err("text is not a timestamptz");
        assert!(e.contains("TEXT") && e.contains("timestamptz"), "{e}");
    }

    /// The remembered dates give what chrono gives, on either side of a day's
    /// start, before 1970 and far apart (a place taken by another day).
    #[test]
    fn remembered_days_give_what_chrono_gives() {
        let days = Days::new();
        let day = 86_400_000_000i64;
        let mut micros = vec![0, -1, 1, day - 1, day, -day, -day - 1, i64::from(i32::MAX)];
        // Three years of instants a little over a day apart, then the same again.
        for pass in 0..2 {
            micros.extend(
                (0..1200).map(|n| 1_700_000_000_000_000 + n * (day + 3_600_000_001) + pass),
            );
        }
        // The same places, DAYS days later.
        micros.extend((0..50).map(|n| 1_700_000_000_000_000 + (n + DAYS as i64) * day));
        for m in micros {
            assert_eq!(days.instant(m), DateTime::from_timestamp_micros(m), "{m}");
        }
        for d in [
            1,
            366,
            719_163,
            730_120,
            730_120 + DAYS_I32,
            -5,
            i32::MAX,
            i32::MIN,
        ] {
            assert_eq!(days.date(d), NaiveDate::from_num_days_from_ce_opt(d), "{d}");
        }
    }

    #[test]
    fn dates_and_instants_count_from_2000() {
        let columns = Columns::new(
            &["d", "t"],
            vec![1082, 1184],
            vec!["DATE".into(), "TIMESTAMPTZ".into()],
        );
        let mut data = 366i32.to_be_bytes().to_vec();
        data.extend(1_500_000i64.to_be_bytes());
        let row = Tuple {
            data: &data,
            fields: &[Some((0, 4)), Some((4, 12))],
            columns: &columns,
            next: std::cell::Cell::new(0),
        };
        assert_eq!(
            row.date("d").expect("date"),
            NaiveDate::from_ymd_opt(2001, 1, 1)
        );
        assert_eq!(
            row.instant("t").expect("instant").map(|t| t.to_rfc3339()),
            Some("2000-01-01T00:00:01.500+00:00".to_string())
        );
    }
}
