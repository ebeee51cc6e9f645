//! The PostgreSQL sink against a real server: the table equals the result after every
//! epoch, a concurrent reader never sees half an epoch, and a job killed between epochs
//! and restarted leaves the table exact.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::follow::{drop_file, follow, one_order_and_a_directory, upsert_order_1, wait_for};
use crate::pg_server::{PgClient, PgServer};
use crate::postgres::{
    csv_table, database_table, random_transaction, server_with_tables, LiveJob, Table,
};
use crate::util::{crate_dir, Workdir};

/// The result table as the sink wrote it, and the epoch of the progress row, read in one
/// snapshot of the database.
fn sink_state(server: &PgClient) -> (Option<u64>, Table, Vec<String>) {
    let text = server.psql(
        "postgres",
        "BEGIN ISOLATION LEVEL REPEATABLE READ;
         SELECT 'progress', epoch FROM discounting_progress WHERE result_table = 'discount_analysis';
         SELECT 'row', percentage, avg_item_ct, avg_order_subtotal, avg_order_total, avg_discount_total, order_count, epoch
           FROM discount_analysis ORDER BY percentage;
         COMMIT;",
    );
    let mut progress = None;
    let mut table = Table::new();
    let mut stamps = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split('|').collect();
        match cells[0] {
            "progress" => progress = cells[1].parse().ok(),
            "row" => {
                let row: Vec<String> = cells[1..7].iter().map(|c| c.to_string()).collect();
                table.insert(row[0].clone(), row);
                stamps.push(cells[7].to_string());
            }
            _ => {}
        }
    }
    (progress, table, stamps)
}

#[test]
fn the_table_is_the_result_of_a_file_run_and_a_rerun_writes_nothing_twice() {
    let server = PgServer::start();
    let work = Workdir::new("sink-files");
    let inputs = crate_dir().join("inputs");
    let codes = inputs.join("discount_codes.csv");
    let orders = inputs.join("orders.csv");
    let mut args = vec![
        "run".to_string(),
        "--codes".to_string(),
        codes.display().to_string(),
        "--orders".to_string(),
        orders.display().to_string(),
    ];
    let mut updates: Vec<_> = std::fs::read_dir(inputs.join("updates"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    updates.sort();
    args.extend(updates);
    args.extend(["--format", "csv", "--sink-postgres"].map(String::from));
    args.push(server.url("postgres"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = work.stdout(&args);
    let expected = csv_table(&stdout);
    let (progress, table, stamps) = sink_state(&server.client());
    assert_eq!(table, expected);
    assert_eq!(progress, Some(3));
    assert!(stamps.iter().all(|s| s == "3"), "{stamps:?}");
    // Someone edits the table; a rerun over the same files writes no epoch again.
    server.psql("postgres", "UPDATE discount_analysis SET order_count = 0;");
    work.stdout(&args);
    let (_, edited, _) = sink_state(&server.client());
    assert!(
        edited.values().all(|row| row[5] == "0"),
        "the rerun wrote epochs it had written"
    );
}

/// A progress table of an earlier build (the position as pg_lsn) is taken over: its
/// column becomes text, and a file run writes its row.
#[test]
fn an_earlier_progress_table_is_upgraded() {
    let server = PgServer::start();
    server.psql(
        "postgres",
        "CREATE TABLE discounting_progress (result_table text PRIMARY KEY, epoch bigint NOT NULL, \
         source_position pg_lsn, written_at timestamptz NOT NULL); \
         INSERT INTO discounting_progress VALUES ('other', 4, '0/16B3F28', now());",
    );
    let work = Workdir::new("sink-upgrade");
    let inputs = crate_dir().join("inputs");
    let url = server.url("postgres");
    work.stdout(&[
        "run",
        "--codes",
        inputs.join("discount_codes.csv").to_str().unwrap(),
        "--orders",
        inputs.join("orders.csv").to_str().unwrap(),
        "--sink-postgres",
        &url,
    ]);
    let rows = server.psql(
        "postgres",
        "SELECT result_table, epoch, source_position, pg_typeof(source_position) \
         FROM discounting_progress ORDER BY 1",
    );
    assert_eq!(
        rows.trim(),
        "discount_analysis|0||text\nother|4|0/16B3F28|text",
        "{rows}"
    );
}

/// Another writer of the same table is found out: once the progress row no longer holds
/// the epoch this run wrote last, the next epoch is not written and the run ends with
/// one line.
#[test]
fn a_progress_row_moved_by_another_writer_ends_the_run() {
    let server = PgServer::start();
    let url = server.url("postgres");
    let work = one_order_and_a_directory("sink-fenced");
    let (mut job, stdout, stderr) = follow(&work, &["--format", "csv", "--sink-postgres", &url]);
    // The tables are made before the first epoch is printed.
    wait_for(&stdout, |_| true);
    let progress = || sink_state(&server.client()).0;
    let until = Instant::now() + Duration::from_secs(30);
    while progress() != Some(0) {
        assert!(Instant::now() < until, "epoch 0 never reached the table");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Epoch 1 is written over epoch 0 as usual; then someone else moves the row.
    drop_file(&work, "u1.csv", &upsert_order_1(20));
    while progress() != Some(1) {
        assert!(Instant::now() < until, "epoch 1 never reached the table");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.psql(
        "postgres",
        "UPDATE discounting_progress SET epoch = 7 WHERE result_table = 'discount_analysis';",
    );
    drop_file(&work, "u2.csv", &upsert_order_1(30));
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "the job went on writing");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    wait_for(&stderr, |l| {
        l.contains(
            "cannot write epoch 2: the progress row of discount_analysis no longer holds epoch 1, \
             which this job wrote: another job writes the same table",
        )
    });
    let (progress, table, stamps) = sink_state(&server.client());
    assert_eq!(progress, Some(7));
    assert!(stamps.iter().all(|s| s == "1"), "{stamps:?}");
    assert_eq!(table["10"][2], "20.00", "{table:?}");
}

/// A reader in a loop never sees half an epoch: each of its snapshots is exactly the
/// job's result at the epoch its progress row names.
#[test]
fn a_reader_never_sees_half_an_epoch() {
    let server = server_with_tables();
    let work = Workdir::new("sink-reader");
    let url = server.url("postgres");
    let job = LiveJob::start(&work, &url, &["--sink-postgres", &url]);
    job.wait_epochs(1, Duration::from_secs(60));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = Arc::clone(&done);
        let client = server.client();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                seen.push(sink_state(&client));
            }
            seen
        })
    };
    let mut rng = StdRng::seed_from_u64(11);
    let mut next_id = 3;
    for _ in 0..30 {
        server.psql("postgres", &random_transaction(&mut rng, &mut next_id));
    }
    let expected = database_table(&server);
    let arrived = server.wait_for(Duration::from_secs(30), || {
        sink_state(&server.client()).1 == expected
    });
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    let tables: BTreeMap<u64, Table> = job.tables().into_iter().collect();
    let (code, stderr) = job.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(arrived, "{stderr}");
    assert!(seen.len() > 5, "the reader read {} times", seen.len());
    for (progress, table, stamps) in &seen {
        let Some(epoch) = progress else { continue };
        // An epoch that changed nothing prints no change: its table is the last before.
        let at = tables
            .range(..=epoch)
            .next_back()
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        assert_eq!(table, &at, "epoch {epoch} as a reader saw it");
        assert!(
            stamps.iter().all(|s| s == &epoch.to_string()),
            "{stamps:?} at {epoch}"
        );
    }
}

/// Killed (SIGKILL) between epochs and started again: the table is the database's result.
#[test]
fn a_killed_job_restarted_leaves_the_table_exact() {
    let server = server_with_tables();
    let work = Workdir::new("sink-killed");
    let url = server.url("postgres");
    let mut job = LiveJob::start(&work, &url, &["--sink-postgres", &url]);
    job.wait_epochs(1, Duration::from_secs(60));
    server.psql(
        "postgres",
        "INSERT INTO orders VALUES (40, NULL, 1, 3, 99, 'C50', NULL);",
    );
    job.wait_epochs(2, Duration::from_secs(30));
    job.child.kill().unwrap();
    let _ = job.wait();
    // While it is down: a percentage goes away, another changes.
    server.psql(
        "postgres",
        "DELETE FROM orders WHERE discount_code = 'C50'; UPDATE discount_codes SET percentage = 12 WHERE code = 'A10';",
    );
    let job = LiveJob::start(&work, &url, &["--sink-postgres", &url]);
    job.wait_epochs(1, Duration::from_secs(60));
    let expected = database_table(&server);
    let arrived = server.wait_for(Duration::from_secs(30), || {
        sink_state(&server.client()).1 == expected
    });
    let (code, stderr) = job.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        arrived,
        "table {:?}, expected {expected:?}",
        sink_state(&server.client()).1
    );
}

/// `--serve` on the real binary, beside the database sink: the JSON is the result the
/// database computes, after a change made once the job runs.
#[test]
fn the_http_api_serves_the_live_result() {
    let server = server_with_tables();
    let work = Workdir::new("serve-live");
    let url = server.url("postgres");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let job = LiveJob::start(
        &work,
        &url,
        &["--serve", &addr.to_string(), "--sink-postgres", &url],
    );
    job.wait_epochs(1, Duration::from_secs(60));
    server.psql(
        "postgres",
        "UPDATE discount_codes SET percentage = 35 WHERE code = 'B25';",
    );
    job.wait_epochs(2, Duration::from_secs(30));
    let expected = database_table(&server);
    let served = crate::serve::get(addr, "/v1/discount_analysis");
    let (code, stderr) = job.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(served.status, 200, "{}", served.body);
    let document: serde_json::Value = serde_json::from_str(&served.body).unwrap();
    assert_eq!(document["epoch"].to_string(), "1");
    let names = [
        "PERCENTAGE",
        "AVG_ITEM_CT",
        "AVG_ORDER_SUBTOTAL",
        "AVG_ORDER_TOTAL",
        "AVG_DISCOUNT_TOTAL",
        "ORDER_COUNT",
    ];
    let rows: Table = document["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let values: Vec<String> = names.iter().map(|n| row[*n].to_string()).collect();
            (values[0].clone(), values)
        })
        .collect();
    assert_eq!(rows, expected);
}
