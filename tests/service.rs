//! `cpwatch run` as a process: readiness, a second instance on one SQLite
//! database, SIGHUP reloads, and SIGTERM.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use common::http_get;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Service {
    child: Child,
    port: u16,
    stderr: std::path::PathBuf,
}

impl Service {
    fn start(dir: &Path, config: &Path) -> Service {
        Service::start_with(dir, config, Command::new(env!("CARGO_BIN_EXE_cpwatch")))
    }

    /// Started by `command` (the binary, or a wrapper that runs it).
    fn start_with(dir: &Path, config: &Path, mut command: Command) -> Service {
        let stderr = dir.join(format!("stderr-{}.log", std::process::id()));
        let child = command
            .args(["run", "--config"])
            .arg(config)
            .current_dir(dir)
            .env("CPWATCH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("cpwatch run");
        let port = std::fs::read_to_string(config)
            .ok()
            .and_then(|t| {
                t.split("127.0.0.1:")
                    .nth(1)
                    .and_then(|p| p.split('"').next())
                    .and_then(|p| p.parse().ok())
            })
            .expect("port in config");
        Service {
            child,
            port,
            stderr,
        }
    }

    fn wait_for(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; stderr:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        http_get(self.port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, port: u16, rules: &Path) -> std::path::PathBuf {
    let path = dir.join("cpwatch.toml");
    std::fs::write(
        &path,
        format!(
            "database_url = \"sqlite://{}\"\nrules_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[mail]\ntransport = \"file\"\ndirectory = \"{}\"\nfrom = \"cpwatch <cp@test.cpwatch.example>\"\n",
            dir.join("cases.db").display(),
            rules.display(),
            dir.join("outbox").display()
        ),
    )
    .expect("config");
    path
}

fn rules_copy(dir: &Path) -> std::path::PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    for (name, text) in cpwatch::domain::rules::BUILT_IN {
        std::fs::write(rules.join(name), text).expect("copy");
    }
    rules
}

const LOCAL: &str = "[board]\nid = \"local\"\nname = \"Local board\"\nextends = \"working-together-2010\"\nversion = \"1\"\neffective_from = 2024-01-01\nsource = \"local.txt\"\n";

#[test]
fn sighup_applies_good_rules_and_keeps_the_old_ones_when_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = rules_copy(dir.path());
    let config = write_config(dir.path(), free_port(), &rules);
    let mut s = Service::start(dir.path(), &config);
    s.wait_for("ready", || {
        http_get(s.port, "/readyz").is_some_and(|(c, _)| c == 200)
    });
    assert!(!s.metrics().contains("board=\"local\""));

    std::fs::write(rules.join("local.toml"), LOCAL).expect("write");
    s.signal("HUP");
    s.wait_for("the new board in the metrics", || {
        s.metrics()
            .contains("cpwatch_rules_loaded{board=\"local\"}")
    });

    std::fs::write(
        rules.join("broken.toml"),
        LOCAL.replace("id = \"local\"", "id = \"broken\"").replace(
            "extends = \"working-together-2010\"",
            "extends = \"nowhere\"",
        ),
    )
    .expect("write");
    s.signal("HUP");
    s.wait_for("the reload to be refused", || {
        s.log()
            .contains("reload failed: keeping the configuration and rules in force")
    });
    assert!(
        s.log().contains("broken.toml"),
        "the log says which file is broken:\n{}",
        s.log()
    );
    assert!(
        s.metrics()
            .contains("cpwatch_rules_loaded{board=\"local\"}"),
        "the old rules stay"
    );
    assert_eq!(http_get(s.port, "/healthz").map(|(c, _)| c), Some(200));

    s.signal("TERM");
    let status = s.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{}", s.log());
    assert!(s.log().contains("stopped"));
}

/// Clients that connect and send nothing, more than the service may hold
/// open (run here with 128 file descriptors), do not stop `/metrics`: each
/// is dropped when it has sent no headers within
/// `http.header_timeout_seconds`, and at most `http.max_connections` are
/// held at once (fails without them: the service runs out of descriptors
/// and the scrape is never answered).
#[test]
fn slow_clients_do_not_stop_the_endpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = rules_copy(dir.path());
    let port = free_port();
    let config = write_config(dir.path(), port, &rules);
    let text = std::fs::read_to_string(&config).expect("config");
    let listen = format!("listen = \"127.0.0.1:{port}\"\n");
    std::fs::write(
        &config,
        text.replace(
            &listen,
            &format!("{listen}max_connections = 32\nheader_timeout_seconds = 1\n"),
        ),
    )
    .expect("config");
    let mut limited = Command::new("prlimit");
    limited.args(["--nofile=128:128", "--", env!("CARGO_BIN_EXE_cpwatch")]);
    let s = Service::start_with(dir.path(), &config, limited);
    s.wait_for("ready", || {
        http_get(s.port, "/readyz").is_some_and(|(c, _)| c == 200)
    });
    let idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("connect"))
        .collect();
    let scrape = http_get(s.port, "/metrics");
    assert!(
        scrape
            .as_ref()
            .is_some_and(|(c, b)| *c == 200 && b.contains("cpwatch_leader")),
        "no answer behind {} idle clients; stderr:\n{}",
        idle.len(),
        s.log()
    );
    drop(idle);
}

#[test]
fn a_second_run_on_the_same_sqlite_database_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = rules_copy(dir.path());
    let config = write_config(dir.path(), free_port(), &rules);
    let first = Service::start(dir.path(), &config);
    first.wait_for("ready", || {
        http_get(first.port, "/readyz").is_some_and(|(c, _)| c == 200)
    });
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).expect("dir");
    let second_config = other.join("cpwatch.toml");
    let text = std::fs::read_to_string(&config).expect("config").replace(
        &format!("127.0.0.1:{}", first.port),
        &format!("127.0.0.1:{}", free_port()),
    );
    std::fs::write(&second_config, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_cpwatch"))
        .args(["run", "--config"])
        .arg(&second_config)
        .current_dir(&other)
        .output()
        .expect("second run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another cpwatch is already running"), "{err}");
}

#[test]
fn tells_systemd_when_ready_pings_the_watchdog_and_says_when_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = rules_copy(dir.path());
    let config = write_config(dir.path(), free_port(), &rules);
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // exec keeps the shell's pid, so WATCHDOG_PID names cpwatch itself.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "WATCHDOG_PID=$$ WATCHDOG_USEC=400000 exec {} run --config {}",
            env!("CARGO_BIN_EXE_cpwatch"),
            config.display()
        ))
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cpwatch run");
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        let n = socket.recv(&mut buf).expect("a notification within 20 s");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(ok.success());
    while !seen.contains("STOPPING=1") {
        let n = socket.recv(&mut buf).expect("STOPPING within 20 s");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed here: the unit is not verified");
        return;
    };
    assert!(probe.status.success());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(repo.join("systemd/cpwatch.service")).expect("unit");
    let dir = tempfile::tempdir().expect("tempdir");
    let verify = |text: &str| {
        let path = dir.path().join("cpwatch.service");
        std::fs::write(
            &path,
            text.replace("/usr/local/bin/cpwatch", env!("CARGO_BIN_EXE_cpwatch")),
        )
        .expect("write");
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze")
    };
    let out = verify(&unit);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The check can fail: a unit with an unknown service type does not pass.
    let out = verify(&unit.replace("Type=notify", "Type=notifyy"));
    assert!(
        !out.status.success() || !out.stderr.is_empty(),
        "a broken unit passed verification"
    );
}

/// Message-IDs of the messages the server accepted.
fn message_ids(received: &[(Vec<String>, String)]) -> Vec<String> {
    received
        .iter()
        .filter_map(|(_, m)| {
            m.lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .map(|v| v.trim().to_string())
        })
        .collect()
}

#[tokio::test]
async fn sigkill_while_sending_loses_nothing_and_duplicates_only_what_a_kill_can_cause() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = rules_copy(dir.path());
    let db = dir.path().join("cases.db");
    let url = format!("sqlite://{}", db.display());
    let demo = Command::new(env!("CARGO_BIN_EXE_cpwatch"))
        .args(["demo", "--children", "300", "--database", &url])
        .current_dir(dir.path())
        .output()
        .expect("demo");
    assert!(demo.status.success());
    let server = SmtpServer::start_on(free_port());
    server.set_mode("delay 0.03");
    let port = free_port();
    let mut boards = String::new();
    for (name, _) in cpwatch::domain::rules::BUILT_IN {
        let id = name.trim_end_matches(".toml");
        boards.push_str(&format!("[boards.{id}]\nconference_service = \"cs@{id}.test\"\nsafeguarding_manager = \"sm@{id}.test\"\n"));
    }
    let config = dir.path().join("cpwatch.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{url}\"\nrules_dir = \"{}\"\n[schedule]\nevaluate = \"* * * * * *\"\ndigest_at = \"00:00\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[mail]\ntransport = \"smtp\"\nfrom = \"cpwatch <cp@test.cpwatch.example>\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nallow_plaintext = true\n[reminders]\nsend_window = \"00:00-23:59\"\nworking_days_only = false\n{boards}",
            rules.display(),
            server.port
        ),
    )
    .expect("config");

    // Kill it at many points: before, during and after its send loop.
    let pauses_ms = [700, 1100, 1500, 1900, 2300, 900, 1300, 2700];
    for pause in pauses_ms {
        let mut s = Service::start(dir.path(), &config);
        std::thread::sleep(Duration::from_millis(pause));
        s.child.kill().expect("SIGKILL");
        s.child.wait().expect("wait");
    }
    let kills = pauses_ms.len();

    // A last run finishes the work.
    let mut s = Service::start(dir.path(), &config);
    s.wait_for("ready", || {
        http_get(s.port, "/readyz").is_some_and(|(c, _)| c == 200)
    });
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let (all, pending): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(status = 'pending'), 0) FROM cpwatch_notifications",
        )
        .fetch_one(&mut conn)
        .await
        .expect("log");
        if all > 0 && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < until,
            "still {pending} of {all} pending; stderr:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.signal("TERM");
    assert_eq!(s.child.wait().expect("wait").code(), Some(0));

    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, message_id FROM cpwatch_notifications")
            .fetch_all(&mut conn)
            .await
            .expect("log");
    assert!(rows.len() > 100, "{} notifications", rows.len());
    assert!(
        rows.iter().all(|(status, _)| status == "sent"),
        "every notification delivered"
    );
    let received = message_ids(&server.received());
    for (_, id) in &rows {
        let id = id.as_deref().expect("a sent row has its Message-ID");
        assert!(
            received.iter().any(|r| r == id),
            "{id} logged as sent but never received"
        );
    }
    let mut distinct = received.clone();
    distinct.sort();
    distinct.dedup();
    let duplicates = received.len() - distinct.len();
    assert!(
        duplicates <= kills,
        "{duplicates} duplicate messages after {kills} kills"
    );
    eprintln!(
        "{} notifications in {} messages, {duplicates} duplicates after {kills} kills",
        rows.len(),
        distinct.len()
    );
}

/// `config check` refuses what the service could not act on, names the key,
/// and creates nothing: no file at all, a schedule that never fires,
/// escalation and retry settings that make no sense, a missing directory.
#[test]
fn config_check_refuses_what_the_service_cannot_act_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cpwatch"))
            .current_dir(dir.path())
            .args(["config", "check"])
            .args(args)
            .env_remove("CPWATCH_DATABASE_URL")
            .output()
            .expect("cpwatch");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = check(&[]);
    assert!(
        code == Some(2) && err.contains("no configuration file"),
        "{code:?} {err}"
    );
    assert!(!dir.path().join("cpwatch.db").exists(), "nothing created");

    let rules = rules_copy(dir.path());
    let good = write_config(dir.path(), free_port(), &rules);
    let base = std::fs::read_to_string(&good).expect("config");
    // The database must exist for a check: make it as a user would.
    let db = format!("sqlite://{}", dir.path().join("cases.db").display());
    let made = Command::new(env!("CARGO_BIN_EXE_cpwatch"))
        .args(["migrate", "--database", &db])
        .output()
        .expect("migrate");
    assert!(made.status.success());
    let (code, err) = check(&["--config", good.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{err}");
    for (extra, key) in [
        (
            "[schedule]\nevaluate = \"0 0 0 30 2 *\"\n",
            "schedule.evaluate",
        ),
        (
            "[reminders]\nescalate_after_working_days = -3\n",
            "reminders.escalate_after_working_days",
        ),
        (
            "[reminders]\nbackoff_seconds = 7200\nmax_backoff_seconds = 3600\n",
            "reminders.backoff_seconds",
        ),
        (
            "[reminders]\ntemplates_dir = \"/nonexistent/templates\"\n",
            "reminders.templates_dir",
        ),
        (
            "[export]\ndirectory = \"/nonexistent/exports\"\n",
            "export.directory",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, format!("{base}{extra}")).expect("write");
        let (code, err) = check(&["--config", path.to_str().expect("path")]);
        assert!(
            code == Some(2) && err.contains(key),
            "{extra}: {code:?} {err}"
        );
    }
}
