//! The PostgreSQL source: how fast the snapshot is read, beside the server's own `COPY ...
//! TO STDOUT` (the limit), and whether the job keeps up with a writer committing small
//! transactions as fast as it can, with the freshness from commit to completed epoch.
//!
//! Usage: `cargo bench --bench postgres` (1M orders, a 30 s writer), or with
//! `DISCOUNTING_BENCH_ORDERS=10000000` and `DISCOUNTING_BENCH_SECONDS=60`. It starts a
//! throwaway server (as the tests do: Debian's postgresql package must be installed),
//! which shares the machine's cores with the job. The job is the release binary with
//! `--stats`: the snapshot's figure is its epoch 0 (from the slot's creation to complete
//! results, COPY and dataflow together); the writer is `pgbench` clients committing
//! small transactions as fast as they can (`DISCOUNTING_BENCH_CLIENTS`, default 2): 9 in 10
//! change four orders (a subtotal and a code, an item count, a subtotal, one deleted and
//! inserted again; `DISCOUNTING_BENCH_BLOCKS` such blocks of five changes, default 1),
//! 1 in 10 corrects a code's percentage; `DISCOUNTING_BENCH_RATE=N` paces them to about N
//! changes/s (pgbench `--rate`) instead. Freshness is
//! from each epoch's first commit (the server's commit time) to the epoch's completion;
//! outputs freshness to the moment every output holds it (with `--sink-postgres`, the
//! table's commit); the stream's delay is the part before the commit reached the job.
//! The same writer runs first beside the server's own consumer, `pg_recvlogical` to
//! /dev/null, to show what the server delivers when consuming costs nothing.
//! Beside the writer, the server's `pg_stat_replication` is read every 50 ms: how far the
//! walsender's sent position is behind the WAL, and the CPU the walsender and the
//! consumer used (from /proc).

// The tests' throwaway server; some of its helpers are for the tests only.
#[allow(dead_code)]
#[path = "../tests/pg_server.rs"]
mod pg_server;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_server::PgServer;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let orders = env_or("DISCOUNTING_BENCH_ORDERS", 1_000_000);
    let seconds = env_or("DISCOUNTING_BENCH_SECONDS", 30);
    let clients = env_or("DISCOUNTING_BENCH_CLIENTS", 2);
    let server = PgServer::start();
    load(&server, orders);

    let copy = (0..3)
        .map(|_| copy_seconds(&server))
        .fold(f64::MAX, f64::min);
    println!(
        "postgres.server_copy_rows_per_sec={:.0} (best of 3: {copy:.3} s for {orders} orders)",
        orders as f64 / copy
    );
    for workers in ["1", "2"] {
        let epoch0 = snapshot_seconds(&server, workers);
        println!(
            "postgres.w{workers}.snapshot_rows_per_sec={:.0} ({epoch0:.3} s, {:.2}x the server's COPY)",
            (orders + 1000) as f64 / epoch0,
            copy / epoch0
        );
    }
    reference_consumer(&server, orders, seconds, clients);
    for workers in ["1", "2"] {
        writer(&server, workers, &[], orders, seconds, clients);
    }
    // The same with the result kept in a table of the database and served over HTTP.
    let url = server.url("postgres");
    let with_sinks = ["--sink-postgres", url.as_str(), "--serve", "127.0.0.1:0"];
    writer(&server, "1", &with_sinks, orders, seconds, clients);
}

/// `orders` orders and 1,000 codes in the forms a shop's database has.
fn load(server: &PgServer, orders: u64) {
    server.psql(
        "postgres",
        "CREATE TABLE discount_codes (code text PRIMARY KEY, percentage numeric(5,2) NOT NULL);
         CREATE TABLE orders (id bigint PRIMARY KEY, order_time timestamptz, customer_id integer NOT NULL,
           item_ct integer NOT NULL, order_subtotal numeric(12,2) NOT NULL, discount_code text);
         INSERT INTO discount_codes SELECT 'C' || g, 5 + (g % 46) FROM generate_series(1, 1000) g;",
    );
    let started = Instant::now();
    server.psql(
        "postgres",
        &format!(
            "INSERT INTO orders SELECT g, CASE WHEN g % 50 = 0 THEN NULL ELSE timestamptz '2026-11-01' + g * interval '37 ms' END,
               g % 100000, g % 9, (g * 7919 % 3000000) / 100.0,
               CASE WHEN g % 40 = 0 THEN NULL ELSE 'C' || (1 + g * 31 % 1100) END
             FROM generate_series(1::bigint, {orders}) g;"
        ),
    );
    eprintln!(
        "loaded {orders} orders in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The server's own COPY of the columns the job reads, to /dev/null.
fn copy_seconds(server: &PgServer) -> f64 {
    let started = Instant::now();
    let status = Command::new("psql")
        .args(["-X", "-q", "-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-c"])
        .arg("COPY (SELECT id, order_time, customer_id, item_ct, order_subtotal, discount_code FROM orders) TO STDOUT")
        .env("PGPASSWORD", pg_server::PASSWORD)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed().as_secs_f64()
}

/// A running job whose `stats:` lines are collected.
struct Job {
    child: std::process::Child,
    stats: Arc<Mutex<Vec<String>>>,
}

impl Job {
    fn start(server: &PgServer, workers: &str, extra: &[&str]) -> Job {
        let mut child = Command::new(env!("CARGO_BIN_EXE_discounting"))
            .args([
                "run",
                "--postgres",
                &server.url("postgres"),
                "--stats",
                "--format",
                "csv",
            ])
            .args(["-w", workers])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stats = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stats);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !line.starts_with("stats:") {
                    eprintln!("{line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
        Job { child, stats }
    }

    fn wait_for_epoch_0(&self) -> f64 {
        let until = Instant::now() + Duration::from_secs(600);
        loop {
            if let Some(line) = self
                .stats
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with("stats: epoch=0 "))
            {
                return field(line, "seconds").unwrap();
            }
            assert!(Instant::now() < until, "no epoch 0");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        let stats = self.stats.lock().unwrap().clone();
        stats
    }
}

fn field(line: &str, name: &str) -> Option<f64> {
    line.split(' ')
        .find_map(|part| part.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
}

fn snapshot_seconds(server: &PgServer, workers: &str) -> f64 {
    let job = Job::start(server, workers, &[]);
    let seconds = job.wait_for_epoch_0();
    job.stop();
    seconds
}

/// The writer: `clients` pgbench clients committing small transactions for `seconds`
/// (paced by `DISCOUNTING_BENCH_RATE` where set); `run` waits for them and returns the
/// commits per second they reached.
struct Pgbench {
    dir: std::path::PathBuf,
    command: Command,
}

impl Pgbench {
    fn new(server: &PgServer, orders: u64, seconds: u64, clients: u64) -> Pgbench {
        let dir =
            std::env::temp_dir().join(format!("discounting-bench-pgbench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let update = dir.join("update.sql");
        // Each block is five changes to orders spread over the table; a transaction holds
        // `DISCOUNTING_BENCH_BLOCKS` of them (default 1).
        let blocks: String = (0..env_or("DISCOUNTING_BENCH_BLOCKS", 1))
            .map(|b| {
                let id = format!("((:id + {b} * 104729) % {orders} + 1)");
                format!(
                    "UPDATE orders SET order_subtotal = order_subtotal + 0.01, discount_code = 'C' || :code WHERE id = {id};\n\
                     UPDATE orders SET item_ct = item_ct + 1 WHERE id = {id} % {orders} + 1;\n\
                     UPDATE orders SET order_subtotal = order_subtotal + 0.02 WHERE id = ({id} * 7) % {orders} + 1;\n\
                     DELETE FROM orders WHERE id = ({id} * 13) % {orders} + 1;\n\
                     INSERT INTO orders VALUES (({id} * 13) % {orders} + 1, now(), :id % 1000, 2, 19.99, 'C' || :code)\n\
                       ON CONFLICT (id) DO UPDATE SET item_ct = 3;\n"
                )
            })
            .collect();
        std::fs::write(
            &update,
            format!(
                "\\set id random(1, {orders})\n\\set code random(1, 1100)\nBEGIN;\n{blocks}COMMIT;\n"
            ),
        )
        .unwrap();
        let correct = dir.join("correct.sql");
        std::fs::write(
            &correct,
            "\\set code random(1, 1000)\n\\set p random(5, 50)\nUPDATE discount_codes SET percentage = :p WHERE code = 'C' || :code;\n",
        )
        .unwrap();
        // Changes per transaction, on average: 9 in 10 change 5 per block, 1 in 10 one.
        let per_transaction = 0.9 * 5.0 * env_or("DISCOUNTING_BENCH_BLOCKS", 1) as f64 + 0.1;
        let rate: Vec<String> = match env_or("DISCOUNTING_BENCH_RATE", 0) {
            0 => Vec::new(),
            changes => vec![format!(
                "--rate={:.0}",
                (changes as f64 / per_transaction).max(1.0)
            )],
        };
        let mut command = Command::new(bindir().join("pgbench"));
        command
            .args(&rate)
            .args([
                "-n",
                "--max-tries=100",
                "-c",
                &clients.to_string(),
                "-T",
                &seconds.to_string(),
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-f")
            .arg(format!("{}@9", update.display()))
            .arg("-f")
            .arg(format!("{}@1", correct.display()))
            .arg("postgres")
            .env("PGPASSWORD", pg_server::PASSWORD);
        Pgbench { dir, command }
    }

    fn run(mut self) -> f64 {
        let output = self.command.output().unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|l| l.starts_with("tps"))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    }
}

/// Where the server's programs are (`pg_config --bindir`).
fn bindir() -> std::path::PathBuf {
    let out = Command::new("pg_config").arg("--bindir").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().into()
}

/// The server's own consumer of a slot, `pg_recvlogical` (pgoutput, to /dev/null),
/// beside the same writer: how far behind the walsender falls when the consumer costs
/// nothing, the limit for the job's stream.
fn reference_consumer(server: &PgServer, orders: u64, seconds: u64, clients: u64) {
    server.psql(
        "postgres",
        "CREATE PUBLICATION bench_reference FOR TABLE orders, discount_codes;",
    );
    let recvlogical = |args: &[&str]| {
        let mut command = Command::new(bindir().join("pg_recvlogical"));
        command
            .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "--slot",
                "bench_reference",
            ])
            .args(args)
            .env("PGPASSWORD", pg_server::PASSWORD);
        command
    };
    let created = recvlogical(&["--create-slot", "-P", "pgoutput"])
        .status()
        .unwrap();
    assert!(created.success());
    let mut consumer = recvlogical(&[
        "--start",
        "-o",
        "proto_version=1",
        "-o",
        "publication_names=bench_reference",
        "-f",
        "/dev/null",
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let sampler = Sampler::start(server, "pg_recvlogical", consumer.id());
    let tps = Pgbench::new(server, orders, seconds, clients).run();
    let sampled = sampler.stop();
    consumer.kill().unwrap();
    consumer.wait().unwrap();
    server.psql(
        "postgres",
        "SELECT pg_drop_replication_slot('bench_reference'); DROP PUBLICATION bench_reference;",
    );
    println!("postgres.pg_recvlogical.writer_commits_per_sec={tps:.0}\n  {sampled}");
}

/// `clients` pgbench clients commit small transactions for `seconds`; the job follows.
fn writer(
    server: &PgServer,
    workers: &str,
    extra: &[&str],
    orders: u64,
    seconds: u64,
    clients: u64,
) {
    let pgbench = Pgbench::new(server, orders, seconds, clients);
    let job = Job::start(server, workers, extra);
    job.wait_for_epoch_0();
    let lag = || {
        server
            .psql(
                "postgres",
                "SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots",
            )
            .trim()
            .parse::<i64>()
            .unwrap_or(-1)
    };
    let sampler = Sampler::start(server, "discounting", job.child.id());
    let tps = pgbench.run();
    let lag_at_end = lag();
    let sampled = sampler.stop();
    let stopped = Instant::now();
    // Catching up: the writer has stopped; the job has caught up once no epoch has come
    // for 300 ms (the last one came `caught_up` after the writer's end).
    let (mut seen, mut caught_up) = (job.stats.lock().unwrap().len(), Duration::ZERO);
    while stopped.elapsed() < caught_up + Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(5));
        let now = job.stats.lock().unwrap().len();
        if now != seen {
            (seen, caught_up) = (now, stopped.elapsed());
        }
    }
    let stats = job.stop();
    // Every stats line kept, to see when slow epochs came (`DISCOUNTING_BENCH_STATS_DIR`).
    if let Ok(keep) = std::env::var("DISCOUNTING_BENCH_STATS_DIR") {
        let name = format!(
            "w{workers}{}.stats",
            if extra.is_empty() { "" } else { "-sinks" }
        );
        std::fs::write(std::path::Path::new(&keep).join(name), stats.join("\n")).unwrap();
    }
    let epochs: Vec<&String> = stats
        .iter()
        .filter(|l| l.starts_with("stats: epoch=") && !l.starts_with("stats: epoch=0 "))
        .collect();
    let rows: f64 = epochs.iter().filter_map(|l| field(l, "rows")).sum();
    let freshness = sorted_field(&epochs, "freshness_ms");
    let stream_delay = sorted_field(&epochs, "stream_delay_ms");
    let held = sorted_field(&epochs, "outputs_freshness_ms");
    let latency_ms: Vec<f64> = sorted_field(&epochs, "seconds")
        .iter()
        .map(|s| s * 1e3)
        .collect();
    let resident =
        |line: Option<&&String>| line.and_then(|l| field(l, "resident_bytes")).unwrap_or(0.0) / 1e6;
    let sinks = if extra.is_empty() {
        ""
    } else {
        ".with_sink_and_serve"
    };
    println!(
        "postgres.w{workers}{sinks}.writer_commits_per_sec={tps:.0} job_changes_per_sec={:.0} epochs={} \
         freshness_ms_p50={:.2} p99={:.2} max={:.2} stream_delay_ms_p50={:.2} p99={:.2} outputs_freshness_ms_p50={:.2} p99={:.2} epoch_ms_p50={:.3} p99={:.3} \
         lag_bytes_at_writer_end={lag_at_end} caught_up_after_ms={} resident_mb_first={:.1} last={:.1}",
        rows / seconds as f64,
        epochs.len(),
        quantile(&freshness, 0.5),
        quantile(&freshness, 0.99),
        quantile(&freshness, 1.0),
        quantile(&stream_delay, 0.5),
        quantile(&stream_delay, 0.99),
        quantile(&held, 0.5),
        quantile(&held, 0.99),
        quantile(&latency_ms, 0.5),
        quantile(&latency_ms, 0.99),
        caught_up.as_millis(),
        resident(epochs.first()),
        resident(epochs.last()),
    );
    println!("  {sampled}");
}

/// The walsender's sent positions behind the WAL (bytes, ascending) and, once seen, its
/// process id with its CPU seconds then.
type Sampled = (Vec<f64>, Option<(u32, f64)>);

/// Reads the server's replication view every 50 ms while the writer runs: how far the
/// walsender's sent position is behind the WAL written, and its CPU time.
struct Sampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Sampled>,
    started: Instant,
    job: (u32, f64),
}

impl Sampler {
    /// Samples the walsender of the consumer named `application`, and process `job`'s CPU.
    fn start(server: &PgServer, application: &'static str, job: u32) -> Sampler {
        let url = server.url("postgres");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let (mut behind, mut walsender) = (Vec::new(), None);
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let rows = client
                    .query(
                        "SELECT pid, (pg_current_wal_lsn() - sent_lsn)::float8 FROM pg_stat_replication \
                         WHERE application_name = $1",
                        &[&application],
                    )
                    .unwrap();
                if let Some(row) = rows.first() {
                    let pid: i32 = row.get(0);
                    behind.push(row.get::<_, Option<f64>>(1).unwrap_or(0.0));
                    walsender.get_or_insert_with(|| (pid as u32, cpu_seconds(pid as u32)));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            behind.sort_by(f64::total_cmp);
            (behind, walsender)
        });
        Sampler {
            stop,
            thread,
            started: Instant::now(),
            job: (job, cpu_seconds(job)),
        }
    }

    /// What was seen, as one line.
    fn stop(self) -> String {
        let seconds = self.started.elapsed().as_secs_f64();
        let job_cpu = cpu_seconds(self.job.0) - self.job.1;
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (behind, walsender) = self.thread.join().unwrap();
        let walsender_cpu = walsender.map_or(f64::NAN, |(pid, first)| cpu_seconds(pid) - first);
        format!(
            "walsender_behind_bytes_p50={:.0} p99={:.0} max={:.0} walsender_cpu={:.0}% consumer_cpu={:.0}% (of one core, over {seconds:.0} s)",
            quantile(&behind, 0.5),
            quantile(&behind, 0.99),
            quantile(&behind, 1.0),
            100.0 * walsender_cpu / seconds,
            100.0 * job_cpu / seconds,
        )
    }
}

/// User and system CPU seconds of process `pid` so far (NaN where /proc does not tell).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// The values of `name=` in the stats `lines`, in ascending order.
fn sorted_field(lines: &[&String], name: &str) -> Vec<f64> {
    let mut values: Vec<f64> = lines.iter().filter_map(|l| field(l, name)).collect();
    values.sort_by(f64::total_cmp);
    values
}

/// The `q` quantile of ascending `values` (NaN when there are none).
fn quantile(values: &[f64], q: f64) -> f64 {
    values
        .get(((values.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}
