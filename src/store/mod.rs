//! Case storage: one [`Store`] trait with an SQLite (embedded default) and a
//! PostgreSQL implementation, chosen once from the database URL. Loading reads
//! only the contract's tables (which may be views); cpwatch writes only its
//! `cpwatch_` tables, except `migrate` and `demo` on a database it owns.

// Public for the benchmark, whose COPY floor reads the tables as a load does.
pub mod postgres;
pub(crate) mod rows;
pub mod snoozes;
mod sqlite;

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::domain::case::{CaseState, Instant, Text};

pub use postgres::PgStore;
pub use snoozes::SnoozeLog;
pub use sqlite::SqliteStore;

/// The default database: an SQLite file in the working directory.
pub const DEFAULT_URL: &str = "sqlite://cpwatch.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0:?} is not a database URL cpwatch knows: use sqlite:///absolute/path.db, sqlite://relative.db or postgres://user@host/db")]
    BadUrl(String),
    #[error("{0}")]
    AlreadyRunning(String),
    #[error("cannot open the database {url}: {reason}\n  what to do: {hint}")]
    Connect {
        url: String,
        reason: String,
        hint: String,
    },
    #[error("database {url}: {what} failed: {reason}")]
    Query {
        url: String,
        what: String,
        reason: String,
    },
    /// A case table or column the contract names is not there.
    #[error("database {url}: {what} failed: {reason}\n  what to do: {hint}")]
    Contract {
        url: String,
        what: String,
        reason: String,
        hint: String,
    },
}

/// A failed query as an error, with what to do when the database lacks a
/// table or column cpwatch reads (the ETL has not made it, or it is in a
/// schema this role does not search): the commonest error of a first start.
pub(crate) fn query_error(url: &str, what: &str, e: sqlx::Error) -> StoreError {
    // PostgreSQL's undefined_table and undefined_column; SQLite has one code
    // for every error, so its message says which.
    let (code, message) = match e.as_database_error() {
        Some(d) => (
            d.code().unwrap_or_default().to_string(),
            d.message().to_string(),
        ),
        None => (String::new(), String::new()),
    };
    let postgres = url.starts_with("postgres");
    let hint = if code == "42P01" || message.starts_with("no such table") {
        format!(
            "cpwatch reads the case tables of the contract in docs/case-schema.md: \
             create them with `cpwatch migrate --database {url}`, or, where another system provides \
             them, have it create this one{}",
            if postgres { " in a schema on this role's search_path" } else { "" }
        )
    } else if code == "42703" || message.starts_with("no such column") {
        format!(
            "each case table needs the columns of the contract in docs/case-schema.md (\
             the migrations in migrations/{}/ define them): add the column named above, to the \
             view where the table is one",
            if postgres { "postgres" } else { "sqlite" }
        )
    } else {
        return StoreError::Query {
            url: url.to_string(),
            what: what.to_string(),
            reason: e.to_string(),
        };
    };
    StoreError::Contract {
        url: url.to_string(),
        what: what.to_string(),
        reason: e.to_string(),
        hint,
    }
}

/// One migration, embedded in the binary.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
    /// Creates contract (case) tables rather than cpwatch's own.
    pub case_tables: bool,
}

/// The migrations still to apply, in order.
fn pending<'m>(all: &'m [Migration], done: &[i64], own_tables_only: bool) -> Vec<&'m Migration> {
    all.iter()
        .filter(|m| !(done.contains(&m.version) || own_tables_only && m.case_tables))
        .collect()
}

#[async_trait]
pub trait Store: NotificationLog + SnoozeLog + Send + Sync {
    /// The URL with any password removed, for messages and logs.
    fn describe(&self) -> String;
    /// Applies pending migrations; with `own_tables_only`, only cpwatch's own tables.
    async fn migrate(&self, own_tables_only: bool) -> Result<Vec<String>, StoreError>;
    /// Reads the case state in one snapshot, the rows `rows` selects; with
    /// the newest `updated_at` the snapshot holds, the point the next
    /// incremental read starts from.
    async fn load_rows(&self, rows: &Rows) -> Result<Loaded, StoreError>;
    /// Every row, or with `since` only the rows whose `updated_at` is later.
    async fn load_since(&self, since: Option<Instant>) -> Result<Loaded, StoreError> {
        self.load_rows(&since.map_or(Rows::All, Rows::Since)).await
    }
    /// Reads the whole case state.
    async fn load(&self) -> Result<CaseState, StoreError> {
        Ok(self.load_since(None).await?.state)
    }
    /// The values of a query's one text column (ids, for [`Store::linked`]).
    async fn ids(&self, sql: &str) -> Result<Vec<String>, StoreError>;
    /// The child with `reference`, every child conferenced with it, every
    /// child conferenced with those, and so on, and all their conferences
    /// (with those that reconvene them, or that they reconvene): what one
    /// child's evaluation reads.
    async fn linked(&self, reference: &str) -> Result<Linked, StoreError> {
        let mut children: BTreeSet<String> = self
            .ids(&format!(
                "SELECT id FROM children WHERE reference = {}",
                literal(reference)
            ))
            .await?
            .into_iter()
            .collect();
        let mut conferences: BTreeSet<String> = BTreeSet::new();
        loop {
            let before = (children.len(), conferences.len());
            let c = in_list(&children);
            conferences.extend(
                self.ids(&format!(
                    "SELECT conference_id FROM conference_children WHERE child_id IN ({c})"
                ))
                .await?,
            );
            let k = in_list(&conferences);
            conferences.extend(
                self.ids(&format!(
                    "SELECT id FROM conferences WHERE reconvenes_id IN ({k}) \
                     UNION SELECT reconvenes_id FROM conferences WHERE id IN ({k}) AND reconvenes_id IS NOT NULL"
                ))
                .await?,
            );
            let k = in_list(&conferences);
            children.extend(
                self.ids(&format!(
                    "SELECT child_id FROM conference_children WHERE conference_id IN ({k})"
                ))
                .await?,
            );
            if (children.len(), conferences.len()) == before {
                return Ok(Linked {
                    children,
                    conferences,
                });
            }
        }
    }
    /// Replaces every case table's rows (demo and synthetic data only).
    async fn replace_case_data(&self, state: &CaseState) -> Result<(), StoreError>;
    /// Records a value in `cpwatch_state`.
    async fn set_state(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Reads a value from `cpwatch_state`.
    async fn get_state(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// How many rows the `children` table holds.
    async fn count_children(&self) -> Result<i64, StoreError>;
    /// Whether this instance is (still) the one that sends mail and writes the
    /// notification log. PostgreSQL: the holder of an advisory lock, kept on a
    /// connection of its own, so another replica takes over when it dies. SQLite:
    /// always, once this process holds the database's lock file; an error if
    /// another process does.
    async fn leadership(&self) -> Result<bool, StoreError>;
}

/// Which rows of the case tables a read takes.
pub enum Rows {
    All,
    /// Those whose `updated_at` is later than this.
    Since(Instant),
    /// Those about these children and conferences (and every agency, team
    /// and worker, and the exceptions about no child or conference).
    Linked(Linked),
    /// Those about the children of a board (`default`: and the children
    /// with no board), the conferences about them, and every child at
    /// those conferences.
    Board {
        board: String,
        default: bool,
    },
}

/// Children and conferences that one child's evaluation reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linked {
    pub children: BTreeSet<String>,
    pub conferences: BTreeSet<String>,
}

/// A text as an SQL literal: quotes doubled, as both databases read it.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Values as the inside of `IN (…)`; `NULL` for none (which matches nothing).
fn in_list(values: &BTreeSet<String>) -> String {
    if values.is_empty() {
        return "NULL".into();
    }
    values
        .iter()
        .map(|v| literal(v))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Rows {
    /// The WHERE clause (with its leading space) that selects these rows of
    /// `table`, if any; `since` is how the database compares an instant in
    /// `updated_at` with a literal one.
    pub fn condition(&self, table: &str, since: impl Fn(&str) -> String) -> Option<String> {
        match self {
            Rows::All => None,
            Rows::Since(t) => Some(format!(
                " WHERE {}",
                since(&literal(
                    &t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                ))
            )),
            Rows::Board { board, default } => {
                let mine = format!(
                    "SELECT id FROM children WHERE board = {}{}",
                    literal(board),
                    if *default { " OR board IS NULL" } else { "" }
                );
                let k = format!(
                    "SELECT conference_id FROM conference_children WHERE child_id IN ({mine})"
                );
                let c = format!("{mine} UNION SELECT child_id FROM conference_children WHERE conference_id IN ({k})");
                Some(format!(" WHERE {}", linked_clause(table, &c, &k)?))
            }
            Rows::Linked(l) => {
                let (c, k) = (in_list(&l.children), in_list(&l.conferences));
                Some(format!(" WHERE {}", linked_clause(table, &c, &k)?))
            }
        }
    }

    /// Whether the read reports the rows whose `updated_at` is unreadable
    /// or in the future: a full read does (a board's export shows them);
    /// an incremental one, or one child's, does not repeat them.
    pub fn reports_updated_at(&self) -> bool {
        matches!(self, Rows::All | Rows::Board { .. })
    }
}

/// The condition on `table` for rows about the children `c` and the
/// conferences `k` (each the inside of `IN (…)`); none for the tables read whole.
fn linked_clause(table: &str, c: &str, k: &str) -> Option<String> {
    Some(match table {
        "agencies" | "teams" | "workers" => return None,
        "children" => format!("id IN ({c})"),
        "conferences" => format!("id IN ({k})"),
        "conference_children" | "invitations" => format!("conference_id IN ({k})"),
        "exceptions" => format!(
            "child_id IN ({c}) OR conference_id IN ({k}) OR (child_id IS NULL AND conference_id IS NULL)"
        ),
        _ => format!("child_id IN ({c})"),
    })
}

/// What a read returned.
pub struct Loaded {
    pub state: CaseState,
    /// The newest `updated_at` of any case table, but never later than the
    /// database's clock at the read; `None` when they are empty.
    pub watermark: Option<Instant>,
}

/// The PostgreSQL advisory-lock key of the sending replica ("cpwatch" in ASCII).
pub const LEADER_LOCK_KEY: i64 = 0x0063_7077_6174_6368;

/// The notification log in `cpwatch_notifications`.
#[async_trait]
pub trait NotificationLog {
    /// Records planned notifications not yet in the log, as `pending`; returns how many were new.
    async fn log_planned(&self, rows: &[NewNotification], at: Instant)
        -> Result<usize, StoreError>;
    /// The notification log (only rows of one status, if given), oldest first.
    async fn log_rows(&self, status: Option<&str>) -> Result<Vec<LogRow>, StoreError>;
    /// Records what happened to pending notifications.
    async fn log_update(
        &self,
        ids: &[String],
        update: &LogUpdate,
        at: Instant,
    ) -> Result<(), StoreError>;
    /// How many notifications have a status.
    async fn log_count(&self, status: &str) -> Result<i64, StoreError>;
    /// Each (obligation, recipient) sent an escalation or a summary and not
    /// yet told it was resolved (a `resolved` notification not yet settled
    /// still counts as not told).
    async fn log_escalated(&self) -> Result<Vec<NewNotification>, StoreError>;
    /// The recipients sent a digest (anything but an overdue reminder) since
    /// `since`: a restarted service sends none of them another that day.
    async fn log_digested_since(&self, since: Instant) -> Result<Vec<String>, StoreError>;
    /// Puts failed notifications (only those to `recipient`, if given) back
    /// to pending, to be sent at the next tick; returns how many. The last
    /// error is kept, prefixed, so the log still shows why they failed.
    async fn log_requeue(&self, recipient: Option<&str>, at: Instant) -> Result<usize, StoreError>;
}

/// A notification to record before it is sent.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub id: String,
    pub obligation_key: String,
    pub stage: String,
    pub recipient: String,
    pub occurrence: i64,
    pub board: String,
    pub rule: String,
}

/// One row of `cpwatch_notifications`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub id: String,
    pub obligation_key: String,
    pub stage: String,
    pub recipient: String,
    pub occurrence: i64,
    pub board: String,
    pub rule: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<Instant>,
    pub message_id: Option<String>,
    pub last_error: Option<String>,
    pub planned_at: Instant,
    pub sent_at: Option<Instant>,
}

#[derive(Debug, Clone)]
pub enum LogUpdate {
    /// The server accepted the message.
    Sent { message_id: String },
    /// A transient failure: try again from `next_attempt_at`.
    Retry {
        next_attempt_at: Instant,
        error: String,
    },
    /// A permanent failure: the server's reply, never retried.
    Failed { error: String },
    /// The obligation was met (or voided, or excepted) before the reminder went.
    Dropped,
}

/// Instants in cpwatch's own log are RFC 3339 UTC text in both databases.
pub(crate) fn log_time(t: Instant) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The notification-log methods, the same for both databases but for placeholders.
macro_rules! notification_log {
    ($store:ty, $sql:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::NotificationLog for $store {
        async fn log_planned(&self, rows: &[$crate::store::NewNotification], at: $crate::domain::case::Instant) -> Result<usize, StoreError> {
            let at = $crate::store::log_time(at);
            let mut tx = self.pool.begin().await.map_err(|e| self.err("recording notifications", e))?;
            let sql = $sql("INSERT INTO cpwatch_notifications (id, obligation_key, stage, recipient, occurrence, board, rule, status, attempts, planned_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?) ON CONFLICT (id) DO NOTHING");
            let mut new = 0;
            for r in rows {
                let done = sqlx::query(&sql)
                    .bind(&r.id)
                    .bind(&r.obligation_key)
                    .bind(&r.stage)
                    .bind(&r.recipient)
                    .bind(r.occurrence)
                    .bind(&r.board)
                    .bind(&r.rule)
                    .bind(&at)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err("recording notifications", e))?;
                new += usize::try_from(done.rows_affected()).unwrap_or(usize::MAX);
            }
            tx.commit().await.map_err(|e| self.err("recording notifications", e))?;
            Ok(new)
        }

        async fn log_rows(&self, status: Option<&str>) -> Result<Vec<$crate::store::LogRow>, StoreError> {
            let base = "SELECT id, obligation_key, stage, recipient, occurrence, board, rule, status, attempts, next_attempt_at, message_id, last_error, planned_at, sent_at FROM cpwatch_notifications";
            let filtered = $sql(&format!("{base} WHERE status = ? ORDER BY planned_at, id"));
            let rows = match status {
                Some(st) => sqlx::query(&filtered).bind(st).fetch_all(&self.pool).await,
                None => sqlx::query(&format!("{base} ORDER BY planned_at, id")).fetch_all(&self.pool).await,
            }
            .map_err(|e| self.err("reading cpwatch_notifications", e))?;
            rows.iter().map(|r| $crate::store::rows::log_row(r).map_err(|reason| StoreError::Query { url: self.url.clone(), what: "reading cpwatch_notifications".into(), reason })).collect()
        }

        async fn log_update(&self, ids: &[String], update: &$crate::store::LogUpdate, at: $crate::domain::case::Instant) -> Result<(), StoreError> {
            use $crate::store::LogUpdate;
            let at = $crate::store::log_time(at);
            let mut tx = self.pool.begin().await.map_err(|e| self.err("updating cpwatch_notifications", e))?;
            let sql = match update {
                LogUpdate::Sent { .. } => "UPDATE cpwatch_notifications SET status = 'sent', message_id = ?, sent_at = ?, attempts = attempts + 1, last_error = NULL, updated_at = ? WHERE id = ? AND status = 'pending'",
                LogUpdate::Retry { .. } => "UPDATE cpwatch_notifications SET next_attempt_at = ?, last_error = ?, attempts = attempts + 1, updated_at = ? WHERE id = ? AND status = 'pending'",
                LogUpdate::Failed { .. } => "UPDATE cpwatch_notifications SET status = 'failed', last_error = ?, attempts = attempts + 1, updated_at = ? WHERE id = ? AND status = 'pending'",
                LogUpdate::Dropped => "UPDATE cpwatch_notifications SET status = 'dropped', updated_at = ? WHERE id = ? AND status = 'pending'",
            };
            let sql = $sql(sql);
            for id in ids {
                let q = sqlx::query(&sql);
                let q = match update {
                    LogUpdate::Sent { message_id } => q.bind(message_id.clone()).bind(at.clone()),
                    LogUpdate::Retry { next_attempt_at, error } => q.bind($crate::store::log_time(*next_attempt_at)).bind(error.clone()),
                    LogUpdate::Failed { error } => q.bind(error.clone()),
                    LogUpdate::Dropped => q,
                };
                q.bind(at.clone()).bind(id.clone()).execute(&mut *tx).await.map_err(|e| self.err("updating cpwatch_notifications", e))?;
            }
            tx.commit().await.map_err(|e| self.err("updating cpwatch_notifications", e))
        }

        async fn log_escalated(&self) -> Result<Vec<$crate::store::NewNotification>, StoreError> {
            let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT DISTINCT n.obligation_key, n.recipient, n.board, n.rule FROM cpwatch_notifications n \
                 WHERE n.stage IN ('escalation', 'summary') AND n.status = 'sent' AND NOT EXISTS \
                 (SELECT 1 FROM cpwatch_notifications r WHERE r.stage = 'resolved' AND r.status <> 'pending' \
                 AND r.obligation_key = n.obligation_key AND r.recipient = n.recipient) \
                 ORDER BY n.obligation_key, n.recipient",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("reading cpwatch_notifications", e))?;
            Ok(rows
                .into_iter()
                .map(|(obligation_key, recipient, board, rule)| $crate::store::NewNotification {
                    id: String::new(),
                    obligation_key,
                    stage: "resolved".into(),
                    recipient,
                    occurrence: 0,
                    board,
                    rule,
                })
                .collect())
        }

        async fn log_digested_since(&self, since: $crate::domain::case::Instant) -> Result<Vec<String>, StoreError> {
            sqlx::query_scalar(&$sql("SELECT DISTINCT recipient FROM cpwatch_notifications WHERE status = 'sent' AND stage <> 'overdue' AND sent_at >= ? ORDER BY recipient"))
                .bind($crate::store::log_time(since))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("reading cpwatch_notifications", e))
        }

        async fn log_count(&self, status: &str) -> Result<i64, StoreError> {
            sqlx::query_scalar(&$sql("SELECT COUNT(*) FROM cpwatch_notifications WHERE status = ?"))
                .bind(status)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.err("reading cpwatch_notifications", e))
        }

        async fn log_requeue(&self, recipient: Option<&str>, at: $crate::domain::case::Instant) -> Result<usize, StoreError> {
            let sql = $sql("UPDATE cpwatch_notifications SET status = 'pending', attempts = 0, next_attempt_at = NULL, \
                last_error = 'requeued after: ' || coalesce(last_error, ''), updated_at = ? \
                WHERE status = 'failed' AND (CAST(? AS TEXT) IS NULL OR recipient = ?)");
            let done = sqlx::query(&sql)
                .bind($crate::store::log_time(at))
                .bind(recipient)
                .bind(recipient)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err("requeueing failed notifications", e))?;
            Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
        }
        }
    };
}
pub(crate) use notification_log;

/// `?` placeholders as PostgreSQL's `$1, $2, …`.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// SQLite takes `?` as it is.
pub(crate) fn as_is(sql: &str) -> String {
    sql.to_string()
}

/// Opens the store a URL names. `create` makes a missing SQLite file.
pub async fn connect(url: &str, create: bool) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::connect(url, create).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(PgStore::connect(url).await?))
    } else {
        Err(StoreError::BadUrl(redact(url)))
    }
}

/// A parameter of a database URL (`sslmode`, `sslrootcert`), decoded.
pub fn url_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let found = url.query_pairs().find(|(k, _)| k == name);
    found.map(|(_, v)| v.into_owned())
}

/// The URL as it may be shown: a password, whether after the user
/// (`user:secret@host`) or as a parameter (`?password=secret`), replaced by
/// `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let rest = &base[scheme_end + 3..];
    let host_start = rest.find('/').unwrap_or(rest.len());
    let mut shown = match rest[..host_start].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &base[..scheme_end + 3],
                &rest[..colon],
                &rest[at..]
            ),
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&params.join("&"));
    }
    shown
}

/// A value bound into an insert, so both dialects share one table layout.
#[derive(Debug, Clone)]
pub enum Val {
    Text(Option<String>),
    Bool(Option<bool>),
    Int(Option<i64>),
    Instant(Option<Instant>),
    Date(Option<NaiveDate>),
}

fn t(s: &str) -> Val {
    Val::Text(Some(s.to_string()))
}
fn ot(s: &Option<Text>) -> Val {
    Val::Text(s.as_deref().map(String::from))
}

/// The SQL naming a row of a case table in findings: its id, or for the two
/// link tables the ids they link (`conference_id/child_id`,
/// `conference_id/agency_id`), as evaluation's findings name them.
pub fn row_id_sql(table: &str) -> &'static str {
    match table {
        "conference_children" => "conference_id || '/' || child_id",
        "invitations" => "conference_id || '/' || agency_id",
        _ => "id",
    }
}

/// A finding about a row whose `updated_at` is later than the database's
/// own clock allows: incremental ticks read it again every tick until then.
pub fn future_updated_at(table: &str, row: &str, value: &str) -> crate::domain::evaluate::Finding {
    crate::domain::evaluate::Finding::new(
        "updated_at_in_future",
        table,
        row,
        format!(
            "updated_at {value} is in the future: the row is read again at every tick until then; \
             correct it to the time the row last changed"
        ),
    )
}

/// Every case table: its columns as loaded and written, in contract order.
pub const TABLES: &[(&str, &[&str])] = &[
    ("agencies", &["id", "name", "professional_group", "email"]),
    ("teams", &["id", "name", "manager_email"]),
    ("workers", &["id", "name", "email", "team_id"]),
    (
        "children",
        &[
            "id",
            "reference",
            "board",
            "date_of_birth",
            "expected_due_date",
            "allocated_worker_id",
            "looked_after",
        ],
    ),
    (
        "referrals",
        &[
            "id",
            "child_id",
            "received_at",
            "by_telephone",
            "written_confirmation_at",
            "acknowledged_at",
            "next_steps_recorded_at",
            "concern",
        ],
    ),
    (
        "assessments",
        &["id", "child_id", "kind", "started_on", "completed_on"],
    ),
    (
        "strategy_discussions",
        &[
            "id",
            "child_id",
            "held_at",
            "s47_initiated",
            "concern",
            "child_seen_at",
            "conference_decided_at",
            "record_circulated_at",
            "conference_not_required",
        ],
    ),
    (
        "conferences",
        &[
            "id",
            "kind",
            "status",
            "requested_at",
            "transfer_notified_at",
            "scheduled_at",
            "held_at",
            "reconvenes_id",
            "chair_email",
            "chair_liaison_at",
            "chair_overruled",
            "decision_circulated_at",
            "plan_circulated_at",
            "plan_hard_copy_sent_at",
            "summary_circulated_at",
            "minutes_circulated_at",
            "next_review_on",
            "chair_concern",
            "chair_escalated_at",
            "target_on",
        ],
    ),
    (
        "conference_children",
        &[
            "conference_id",
            "child_id",
            "outcome",
            "category",
            "advocacy_offered",
            "workbook_received_at",
            "dissent_recorded",
        ],
    ),
    (
        "invitations",
        &[
            "conference_id",
            "agency_id",
            "attended",
            "report_expected",
            "report_received_at",
            "report_shared_with_family_at",
            "report_authorised_at",
            "email",
        ],
    ),
    (
        "cp_plans",
        &[
            "id",
            "child_id",
            "started_on",
            "ended_on",
            "end_reason",
            "category",
            "visit_interval_working_days",
        ],
    ),
    ("core_groups", &["id", "child_id", "held_at"]),
    ("visits", &["id", "child_id", "visited_at", "seen_alone"]),
    ("cin_reviews", &["id", "child_id", "held_on"]),
    (
        "exceptions",
        &[
            "id",
            "rule",
            "child_id",
            "conference_id",
            "agency_id",
            "reason",
            "agreed_by",
            "recorded_at",
        ],
    ),
];

/// Columns added to the contract after its first version, all nullable
/// (`migrations/*/0004_contract_additions.sql`), with their PostgreSQL type.
/// A database without one (an authority's own tables or views, not yet
/// extended) reads as if its every value were NULL, so that a new rule does
/// not stop a load that worked before.
pub const ADDED: &[(&str, &str, &str)] = &[
    (
        "strategy_discussions",
        "record_circulated_at",
        "timestamptz",
    ),
    ("strategy_discussions", "conference_not_required", "boolean"),
    ("conferences", "chair_concern", "boolean"),
    ("conferences", "chair_escalated_at", "timestamptz"),
    ("conferences", "target_on", "date"),
    ("conference_children", "dissent_recorded", "boolean"),
];

/// The SELECT of a table's columns, those of [`ADDED`] that the database
/// lacks (`absent`, as `(table, column)`) read as NULL; `typed` gives each
/// such NULL its type, which PostgreSQL needs to describe the column.
pub fn select_sql(table: &str, columns: &[&str], absent: &[(&str, &str)], typed: bool) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|&c| {
            let added = ADDED
                .iter()
                .find(|(t, col, _)| *t == table && *col == c && absent.contains(&(*t, *col)));
            match added {
                Some((_, _, ty)) if typed => format!("NULL::{ty} AS {c}"),
                Some(_) => format!("NULL AS {c}"),
                None => c.to_string(),
            }
        })
        .collect();
    format!("SELECT {} FROM {table}", list.join(", "))
}

/// The rows of each case table of a state, in [`TABLES`] order.
// Long because the contract is: one block a table, its columns in contract
// order, so the mapping reads whole beside `TABLES` (and `Loader::row`).
pub fn rows_of(s: &CaseState) -> Vec<Vec<Vec<Val>>> {
    use Val::*;
    vec![
        s.agencies
            .iter()
            .map(|a| vec![t(&a.id), t(&a.name), t(&a.professional_group), ot(&a.email)])
            .collect(),
        s.teams
            .iter()
            .map(|x| vec![t(&x.id), t(&x.name), ot(&x.manager_email)])
            .collect(),
        s.workers
            .iter()
            .map(|w| vec![t(&w.id), t(&w.name), ot(&w.email), t(&w.team_id)])
            .collect(),
        s.children
            .iter()
            .map(|c| {
                vec![
                    t(&c.id),
                    t(&c.reference),
                    ot(&c.board),
                    Date(c.date_of_birth),
                    Date(c.expected_due_date),
                    ot(&c.allocated_worker_id),
                    Bool(Some(c.looked_after)),
                ]
            })
            .collect(),
        s.referrals
            .iter()
            .map(|r| {
                vec![
                    t(&r.id),
                    t(&r.child_id),
                    Instant(Some(r.received_at)),
                    Bool(Some(r.by_telephone)),
                    Instant(r.written_confirmation_at),
                    Instant(r.acknowledged_at),
                    Instant(r.next_steps_recorded_at),
                    ot(&r.concern),
                ]
            })
            .collect(),
        s.assessments
            .iter()
            .map(|a| {
                vec![
                    t(&a.id),
                    t(&a.child_id),
                    t(&a.kind),
                    Date(Some(a.started_on)),
                    Date(a.completed_on),
                ]
            })
            .collect(),
        s.strategy_discussions
            .iter()
            .map(|d| {
                vec![
                    t(&d.id),
                    t(&d.child_id),
                    Instant(Some(d.held_at)),
                    Bool(Some(d.s47_initiated)),
                    ot(&d.concern),
                    Instant(d.child_seen_at),
                    Instant(d.conference_decided_at),
                    Instant(d.record_circulated_at),
                    Bool(Some(d.conference_not_required)),
                ]
            })
            .collect(),
        s.conferences
            .iter()
            .map(|c| {
                vec![
                    t(&c.id),
                    t(&c.kind),
                    t(&c.status),
                    Instant(c.requested_at),
                    Instant(c.transfer_notified_at),
                    Instant(c.scheduled_at),
                    Instant(c.held_at),
                    ot(&c.reconvenes_id),
                    ot(&c.chair_email),
                    Instant(c.chair_liaison_at),
                    Bool(Some(c.chair_overruled)),
                    Instant(c.decision_circulated_at),
                    Instant(c.plan_circulated_at),
                    Instant(c.plan_hard_copy_sent_at),
                    Instant(c.summary_circulated_at),
                    Instant(c.minutes_circulated_at),
                    Date(c.next_review_on),
                    Bool(Some(c.chair_concern)),
                    Instant(c.chair_escalated_at),
                    Date(c.target_on),
                ]
            })
            .collect(),
        s.conference_children
            .iter()
            .map(|c| {
                vec![
                    t(&c.conference_id),
                    t(&c.child_id),
                    ot(&c.outcome),
                    ot(&c.category),
                    Bool(c.advocacy_offered),
                    Instant(c.workbook_received_at),
                    Bool(Some(c.dissent_recorded)),
                ]
            })
            .collect(),
        s.invitations
            .iter()
            .map(|i| {
                vec![
                    t(&i.conference_id),
                    t(&i.agency_id),
                    Bool(i.attended),
                    Bool(Some(i.report_expected)),
                    Instant(i.report_received_at),
                    Instant(i.report_shared_with_family_at),
                    Instant(i.report_authorised_at),
                    ot(&i.email),
                ]
            })
            .collect(),
        s.cp_plans
            .iter()
            .map(|p| {
                vec![
                    t(&p.id),
                    t(&p.child_id),
                    Date(Some(p.started_on)),
                    Date(p.ended_on),
                    ot(&p.end_reason),
                    ot(&p.category),
                    Int(p.visit_interval_working_days),
                ]
            })
            .collect(),
        s.core_groups
            .iter()
            .map(|g| vec![t(&g.id), t(&g.child_id), Instant(Some(g.held_at))])
            .collect(),
        s.visits
            .iter()
            .map(|v| {
                vec![
                    t(&v.id),
                    t(&v.child_id),
                    Instant(Some(v.visited_at)),
                    Bool(v.seen_alone),
                ]
            })
            .collect(),
        s.cin_reviews
            .iter()
            .map(|r| vec![t(&r.id), t(&r.child_id), Date(Some(r.held_on))])
            .collect(),
        s.exceptions
            .iter()
            .map(|e| {
                vec![
                    t(&e.id),
                    t(&e.rule),
                    ot(&e.child_id),
                    ot(&e.conference_id),
                    ot(&e.agency_id),
                    t(&e.reason),
                    t(&e.agreed_by),
                    Instant(Some(e.recorded_at)),
                ]
            })
            .collect(),
    ]
}

/// How many rows go in one multi-row INSERT, under both databases' bind limits.
pub fn chunk_rows(columns: usize) -> usize {
    (30_000 / columns.max(1)).max(1)
}
