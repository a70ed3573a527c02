//! Messages: the templates (built in, or replaced from a directory), the
//! deterministic Message-ID, and one message per recipient with its items.

use std::path::Path;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use sha2::{Digest, Sha256};

use super::plan::*;

/// The subject, plain text and HTML of a message, from built-in or deployment templates.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

const SUBJECT: &str = include_str!("../../../templates/subject.txt");
const BODY_TXT: &str = include_str!("../../../templates/body.txt");
const BODY_HTML: &str = include_str!("../../../templates/body.html");

impl Templates {
    /// The built-in templates, each replaced by a file of the same name in `dir`.
    pub fn load(dir: Option<&Path>) -> Result<Templates, String> {
        let mut env = minijinja::Environment::new();
        for (name, built_in) in [
            ("subject.txt", SUBJECT),
            ("body.txt", BODY_TXT),
            ("body.html", BODY_HTML),
        ] {
            let text = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(p) => {
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?
                }
                None => built_in.to_string(),
            };
            env.add_template_owned(name.to_string(), text)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, items: &[Item]) -> Result<(String, String, String), String> {
        let (summarised, listed): (Vec<&Item>, Vec<&Item>) =
            items.iter().partition(|i| i.stage == Stage::Summary);
        let (resolved, listed): (Vec<&Item>, Vec<&Item>) =
            listed.into_iter().partition(|i| i.stage == Stage::Resolved);
        let top = listed
            .iter()
            .map(|i| i.stage)
            .max()
            .unwrap_or(Stage::Summary);
        let summary = summary_groups(&summarised);
        let ctx = minijinja::context! {
            items => listed,
            count => listed.len(),
            stage => top.as_str(),
            summary => summary,
            summary_count => summarised.len(),
            resolved => resolved,
        };
        let get = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| format!("template {name}: {e}"))
        };
        Ok((
            get("subject.txt")?.trim().to_string(),
            get("body.txt")?,
            get("body.html")?,
        ))
    }
}

/// One line of the weekly summary: the duties of one rule, and one team or
/// agency, still open after their last escalation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SummaryGroup {
    pub title: String,
    pub board: String,
    /// The agency, else the team, responsible; empty when neither is known.
    pub responsible: String,
    pub count: usize,
    /// The oldest one's deadline, in words.
    pub oldest: String,
}

/// The summarised items by rule and by who is responsible, oldest first
/// within each, the groups in the order of their titles.
fn summary_groups(items: &[&Item]) -> Vec<SummaryGroup> {
    let mut by: std::collections::BTreeMap<(String, String, String), (usize, &Item)> =
        std::collections::BTreeMap::new();
    for i in items {
        let who = i
            .agency
            .clone()
            .or_else(|| i.team.clone())
            .unwrap_or_default();
        let e = by
            .entry((i.title.clone(), i.board.clone(), who))
            .or_insert((0, i));
        e.0 += 1;
        if i.due_at < e.1.due_at {
            e.1 = i;
        }
    }
    by.into_iter()
        .map(
            |((title, board, responsible), (count, oldest))| SummaryGroup {
                title,
                board,
                responsible,
                count,
                oldest: oldest.deadline.clone(),
            },
        )
        .collect()
}

/// A deterministic Message-ID for a message carrying these notifications, so a
/// message sent twice (crash after the server accepted it) is recognisable.
pub fn message_id(recipient: &str, ids: &[String]) -> String {
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    h.update(recipient.as_bytes());
    for id in sorted {
        h.update(b"\n");
        h.update(id.as_bytes());
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("<{hex}@cpwatch.invalid>")
}

pub fn build_message(
    from: &Mailbox,
    to: &str,
    id: &str,
    subject: &str,
    text: String,
    html: String,
) -> Result<lettre::Message, String> {
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("{to:?} is not an email address: {e}"))?;
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(id.to_string()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| e.to_string())
}
