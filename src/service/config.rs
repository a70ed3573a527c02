//! The daemon's configuration: one TOML file, every key overridable by an
//! environment variable (`CPWATCH_` + the key path in capitals, dots as
//! underscores), secrets only from the environment or a file named by
//! `…_FILE` (systemd credentials), never from the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::NaiveTime;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{key}: {message}")]
    Key { key: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Without a password: that comes from CPWATCH_DATABASE_PASSWORD(_FILE).
    pub database_url: String,
    pub default_board: String,
    pub rules_dir: Option<PathBuf>,
    pub calendar_file: Option<PathBuf>,
    pub closures_file: Option<PathBuf>,
    pub schedule: Schedule,
    pub http: Http,
    pub mail: Mail,
    pub reminders: Reminders,
    /// Per board: who runs its conferences and who is escalated to.
    pub boards: BTreeMap<String, BoardContacts>,
    pub export: Export,
}

/// The monthly audit export the service writes by itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Export {
    /// Where to write `<board>-<YYYY-MM>.xlsx` for the previous month, from the
    /// first working day of each month; none: no scheduled export.
    pub directory: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    /// Cron expression (seconds first) for evaluation ticks.
    pub evaluate: String,
    /// The time zone the cron expressions and times are read in.
    pub time_zone: String,
    /// Local time from which the day's digest (upcoming and due reminders) may go out.
    pub digest_at: String,
    /// No tick for this long makes /readyz fail (a stalled scheduler).
    pub stale_after_seconds: u64,
    /// Between full reads, a tick reads only rows whose `updated_at` moved and
    /// re-evaluates only the children they are about.
    pub incremental: bool,
    /// A full read at least this often: deleted rows leave no `updated_at`.
    pub full_every_seconds: u64,
    /// How far back of the newest `updated_at` seen an incremental read starts,
    /// for rows committed late with an earlier `updated_at`.
    pub updated_at_overlap_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: String,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: u64,
    /// A client must send its request's headers within this long.
    pub header_timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Smtp,
    File,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// STARTTLS on the submission port.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a relay on loopback, and only when `allow_plaintext` says so.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mail {
    pub transport: TransportKind,
    pub from: String,
    /// Where the file transport writes .eml files.
    pub directory: PathBuf,
    pub smtp: Smtp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub allow_plaintext: bool,
    pub username: Option<String>,
    pub timeout_seconds: u64,
    /// How long one tick may spend sending: what is left waits for the next.
    pub delivery_budget_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reminders {
    /// Local hours in which mail may go out, e.g. "08:00-18:00"…
    pub send_window: String,
    /// …and only on working days.
    pub working_days_only: bool,
    /// Escalate once an obligation is this many working days overdue…
    pub escalate_after_working_days: i64,
    /// …and again every this many working days until it is met…
    pub escalate_every_working_days: i64,
    /// …at most this many times; after that, the duty is in the weekly
    /// summary to the escalation contacts until it is met.
    pub max_escalations: i64,
    /// A directory whose templates replace the built-in ones.
    pub templates_dir: Option<PathBuf>,
    /// Retry a transient failure after this many seconds, doubling up to `max_backoff_seconds`.
    pub backoff_seconds: u64,
    pub max_backoff_seconds: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardContacts {
    pub conference_service: Option<String>,
    pub safeguarding_manager: Option<String>,
    /// Tell escalation contacts, once, when a duty they were escalated is
    /// no longer open (default: yes).
    pub met_notices: Option<bool>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: crate::store::DEFAULT_URL.into(),
            default_board: "working-together-2010".into(),
            rules_dir: None,
            calendar_file: None,
            closures_file: None,
            schedule: Schedule::default(),
            http: Http::default(),
            mail: Mail::default(),
            reminders: Reminders::default(),
            boards: BTreeMap::new(),
            export: Export::default(),
        }
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            evaluate: "0 */5 * * * *".into(),
            time_zone: "Europe/London".into(),
            digest_at: "08:00".into(),
            stale_after_seconds: 900,
            incremental: true,
            full_every_seconds: 3600,
            updated_at_overlap_seconds: 300,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "127.0.0.1:9187".into(),
            max_connections: 256,
            header_timeout_seconds: 10,
        }
    }
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            transport: TransportKind::Log,
            from: "cpwatch <cpwatch@localhost>".into(),
            directory: PathBuf::from("outbox"),
            smtp: Smtp::default(),
        }
    }
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            host: "localhost".into(),
            port: 587,
            tls: TlsMode::Starttls,
            allow_plaintext: false,
            username: None,
            timeout_seconds: 30,
            delivery_budget_seconds: 120,
        }
    }
}

impl Default for Reminders {
    fn default() -> Self {
        Reminders {
            send_window: "08:00-18:00".into(),
            working_days_only: true,
            escalate_after_working_days: 2,
            escalate_every_working_days: 5,
            max_escalations: 3,
            templates_dir: None,
            backoff_seconds: 60,
            max_backoff_seconds: 3600,
        }
    }
}

/// Every key an environment variable may set, as dotted paths.
const KEYS: &[&str] = &[
    "database_url",
    "default_board",
    "rules_dir",
    "calendar_file",
    "closures_file",
    "schedule.evaluate",
    "schedule.time_zone",
    "schedule.digest_at",
    "schedule.stale_after_seconds",
    "schedule.incremental",
    "schedule.full_every_seconds",
    "schedule.updated_at_overlap_seconds",
    "http.listen",
    "http.max_connections",
    "http.header_timeout_seconds",
    "mail.transport",
    "mail.from",
    "mail.directory",
    "mail.smtp.host",
    "mail.smtp.port",
    "mail.smtp.tls",
    "mail.smtp.allow_plaintext",
    "mail.smtp.username",
    "mail.smtp.timeout_seconds",
    "mail.smtp.delivery_budget_seconds",
    "reminders.send_window",
    "reminders.working_days_only",
    "reminders.escalate_after_working_days",
    "reminders.escalate_every_working_days",
    "reminders.max_escalations",
    "reminders.templates_dir",
    "reminders.backoff_seconds",
    "reminders.max_backoff_seconds",
    "export.directory",
];

const BOARD_KEYS: &[&str] = &["conference_service", "safeguarding_manager"];

pub fn env_name(key: &str) -> String {
    format!("CPWATCH_{}", key.replace(['.', '-'], "_").to_uppercase())
}

fn env_value(raw: &str) -> toml::Value {
    if let Ok(n) = raw.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

fn set_path(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

impl Config {
    /// Reads the file (absent and not asked for: defaults), then the environment.
    pub fn load(
        path: &Path,
        required: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let mut table = match std::fs::read_to_string(path) {
            Ok(text) => text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Invalid {
                    file: file.clone(),
                    message: e.to_string(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => toml::Table::new(),
            Err(source) => return Err(ConfigError::Read { file, source }),
        };
        for key in ["password", "database_password"] {
            if table.contains_key(key) {
                return Err(ConfigError::Key { key: key.into(), message: "secrets do not belong in the config file: set CPWATCH_DATABASE_PASSWORD or CPWATCH_DATABASE_PASSWORD_FILE".into() });
            }
        }
        if let Some(toml::Value::Table(mail)) = table.get("mail") {
            if let Some(toml::Value::Table(smtp)) = mail.get("smtp") {
                if smtp.contains_key("password") {
                    return Err(ConfigError::Key { key: "mail.smtp.password".into(), message: "secrets do not belong in the config file: set CPWATCH_SMTP_PASSWORD or CPWATCH_SMTP_PASSWORD_FILE".into() });
                }
            }
        }
        for key in KEYS {
            if let Some(v) = env(&env_name(key)) {
                set_path(
                    &mut table,
                    &key.split('.').collect::<Vec<_>>(),
                    env_value(&v),
                );
            }
        }
        // Board contacts: CPWATCH_BOARDS_<ID>_<KEY>, for the boards the rules know.
        let boards: Vec<String> = table
            .get("boards")
            .and_then(|b| b.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        for board in boards.iter().map(String::as_str).chain(
            crate::domain::rules::BUILT_IN
                .iter()
                .map(|(n, _)| n.trim_end_matches(".toml")),
        ) {
            for key in BOARD_KEYS {
                if let Some(v) = env(&env_name(&format!("boards.{board}.{key}"))) {
                    set_path(&mut table, &["boards", board, key], toml::Value::String(v));
                }
            }
            if let Some(v) = env(&env_name(&format!("boards.{board}.met_notices"))) {
                set_path(&mut table, &["boards", board, "met_notices"], env_value(&v));
            }
        }
        let config = Config::deserialize(table).map_err(|e| ConfigError::Invalid {
            file,
            message: e.to_string().trim().to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what can be checked without the rules, the database or the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = |k: &str, m: String| ConfigError::Key {
            key: k.into(),
            message: m,
        };
        if crate::store::redact(&self.database_url) != self.database_url {
            return Err(key("database_url", "the URL holds a password: remove it and set CPWATCH_DATABASE_PASSWORD or CPWATCH_DATABASE_PASSWORD_FILE".into()));
        }
        self.time_zone()?;
        parse_hhmm(&self.schedule.digest_at).map_err(|m| key("schedule.digest_at", m))?;
        self.send_window()?;
        self.listen()?;
        cron_check(&self.schedule.evaluate).map_err(|m| key("schedule.evaluate", m))?;
        self.from_mailbox()?;
        for (board, c) in &self.boards {
            for (k, v) in [
                ("conference_service", &c.conference_service),
                ("safeguarding_manager", &c.safeguarding_manager),
            ] {
                if let Some(addr) = v {
                    addr.parse::<lettre::message::Mailbox>().map_err(|e| {
                        key(
                            &format!("boards.{board}.{k}"),
                            format!("{addr:?} is not an email address: {e}"),
                        )
                    })?;
                }
            }
        }
        if self.reminders.escalate_every_working_days < 1 {
            return Err(key(
                "reminders.escalate_every_working_days",
                "must be at least 1".into(),
            ));
        }
        self.check_reminders()?;
        self.check_directories()?;
        if self.mail.transport == TransportKind::Smtp && self.mail.smtp.tls == TlsMode::None {
            // An address on loopback, not a name that merely starts like one.
            let host = self
                .mail
                .smtp
                .host
                .trim_start_matches('[')
                .trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !(loopback && self.mail.smtp.allow_plaintext) {
                return Err(key(
                    "mail.smtp.tls",
                    "\"none\" sends mail unencrypted: allowed only to a relay on loopback with mail.smtp.allow_plaintext = true; use \"starttls\" or \"tls\"".into(),
                ));
            }
        }
        Ok(())
    }

    /// Escalation and retry settings that can be acted on.
    fn check_reminders(&self) -> Result<(), ConfigError> {
        let r = &self.reminders;
        let key = |k: &str, m: &str| ConfigError::Key {
            key: k.into(),
            message: m.into(),
        };
        if r.escalate_after_working_days < 0 {
            return Err(key(
                "reminders.escalate_after_working_days",
                "must be 0 or more (working days overdue before escalating)",
            ));
        }
        if r.max_escalations < 1 {
            return Err(key(
                "reminders.max_escalations",
                "must be 1 or more (escalations of one duty before it goes to the weekly summary)",
            ));
        }
        if r.backoff_seconds < 1 {
            return Err(key("reminders.backoff_seconds", "must be at least 1"));
        }
        if r.backoff_seconds > r.max_backoff_seconds {
            return Err(key(
                "reminders.backoff_seconds",
                "is more than reminders.max_backoff_seconds: the first wait cannot be longer than the longest",
            ));
        }
        Ok(())
    }

    /// Directories the configuration names must be there.
    fn check_directories(&self) -> Result<(), ConfigError> {
        for (k, dir) in [
            ("reminders.templates_dir", &self.reminders.templates_dir),
            ("export.directory", &self.export.directory),
        ] {
            if let Some(d) = dir.as_ref().filter(|d| !d.is_dir()) {
                return Err(ConfigError::Key {
                    key: k.into(),
                    message: format!(
                        "{} is not a directory: create it (writable by the service for exports), or remove the key",
                        d.display()
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn time_zone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.schedule
            .time_zone
            .parse()
            .map_err(|_| ConfigError::Key {
                key: "schedule.time_zone".into(),
                message: format!(
                    "{:?} is not an IANA time zone such as Europe/London",
                    self.schedule.time_zone
                ),
            })
    }

    pub fn digest_at(&self) -> NaiveTime {
        parse_hhmm(&self.schedule.digest_at).unwrap_or(NaiveTime::MIN)
    }

    pub fn send_window(&self) -> Result<(NaiveTime, NaiveTime), ConfigError> {
        let bad = |m: String| ConfigError::Key {
            key: "reminders.send_window".into(),
            message: m,
        };
        let (a, b) = self.reminders.send_window.split_once('-').ok_or_else(|| {
            bad(format!(
                "{:?} is not a range like 08:00-18:00",
                self.reminders.send_window
            ))
        })?;
        let (a, b) = (parse_hhmm(a).map_err(bad)?, parse_hhmm(b).map_err(bad)?);
        if a >= b {
            return Err(bad(format!(
                "{:?} must start before it ends",
                self.reminders.send_window
            )));
        }
        Ok((a, b))
    }

    pub fn listen(&self) -> Result<SocketAddr, ConfigError> {
        self.http.listen.parse().map_err(|_| ConfigError::Key {
            key: "http.listen".into(),
            message: format!(
                "{:?} is not an address like 127.0.0.1:9187",
                self.http.listen
            ),
        })
    }

    pub fn from_mailbox(&self) -> Result<lettre::message::Mailbox, ConfigError> {
        self.mail.from.parse().map_err(|e| ConfigError::Key {
            key: "mail.from".into(),
            message: format!("{:?} is not an email address: {e}", self.mail.from),
        })
    }

    /// Advice about `database_url` that is not an error: a PostgreSQL
    /// database on another machine reached without checking its certificate.
    /// The default, `sslmode=prefer`, encrypts only if the server offers TLS
    /// and, like `require`, takes any certificate, so neither tells the real
    /// server from one in the middle.
    pub fn database_advice(&self) -> Option<String> {
        let url = url::Url::parse(&self.database_url).ok()?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return None;
        }
        let param = |name: &str| crate::store::url_param(&self.database_url, name);
        let host = param("host")
            .or_else(|| url.host_str().map(String::from))
            .unwrap_or_default();
        // A Unix socket (a path) or loopback: nothing crosses a network.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let local = bare.is_empty()
            || bare.starts_with('/')
            || bare == "localhost"
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let mode = param("sslmode").unwrap_or_else(|| "prefer".into());
        if local || matches!(mode.as_str(), "verify-ca" | "verify-full") {
            return None;
        }
        let plain = if mode == "require" {
            ""
        } else {
            ", and sends the case data unencrypted to a server that offers no TLS"
        };
        Some(format!(
            "database_url reaches {host} with sslmode={mode}, which does not check the server's certificate{plain}: add sslmode=verify-full (and sslrootcert=PATH if the system does not trust the authority that signed it)"
        ))
    }

    /// The database URL with the password from the environment put in.
    pub fn database_url_with_secret(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ConfigError> {
        match secret("CPWATCH_DATABASE_PASSWORD", env)? {
            None => Ok(self.database_url.clone()),
            Some(pw) => {
                let Some((scheme, rest)) = self.database_url.split_once("://") else {
                    return Ok(self.database_url.clone());
                };
                let Some((user, host)) = rest.split_once('@') else {
                    return Err(ConfigError::Key {
                        key: "database_url".into(),
                        message:
                            "a password is set but the URL names no user (postgres://user@host/db)"
                                .into(),
                    });
                };
                Ok(format!("{scheme}://{user}:{}@{host}", percent_encode(&pw)))
            }
        }
    }
}

/// A secret from `NAME`, or from the file `NAME_FILE` names (trailing newline removed).
pub fn secret(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    if let Some(v) = env(name) {
        return Ok(Some(v));
    }
    match env(&format!("{name}_FILE")) {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(&path)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|source| ConfigError::Read {
                file: format!("{path} (from {name}_FILE)"),
                source,
            }),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (URL userinfo, query values).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn parse_hhmm(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("{s:?} is not a time like 08:00"))
}

/// Whether the scheduler accepts a cron expression.
pub fn cron_check(expr: &str) -> Result<(), String> {
    tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| {
            format!("{expr:?} is not a cron expression with seconds (e.g. \"0 */5 * * * *\"): {e}")
        })?;
    // A schedule that never fires (the 30th of February, say) would leave
    // the service evaluating once, at start, and never again.
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?}: {e}"))?;
    let from = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    cron.find_next_occurrence(&from, false)
        .map(|_| ())
        .map_err(|_| format!("{expr:?} never fires: no date matches it"))
}

/// The process environment, for `Config::load`.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::Config;

    fn advice(url: &str) -> Option<String> {
        Config {
            database_url: url.into(),
            ..Config::default()
        }
        .database_advice()
    }

    #[test]
    fn a_remote_database_without_a_checked_certificate_is_advised_against() {
        for url in [
            "postgres://cpwatch@db.example/cases",
            "postgres://cpwatch@db.example/cases?sslmode=prefer",
            "postgresql://cpwatch@10.0.0.5:5432/cases?sslmode=disable",
            "postgres://cpwatch@[2001:db8::1]/cases?sslmode=require",
            "postgres:///cases?host=db.example",
        ] {
            let a = advice(url).unwrap_or_else(|| panic!("{url}: no advice"));
            assert!(a.contains("sslmode=verify-full"), "{url}: {a}");
        }
        let a = advice("postgres://cpwatch@db.example/cases?sslmode=require").unwrap_or_default();
        assert!(!a.contains("unencrypted"), "{a}");
        let a = advice("postgres://cpwatch@db.example/cases").unwrap_or_default();
        assert!(a.contains("db.example") && a.contains("unencrypted"), "{a}");
    }

    #[test]
    fn a_local_or_verified_database_needs_no_advice() {
        for url in [
            "postgres://cpwatch@db.example/cases?sslmode=verify-full",
            "postgres://cpwatch@db.example/cases?sslmode=verify-ca&sslrootcert=/etc/ca.pem",
            "postgres://postgres@127.0.0.1/cases",
            "postgres://postgres@localhost:5433/cases?sslmode=disable",
            "postgres://postgres@[::1]/cases",
            "postgres:///cases?host=/var/run/postgresql",
            "sqlite:///var/lib/cpwatch/cpwatch.db",
        ] {
            assert_eq!(advice(url), None, "{url}");
        }
    }
}
