//! The Kafka source: messages/s of epoch 0 from pre-filled topics (1M orders as ksqlDB's
//! JSON values over six partitions, 1,000 codes), beside the same rows from files.
//!
//! Usage: `cargo bench --bench kafka` (`DISCOUNTING_BENCH_ORDERS` for another size). It
//! starts the tests' throwaway broker (tansu, installed by `.ci/run`), which shares the
//! machine's cores with the job. Both figures are wall-clock, from the process's start
//! until its `--stats` line for epoch 0 (complete results): connecting, the whole fetch
//! from the broker or the read of the files, parse and dataflow included.

#[allow(dead_code)]
#[path = "../tests/kafka_server.rs"]
mod kafka_server;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_server::{KafkaServer, Sent};

const PARTITIONS: i32 = 6;

fn main() {
    let orders: u64 = std::env::var("DISCOUNTING_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("discounting-kafka-bench-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_discounting"))
        .args([
            "generate",
            "--orders",
            &orders.to_string(),
            "--codes",
            "1000",
        ])
        .args(["--updates", "0", "--out"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let server = KafkaServer::start();
    server.create_topics(&["orders", "discount_codes"], PARTITIONS);
    let started = Instant::now();
    // Batched as a connector's producer batches (librdkafka's defaults, 5 ms linger).
    let producer = server.producer_with(&[("linger.ms", "5"), ("batch.num.messages", "10000")]);
    let mut written = 0;
    for (file, topic) in [
        ("discount_codes.csv", "discount_codes"),
        ("orders.csv", "orders"),
    ] {
        for chunk in json_messages(&dir.join(file), topic).chunks(100_000) {
            server.produce(&producer, chunk);
            written += chunk.len();
        }
    }
    println!(
        "kafka.produce_messages_per_sec={:.0} ({written} messages written by rdkafka to the broker)",
        written as f64 / started.elapsed().as_secs_f64()
    );
    for workers in ["1", "2"] {
        let (kafka_rows, kafka_seconds) = kafka_epoch0(&server, workers);
        let (file_rows, file_seconds) = file_epoch0(&dir, workers);
        println!(
            "kafka.w{workers}.epoch0_messages_per_sec={:.0} ({kafka_rows} rows in {kafka_seconds:.3} s) \
             files.w{workers}.epoch0_rows_per_sec={:.0} ({file_rows} rows in {file_seconds:.3} s) ratio={:.2}",
            kafka_rows as f64 / kafka_seconds,
            file_rows as f64 / file_seconds,
            file_seconds / kafka_seconds
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A generated CSV file's rows as ksqlDB's JSON values, keyed by their first column.
fn json_messages(path: &Path, topic: &str) -> Vec<Sent> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_ascii_uppercase)
        .collect();
    let text = ["CODE", "DISCOUNT_CODE", "ORDER_TIME"];
    let mut messages = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.unwrap();
        let fields: Vec<String> = header
            .iter()
            .zip(record.iter())
            .map(
                |(name, cell)| match (text.contains(&name.as_str()), cell.is_empty()) {
                    (_, true) => format!("\"{name}\":null"),
                    (true, false) => format!("\"{name}\":\"{cell}\""),
                    (false, false) => format!("\"{name}\":{cell}"),
                },
            )
            .collect();
        messages.push(Sent {
            topic: topic.to_string(),
            partition: (n % PARTITIONS as usize) as i32,
            key: record[0].to_string(),
            value: Some(format!("{{{}}}", fields.join(","))),
        });
    }
    messages
}

/// Epoch 0's rows and the job's own seconds from a `stats:` line.
fn epoch0(line: &str) -> (u64, f64) {
    let field = |name: &str| {
        line.split(' ')
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .to_string()
    };
    (
        field("rows").parse().unwrap(),
        field("seconds").parse().unwrap(),
    )
}

fn kafka_epoch0(server: &KafkaServer, workers: &str) -> (u64, f64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_discounting"))
        .args([
            "run",
            "--kafka",
            &server.brokers(),
            "--stats",
            "--format",
            "csv",
            "-w",
            workers,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut found = None;
    for line in stderr.lines().map_while(Result::ok) {
        if line.starts_with("stats: epoch=0 ") {
            found = Some((epoch0(&line).0, started.elapsed().as_secs_f64()));
            break;
        }
        eprintln!("{line}");
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let until = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    found.expect("the Kafka run printed no epoch 0")
}

fn file_epoch0(dir: &Path, workers: &str) -> (u64, f64) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_discounting"))
        .args([
            "run", "--stats", "--format", "csv", "-w", workers, "--codes",
        ])
        .arg(dir.join("discount_codes.csv"))
        .arg("--orders")
        .arg(dir.join("orders.csv"))
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("stats: epoch=0 "))
        .expect("no epoch 0 stats");
    (epoch0(line).0, seconds)
}
