//! Snoozes: a person's agreement that reminders about a child, a conference,
//! an agency's report or one obligation stop until an expiry. A snooze stops
//! mail, never the breach: a snoozed duty still counts as late everywhere.

use serde::Serialize;

use crate::domain::case::Instant;
use crate::domain::evaluate::{Draft, Name};

/// What a snooze covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every duty about the child with this case reference.
    Child,
    /// Every duty of this conference.
    Conference,
    /// One agency's report duties for one conference.
    Report,
    /// One obligation, by its key.
    Obligation,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Child => "child",
            Scope::Conference => "conference",
            Scope::Report => "report",
            Scope::Obligation => "obligation",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        [
            Scope::Child,
            Scope::Conference,
            Scope::Report,
            Scope::Obligation,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One snooze, as `cpwatch_snoozes` keeps it (never deleted: the history).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snooze {
    pub id: String,
    pub scope: Scope,
    /// The child's reference, the conference id or the obligation key.
    pub target: String,
    /// The agency, for a report snooze.
    pub agency: Option<String>,
    pub reason: String,
    pub agreed_by: String,
    pub created_at: Instant,
    pub expires_at: Instant,
    /// Ended before its expiry by `snooze expire`, and by whom.
    pub ended_at: Option<Instant>,
    pub ended_by: Option<String>,
}

/// The parts of an obligation a snooze is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub key: &'a str,
    pub board: &'a str,
    pub child: Option<&'a str>,
    pub conference: Option<&'a str>,
    pub agency: Option<&'a str>,
}

impl<'k> Subject<'k> {
    /// An obligation as snoozes are matched against it; `key` is its key.
    pub fn of(o: &'k Draft<'_>, key: &'k str) -> Subject<'k> {
        Subject {
            key,
            board: o.of.board.as_str(),
            child: o.child.map(Name::as_str),
            conference: o.conference.map(Name::as_str),
            agency: o.agency.map(Name::as_str),
        }
    }
}

impl Snooze {
    /// In force at `now`: created, not yet expired, not ended.
    pub fn active(&self, now: Instant) -> bool {
        self.created_at <= now && now < self.expires_at && self.ended_at.is_none_or(|e| now < e)
    }

    /// Whether it covers the obligation.
    pub fn covers(&self, s: &Subject<'_>) -> bool {
        let target = Some(self.target.as_str());
        match self.scope {
            Scope::Child => s.child == target,
            Scope::Conference => s.conference == target,
            Scope::Report => s.conference == target && s.agency == self.agency.as_deref(),
            Scope::Obligation => s.key == self.target,
        }
    }

    /// "until Fri 8 Jan 2027 17:00 UTC, agreed by …: reason", for `explain`
    /// and the export.
    pub fn describe(&self) -> String {
        format!(
            "snoozed until {}, agreed by {}: {}",
            self.expires_at.format("%a %-d %b %Y %H:%M UTC"),
            self.agreed_by,
            self.reason
        )
    }
}

/// The snoozes in force at `now`, to match obligations against.
#[derive(Debug, Clone, Default)]
pub struct Snoozes(Vec<Snooze>);

impl Snoozes {
    pub fn active(all: Vec<Snooze>, now: Instant) -> Snoozes {
        Snoozes(all.into_iter().filter(|s| s.active(now)).collect())
    }

    /// The snooze covering the obligation, if any (the one lasting longest).
    pub fn covering(&self, s: &Subject<'_>) -> Option<&Snooze> {
        self.0
            .iter()
            .filter(|z| z.covers(s))
            .max_by_key(|z| z.expires_at)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// The parts of an obligation key (`board:rule:child:conference:agency:occurrence`),
/// `-` read as none; a child reference may hold a colon, the ids around it do not.
pub fn key_parts(key: &str) -> Option<Subject<'_>> {
    let mut head = key.splitn(3, ':');
    let (board, _rule, rest) = (head.next()?, head.next()?, head.next()?);
    let mut tail = rest.rsplitn(4, ':');
    let (_occurrence, agency, conference, child) =
        (tail.next()?, tail.next()?, tail.next()?, tail.next()?);
    fn given(v: &str) -> Option<&str> {
        (v != "-").then_some(v)
    }
    Some(Subject {
        key,
        board,
        child: given(child),
        conference: given(conference),
        agency: given(agency),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Instant {
        s.parse().expect("instant")
    }

    fn snooze(scope: Scope, target: &str, agency: Option<&str>) -> Snooze {
        Snooze {
            id: "z1".into(),
            scope,
            target: target.into(),
            agency: agency.map(String::from),
            reason: "family abroad".into(),
            agreed_by: "Service manager".into(),
            created_at: at("2027-01-04T09:00:00Z"),
            expires_at: at("2027-01-08T17:00:00Z"),
            ended_at: None,
            ended_by: None,
        }
    }

    const KEY: &str = "barnsley:agency-report:BAR-1:CONF-9:police:0";

    #[test]
    fn each_scope_covers_its_own_and_nothing_else() {
        let s = key_parts(KEY).expect("key");
        assert_eq!(
            (s.child, s.conference, s.agency),
            (Some("BAR-1"), Some("CONF-9"), Some("police"))
        );
        assert!(snooze(Scope::Child, "BAR-1", None).covers(&s));
        assert!(!snooze(Scope::Child, "BAR-2", None).covers(&s));
        assert!(snooze(Scope::Conference, "CONF-9", None).covers(&s));
        assert!(snooze(Scope::Report, "CONF-9", Some("police")).covers(&s));
        assert!(!snooze(Scope::Report, "CONF-9", Some("health")).covers(&s));
        assert!(snooze(Scope::Obligation, KEY, None).covers(&s));
        assert!(!snooze(
            Scope::Obligation,
            "barnsley:agency-report:BAR-1:CONF-9:police:1",
            None
        )
        .covers(&s));
    }

    #[test]
    fn a_snooze_is_in_force_from_its_making_to_its_expiry_or_end() {
        let mut z = snooze(Scope::Child, "BAR-1", None);
        assert!(!z.active(at("2027-01-04T08:59:59Z")));
        assert!(z.active(at("2027-01-04T09:00:00Z")));
        assert!(!z.active(at("2027-01-08T17:00:00Z")));
        z.ended_at = Some(at("2027-01-05T12:00:00Z"));
        assert!(z.active(at("2027-01-05T11:59:59Z")));
        assert!(!z.active(at("2027-01-05T12:00:00Z")));
    }

    #[test]
    fn a_reference_with_a_colon_is_read_whole() {
        let s = key_parts("b:r:REF:9:-:-:0").expect("key");
        assert_eq!(
            (s.child, s.conference, s.agency),
            (Some("REF:9"), None, None)
        );
        assert!(key_parts("b:r").is_none());
    }
}
