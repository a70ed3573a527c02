//! The end-to-end benchmark behind `cargo bench --bench end_to_end`: for each
//! size it seeds a PostgreSQL database, times load + evaluation beside the
//! raw-fetch floor measured in the same run, runs the real service for its
//! peak memory and `/metrics` scrape time, times a one-year export, and writes
//! the results as `BENCHMARKS.md`. The test suite runs a small size of it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant as Clock};

use anyhow::{bail, Context};
use futures_util::TryStreamExt;
use nix::time::ClockId;
use nix::unistd::Pid;
use sqlx::{Connection, Executor};

use cpwatch::domain::case::Instant;
use cpwatch::domain::engine::Engine;
use cpwatch::domain::evaluate::{Draft, Sink};
use cpwatch::service::incremental::{Kept, NeedFull};
use cpwatch::store;

// The includer provides the HTTP helper (benches/harness/http.rs), which the
// tests include once, beside the harness.
use crate::http_get;

/// What to measure, and where.
pub struct Options {
    /// A PostgreSQL URL whose user may create databases; each size gets its own
    /// database `<database_prefix>_<children>` beside it.
    pub admin_url: String,
    pub database_prefix: String,
    /// The `cpwatch` binary whose service and export are measured.
    pub binary: PathBuf,
    /// The instant the synthetic data and the evaluation are as at.
    pub at: Instant,
    /// Each time is the best of this many runs.
    pub runs: usize,
    /// Also run the service and the export (the slow part of a run).
    pub service: bool,
}

/// The figures for one size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measure {
    pub children: usize,
    pub rows: usize,
    pub obligations: usize,
    /// Seconds to stream every case row with plain SELECTs and discard it.
    pub floor: f64,
    /// CPU seconds the database server's backend used during that floor
    /// (read from that process's CPU clock, so only when the server runs on this machine).
    pub floor_server_cpu: Option<f64>,
    /// CPU seconds this process used during that floor.
    pub floor_client_cpu: Option<f64>,
    /// Seconds to stream the same rows by binary COPY as a load reads them
    /// (`COPY table (columns) TO STDOUT`, or `COPY (SELECT …)` for a view),
    /// and discard them.
    pub copy_floor: f64,
    /// CPU seconds the server's backend and this process used during that.
    pub copy_floor_server_cpu: Option<f64>,
    pub copy_floor_client_cpu: Option<f64>,
    /// Seconds to stream them by the same COPYs on two connections sharing
    /// one snapshot, as a load reads them, and discard them.
    pub copy2_floor: f64,
    pub copy2_floor_server_cpu: Option<f64>,
    pub copy2_floor_client_cpu: Option<f64>,
    /// Seconds to load the case state.
    pub load: f64,
    /// Seconds to evaluate it on one core, keeping every obligation (as
    /// `Engine::evaluate` returns them to `check` and `export`).
    pub evaluate: f64,
    /// Seconds to evaluate it on one core, each obligation handed to the
    /// caller borrowed and not kept: the engine's own work.
    pub evaluate_unkept: f64,
    /// Seconds for a full tick's work: load then evaluate.
    pub full: f64,
    /// Seconds for an incremental tick after 1% of children changed: read the
    /// changed rows, re-evaluate what they touch.
    pub incremental: f64,
    /// Children that incremental tick re-evaluated.
    pub reevaluated: usize,
    /// Peak resident memory of `cpwatch run` after its first tick, in MiB.
    pub service_peak_mib: Option<f64>,
    /// Median milliseconds of a `/metrics` scrape of the running service.
    pub scrape_ms: Option<f64>,
    /// Seconds for `cpwatch export` of one board's year as xlsx.
    pub export: Option<f64>,
    /// The commands people type, each run as a whole process.
    pub commands: Vec<CommandRun>,
}

/// One command as a user runs it, its output read from a pipe: the best
/// wall time of the runs, its peak resident memory, and how much it wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommandRun {
    pub command: String,
    pub wall: f64,
    pub peak_mib: f64,
    pub bytes: u64,
}

impl Measure {
    pub fn ratio(&self) -> f64 {
        self.full / self.floor
    }

    /// An incremental tick's time as a share of a full tick's.
    pub fn incremental_share(&self) -> f64 {
        self.incremental / self.full
    }

    /// The least time a full tick could take on `cores` cores, as a multiple
    /// of the floor: it has the fetch's work to do, server and client (by
    /// COPY on two connections, as a load fetches), and the evaluation's on
    /// top (the engine's own work: a tick keeps few obligations), even were
    /// decoding free and every core kept busy.
    pub fn least_ratio(&self, cores: usize) -> Option<f64> {
        let (server, client) = (self.copy2_floor_server_cpu?, self.copy2_floor_client_cpu?);
        let least = (server + client + self.evaluate_unkept) / cores.max(1) as f64;
        Some(least / self.floor)
    }

    /// Microseconds of a full tick per child.
    pub fn per_child_us(&self) -> f64 {
        self.full * 1e6 / self.children as f64
    }
}

/// The admin URL naming database `name` instead, its parameters (`sslmode`) kept.
fn database_url(admin: &str, name: &str) -> anyhow::Result<String> {
    let (path, query) = admin
        .split_once('?')
        .map_or((admin, None), |(p, q)| (p, Some(q)));
    let (base, _) = path
        .rsplit_once('/')
        .context("the PostgreSQL URL needs a database name, e.g. postgres://postgres@127.0.0.1:5432/postgres")?;
    Ok(match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    })
}

/// Drops the database `measure` made for this size.
pub async fn drop_database(opts: &Options, children: usize) -> anyhow::Result<()> {
    let name = format!("{}_{children}", opts.database_prefix);
    let mut admin = sqlx::PgConnection::connect(&opts.admin_url).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    admin.close().await?;
    Ok(())
}

/// Measures one size, seeding its database first.
pub async fn measure(opts: &Options, children: usize) -> anyhow::Result<Measure> {
    let url = seed_database(opts, children).await?;
    let engine = Engine::load(None, None, None, "working-together-2010")?;
    let mut one_core = Engine::load(None, None, None, "working-together-2010")?;
    one_core.threads = 1;
    let store = store::connect(&url, false).await?;
    let (mut floors, mut ticks) = (Floors::default(), Ticks::default());
    // Interleaved, so the floor and the tick see the same machine and caches.
    for _ in 0..opts.runs.max(1) {
        floors.measure(&url).await?;
        ticks.measure(&*store, &engine, &one_core, opts.at).await?;
    }
    let (incremental, reevaluated) = incremental_ticks(&*store, &engine, &url, opts).await?;
    let (mut service_peak_mib, mut scrape_ms, mut export) = (None, None, None);
    let mut commands = Vec::new();
    if opts.service {
        let (peak, scrape) = service(&opts.binary, &url)?;
        service_peak_mib = Some(peak);
        scrape_ms = Some(scrape);
        export = Some(export_year(&opts.binary, &url, opts.at)?);
        // Interleaved with the COPY floor, as the tick is.
        let mut list = command_list(&url, opts.at, &*store).await?;
        let (import, imported_db) = census_import(opts, children)?;
        list.push(import);
        for _ in 0..3 {
            floors.measure(&url).await?;
            for (name, args) in &list {
                // Each import into a new database, as a first try is.
                std::fs::remove_file(&imported_db).ok();
                let run = time_command(&opts.binary, name, args)?;
                match commands
                    .iter_mut()
                    .find(|c: &&mut CommandRun| c.command == *name)
                {
                    Some(best) if best.wall <= run.wall => {}
                    Some(best) => *best = run,
                    None => commands.push(run),
                }
            }
        }
    }
    let [select, copy, copy2] = floors.best;
    Ok(Measure {
        children,
        rows: floors.rows,
        obligations: ticks.obligations,
        floor: select.secs,
        floor_server_cpu: select.server_cpu,
        floor_client_cpu: select.client_cpu,
        copy_floor: copy.secs,
        copy_floor_server_cpu: copy.server_cpu,
        copy_floor_client_cpu: copy.client_cpu,
        copy2_floor: copy2.secs,
        copy2_floor_server_cpu: copy2.server_cpu,
        copy2_floor_client_cpu: copy2.client_cpu,
        load: ticks.load,
        evaluate: ticks.evaluate,
        evaluate_unkept: ticks.evaluate_unkept,
        full: ticks.full,
        incremental,
        reevaluated,
        service_peak_mib,
        scrape_ms,
        export,
        commands,
    })
}

/// The commands measured, each with its arguments: `check` as a person
/// runs it and for a script, `explain` of a child conferenced with others,
/// and a board's yearly export.
async fn command_list(
    url: &str,
    at: Instant,
    store: &dyn store::Store,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let linked = store
        .ids(
            "SELECT c.reference FROM children c JOIN conference_children cc ON cc.child_id = c.id \
             ORDER BY c.id LIMIT 1",
        )
        .await?;
    let reference = linked.first().context("no child at a conference")?.clone();
    let export = std::env::temp_dir().join(format!("cpwatch-bench-{}.xlsx", std::process::id()));
    let common = ["--database", url, "--at", &at.to_rfc3339()].map(String::from);
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(common.iter().cloned())
            .collect()
    };
    Ok(vec![
        ("check".into(), with(&["check"])),
        (
            "check --format json".into(),
            with(&["check", "--format", "json"]),
        ),
        (
            "check --format jsonl".into(),
            with(&["check", "--format", "jsonl"]),
        ),
        (
            "check --format csv".into(),
            with(&["check", "--format", "csv"]),
        ),
        (
            "explain (one child)".to_string(),
            with(&["explain", &reference]),
        ),
        ("export --board barnsley (a year, xlsx)".into(), {
            let mut args = export_args(at, &export);
            args.extend(["--database".to_string(), url.to_string()]);
            args
        }),
    ])
}

/// `cpwatch import cin-census` of a census return of `children` children
/// (written by `cpwatch seed --census`), into a new SQLite file: the command
/// and the file it makes.
fn census_import(
    opts: &Options,
    children: usize,
) -> anyhow::Result<((String, Vec<String>), std::path::PathBuf)> {
    let dir = std::env::temp_dir();
    let file = dir.join(format!("cpwatch-bench-census-{children}.xml"));
    let db = dir.join(format!("cpwatch-bench-import-{}.db", std::process::id()));
    run(Command::new(&opts.binary)
        .args([
            "seed",
            "--children",
            &children.to_string(),
            "--at",
            &opts.at.to_rfc3339(),
            "--census",
        ])
        .arg(&file))
    .context("writing a census return")?;
    let args = vec![
        "import".to_string(),
        "cin-census".to_string(),
        file.display().to_string(),
        "--database".to_string(),
        format!("sqlite://{}", db.display()),
    ];
    Ok((
        (
            format!("{IMPORT} (a census return, into a new SQLite file)"),
            args,
        ),
        db,
    ))
}

/// The census import's command, as the tables name it.
const IMPORT: &str = "import cin-census";

/// Runs one command under `/usr/bin/time` (for its peak memory), reading
/// its output from a pipe as a script would.
fn time_command(binary: &Path, name: &str, args: &[String]) -> anyhow::Result<CommandRun> {
    let report = std::env::temp_dir().join(format!("cpwatch-bench-time-{}", std::process::id()));
    let started = Clock::now();
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running /usr/bin/time (apt-get install time)")?;
    let mut bytes = 0u64;
    if let Some(mut out) = child.stdout.take() {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = out.read(&mut buf)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
    }
    let status = child.wait()?;
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    let kib: f64 = std::fs::read_to_string(&report)?
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("no peak memory from /usr/bin/time")?;
    std::fs::remove_file(&report).ok();
    Ok(CommandRun {
        command: name.to_string(),
        wall,
        peak_mib: kib / 1024.0,
        bytes,
    })
}

/// A database of its own for this size, filled by `cpwatch seed` as a user
/// runs it; its URL.
async fn seed_database(opts: &Options, children: usize) -> anyhow::Result<String> {
    let name = format!("{}_{children}", opts.database_prefix);
    let url = database_url(&opts.admin_url, &name)?;
    let mut admin = sqlx::PgConnection::connect(&opts.admin_url)
        .await
        .with_context(|| format!("connecting to {}", store::redact(&opts.admin_url)))?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    admin.close().await?;
    let at = opts.at.to_rfc3339();
    run(Command::new(&opts.binary).args([
        "seed",
        "--children",
        &children.to_string(),
        "--database",
        &url,
        "--at",
        &at,
    ]))
    .context("seeding")?;
    Ok(url)
}

/// The best of each floor: plain SELECTs, COPY on one connection, COPY on two.
struct Floors {
    rows: usize,
    best: [Floor; 3],
}

impl Default for Floors {
    fn default() -> Self {
        let none = || Floor {
            rows: 0,
            secs: f64::MAX,
            server_cpu: None,
            client_cpu: None,
        };
        Floors {
            rows: 0,
            best: [none(), none(), none()],
        }
    }
}

impl Floors {
    /// One round of the three floors, each of which must stream the same rows.
    async fn measure(&mut self, url: &str) -> anyhow::Result<()> {
        let rounds = [(Fetch::Select, 1), (Fetch::Copy, 1), (Fetch::Copy, 2)];
        for ((how, connections), best) in rounds.into_iter().zip(&mut self.best) {
            let f = fetch_floor(url, how, connections).await?;
            if matches!(how, Fetch::Select) {
                self.rows = f.rows;
            } else if f.rows != self.rows {
                bail!(
                    "the COPY floor on {connections} connection(s) streamed {} rows, the SELECT floor {}",
                    f.rows,
                    self.rows
                );
            }
            if f.secs < best.secs {
                *best = f;
            }
        }
        Ok(())
    }
}

/// The best full tick, its load, and one-core evaluation keeping every
/// obligation and keeping none.
struct Ticks {
    load: f64,
    full: f64,
    evaluate: f64,
    evaluate_unkept: f64,
    obligations: usize,
}

impl Default for Ticks {
    fn default() -> Self {
        Ticks {
            load: f64::MAX,
            full: f64::MAX,
            evaluate: f64::MAX,
            evaluate_unkept: f64::MAX,
            obligations: 0,
        }
    }
}

impl Ticks {
    async fn measure(
        &mut self,
        store: &dyn store::Store,
        engine: &Engine,
        one_core: &Engine,
        at: Instant,
    ) -> anyhow::Result<()> {
        // A full tick as the service makes one: read everything, evaluate, keep what it acts on.
        let started = Clock::now();
        let read = store.load_since(None).await?;
        let loaded = started.elapsed().as_secs_f64();
        let kept = Kept::full(engine, read, at);
        self.full = self.full.min(started.elapsed().as_secs_f64());
        self.load = self.load.min(loaded);
        let obligations = kept.tally.total;
        self.obligations = obligations;

        let started = Clock::now();
        let mut scratch = cpwatch::domain::evaluate::Scratch::default();
        let eval = one_core.evaluate(&kept.state, &mut scratch, at);
        self.evaluate = self.evaluate.min(started.elapsed().as_secs_f64());
        if eval.obligations.len() != obligations {
            bail!(
                "evaluation keeping every obligation kept {}, the tick counted {obligations}",
                eval.obligations.len()
            );
        }
        drop(eval);

        let started = Clock::now();
        let mut counted = [Counted(0)];
        one_core.evaluate_split(&kept.state, at, &mut counted);
        self.evaluate_unkept = self.evaluate_unkept.min(started.elapsed().as_secs_f64());
        if counted[0].0 != obligations {
            bail!(
                "evaluation without keeping made {} obligations, the tick {obligations}",
                counted[0].0
            );
        }
        Ok(())
    }
}

/// Incremental ticks, each after a different 1% of children changed: the
/// best time, and how many children the last re-evaluated.
async fn incremental_ticks(
    store: &dyn store::Store,
    engine: &Engine,
    url: &str,
    opts: &Options,
) -> anyhow::Result<(f64, usize)> {
    let mut kept = Kept::full(engine, store.load_since(None).await?, opts.at);
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM children ORDER BY id")
        .fetch_all(&mut conn)
        .await?;
    let (mut incremental, mut reevaluated) = (f64::MAX, 0);
    for run in 0..opts.runs.max(1) {
        let changed: Vec<&String> = ids.iter().skip(run).step_by(100).collect();
        for sql in [
            "UPDATE children SET looked_after = NOT looked_after, updated_at = now() WHERE id = ANY($1)",
            "UPDATE visits SET seen_alone = NOT coalesce(seen_alone, false), updated_at = now() WHERE child_id = ANY($1)",
        ] {
            sqlx::query(sql).bind(&changed).execute(&mut conn).await?;
        }
        let minutes = 5 * (i64::try_from(run).unwrap_or(i64::MAX - 1) + 1);
        let now = opts.at + chrono::Duration::minutes(minutes);
        let started = Clock::now();
        let read = store.load_since(kept.watermark).await?;
        let update = kept.update(engine, read, now).map_err(|NeedFull(why)| {
            anyhow::anyhow!("the incremental tick could not be made: {why}")
        })?;
        incremental = incremental.min(started.elapsed().as_secs_f64());
        reevaluated = update.children;
    }
    conn.close().await?;
    Ok((incremental, reevaluated))
}

/// Counts the obligations it is handed and keeps none.
struct Counted(usize);

impl Sink<'_> for Counted {
    fn put(&mut self, _: &Draft<'_>) {
        self.0 += 1;
    }
}

/// One fetch of the floor.
struct Floor {
    rows: usize,
    secs: f64,
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
}

/// How a floor streams the rows.
#[derive(Clone, Copy)]
enum Fetch {
    /// Plain SELECTs, each row received as a row and thrown away.
    Select,
    /// The same rows by binary COPY, as a load reads them, each message
    /// received and thrown away.
    Copy,
}

/// A floor: every table's SELECT in one read-only snapshot, as a load makes
/// it, on one connection or on two sharing the snapshot and taking the tables
/// in turn, largest first, as a load does.
async fn fetch_floor(url: &str, how: Fetch, connections: usize) -> anyhow::Result<Floor> {
    let mut conns = Vec::new();
    let mut clocks = Vec::new();
    for _ in 0..connections.clamp(1, 2) {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await?;
        clocks.push(ClockId::pid_cpu_clock_id(Pid::from_raw(backend)).ok());
        conns.push(conn);
    }
    let server = || clocks.iter().map(|c| cpu_seconds(*c)).sum::<Option<f64>>();
    let client = || cpu_seconds(Some(ClockId::CLOCK_PROCESS_CPUTIME_ID));
    let (server_before, client_before) = (server(), client());
    let started = Clock::now();
    let mut conns = conns.iter_mut();
    let mut first = match conns.next() {
        Some(c) => c.begin().await?,
        None => bail!("no connection"),
    };
    store::postgres::begin_read(&mut first, None).await?;
    let plan = store::postgres::ReadPlan::new(&mut first).await?;
    let mut second = match conns.next() {
        Some(c) => {
            let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
                .fetch_one(&mut *first)
                .await?;
            let mut tx = c.begin().await?;
            store::postgres::begin_read(&mut tx, Some(&snapshot)).await?;
            Some(tx)
        }
        None => None,
    };
    let next = AtomicUsize::new(0);
    let (a, b) = tokio::try_join!(stream(&mut first, how, &plan, &next), async {
        match second.as_mut() {
            Some(tx) => stream(tx, how, &plan, &next).await,
            None => Ok(0),
        }
    })?;
    if let Some(tx) = second {
        tx.commit().await?;
    }
    first.commit().await?;
    let secs = started.elapsed().as_secs_f64();
    let used = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
    Ok(Floor {
        rows: a + b,
        secs,
        server_cpu: used(server_before, server()),
        client_cpu: used(client_before, client()),
    })
}

/// Streams tables of `order`, each the next not yet taken, and counts their rows.
async fn stream(
    tx: &mut sqlx::PgConnection,
    how: Fetch,
    plan: &store::postgres::ReadPlan,
    next: &AtomicUsize,
) -> anyhow::Result<usize> {
    let mut rows = 0;
    while let Some(taken) = plan.take(next) {
        match how {
            Fetch::Select => {
                let sql = taken.select_sql();
                let mut fetched = sqlx::query(&sql).fetch(&mut *tx);
                while fetched.try_next().await?.is_some() {
                    rows += 1;
                }
            }
            Fetch::Copy => {
                let mut chunks = tx.copy_out_raw(&taken.copy_sql(None)).await?;
                // PostgreSQL sends each row in a message of its own (the
                // header with the first) and the trailer in one more; the
                // count is checked against the SELECT floor's.
                let mut messages: usize = 0;
                while chunks.try_next().await?.is_some() {
                    messages += 1;
                }
                rows += messages.saturating_sub(1);
            }
        }
    }
    Ok(rows)
}

/// CPU seconds on a process's clock, to the nanosecond: `/proc/<pid>/stat`
/// counts in hundredths, which round a small floor's work to nothing.
fn cpu_seconds(clock: Option<ClockId>) -> Option<f64> {
    let t = clock?.now().ok()?;
    Some(t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_args().next().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `cpwatch run` until its first tick is done; returns its peak resident
/// memory (MiB) and the median time of a `/metrics` scrape (ms).
fn service(binary: &Path, url: &str) -> anyhow::Result<(f64, f64)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let outbox = std::env::temp_dir().join(format!("cpwatch-bench-outbox-{port}"));
    let mut child = Command::new(binary)
        .arg("run")
        .env("CPWATCH_DATABASE_URL", url)
        .env("CPWATCH_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        // Nothing is sent: notifications are planned and logged, and wait.
        .env("CPWATCH_MAIL_TRANSPORT", "file")
        .env("CPWATCH_MAIL_DIRECTORY", &outbox)
        .env("CPWATCH_MAIL_FROM", "cpwatch bench <bench@cpwatch.example>")
        .env("CPWATCH_REMINDERS_SEND_WINDOW", "00:00-00:01")
        .env("CPWATCH_REMINDERS_WORKING_DAYS_ONLY", "true")
        // One tick at start; the next one would be a year away.
        .env("CPWATCH_SCHEDULE_EVALUATE", "0 0 0 1 1 *")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting cpwatch run")?;
    let result = (|| {
        let deadline = Clock::now() + Duration::from_secs(600);
        // Done once the first tick has finished: evaluation, planning and the log written.
        loop {
            if let Some((200, body)) = http_get(port, "/metrics") {
                if body.contains("cpwatch_ticks_total{result=\"ok\"} 1") {
                    break;
                }
                if body.contains("cpwatch_ticks_total{result=\"error\"} 1") {
                    bail!("cpwatch run's first tick failed");
                }
            }
            if let Some(status) = child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    e.read_to_string(&mut err).ok();
                }
                bail!("cpwatch run exited ({status}) before its first tick: {err}");
            }
            if Clock::now() > deadline {
                bail!("cpwatch run was not ready within 10 minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut scrapes = Vec::new();
        for _ in 0..21 {
            let started = Clock::now();
            match http_get(port, "/metrics") {
                Some((200, body)) if body.contains("cpwatch_") => {}
                other => bail!("a /metrics scrape failed: {other:?}"),
            }
            scrapes.push(started.elapsed().as_secs_f64() * 1e3);
        }
        scrapes.sort_by(f64::total_cmp);
        let peak = peak_mib(child.id())?;
        Ok((peak, scrapes[scrapes.len() / 2]))
    })();
    // SIGTERM for an orderly stop; kill if it lingers.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .ok();
    let stop = Clock::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() && Clock::now() < stop {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&outbox).ok();
    result
}

/// VmHWM: the process's peak resident set so far.
fn peak_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmHWM in /proc/<pid>/status")?;
    Ok(kb / 1024.0)
}

/// `cpwatch export` of the year to `at` for one board, as a user runs it.
fn export_year(binary: &Path, url: &str, at: Instant) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(format!("cpwatch-bench-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("barnsley.xlsx");
    let started = Clock::now();
    let mut args = export_args(at, &out);
    args.extend(["--database".to_string(), url.to_string()]);
    let result = run(Command::new(binary).args(&args));
    let secs = started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dir).ok();
    result.context("exporting")?;
    Ok(secs)
}

/// `cpwatch export` of Barnsley's year to `at`, as xlsx to `out`.
fn export_args(at: Instant, out: &Path) -> Vec<String> {
    let to = at.date_naive();
    let from = to - chrono::Duration::days(365);
    [
        "export",
        "--board",
        "barnsley",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--at",
        &at.to_rfc3339(),
        "--out",
        &out.display().to_string(),
        "--force",
    ]
    .map(String::from)
    .to_vec()
}

/// The machine a run was on, for the reader of `BENCHMARKS.md`.
pub async fn machine(admin_url: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let pg = async {
        let mut c = sqlx::PgConnection::connect(admin_url).await.ok()?;
        let version = sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&mut c)
            .await
            .ok()?;
        let tls: Option<bool> =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut c)
                .await
                .ok();
        Some(match tls {
            Some(true) => format!("{version} on loopback, over TLS"),
            Some(false) => format!("{version} on loopback, without TLS"),
            None => format!("{version} on loopback"),
        })
    }
    .await
    .unwrap_or_else(|| "unknown".into());
    format!(
        "{cpu}, {cores} cores, {mem_gib:.0} GiB memory, Linux {kernel}; PostgreSQL {pg}; cpwatch {} (release build)",
        env!("CARGO_PKG_VERSION")
    )
}

/// The targets at the largest size.
const TARGET_RATIO: f64 = 1.3;
const TARGET_EVALUATE_S: f64 = 0.5;
const TARGET_INCREMENTAL: f64 = 0.1;
const TARGET_PEAK_MIB: f64 = 600.0;
const TARGET_SCRAPE_MS: f64 = 50.0;
const TARGET_EXPORT_S: f64 = 15.0;

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

/// Server + client CPU seconds, where both were read.
fn cpu(server: Option<f64>, client: Option<f64>) -> String {
    match (server, client) {
        (Some(s), Some(c)) => format!("{s:.2} + {c:.2}"),
        _ => "–".into(),
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

/// `BENCHMARKS.md`.
pub fn markdown(results: &[Measure], machine: &str, at: Instant, command: &str) -> String {
    let mut md = String::new();
    header(&mut md, machine, at, command);
    table(&mut md, results);
    commands_table(&mut md, results);
    if let Some(m) = results.iter().max_by_key(|m| m.children) {
        targets(&mut md, m, results);
        command_targets(&mut md, m);
        explanations(&mut md, m);
        default_check_explained(&mut md, m);
    }
    md
}

/// The commands people type, a row each per size.
fn commands_table(md: &mut String, results: &[Measure]) {
    if results.iter().all(|m| m.commands.is_empty()) {
        return;
    }
    md.push_str("## Commands as a user runs them\n\n");
    md.push_str("| children | command | wall (s) | peak RSS (MiB) | output (MiB) | COPY floor (s) | COPY floor + one-core evaluation (s) |\n");
    md.push_str("|---:|---|---:|---:|---:|---:|---:|\n");
    for m in results {
        for c in &m.commands {
            md.push_str(&format!(
                "| {} | `cpwatch {}` | {:.3} | {:.0} | {:.1} | {:.2} | {:.2} |\n",
                m.children,
                c.command,
                c.wall,
                c.peak_mib,
                c.bytes as f64 / (1024.0 * 1024.0),
                m.copy_floor,
                m.copy_floor + m.evaluate,
            ));
        }
    }
    md.push_str("\nEach command is the whole process (`cpwatch` started, the database read, the output written) against PostgreSQL on loopback, \
                 its standard output read from a pipe, best of three runs interleaved with the COPY floor; peak RSS is `/usr/bin/time`'s maximum resident set. \
                 `check` is the default table for a person (what needs action and a summary line); `explain` is a child conferenced with another; \
                 the census import reads a return `cpwatch seed --census` wrote of the same casework (its COPY floor columns are the PostgreSQL database's, for scale).\n\n");
}

/// The commands' targets at the largest size.
fn command_targets(md: &mut String, m: &Measure) {
    if m.commands.is_empty() {
        return;
    }
    md.push_str(&format!(
        "\n## Command targets at {} children\n\n",
        m.children
    ));
    md.push_str("| target | measured | |\n|---|---|---|\n");
    let by = |name: &str| m.commands.iter().find(|c| c.command.starts_with(name));
    let bound = 2.0 * (m.copy_floor + m.evaluate);
    for name in [
        "check --format json",
        "check --format jsonl",
        "check --format csv",
    ] {
        if let Some(c) = by(name) {
            md.push_str(&format!(
                "| `cpwatch {name}` to a pipe ≤ 2 × (COPY floor + one-core evaluation) = {bound:.2} s | {:.2} s | {} |\n",
                c.wall,
                verdict(c.wall <= bound)
            ));
        }
    }
    if let Some(c) = m.commands.iter().find(|c| c.command == "check") {
        md.push_str(&format!(
            "| `cpwatch check` (the default table) ≤ 1.2 × the COPY floor = {:.2} s | {:.2} s ({:.2} ×) | {} |\n",
            1.2 * m.copy_floor,
            c.wall,
            c.wall / m.copy_floor,
            verdict(c.wall <= 1.2 * m.copy_floor)
        ));
    }
    if let Some(c) = by("explain") {
        md.push_str(&format!(
            "| `cpwatch explain` of one child ≤ 0.1 s | {:.3} s | {} |\n",
            c.wall,
            verdict(c.wall <= 0.1)
        ));
    }
    if let Some(c) = by(IMPORT) {
        md.push_str(&format!(
            "| `cpwatch {IMPORT}` of {} children ≤ 10 s and ≤ 500 MiB | {:.2} s, {:.0} MiB | {} |\n",
            m.children,
            c.wall,
            c.peak_mib,
            verdict(c.wall <= 10.0 && c.peak_mib <= 500.0)
        ));
    }
    let peak = m.commands.iter().map(|c| c.peak_mib).fold(0.0, f64::max);
    md.push_str(&format!(
        "| every command's peak RSS ≤ {TARGET_PEAK_MIB} MiB | at most {peak:.0} MiB | {} |\n",
        verdict(peak <= TARGET_PEAK_MIB)
    ));
}

/// What made the file, on what machine and data.
fn header(md: &mut String, machine: &str, at: Instant, command: &str) {
    md.push_str("# Benchmarks\n\n");
    md.push_str(&format!(
        "Generated by `{command}` on {}. Do not edit: run the command again.\n\n",
        chrono::Utc::now().format("%Y-%m-%d")
    ));
    md.push_str(&format!("Machine: {machine}.\n\n"));
    md.push_str(&format!(
        "Data: `cpwatch seed` (seed 1, three years of history, as at {}), several boards in one database. \
         Each time is the best of the run's repetitions; the floor and the tick are interleaved so both see the same machine.\n\n",
        at.format("%Y-%m-%d %H:%M UTC")
    ));
}

/// One row a size, and what each column measures.
fn table(md: &mut String, results: &[Measure]) {
    md.push_str("| children | rows | obligations | floor (s) | floor's CPU: server + client (s) | COPY floor (s) | COPY floor's CPU (s) | COPY floor, two connections (s) | its CPU (s) | load (s) | evaluate, one core (s) | of which the engine's own work (s) | load + evaluate (s) | ratio to floor | µs per child | `cpwatch run` peak RSS (MiB) | `/metrics` scrape (ms) | one-year xlsx export (s) | incremental tick after 1% changed (s) | share of a full tick | children re-evaluated |\n");
    md.push_str(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in results {
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} | {} | {:.2} | {} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {:.3} | {:.1}% | {} |\n",
            m.children,
            m.rows,
            m.obligations,
            m.floor,
            cpu(m.floor_server_cpu, m.floor_client_cpu),
            m.copy_floor,
            cpu(m.copy_floor_server_cpu, m.copy_floor_client_cpu),
            m.copy2_floor,
            cpu(m.copy2_floor_server_cpu, m.copy2_floor_client_cpu),
            m.load,
            m.evaluate,
            m.evaluate_unkept,
            m.full,
            m.ratio(),
            m.per_child_us(),
            opt(m.service_peak_mib, 0),
            opt(m.scrape_ms, 1),
            opt(m.export, 1),
            m.incremental,
            m.incremental_share() * 100.0,
            m.reevaluated,
        ));
    }
    md.push_str("\nColumns: *floor* streams every case row with plain SELECTs of the columns a load reads, in one read-only snapshot, and discards them; *floor's CPU* is what the database server's backend and the client used meanwhile. \
                 *COPY floor* streams the same rows by binary COPY as a load reads them (`COPY table (columns) TO STDOUT`; `COPY (SELECT …)` for a view) and discards each message; \
                 *COPY floor, two connections* does so on two connections sharing one snapshot, each taking the next table not yet taken, largest first, which is how a load reads them. \
                 *load + evaluate* is a full tick's work as the service does it: the load into case state, then evaluation of every board, counting every obligation into the metrics and keeping the open ones. \
                 *incremental tick* changes 1% of children in the database (the child's row and its visits, `updated_at = now()`) and times the service's next tick's work: reading the rows changed since the last tick and re-evaluating the children they touch (with every child they share a conference with) and those whose deadlines passed in the five minutes since; best of the run's repetitions, each after a different 1%. \
                 *evaluate, one core* is evaluation alone on one thread keeping every obligation, as `check` and `export` have them; \
                 *the engine's own work* is the same evaluation handing each obligation to the caller borrowed and keeping none, as a tick's counting does; \
                 a tick shares evaluation out among the machine's cores. \
                 *peak RSS* is `VmHWM` of the real `cpwatch run` after its first tick. \
                 *scrape* is the median of 21 scrapes of that service's `/metrics`. \
                 *export* is `cpwatch export --format xlsx` of Barnsley's last year, run as a user runs it (load and evaluation included).\n\n");
}

/// Each target at the largest size, met or not.
fn targets(md: &mut String, m: &Measure, results: &[Measure]) {
    md.push_str(&format!("## Targets at {} children\n\n", m.children));
    md.push_str("| target | measured | |\n|---|---|---|\n");
    md.push_str(&format!(
        "| load + evaluate ≤ {TARGET_RATIO} × floor | {:.2} × ({:.2} × the COPY floor on two connections) | {} |\n",
        m.ratio(),
        m.full / m.copy2_floor,
        verdict(m.ratio() <= TARGET_RATIO)
    ));
    md.push_str(&format!(
        "| evaluation ≤ {TARGET_EVALUATE_S} s on one core | {:.2} s keeping every obligation ({:.2} s the engine's own work) | {} |\n",
        m.evaluate,
        m.evaluate_unkept,
        verdict(m.evaluate <= TARGET_EVALUATE_S)
    ));
    md.push_str(&format!(
        "| incremental tick ≤ {:.0}% of a full tick, identical results (`tests/incremental.rs`) | {:.3} s, {:.1}% | {} |\n",
        TARGET_INCREMENTAL * 100.0,
        m.incremental,
        m.incremental_share() * 100.0,
        verdict(m.incremental_share() <= TARGET_INCREMENTAL)
    ));
    if let Some(p) = m.service_peak_mib {
        md.push_str(&format!(
            "| `cpwatch run` peak RSS ≤ {TARGET_PEAK_MIB} MiB | {p:.0} MiB | {} |\n",
            verdict(p <= TARGET_PEAK_MIB)
        ));
    }
    if let Some(s) = m.scrape_ms {
        md.push_str(&format!(
            "| `/metrics` scrape ≤ {TARGET_SCRAPE_MS} ms | {s:.1} ms | {} |\n",
            verdict(s <= TARGET_SCRAPE_MS)
        ));
    }
    if let Some(e) = m.export {
        md.push_str(&format!(
            "| one-year xlsx export ≤ {TARGET_EXPORT_S} s | {e:.1} s | {} |\n",
            verdict(e <= TARGET_EXPORT_S)
        ));
    }
    if let Some(small) = results
        .iter()
        .filter(|s| s.children < m.children)
        .min_by_key(|s| s.children)
    {
        let growth = m.per_child_us() / small.per_child_us();
        md.push_str(&format!(
            "| cost per child does not grow from {} to {} children | {:.1} → {:.1} µs ({growth:.2} ×) | {} |\n",
            small.children,
            m.children,
            small.per_child_us(),
            m.per_child_us(),
            verdict(growth <= 1.1)
        ));
    }
}

/// Where the default `check`'s time goes, when it missed its target.
fn default_check_explained(md: &mut String, m: &Measure) {
    let Some(c) = m.commands.iter().find(|c| c.command == "check") else {
        return;
    };
    let target = 1.2 * m.copy_floor;
    if c.wall <= target {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let in_turn = m.load + m.evaluate_unkept / cores as f64;
    md.push_str(&format!(
        "\nWhere the default `check`'s time goes: its summary line counts every obligation by status, \
         so it has a full tick's work to do before it prints: the load ({:.2} s on two connections, \
         as the service's) and the engine's work on every child ({:.2} s of CPU, {:.2} s shared among {cores} cores), \
         {in_turn:.2} s one after the other",
        m.load,
        m.evaluate_unkept,
        m.evaluate_unkept / cores as f64,
    ));
    if in_turn <= target {
        md.push_str(&format!(
            ", within the target of {target:.2} s. The other {:.2} s of its {:.2} s are what a new process pays \
             that the running service does not (its connections, and every page of its memory touched for the first time), \
             the steps not shared evenly between the cores (checking the state before it is indexed, sorting \
             what needs action and writing its table) and the exit.",
            c.wall - in_turn,
            c.wall,
        ));
        if let (Some(server), Some(client)) = (m.copy2_floor_server_cpu, m.copy2_floor_client_cpu) {
            md.push_str(&format!(
                " Nor can they overlap the load: fetching alone keeps {:.0}% of the {cores} cores busy \
                 (the COPY floor on two connections).",
                100.0 * (server + client) / (m.copy2_floor * cores as f64),
            ));
        }
        md.push('\n');
        return;
    }
    md.push_str(&format!(", over the target of {target:.2} s."));
    if let (Some(server), Some(client)) = (m.copy2_floor_server_cpu, m.copy2_floor_client_cpu) {
        let least = (server + client + m.evaluate_unkept) / cores.max(1) as f64;
        md.push_str(&format!(
            " Only overlapping the evaluation with the fetch could bring it nearer: the CPU both need is \
             (server {server:.2} + client {client:.2} + engine {:.2}) / {cores} cores = {least:.2} s, \
             but evaluation indexes the whole state first (rows are checked against one another across tables, \
             and siblings share conferences), so it starts when the last row is in.",
            m.evaluate_unkept,
        ));
    }
    md.push('\n');
}

/// Where the time went, when a tick or one-core evaluation missed its target.
fn explanations(md: &mut String, m: &Measure) {
    if m.ratio() > TARGET_RATIO || m.evaluate > TARGET_EVALUATE_S {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        md.push_str(&format!(
            "\nWhere a full tick's time goes: it reads every row into case state \
             (the load alone is {:.2} × the floor, {:.2} × the COPY floor on two connections) \
             and evaluates every rule for every child ({:.2} s on one core; {:.2} s of the tick, shared among {cores} cores). \
             The service makes a full tick once a day and once every `schedule.full_every_seconds` \
             (an hour by default, for deleted rows); the ticks between are incremental.\n",
            m.load / m.floor,
            m.load / m.copy2_floor,
            m.evaluate,
            m.full - m.load,
        ));
        if m.evaluate > TARGET_EVALUATE_S {
            md.push_str(&format!(
                "\nWhere one-core evaluation's time goes: making every obligation and handing it to the caller took {:.2} s; \
                 keeping them took the other {:.2} s. Kept, the {} obligations are {} bytes each ({:.0} MiB), \
                 borrowing their names, so the kernel supplies that much fresh memory. \
                 `check` and `export` keep them; the service counts each one and keeps only the open ones.\n",
                m.evaluate_unkept,
                (m.evaluate - m.evaluate_unkept).max(0.0),
                m.obligations,
                std::mem::size_of::<Draft>(),
                (m.obligations * std::mem::size_of::<Draft>()) as f64 / (1024.0 * 1024.0),
            ));
        }
        if let (Some(server), Some(client), Some(least)) = (
            m.copy2_floor_server_cpu,
            m.copy2_floor_client_cpu,
            m.least_ratio(cores),
        ) {
            let room = TARGET_RATIO * cores as f64 * m.floor - server - client;
            md.push_str(&format!(
                "\nWhat the machine allows: during the COPY floor on two connections the database server's backends used {server:.2} s of CPU \
                 and the client {client:.2} s, so fetching alone kept {:.0}% of the {cores} cores busy for {:.2} s. \
                 A full tick has that work to do and the evaluation's on top. Even were decoding free and the evaluation \
                 overlapped with the fetch on every core, a full tick could not take less than \
                 (server + client + evaluation) / cores = {least:.2} × the floor. \
                 To fit in {TARGET_RATIO} × the floor on {cores} cores, evaluation would have to take at most {:.2} s of CPU in all \
                 (the engine's own work takes {:.2} s), with no time left for decoding.\n",
                (server + client) * 100.0 / (cores as f64 * m.copy2_floor),
                m.copy2_floor,
                room.max(0.0),
                m.evaluate_unkept,
            ));
        }
    }
}
