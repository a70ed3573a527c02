//! The snooze log in `cpwatch_snoozes`, the same for both databases but for
//! placeholders: snoozes added, listed and ended, never deleted.

use async_trait::async_trait;

use super::rows::{parse_instant, Get};
use super::StoreError;
use crate::domain::case::Instant;
use crate::domain::snooze::{Scope, Snooze};

#[async_trait]
pub trait SnoozeLog {
    /// Records a new snooze.
    async fn snooze_add(&self, s: &Snooze) -> Result<(), StoreError>;
    /// Every snooze ever made, newest first.
    async fn snoozes(&self) -> Result<Vec<Snooze>, StoreError>;
    /// Ends a snooze before its expiry; false when there is none in force with that id.
    async fn snooze_end(&self, id: &str, by: &str, at: Instant) -> Result<bool, StoreError>;
}

/// One row of `cpwatch_snoozes`.
pub(crate) fn snooze_row<R: Get>(r: &R) -> Result<Snooze, String> {
    let text = |c: &str| {
        r.text(c)?
            .map(String::from)
            .ok_or_else(|| format!("{c} is empty"))
    };
    let time = |c: &str| r.text(c)?.map(parse_instant).transpose();
    let scope = text("scope")?;
    Ok(Snooze {
        id: text("id")?,
        scope: Scope::parse(&scope).ok_or_else(|| format!("unknown scope {scope:?}"))?,
        target: text("target")?,
        agency: r.text("agency")?.map(String::from),
        reason: text("reason")?,
        agreed_by: text("agreed_by")?,
        created_at: time("created_at")?.ok_or("created_at is empty")?,
        expires_at: time("expires_at")?.ok_or("expires_at is empty")?,
        ended_at: time("ended_at")?,
        ended_by: r.text("ended_by")?.map(String::from),
    })
}

macro_rules! snooze_log {
    ($store:ty, $sql:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::snoozes::SnoozeLog for $store {
            async fn snooze_add(&self, s: &$crate::domain::snooze::Snooze) -> Result<(), StoreError> {
                let t = $crate::store::log_time;
                sqlx::query(&$sql("INSERT INTO cpwatch_snoozes (id, scope, target, agency, reason, agreed_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"))
                    .bind(&s.id)
                    .bind(s.scope.as_str())
                    .bind(&s.target)
                    .bind(&s.agency)
                    .bind(&s.reason)
                    .bind(&s.agreed_by)
                    .bind(t(s.created_at))
                    .bind(t(s.expires_at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err("recording a snooze in cpwatch_snoozes", e))?;
                Ok(())
            }

            async fn snoozes(&self) -> Result<Vec<$crate::domain::snooze::Snooze>, StoreError> {
                let rows = sqlx::query("SELECT id, scope, target, agency, reason, agreed_by, created_at, expires_at, ended_at, ended_by FROM cpwatch_snoozes ORDER BY created_at DESC, id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| self.err("reading cpwatch_snoozes", e))?;
                rows.iter()
                    .map(|r| {
                        $crate::store::snoozes::snooze_row(r).map_err(|reason| StoreError::Query {
                            url: self.url.clone(),
                            what: "reading cpwatch_snoozes".into(),
                            reason,
                        })
                    })
                    .collect()
            }

            async fn snooze_end(&self, id: &str, by: &str, at: $crate::domain::case::Instant) -> Result<bool, StoreError> {
                let at = $crate::store::log_time(at);
                let done = sqlx::query(&$sql("UPDATE cpwatch_snoozes SET ended_at = ?, ended_by = ? WHERE id = ? AND ended_at IS NULL AND expires_at > ?"))
                    .bind(&at)
                    .bind(by)
                    .bind(id)
                    .bind(&at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err("ending a snooze in cpwatch_snoozes", e))?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
pub(crate) use snooze_log;
