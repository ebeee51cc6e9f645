//! The PostgreSQL source against a real server (see `pg_server`): random transactions
//! checked after every epoch against the query run by the database itself, atomicity,
//! deletes, bad rows in both modes, and every fault a user meets.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use discounting::decimal::parse_micros;
use discounting::result::rows_of;

use crate::pg_server::PgServer;
use crate::util::Workdir;

/// A printed result table: percentage → the printed row.
pub type Table = BTreeMap<String, Vec<String>>;

pub const SCHEMA: &str =
    "CREATE TABLE discount_codes (code text PRIMARY KEY, percentage numeric(9,6) NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, order_time timestamptz, customer_id integer NOT NULL,
  item_ct integer NOT NULL, order_subtotal numeric(14,6) NOT NULL, discount_code text, note text);";

/// A result table printed as CSV (`--format csv`), by percentage.
pub fn csv_table(text: &str) -> Table {
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<String> = line.split(',').map(str::to_string).collect();
            (cells[0].clone(), cells)
        })
        .collect()
}

/// A server with the two tables, and a few codes and orders.
pub fn server_with_tables() -> PgServer {
    let server = PgServer::start();
    server.psql("postgres", SCHEMA);
    server.psql(
        "postgres",
        "INSERT INTO discount_codes VALUES ('A10', 10), ('B25', 25), ('C50', 50);
         INSERT INTO orders VALUES (1, '2026-11-03 10:15:30+00', 7, 2, 10.50, 'A10', NULL),
           (2, NULL, 8, 3, 20, 'B25', 'x'), (3, '2026-11-03 11:00:00+01', 9, 1, 5.25, 'A10', NULL);",
    );
    server
}

/// The result table as the database computes it, rounded as the job prints.
pub fn database_table(server: &PgServer) -> Table {
    let text = server.psql(
        "postgres",
        "SELECT dc.percentage, count(*), sum(o.item_ct), sum(o.order_subtotal) \
         FROM orders o JOIN discount_codes dc ON o.discount_code = dc.code GROUP BY dc.percentage",
    );
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split('|').collect();
        let subtotal = parse_micros(cells[3]).unwrap();
        sums.insert(
            parse_micros(cells[0]).unwrap(),
            (
                cells[1].parse::<i128>().unwrap(),
                cells[2].parse::<i128>().unwrap(),
                i128::from(subtotal),
            ),
        );
    }
    rows_of(&sums)
        .unwrap()
        .into_iter()
        .map(|row| (row.percentage(), row.values().to_vec()))
        .collect()
}

/// A running `discounting run --postgres`, its stdout (the CSV changelog) read as it comes.
pub struct LiveJob {
    pub child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl LiveJob {
    pub fn start(work: &Workdir, url: &str, extra: &[&str]) -> LiveJob {
        let mut args = vec!["run", "--postgres", url, "--format", "csv", "--stats"];
        args.extend_from_slice(extra);
        LiveJob::start_args(work, &args)
    }

    /// Any live run (`run --kafka ...`) that prints a CSV changelog and stats.
    pub fn start_args(work: &Workdir, args: &[&str]) -> LiveJob {
        let mut child = work
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let lines = Arc::clone(&stdout);
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let text = Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut text = text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        LiveJob {
            child,
            stdout,
            stderr,
        }
    }

    /// The epochs printed so far: each epoch's table after it, replayed from the changelog.
    pub fn tables(&self) -> Vec<(u64, Table)> {
        let lines = self.stdout.lock().unwrap().clone();
        let mut table = Table::new();
        let mut tables: Vec<(u64, Table)> = Vec::new();
        for line in lines.iter().skip(1) {
            let cells: Vec<String> = line.split(',').map(str::to_string).collect();
            let epoch: u64 = cells[0].parse().unwrap();
            if tables.last().is_some_and(|(e, _)| *e != epoch) {
                // The previous epoch is whole once the next one starts.
            }
            let row = cells[2..].to_vec();
            match cells[1].as_str() {
                "-1" => assert_eq!(
                    table.remove(&row[0]),
                    Some(row.clone()),
                    "retracted a row that was not there"
                ),
                "+1" | "1" => assert!(
                    table.insert(row[0].clone(), row).is_none(),
                    "two rows for one percentage"
                ),
                other => panic!("diff {other}"),
            }
            match tables.last_mut() {
                Some((e, t)) if *e == epoch => *t = table.clone(),
                _ => tables.push((epoch, table.clone())),
            }
        }
        tables
    }

    /// The number of epochs completed (stats lines on stderr).
    pub fn epochs_done(&self) -> usize {
        self.stderr.lock().unwrap().matches("stats: epoch=").count()
    }

    /// Waits until the job has completed `epochs` epochs, or panics after `limit`.
    pub fn wait_epochs(&self, epochs: usize, limit: Duration) {
        let until = Instant::now() + limit;
        while self.epochs_done() < epochs {
            assert!(
                Instant::now() < until,
                "waited for {epochs} epochs; stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most `limit`) until the last epoch shows `expected`, then stops the job
    /// with SIGINT; asserts both, and returns every epoch's table and stderr.
    pub fn stop_at(self, expected: &Table, limit: Duration) -> (Vec<(u64, Table)>, String) {
        let until = Instant::now() + limit;
        while self.tables().last().map(|(_, t)| t) != Some(expected) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let tables = self.tables();
        let (code, stderr) = self.stop();
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(tables.last().map(|(_, t)| t), Some(expected), "{stderr}");
        (tables, stderr)
    }

    /// SIGINT, then the exit code and stderr.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        self.wait()
    }

    pub fn wait(&mut self) -> (Option<i32>, String) {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return (status.code(), self.stderr.lock().unwrap().clone());
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!(
                    "the job did not end; stderr:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A random transaction: order inserts, updates (some changing the key), deletes, code
/// corrections, codes that arrive late or vanish.
pub fn random_transaction(rng: &mut StdRng, next_id: &mut i64) -> String {
    let mut sql = String::from("BEGIN;");
    for _ in 0..rng.random_range(1..6) {
        let id = rng.random_range(1..*next_id.max(&mut 2));
        let code = ["A10", "B25", "C50", "LATE15", "NONE", ""][rng.random_range(0..6)];
        let subtotal = format!(
            "{}.{:02}",
            rng.random_range(0..300),
            rng.random_range(0..100)
        );
        let statement = match rng.random_range(0..60) {
            0..=2 => {
                *next_id += 1;
                format!(
                    "INSERT INTO orders VALUES ({}, '2026-11-03 10:15:30.125+00', 1, {}, {subtotal}, NULLIF('{code}', ''), NULL);",
                    *next_id,
                    rng.random_range(0..9)
                )
            }
            3 => format!("UPDATE orders SET order_subtotal = {subtotal}, discount_code = NULLIF('{code}', '') WHERE id = {id};"),
            4 => {
                *next_id += 1;
                format!("UPDATE orders SET id = {} WHERE id = {id};", *next_id)
            }
            5 => format!("DELETE FROM orders WHERE id = {id};"),
            6 => format!(
                "INSERT INTO discount_codes VALUES ('{}', {}) ON CONFLICT (code) DO UPDATE SET percentage = EXCLUDED.percentage;",
                ["A10", "B25", "C50", "LATE15"][rng.random_range(0..4)],
                ["5", "10", "15", "20", "33.333333", "50"][rng.random_range(0..6)]
            ),
            7 => "DELETE FROM discount_codes WHERE code = 'LATE15';".to_string(),
            8 => format!("UPDATE orders SET item_ct = item_ct + 1 WHERE id % 3 = {};", id % 3),
            9 => "TRUNCATE orders;".to_string(),
            10 => "TRUNCATE discount_codes; INSERT INTO discount_codes VALUES ('A10', 15);".to_string(),
            // Mostly the common statements above, weighted.
            n => common_statement(n, rng, next_id, &subtotal, code),
        };
        sql.push_str(&statement);
    }
    sql.push_str("COMMIT;");
    sql
}

/// The common statements, drawn again: inserts, updates, deletes.
fn common_statement(
    n: u32,
    rng: &mut StdRng,
    next_id: &mut i64,
    subtotal: &str,
    code: &str,
) -> String {
    let id = rng.random_range(1..(*next_id).max(2));
    match n % 4 {
        0 | 1 => {
            *next_id += 1;
            format!("INSERT INTO orders VALUES ({}, NULL, 2, {}, {subtotal}, NULLIF('{code}', ''), NULL);", *next_id, n % 7)
        }
        2 => format!("UPDATE orders SET discount_code = NULLIF('{code}', '') WHERE id = {id};"),
        _ => format!("DELETE FROM orders WHERE id = {id};"),
    }
}

/// Every epoch's table is the database's result after some whole transaction, in
/// order, and the last is the result now.
fn random_transactions_at(workers: &str, seed: u64) {
    let server = server_with_tables();
    let work = Workdir::new("pg-random");
    let mut states = vec![database_table(&server)];
    let job = LiveJob::start(&work, &server.url("postgres"), &["-w", workers]);
    job.wait_epochs(1, Duration::from_secs(60));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next_id = 3;
    for _ in 0..40 {
        server.psql("postgres", &random_transaction(&mut rng, &mut next_id));
        states.push(database_table(&server));
    }
    // Quiet: the last state must arrive.
    let (tables, stderr) = job.stop_at(states.last().unwrap(), Duration::from_secs(30));
    let mut at = 0;
    for (epoch, table) in &tables {
        let found = states[at..].iter().position(|s| s == table);
        assert!(
            found.is_some(),
            "epoch {epoch} shows a table the database never had after a transaction: {table:?}"
        );
        at += found.unwrap();
    }
    // Every stream epoch tells its transactions and commit position.
    assert!(
        stderr.contains("transactions=") && stderr.contains("position="),
        "{stderr}"
    );
}

#[test]
fn random_transactions_match_the_database_after_every_epoch_one_worker() {
    random_transactions_at("1", 7);
}

#[test]
fn random_transactions_match_the_database_after_every_epoch_two_workers() {
    random_transactions_at("2", 8);
}

/// Orders written while the snapshot is taken are counted once: in the snapshot or in
/// the stream, never both, never neither.
#[test]
fn writes_during_the_snapshot_are_neither_lost_nor_doubled() {
    let server = server_with_tables();
    server.psql(
        "postgres",
        "INSERT INTO orders SELECT g, NULL, 1, 1, 1.5, 'A10', NULL FROM generate_series(10, 60000) g;",
    );
    let work = Workdir::new("pg-during");
    let job = LiveJob::start(&work, &server.url("postgres"), &["-w", "2"]);
    // Writes start with the job and go on while its workers copy.
    for batch in 0..30 {
        let low = 100_000 + batch * 10;
        server.psql(
            "postgres",
            &format!(
                "INSERT INTO orders SELECT g, NULL, 1, 2, 3, 'B25', NULL FROM generate_series({low}, {}) g; \
                 DELETE FROM orders WHERE id = {};",
                low + 9,
                10 + batch
            ),
        );
    }
    job.stop_at(&database_table(&server), Duration::from_secs(60));
}

/// One transaction moves orders between codes and corrects a percentage: no epoch shows
/// the middle of it.
#[test]
fn a_transaction_is_applied_whole() {
    let server = server_with_tables();
    let work = Workdir::new("pg-atomic");
    let before = database_table(&server);
    let job = LiveJob::start(&work, &server.url("postgres"), &[]);
    job.wait_epochs(1, Duration::from_secs(60));
    server.psql(
        "postgres",
        "BEGIN; UPDATE orders SET discount_code = 'B25' WHERE id = 1;
         UPDATE discount_codes SET percentage = 30 WHERE code = 'B25';
         DELETE FROM orders WHERE id = 3; INSERT INTO discount_codes VALUES ('D5', 5);
         UPDATE orders SET discount_code = 'D5' WHERE id = 2; COMMIT;",
    );
    let after = database_table(&server);
    job.wait_epochs(2, Duration::from_secs(30));
    let tables = job.tables();
    let (code, stderr) = job.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let shown: Vec<&Table> = tables.iter().map(|(_, t)| t).collect();
    assert_eq!(shown, [&before, &after], "{stderr}");
    assert!(
        stderr.contains("epoch=1 rows=5 ") && stderr.contains("transactions=1"),
        "{stderr}"
    );
}

/// The recipe's connector never sees a DELETE; this job does.
#[test]
fn a_delete_is_seen() {
    let server = server_with_tables();
    let work = Workdir::new("pg-delete");
    let job = LiveJob::start(&work, &server.url("postgres"), &[]);
    job.wait_epochs(1, Duration::from_secs(60));
    server.psql(
        "postgres",
        "DELETE FROM orders WHERE discount_code = 'B25';",
    );
    job.wait_epochs(2, Duration::from_secs(30));
    let tables = job.tables();
    let (code, stderr) = job.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(tables[0].1.contains_key("25"), "{tables:?}");
    assert!(!tables[1].1.contains_key("25"), "{tables:?}");
    assert_eq!(tables[1].1, database_table(&server));
    // The stream's epoch says where it stands and how fresh it is, at the job and at the
    // outputs (which hold it later).
    let line = stderr
        .lines()
        .find(|l| l.starts_with("stats: epoch=1 "))
        .unwrap();
    let field = |name: &str| {
        line.split(' ')
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    assert_eq!(field("transactions"), "1", "{line}");
    assert!(field("position").contains('/'), "{line}");
    let fresh: f64 = field("freshness_ms").parse().unwrap();
    let held: f64 = field("outputs_freshness_ms").parse().unwrap();
    assert!(0.0 <= fresh && fresh <= held && held < 30_000.0, "{line}");
}

#[test]
fn a_bad_row_fails_the_run_or_is_skipped_into_the_rejects() {
    let server = server_with_tables();
    server.psql(
        "postgres",
        "ALTER TABLE orders ALTER order_subtotal TYPE numeric;",
    );
    let work = Workdir::new("pg-bad");
    // Skipped: the rest of the transaction applies, the row is in the rejects file.
    let job = LiveJob::start(
        &work,
        &server.url("postgres"),
        &["--bad-rows", "skip", "--rejects", "rejects.csv"],
    );
    job.wait_epochs(1, Duration::from_secs(60));
    server.psql(
        "postgres",
        "BEGIN; INSERT INTO orders VALUES (50, NULL, 1, 1, 1.1234567, 'A10', NULL); \
         INSERT INTO orders VALUES (51, NULL, 1, 4, 8, 'A10', NULL); COMMIT;",
    );
    job.wait_epochs(2, Duration::from_secs(30));
    let (code, stderr) = job.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let rejects = work.read("rejects.csv");
    assert!(rejects.contains("orders id=50 (LSN "), "{rejects}");
    assert!(rejects.contains("order_subtotal"), "{rejects}");
    assert!(
        rejects.contains("7 fractional digits, at most 6 are accepted"),
        "{rejects}"
    );

    // Failing: one line naming table, key, column and LSN; nothing of it applied.
    server.psql("postgres", "DELETE FROM orders WHERE id IN (50, 51);");
    let mut job = LiveJob::start(&work, &server.url("postgres"), &[]);
    job.wait_epochs(1, Duration::from_secs(60));
    server.psql(
        "postgres",
        "INSERT INTO orders VALUES (52, NULL, 1, 1, 0.0000001, 'A10', NULL);",
    );
    let (code, stderr) = job.wait();
    assert_eq!(code, Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("discounting:"))
        .unwrap();
    assert!(
        error.starts_with("discounting: orders id=52 (LSN ")
            && error.contains("column order_subtotal"),
        "{stderr}"
    );
    assert_eq!(job.tables().len(), 1, "the bad epoch printed nothing");
}

/// Runs the job against a database that cannot be used and returns its one error line.
fn refused(url: &str) -> String {
    let work = Workdir::new("pg-fault");
    let started = Instant::now();
    let stderr = work.stderr_of_failure(&["run", "--postgres", url]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].to_string()
}

#[test]
fn faults_are_one_clear_line_and_exit_1() {
    let server = server_with_tables();
    let port = server.port;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = refused(&format!("postgres://postgres@127.0.0.1:{closed}/postgres"));
    assert!(
        error.contains("cannot connect to postgres://postgres@127.0.0.1"),
        "{error}"
    );
    let error = refused(&format!(
        "postgres://postgres:wrong@127.0.0.1:{port}/postgres"
    ));
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(
        !error.contains("wrong"),
        "the password is not shown: {error}"
    );

    server.psql("postgres", "CREATE DATABASE empty;");
    let error = refused(&server.url("empty"));
    assert!(
        error.contains("table discount_codes does not exist"),
        "{error}"
    );

    server.psql("postgres", "CREATE DATABASE nocol; ");
    server.psql("nocol", "CREATE TABLE discount_codes (code text PRIMARY KEY, pct numeric); CREATE TABLE orders (id int PRIMARY KEY);");
    let error = refused(&server.url("nocol"));
    assert!(
        error.contains("table discount_codes has no column percentage"),
        "{error}"
    );

    server.psql("postgres", "CREATE DATABASE nokey;");
    server.psql(
        "nokey",
        &SCHEMA.replace("code text PRIMARY KEY", "code text"),
    );
    let error = refused(&server.url("nokey"));
    assert!(
        error.contains("table discount_codes has no primary key")
            && error.contains("ADD PRIMARY KEY (code)"),
        "{error}"
    );

    server.psql("postgres", "CREATE ROLE plain LOGIN PASSWORD 'pw'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO plain;");
    let error = refused(&format!("postgres://plain:pw@127.0.0.1:{port}/postgres"));
    assert!(
        error.contains("user plain may not read the replication stream")
            && error.contains("WITH REPLICATION"),
        "{error}"
    );

    server.psql("postgres", "CREATE ROLE replicator LOGIN REPLICATION PASSWORD 'pw'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator;");
    let error = refused(&format!(
        "postgres://replicator:pw@127.0.0.1:{port}/postgres"
    ));
    assert!(
        error.contains("publication discounting does not exist and this user cannot create it")
            && error.contains(
                "CREATE PUBLICATION \"discounting\" FOR TABLE public.discount_codes, public.orders"
            ),
        "{error}"
    );

    let replica = PgServer::start_with("replica");
    replica.psql("postgres", SCHEMA);
    let error = refused(&replica.url("postgres"));
    assert!(
        error.contains("wal_level is 'replica'") && error.contains("wal_level = logical"),
        "{error}"
    );
}

/// TRUNCATE empties the table; what the same transaction does before it is gone with
/// it, what it does after stays.
#[test]
fn a_truncate_empties_the_table() {
    let server = server_with_tables();
    let work = Workdir::new("pg-truncate");
    let job = LiveJob::start(&work, &server.url("postgres"), &["-w", "2"]);
    job.wait_epochs(1, Duration::from_secs(60));
    server.psql(
        "postgres",
        "BEGIN; INSERT INTO orders VALUES (20, NULL, 1, 1, 1, 'C50', NULL); TRUNCATE orders; \
         INSERT INTO orders VALUES (21, NULL, 1, 5, 7, 'B25', NULL); COMMIT;",
    );
    job.wait_epochs(2, Duration::from_secs(30));
    server.psql("postgres", "TRUNCATE discount_codes;");
    job.wait_epochs(3, Duration::from_secs(30));
    let tables = job.tables();
    let (code, stderr) = job.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(tables[1].1.len(), 1, "{tables:?}");
    assert_eq!(tables[1].1["25"][5], "1", "{tables:?}");
    assert!(tables[2].1.is_empty(), "{tables:?}");
    assert_eq!(tables[2].1, database_table(&server));
}

/// The server stopped at once mid-stream: a clear error within a bounded time, and
/// nothing half applied; the temporary slot is gone with the server's restart.
#[test]
fn the_server_killed_mid_stream_is_a_clear_error() {
    let server = server_with_tables();
    let work = Workdir::new("pg-killed");
    let mut job = LiveJob::start(&work, &server.url("postgres"), &[]);
    job.wait_epochs(1, Duration::from_secs(60));
    server.kill();
    let started = Instant::now();
    let (code, stderr) = job.wait();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        stderr.contains("lost the replication stream") && stderr.contains("temporary slot"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// With a named slot, a server that goes away and comes back is reconnected (with
/// backoff) and the stream resumed from the last acknowledged position: nothing lost,
/// nothing applied twice.
#[test]
fn a_named_slot_resumes_after_the_server_comes_back() {
    let server = server_with_tables();
    let work = Workdir::new("pg-resume");
    let job = LiveJob::start(
        &work,
        &server.url("postgres"),
        &["--slot", "discounting_resume"],
    );
    job.wait_epochs(1, Duration::from_secs(60));
    server.psql(
        "postgres",
        "INSERT INTO orders VALUES (30, NULL, 1, 2, 30, 'C50', NULL);",
    );
    job.wait_epochs(2, Duration::from_secs(30));
    server.kill();
    std::thread::sleep(Duration::from_millis(300));
    server.start_again();
    server.psql(
        "postgres",
        "UPDATE orders SET order_subtotal = 12 WHERE id = 30; DELETE FROM orders WHERE id = 2;",
    );
    job.stop_at(&database_table(&server), Duration::from_secs(40));
}

/// A named slot is kept while the job runs, its position acknowledged as epochs
/// complete; a restart takes a fresh snapshot and gives exactly the database's result.
#[test]
fn a_named_slot_is_acknowledged_and_a_restart_is_exact() {
    let server = server_with_tables();
    let work = Workdir::new("pg-slot");
    let job = LiveJob::start(
        &work,
        &server.url("postgres"),
        &["--slot", "discounting_test"],
    );
    job.wait_epochs(1, Duration::from_secs(60));
    server.psql(
        "postgres",
        "INSERT INTO orders VALUES (9, NULL, 1, 1, 9, 'C50', NULL);",
    );
    job.wait_epochs(2, Duration::from_secs(30));
    let acknowledged = server.wait_for(Duration::from_secs(10), || {
        server.psql(
            "postgres",
            "SELECT confirmed_flush_lsn >= pg_current_wal_lsn() - 1000000 FROM pg_replication_slots WHERE slot_name = 'discounting_test'",
        ).trim() == "t"
    });
    let (code, stderr) = job.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(acknowledged);
    // Changes while the job is down, then a restart.
    server.psql("postgres", "DELETE FROM orders WHERE id = 9; UPDATE discount_codes SET percentage = 20 WHERE code = 'A10';");
    let job = LiveJob::start(
        &work,
        &server.url("postgres"),
        &["--slot", "discounting_test"],
    );
    // The changelog (stdout) may lag the stats line (stderr) that counts an epoch: wait
    // for the table itself.
    let expected = database_table(&server);
    let (tables, _) = job.stop_at(&expected, Duration::from_secs(60));
    assert_eq!(tables[0].1, expected);
    assert_eq!(
        server
            .psql("postgres", "SELECT count(*) FROM pg_replication_slots")
            .trim(),
        "1"
    );
}
