//! The Prometheus configuration, alert rules and Grafana dashboards: promtool's
//! checks and unit tests, and every PromQL expression run against a real
//! Prometheus scraping a running cpwatch on demo data.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use common::http_get;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .expect("promtool (apt-get install prometheus; .ci/run does)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_the_config_and_rules_and_runs_their_unit_tests() {
    promtool(&["check", "config", "prometheus.yml"]);
    promtool(&["check", "rules", "cpwatch-alerts.yml"]);
    promtool(&["test", "rules", "cpwatch-alerts.test.yml"]);
    // Every alert has a unit test.
    let rules =
        std::fs::read_to_string(deploy().join("prometheus/cpwatch-alerts.yml")).expect("rules");
    let tests = std::fs::read_to_string(deploy().join("prometheus/cpwatch-alerts.test.yml"))
        .expect("tests");
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no promtool test"
        );
    }
}

fn dashboards() -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = std::fs::read_dir(deploy().join("grafana/dashboards"))
        .expect("dashboards")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.display().to_string(),
                serde_json::from_str(&std::fs::read_to_string(&p).expect("read"))
                    .expect("dashboard JSON parses"),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(v.len(), 4);
    v
}

/// Every (dashboard, panel title, expression).
fn dashboard_exprs() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                out.push((
                    file.clone(),
                    p["title"].as_str().unwrap_or("").to_string(),
                    t["expr"].as_str().expect("expr").to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn dashboards_use_only_the_provisioned_datasource_and_explain_every_panel() {
    let provisioning =
        std::fs::read_to_string(deploy().join("grafana/provisioning/datasources/cpwatch.yml"))
            .expect("datasource");
    let uid = provisioning
        .lines()
        .find_map(|l| l.trim().strip_prefix("uid: "))
        .expect("a datasource uid")
        .to_string();
    let titles = [
        "Child protection timescales: compliance overview",
        "Child protection timescales: agencies",
        "Child protection timescales: teams",
        "cpwatch: service health",
    ];
    for (file, d) in dashboards() {
        assert!(
            titles.contains(&d["title"].as_str().unwrap_or("")),
            "{file}"
        );
        let mut datasources = Vec::new();
        for p in d["panels"].as_array().expect("panels") {
            assert!(
                !p["title"].as_str().unwrap_or("").is_empty()
                    && !p["description"].as_str().unwrap_or("").is_empty(),
                "{file}: a panel without title or description"
            );
            assert!(
                p["fieldConfig"]["defaults"]["unit"].is_string(),
                "{file}: {} has no unit",
                p["title"]
            );
            datasources.push(&p["datasource"]);
            datasources.extend(
                p["targets"]
                    .as_array()
                    .expect("targets")
                    .iter()
                    .map(|t| &t["datasource"]),
            );
        }
        datasources.extend(
            d["templating"]["list"]
                .as_array()
                .expect("templating")
                .iter()
                .map(|v| &v["datasource"]),
        );
        for ds in datasources {
            assert_eq!(ds["uid"].as_str(), Some(uid.as_str()), "{file}: {ds}");
        }
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn api(port: u16, path: &str) -> Value {
    let (code, body) =
        http_get(port, path).unwrap_or_else(|| panic!("Prometheus did not answer {path}"));
    let body = body.trim();
    // A chunked body: the JSON sits between the chunk sizes.
    let json = body
        .find('{')
        .and_then(|a| body.rfind('}').map(|b| &body[a..=b]))
        .unwrap_or(body);
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    assert!(
        code == 200 || code == 400 || code == 422,
        "{path}: HTTP {code}"
    );
    v
}

fn query(port: u16, expr: &str) -> Value {
    api(
        port,
        &format!(
            "/api/v1/query?query={}",
            cpwatch::service::config::percent_encode(expr)
        ),
    )
}

fn labels(port: u16, label: &str, matcher: &str) -> Vec<String> {
    let v = api(
        port,
        &format!(
            "/api/v1/label/{label}/values?match[]={}",
            cpwatch::service::config::percent_encode(matcher)
        ),
    );
    v["data"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|x| x.as_str())
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// The measure of an alert expression: its left side, before the threshold comparison.
fn measure(expr: &str) -> &str {
    [" == ", " != ", " >= ", " <= ", " > ", " < "]
        .iter()
        .filter_map(|op| expr.rfind(op))
        .max()
        .map_or(expr, |i| expr[..i].trim())
}

#[test]
fn every_expression_returns_series_from_a_real_prometheus_scraping_cpwatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("cases.db").display());
    // The demo is made as at now, so whether an agency's report is overdue
    // at this moment depends on the day: take the first seed whose demo has
    // one, as the agency panels need.
    let agency_overdue = (1..=20).any(|seed| {
        let demo = Command::new(env!("CARGO_BIN_EXE_cpwatch"))
            .args(["demo", "--children", "250", "--force", "--database", &db])
            .args(["--seed", &seed.to_string()])
            .current_dir(dir.path())
            .output()
            .expect("demo");
        assert!(demo.status.success());
        let check = Command::new(env!("CARGO_BIN_EXE_cpwatch"))
            .args([
                "check",
                "--status",
                "overdue",
                "--format",
                "json",
                "--database",
                &db,
            ])
            .current_dir(dir.path())
            .output()
            .expect("check");
        let v: Value = serde_json::from_slice(&check.stdout).expect("check's JSON");
        v["obligations"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| !o["agency"].is_null()))
    });
    assert!(
        agency_overdue,
        "no demo seed has an agency's report overdue now"
    );
    let cp_port = free_port();
    let config = dir.path().join("cpwatch.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{db}\"\n[schedule]\nevaluate = \"*/2 * * * * *\"\ndigest_at = \"00:00\"\n[http]\nlisten = \"127.0.0.1:{cp_port}\"\n[mail]\ntransport = \"file\"\ndirectory = \"{}\"\n[reminders]\nsend_window = \"00:00-23:59\"\nworking_days_only = false\n[boards.barnsley]\nconference_service = \"cs@barnsley.test\"\n",
            dir.path().join("outbox").display()
        ),
    )
    .expect("config");
    let _cpwatch = Proc(
        Command::new(env!("CARGO_BIN_EXE_cpwatch"))
            .args(["run", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cpwatch run"),
    );

    let prom_port = free_port();
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: cpwatch\n    static_configs:\n      - targets: [\"127.0.0.1:{cp_port}\"]\n",
            deploy().join("prometheus/cpwatch-alerts.yml").display()
        ),
    )
    .expect("prometheus config");
    let _prometheus = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (apt-get install prometheus; .ci/run does)"),
    );

    // Wait for several scrapes of a cpwatch that has evaluated.
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let v = http_get(
            prom_port,
            &format!(
                "/api/v1/query?query={}",
                cpwatch::service::config::percent_encode(
                    "count_over_time(cpwatch_ticks_total{result=\"ok\"}[1m])"
                )
            ),
        )
        .map(|(_, b)| b)
        .unwrap_or_default();
        if v.contains("\"result\":[{") && !v.contains("\"value\":[0") {
            let n: f64 = v
                .rsplit("\"value\":[")
                .next()
                .and_then(|x| x.split(',').nth(1))
                .and_then(|x| {
                    x.trim_matches(|c: char| c == '"' || c == ']' || c == '}')
                        .parse()
                        .ok()
                })
                .unwrap_or(0.0);
            if n >= 5.0 {
                break;
            }
        }
        assert!(
            Instant::now() < until,
            "Prometheus never scraped cpwatch: {v}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let board = "barnsley".to_string();
    assert!(labels(prom_port, "board", "cpwatch_obligations").contains(&board));
    let agency = labels(
        prom_port,
        "agency",
        &format!("cpwatch_on_time_ratio_by_agency{{board=\"{board}\"}}"),
    )
    .into_iter()
    .next()
    .expect("an agency");
    let team = labels(
        prom_port,
        "team",
        &format!("cpwatch_on_time_ratio_by_team{{board=\"{board}\"}}"),
    )
    .into_iter()
    .next()
    .expect("a team");
    // With every variable at "All" (the dashboards' default) each expression must return series;
    // with one particular board, rule, agency and team it must still be valid.
    let all = |e: &str| {
        e.replace("$__rate_interval", "20s")
            .replace("$__range", "1m")
            .replace("$board", ".*")
            .replace("$rule", ".*")
            .replace("$agency", ".*")
            .replace("$team", ".*")
    };
    let substitute = |e: &str| {
        e.replace("$__rate_interval", "20s")
            .replace("$__range", "1m")
            .replace("$board", &board)
            .replace("$rule", "icpc-timeliness")
            .replace("$agency", &agency)
            .replace("$team", &team)
    };

    let mut problems = Vec::new();
    let mut checked = 0;
    for (file, title, expr) in dashboard_exprs() {
        checked += 1;
        let e = all(&expr);
        let v = query(prom_port, &e);
        if v["status"] != "success" {
            problems.push(format!("{file} / {title}: {e}: invalid: {}", v["error"]));
        } else if v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            problems.push(format!("{file} / {title}: {e}: no series"));
        }
        let e = substitute(&expr);
        let v = query(prom_port, &e);
        if v["status"] != "success" {
            problems.push(format!("{file} / {title}: {e}: invalid: {}", v["error"]));
        }
    }
    // Template variable queries name series that exist.
    for (file, d) in dashboards() {
        for var in d["templating"]["list"].as_array().expect("vars") {
            let q = var["query"]["query"].as_str().expect("query");
            let inner = q.trim_start_matches("label_values(").trim_end_matches(')');
            let (matcher, label) = inner
                .rsplit_once(", ")
                .expect("label_values(series, label)");
            if labels(prom_port, label, &substitute(matcher)).is_empty() {
                problems.push(format!("{file}: variable {} has no values", var["name"]));
            }
        }
    }
    let rules =
        std::fs::read_to_string(deploy().join("prometheus/cpwatch-alerts.yml")).expect("rules");
    for expr in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
    {
        checked += 1;
        let full = query(prom_port, expr);
        if full["status"] != "success" {
            problems.push(format!("alert {expr}: invalid: {}", full["error"]));
        }
        let m = query(prom_port, measure(expr));
        if m["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            problems.push(format!("alert measure {}: no series", measure(expr)));
        }
    }
    let alerts = rules
        .lines()
        .filter(|l| l.trim().starts_with("expr: "))
        .count();
    assert_eq!(checked, dashboard_exprs().len() + alerts);
    assert!(alerts == 8 && checked > 30, "{checked} expressions");
    // Prometheus itself evaluates every alert rule without error.
    let r = api(prom_port, "/api/v1/rules");
    for g in r["data"]["groups"].as_array().expect("groups") {
        for rule in g["rules"].as_array().expect("rules") {
            if rule["health"] != "ok" && rule["health"] != "unknown" {
                problems.push(format!(
                    "rule {}: {} {}",
                    rule["name"], rule["health"], rule["lastError"]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
