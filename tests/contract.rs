//! The case-state contract is written down once for people
//! (`docs/case-schema.md`) and twice for databases (the migrations): all
//! three, and the column list cpwatch reads and writes, agree.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use cpwatch::store::TABLES;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

/// Tables and their columns in the document's table: `| `name` | `col`, `col?` (…), … |`.
fn documented() -> Vec<(String, Vec<String>)> {
    // The first table of the document is the contract's.
    read("docs/case-schema.md")
        .lines()
        .skip_while(|l| !l.starts_with("| table |"))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let table = cells[1].trim_matches('`').to_string();
            (table, columns_of(cells[2]))
        })
        .collect()
}

/// The `code spans` of a cell outside brackets: the brackets hold the
/// column's type or its values, also written as code.
fn columns_of(cell: &str) -> Vec<String> {
    let (mut depth, mut code, mut columns, mut name) = (0, false, Vec::new(), String::new());
    for ch in cell.chars() {
        match ch {
            '`' if depth == 0 => {
                if code {
                    columns.push(name.trim_end_matches('?').to_string());
                    name.clear();
                }
                code = !code;
            }
            '(' if !code => depth += 1,
            ')' if !code => depth -= 1,
            _ if code && depth == 0 => name.push(ch),
            _ => {}
        }
    }
    columns
}

/// Tables and columns of a database's migrations: the first one's `CREATE
/// TABLE` statements (less `updated_at`), then each later `ALTER TABLE … ADD
/// COLUMN`, in order.
fn migrated(database: &str) -> Vec<(String, Vec<String>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(database);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the migrations")
        .map(|e| {
            e.expect("a migration")
                .file_name()
                .into_string()
                .expect("a name")
        })
        .collect();
    files.sort();
    let mut tables = created(&format!("migrations/{database}/0001_case_tables.sql"));
    for file in files {
        for line in read(&format!("migrations/{database}/{file}")).lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["ALTER", "TABLE", table, "ADD", "COLUMN", rest @ ..] = words.as_slice() {
                let column = rest.iter().find(|w| !["IF", "NOT", "EXISTS"].contains(w));
                let (_, columns) = tables
                    .iter_mut()
                    .find(|(t, _)| t == table)
                    .expect("a column added to a contract table");
                columns.push(column.expect("a column's name").to_string());
            }
        }
    }
    tables
}

/// Tables and columns of a migration's `CREATE TABLE` statements, less `updated_at`.
fn created(path: &str) -> Vec<(String, Vec<String>)> {
    let sql = read(path);
    let mut tables = Vec::new();
    for block in sql.split("CREATE TABLE IF NOT EXISTS ").skip(1) {
        let (name, body) = block.split_once('(').expect("a column list");
        let body = &body[..body.find("\n);").expect("the end of the statement")];
        let columns = body
            .lines()
            .map(str::trim)
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| {
                c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
                    && !["primary", "unique", "foreign", "check", "constraint"].contains(c)
            })
            .filter(|c| *c != "updated_at")
            .map(String::from)
            .collect();
        tables.push((name.trim().to_string(), columns));
    }
    tables
}

fn listed() -> Vec<(String, Vec<String>)> {
    TABLES
        .iter()
        .map(|(t, cols)| (t.to_string(), cols.iter().map(|c| c.to_string()).collect()))
        .collect()
}

#[test]
fn the_contract_document_the_migrations_and_the_column_list_agree() {
    let listed = listed();
    assert_eq!(listed.len(), 15, "{listed:?}");
    assert_eq!(
        documented(),
        listed,
        "docs/case-schema.md against store::TABLES"
    );
    for database in ["sqlite", "postgres"] {
        assert_eq!(
            migrated(database),
            listed,
            "migrations/{database} against store::TABLES"
        );
    }
    // Every column added after the first version is one of store::ADDED,
    // read as NULL where a database lacks it.
    let first: Vec<(String, Vec<String>)> = created("migrations/postgres/0001_case_tables.sql");
    let added: Vec<(String, String)> = listed
        .iter()
        .flat_map(|(t, cols)| {
            let before = first.iter().find(|(f, _)| f == t).map(|(_, c)| c.clone());
            cols.iter()
                .filter(move |c| !before.iter().flatten().any(|b| b == *c))
                .map(move |c| (t.clone(), c.clone()))
        })
        .collect();
    let declared: Vec<(String, String)> = cpwatch::store::ADDED
        .iter()
        .map(|(t, c, _)| (t.to_string(), c.to_string()))
        .collect();
    assert_eq!(added, declared, "store::ADDED against the migrations");
}
