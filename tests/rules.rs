//! The rule files against the rules catalogue (`docs/rules-catalogue.md`),
//! checking quotes against source documents, and the validator's error
//! classes with their positions.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};

use cpwatch::domain::calendar::{Amount, Offset};
use cpwatch::domain::rules::{self, RuleKind, RuleSet};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo_rules() -> RuleSet {
    rules::load_dir(&repo().join("rules")).unwrap_or_else(|e| panic!("rules/ should load:\n{e}"))
}

/// One row of a catalogue table: board, rule id, qualifier ("initial"/"review"), offset text.
#[derive(Debug)]
struct Row {
    board: String,
    id: String,
    qualifier: Option<String>,
    offset: String,
}

fn catalogue_rows() -> Vec<Row> {
    let text = std::fs::read_to_string(repo().join("docs/rules-catalogue.md")).expect("catalogue");
    let mut board: Option<String> = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if line.starts_with("## 2.") {
            board = Some("working-together-2010".into());
        } else if let Some(rest) = line.strip_prefix("### `") {
            board = rest.split('`').next().map(String::from);
        } else if line.starts_with("## ") {
            board = None;
        }
        let Some(b) = &board else { continue };
        if !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let first = cells[1];
        let id = first.split('`').nth(1).expect("id").to_string();
        let qualifier = first
            .split('(')
            .nth(1)
            .map(|q| q.trim_end_matches(')').to_string());
        rows.push(Row {
            board: b.clone(),
            id,
            qualifier,
            offset: cells[4].to_string(),
        });
    }
    assert!(
        rows.len() > 60,
        "the catalogue parsed to only {} rows",
        rows.len()
    );
    rows
}

fn plain_offset(text: &str) -> String {
    let t = text.replace('\u{2212}', "-");
    let t = t.split(['(', ',']).next().unwrap_or("").trim().to_string();
    t
}

fn check_row(set: &RuleSet, board: &str, row: &Row) -> Result<(), String> {
    let b = set.latest(board).ok_or(format!("board {board} missing"))?;
    let rule = b
        .rule(&row.id)
        .ok_or(format!("{board}: rule {} missing", row.id))?;
    let text = row.offset.as_str();
    if text.is_empty() || text.starts_with("standard") {
        return if rule.kind == RuleKind::Standard {
            Ok(())
        } else {
            Err(format!("{board}/{}: expected a standard", row.id))
        };
    }
    if text.contains("remind from") {
        let lead = rule
            .remind_before
            .as_ref()
            .ok_or(format!("{board}/{}: no remind_before", row.id))?;
        let want: Offset = text
            .split("remind from")
            .nth(1)
            .map(plain_offset)
            .unwrap_or_default()
            .parse()
            .map_err(|e: String| e)?;
        return if *lead == want && rule.met_window.as_ref() == Some(&want) {
            Ok(())
        } else {
            Err(format!("{board}/{}: lead {lead}", row.id))
        };
    }
    if text.starts_with("plan's visiting interval") {
        let o = rule.offset.as_ref().ok_or("no offset")?;
        return match (&o.amount, rule.kind) {
            (Amount::Field { name, .. }, RuleKind::Recurring)
                if name == "plan.visit_interval_working_days" =>
            {
                Ok(())
            }
            _ => Err(format!(
                "{board}/{}: {o} is not the plan's interval",
                row.id
            )),
        };
    }
    let want: Offset = plain_offset(text)
        .parse()
        .map_err(|e: String| format!("{board}/{}: catalogue offset {text:?}: {e}", row.id))?;
    let kind = row
        .qualifier
        .as_deref()
        .filter(|q| *q == "review" || *q == "initial");
    let have = rule
        .offset_for(kind)
        .ok_or(format!("{board}/{}: no offset", row.id))?;
    if *have != want {
        return Err(format!(
            "{board}/{}{}: rule file says {have}, catalogue says {want}",
            row.id,
            kind.map(|k| format!(" ({k})")).unwrap_or_default()
        ));
    }
    if text.contains("(recurring)") && rule.kind != RuleKind::Recurring {
        return Err(format!("{board}/{}: should be recurring", row.id));
    }
    if text.contains("capped") && rule.cap.is_none() {
        return Err(format!("{board}/{}: should be capped", row.id));
    }
    Ok(())
}

/// What a board inherits from the baseline, as the catalogue's "What a
/// profile inherits" says: everything, but for England's 2010 assessments in
/// a procedure that postdates 2013, and only the conference process in Wales.
fn inherits(board: &str, rule: &str) -> bool {
    const WALES: &[&str] = &[
        "icpc-timeliness",
        "decision-circulated",
        "first-core-group",
        "first-review",
        "subsequent-review",
        "cin-plan-review",
        "age-18-review",
        "quoracy",
    ];
    match board {
        "bolton" => !["initial-assessment", "core-assessment"].contains(&rule),
        "cwm-taf-morgannwg" => WALES.contains(&rule),
        _ => true,
    }
}

#[test]
fn every_catalogue_rule_is_in_every_board_it_is_listed_for_with_its_offset() {
    let set = repo_rules();
    let rows = catalogue_rows();
    let boards = [
        "hampshire-4lscb",
        "barnsley",
        "cwm-taf-morgannwg",
        "pan-dorset",
        "bolton",
    ];
    let mut problems = Vec::new();
    for row in &rows {
        if row.board == "working-together-2010" {
            // The baseline's rules hold in every board that inherits them,
            // unless the board's own table restates them.
            for b in std::iter::once("working-together-2010").chain(boards) {
                let restated = b != "working-together-2010"
                    && rows.iter().any(|r| r.board == b && r.id == row.id);
                if restated {
                    continue;
                }
                if inherits(b, &row.id) {
                    if let Err(e) = check_row(&set, b, row) {
                        problems.push(e);
                    }
                } else if set.latest(b).and_then(|x| x.rule(&row.id)).is_some() {
                    problems.push(format!("{b}: rule {} is not inherited here", row.id));
                }
            }
        } else if let Err(e) = check_row(&set, &row.board, row) {
            problems.push(e);
        }
    }
    // A board's local rule is that board's alone (the baseline's, restated
    // by a board to change them, are checked above).
    let baseline = |id: &str| {
        rows.iter()
            .any(|r| r.board == "working-together-2010" && r.id == id)
    };
    for row in rows
        .iter()
        .filter(|r| r.board != "working-together-2010" && !baseline(&r.id))
    {
        let elsewhere = std::iter::once("working-together-2010")
            .chain(boards)
            .filter(|b| *b != row.board && !rows.iter().any(|r| r.board == *b && r.id == row.id));
        for b in elsewhere {
            if set.latest(b).and_then(|x| x.rule(&row.id)).is_some() {
                problems.push(format!(
                    "{b}: rule {} belongs to {} only",
                    row.id, row.board
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "rule files disagree with the catalogue:\n{problems:#?}"
    );
}

#[test]
fn the_built_in_rules_are_the_repository_rules() {
    let built_in = rules::built_in().expect("built-in rules load");
    let on_disk = repo_rules();
    for (id, versions) in &on_disk.boards {
        let b = built_in.boards.get(id).expect("same boards");
        assert_eq!(b.len(), versions.len());
        for (x, y) in b.iter().zip(versions) {
            let xs: Vec<_> = x
                .rules
                .iter()
                .map(|r| (&r.id, r.offset.as_ref().map(|o| o.to_string())))
                .collect();
            let ys: Vec<_> = y
                .rules
                .iter()
                .map(|r| (&r.id, r.offset.as_ref().map(|o| o.to_string())))
                .collect();
            assert_eq!(xs, ys, "{id}");
        }
    }
}

#[test]
fn every_quote_is_checked_against_its_source_document() {
    let set = repo_rules();
    // Documents holding exactly the quotes the rules cite, as a converter
    // might have written them: one quote's white space and apostrophes changed.
    let mut documents: std::collections::BTreeMap<String, String> = Default::default();
    for b in set.boards.values().flatten() {
        for r in &b.rules {
            let file = r.source.file.clone().unwrap_or_else(|| b.source.clone());
            let text = documents.entry(file).or_default();
            text.push_str(&r.source.quote.replace(' ', "\n  "));
            text.push('\n');
            for v in r.variants.iter().filter_map(|v| v.source.as_ref()) {
                text.push_str(&v.quote);
                text.push('\n');
            }
        }
    }
    assert!(documents.len() >= 5, "{:?}", documents.keys());
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, text) in &documents {
        std::fs::write(dir.path().join(file), text).expect("write");
    }
    assert_eq!(rules::check_sources(&set, dir.path()), Vec::<String>::new());

    // A quote its document does not hold, and a document that is not there.
    let bolton = documents
        .keys()
        .find(|f| f.starts_with("004_"))
        .expect("Bolton's document");
    let text = &documents[bolton];
    let cut = text.replace("IRO", "chair");
    std::fs::write(dir.path().join(bolton), cut).expect("write");
    let barnsley = documents
        .keys()
        .find(|f| f.starts_with("001_"))
        .expect("Barnsley's document");
    std::fs::remove_file(dir.path().join(barnsley)).expect("remove");
    let problems = rules::check_sources(&set, dir.path());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("bolton report-to-chair") && p.contains("is not in 004_")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("barnsley")
            && p.contains(&format!("the source document {barnsley} is not in"))),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .all(|p| p.contains("bolton") || p.contains("barnsley")),
        "{problems:?}"
    );
}

#[test]
fn inherited_rules_quote_the_baseline_document() {
    let set = repo_rules();
    let bolton = set.latest("bolton").expect("bolton");
    assert_eq!(
        bolton
            .rule("referral-decision")
            .expect("inherited")
            .source
            .file
            .as_deref(),
        Some("003_61563a3284bb8811.txt")
    );
    assert_eq!(
        bolton
            .rule("minutes-circulated")
            .expect("own")
            .source
            .file
            .as_deref(),
        Some("004_e0569cb7e635cf33.txt")
    );
    assert_eq!(
        bolton
            .rule("first-review")
            .expect("overridden")
            .source
            .file
            .as_deref(),
        Some("004_e0569cb7e635cf33.txt")
    );
}

// ------------------------------------------------------------ error classes

const BASE: &str = include_str!("../rules/working-together-2010.toml");

fn load(files: &[(&str, &str)]) -> Vec<String> {
    let mut all = vec![("working-together-2010.toml".to_string(), BASE.to_string())];
    all.extend(files.iter().map(|(n, t)| (n.to_string(), t.to_string())));
    match rules::load_texts(all) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// `file:line:column` of the first occurrence of `needle` in `text`.
fn at(file: &str, text: &str, needle: &str) -> String {
    let pos = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in the fixture"));
    let line = text[..pos].matches('\n').count() + 1;
    let col = text[..pos]
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.chars().count())
        + 1;
    format!("{file}:{line}:{col}")
}

const HEADER: &str = r#"[board]
id = "local"
name = "A local board"
extends = "working-together-2010"
version = "1"
effective_from = 2024-01-01
source = "local.txt"
"#;

#[test]
fn an_override_of_an_unknown_rule_is_reported_where_it_is() {
    let text = format!(
        "{HEADER}\n[[override]]\nid = \"icpc-timelyness\"\noffset = \"+10 working days\"\n"
    );
    let errors = load(&[("local.toml", &text)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{}: override of unknown rule \"icpc-timelyness\"",
            at("local.toml", &text, "\"icpc-timelyness\"")
        )),
        "{errors:?}"
    );
}

#[test]
fn an_unknown_event_is_reported_where_it_is() {
    let text = format!("{HEADER}\n[[rule]]\nid = \"x\"\ntitle = \"x\"\nsource = {{ section = \"1\", quote = \"q\" }}\napplies_to = \"conference\"\nstarts = \"conference.helld_at\"\noffset = \"+1 day\"\nmet_by = \"conference.minutes_circulated_at\"\n");
    let errors = load(&[("local.toml", &text)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{}: starts: unknown event \"conference.helld_at\"",
            at("local.toml", &text, "\"conference.helld_at\"")
        )),
        "{errors:?}"
    );
}

#[test]
fn an_event_that_does_not_fit_the_subject_is_reported() {
    let text = format!("{HEADER}\n[[rule]]\nid = \"x\"\ntitle = \"x\"\nsource = {{ section = \"1\", quote = \"q\" }}\napplies_to = \"referral\"\nstarts = \"conference.held_at\"\noffset = \"+1 day\"\nmet_by = \"referral.acknowledged_at\"\n");
    let errors = load(&[("local.toml", &text)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("has no meaning for applies_to = \"referral\""),
        "{errors:?}"
    );
}

#[test]
fn a_bad_offset_is_reported_where_it_is() {
    let text =
        format!("{HEADER}\n[[override]]\nid = \"icpc-timeliness\"\noffset = \"+15 wrking days\"\n");
    let errors = load(&[("local.toml", &text)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{}: offset: offset \"+15 wrking days\": unknown unit",
            at("local.toml", &text, "\"+15 wrking days\"")
        )),
        "{errors:?}"
    );
}

#[test]
fn a_cycle_in_extends_is_reported() {
    let a = HEADER
        .replace("id = \"local\"", "id = \"a\"")
        .replace("extends = \"working-together-2010\"", "extends = \"b\"");
    let b = HEADER
        .replace("id = \"local\"", "id = \"b\"")
        .replace("extends = \"working-together-2010\"", "extends = \"a\"");
    let errors = load(&[("a.toml", &a), ("b.toml", &b)]);
    assert!(
        errors.iter().any(|e| e.starts_with(&format!(
            "{}: extends forms a cycle: a -> b -> a",
            at("a.toml", &a, "\"b\"")
        ))),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with(&format!(
            "{}: extends forms a cycle: b -> a -> b",
            at("b.toml", &b, "\"a\"")
        ))),
        "{errors:?}"
    );
}

#[test]
fn a_missing_source_is_reported_at_the_rule() {
    let text = format!("{HEADER}\n[[rule]]\nid = \"no-source\"\ntitle = \"x\"\napplies_to = \"conference\"\nstarts = \"conference.held_at\"\noffset = \"+1 day\"\nmet_by = \"conference.minutes_circulated_at\"\n");
    let errors = load(&[("local.toml", &text)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0],
        format!(
            "{}: rule \"no-source\" is missing source",
            at("local.toml", &text, "\"no-source\"")
        )
    );
}

#[test]
fn unknown_keys_and_toml_syntax_errors_have_positions() {
    let text = format!("{HEADER}\n[[override]]\nid = \"icpc-timeliness\"\nofset = \"+1 day\"\n");
    let errors = load(&[("local.toml", &text)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&at("local.toml", &text, "ofset")),
        "{errors:?}"
    );
    let text = format!("{HEADER}\n[[override]\nid = \"x\"\n");
    let errors = load(&[("local.toml", &text)]);
    // The header is 7 lines and a blank: the unclosed table header is line 9.
    assert!(
        errors[0].starts_with("local.toml:9:") && errors[0].contains("expected `]`"),
        "{errors:?}"
    );
}

#[test]
fn a_rule_restated_instead_of_overridden_and_an_unknown_parent_are_reported() {
    let text = format!("{HEADER}\n[[rule]]\nid = \"quoracy\"\ntitle = \"x\"\n");
    let errors = load(&[("local.toml", &text)]);
    assert!(
        errors.iter().any(
            |e| e.contains("inherited from working-together-2010: change it with [[override]]")
        ),
        "{errors:?}"
    );
    let text = HEADER.replace(
        "extends = \"working-together-2010\"",
        "extends = \"nowhere\"",
    );
    let errors = load(&[("local.toml", &text)]);
    assert!(
        errors[0].starts_with(&format!(
            "{}: extends unknown board \"nowhere\"",
            at("local.toml", &text, "\"nowhere\"")
        )),
        "{errors:?}"
    );
}

#[test]
fn a_deployment_board_file_loads_from_a_directory_beside_the_shipped_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(repo().join("rules")).expect("rules dir") {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, dir.path().join(p.file_name().expect("name"))).expect("copy");
    }
    let text = format!("{HEADER}\n[[override]]\nid = \"icpc-timeliness\"\noffset = \"+10 working days\"\nsource = {{ section = \"3\", quote = \"within 10 working days\" }}\n");
    std::fs::write(dir.path().join("local.toml"), text).expect("write");
    let set = rules::load_dir(dir.path()).expect("loads");
    let local = set.latest("local").expect("local board");
    assert_eq!(
        local
            .rule("icpc-timeliness")
            .and_then(|r| r.offset.as_ref())
            .map(ToString::to_string)
            .as_deref(),
        Some("+10 working days")
    );
    assert_eq!(
        local
            .rule("first-review")
            .and_then(|r| r.offset.as_ref())
            .map(ToString::to_string)
            .as_deref(),
        Some("+3 months")
    );
    assert!(rules::load_dir(Path::new("/nonexistent-cpwatch-rules")).is_err());
}

#[test]
fn a_board_removes_an_inherited_rule_with_its_reason() {
    let text = format!(
        "{HEADER}\n[[remove]]\nid = \"initial-assessment\"\nreason = \"replaced in 2013\"\n\n[[override]]\nid = \"icpc-timeliness\"\noffset = \"+10 working days\"\nsource = {{ section = \"3\", quote = \"within 10 working days\" }}\n\n[[rule]]\nid = \"local-flag\"\ntitle = \"A local flag\"\nsource = {{ section = \"4\", quote = \"a flag\" }}\nkind = \"standard\"\napplies_to = \"child_conference\"\nstandard = {{ check = \"exception_recorded\" }}\n"
    );
    let all = vec![
        ("working-together-2010.toml".to_string(), BASE.to_string()),
        ("local.toml".to_string(), text),
    ];
    let set = rules::load_texts(all).expect("loads");
    let local = set.latest("local").expect("local board");
    assert!(local.rule("initial-assessment").is_none());
    assert_eq!(local.removed.len(), 1);
    assert_eq!(local.removed[0].id, "initial-assessment");
    assert_eq!(local.removed[0].reason, "replaced in 2013");
    let l = set.lineage(local);
    assert_eq!(l.parent.as_deref(), Some("working-together-2010"));
    assert_eq!(l.overridden, ["icpc-timeliness"]);
    assert_eq!(l.added, ["local-flag"]);
    assert!(l.inherited.contains(&"core-assessment"));
    assert!(!l.inherited.contains(&"initial-assessment"));
    assert!(!l.inherited.contains(&"icpc-timeliness"));
    assert_eq!(l.removed.len(), 1);

    // Only an inherited rule can be removed, and only with a reason.
    let text = format!("{HEADER}\n[[remove]]\nid = \"no-such-rule\"\nreason = \"x\"\n");
    let errors = load(&[("local.toml", &text)]);
    assert!(
        errors[0].starts_with(&format!(
            "{}: remove of rule \"no-such-rule\", which is not inherited",
            at("local.toml", &text, "\"no-such-rule\"")
        )),
        "{errors:?}"
    );
    let text = format!("{HEADER}\n[[remove]]\nid = \"quoracy\"\nreason = \" \"\n");
    let errors = load(&[("local.toml", &text)]);
    assert!(errors[0].contains("needs a reason"), "{errors:?}");
}

#[test]
fn boards_inherit_the_baseline_by_era_and_jurisdiction() {
    let set = repo_rules();
    let has = |b: &str, r: &str| set.latest(b).and_then(|x| x.rule(r)).is_some();
    // Pan-Dorset's local notes are Pan-Dorset's alone.
    for r in ["strategy-discussion-same-day", "child-seen-24h"] {
        assert!(has("pan-dorset", r), "{r}");
        for b in [
            "working-together-2010",
            "barnsley",
            "bolton",
            "hampshire-4lscb",
            "cwm-taf-morgannwg",
        ] {
            assert!(!has(b, r), "{b} {r}");
        }
    }
    // England's 2010 assessments: not in a 2024 procedure, nor in Wales.
    for r in ["initial-assessment", "core-assessment"] {
        assert!(
            has("barnsley", r) && !has("bolton", r) && !has("cwm-taf-morgannwg", r),
            "{r}"
        );
    }
    let bolton = set.latest("bolton").expect("bolton");
    assert!(
        bolton.removed.iter().all(|r| r.reason.contains("2013")),
        "{:?}",
        bolton.removed
    );
    // Wales keeps only the conference process.
    for r in [
        "referral-acknowledged",
        "referral-decision",
        "transfer-in-conference",
    ] {
        assert!(!has("cwm-taf-morgannwg", r), "{r}");
    }
    assert!(has("cwm-taf-morgannwg", "first-review") && has("cwm-taf-morgannwg", "age-18-review"));
}

#[test]
fn citations_name_the_paragraph_their_sentence_is_in() {
    let set = repo_rules();
    let section = |b: &str, r: &str| {
        set.latest(b)
            .and_then(|x| x.rule(r))
            .map(|r| r.source.section.clone())
    };
    assert_eq!(
        section("working-together-2010", "referral-acknowledged").as_deref(),
        Some("2.35")
    );
    assert_eq!(
        section("pan-dorset", "child-seen-24h").as_deref(),
        Some("Pan-Dorset note after 2.60")
    );
}

#[test]
fn sources_cite_the_document_and_its_paragraph_or_section() {
    let set = repo_rules();
    let cite = |b: &str, r: &str| {
        set.latest(b)
            .and_then(|x| x.rule(r))
            .map(|r| r.source.citation())
            .expect("rule")
    };
    // An inherited rule cites the document it comes from, not the board's.
    assert_eq!(
        cite("barnsley", "referral-decision"),
        "Working Together to Safeguard Children (HM Government, 2010), paragraph 2.36, as reproduced in the Pan-Dorset Inter-Agency Safeguarding Procedures, chapter 2 (November 2010)"
    );
    assert_eq!(
        cite("barnsley", "minutes-circulated"),
        "Minimum Standards for Child Protection Conferences (Barnsley Safeguarding Children Board, undated), section \u{201c}9. Reviewing Period\u{201d}"
    );
    // Every rule of every board names a document, never only a file.
    for b in set.boards.values().flatten() {
        for r in &b.rules {
            assert!(r.source.document.is_some(), "{} {}", b.id, r.id);
            assert!(!r.source.citation().contains(".txt"), "{} {}", b.id, r.id);
        }
    }
}
