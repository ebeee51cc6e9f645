//! The Kafka source and sink against a real Kafka-protocol broker (see `kafka_server`):
//! the recipe's topics give the recipe's figures, random messages with tombstones over
//! six partitions match a from-scratch recomputation after every epoch, Debezium
//! envelopes, bad messages in both modes, the broker stopped mid-run, and the sink's
//! topic read back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use discounting::model::{Change, Order};
use discounting::reference::Reference;
use discounting::result::rows_of;

use crate::kafka_server::{KafkaServer, Sent};
use crate::postgres::{csv_table, LiveJob, Table};
use crate::util::{crate_dir, Workdir};

const PARTITIONS: i32 = 6;

fn topics(server: &KafkaServer) {
    server.create_topics(&["orders", "discount_codes"], PARTITIONS);
}

fn start(work: &Workdir, server: &KafkaServer, extra: &[&str]) -> LiveJob {
    let brokers = server.brokers();
    let mut args = vec!["run", "--kafka", &brokers, "--format", "csv", "--stats"];
    args.extend_from_slice(extra);
    LiveJob::start_args(work, &args)
}

fn message(topic: &str, key: &str, value: Option<String>) -> Sent {
    // Keyed partitioning of our own: one key, one partition, as a keyed producer does.
    let partition = (key.bytes().map(u32::from).sum::<u32>() % PARTITIONS as u32) as i32;
    Sent {
        topic: topic.to_string(),
        partition,
        key: key.to_string(),
        value,
    }
}

/// A table as the job prints it, from a reference's current contents.
fn table_of(reference: &Reference) -> Table {
    rows_of(&reference.sums())
        .unwrap()
        .into_iter()
        .map(|row| (row.percentage(), row.values().to_vec()))
        .collect()
}

/// The recipe's CSV files (`inputs/`, as the recipe has them) as ksqlDB's JSON values: upper-case names, numbers as JSON
/// numbers written as the recipe wrote them (`15.0`, `85.80`).
fn recipe_messages() -> Vec<Sent> {
    let dir = crate_dir().join("inputs");
    let mut sent = Vec::new();
    for (file, topic, numeric) in [
        ("discount_codes.csv", "discount_codes", &["PERCENTAGE"][..]),
        (
            "orders.csv",
            "orders",
            &["ID", "CUSTOMER_ID", "ITEM_CT", "ORDER_SUBTOTAL"][..],
        ),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        for line in lines.filter(|l| !l.is_empty()) {
            let cells: Vec<&str> = line.split(',').collect();
            let fields: Vec<String> = header
                .iter()
                .zip(&cells)
                .map(|(name, cell)| {
                    if numeric.contains(name) {
                        format!("\"{name}\":{cell}")
                    } else {
                        format!("\"{name}\":\"{cell}\"")
                    }
                })
                .collect();
            sent.push(message(
                topic,
                cells[0],
                Some(format!("{{{}}}", fields.join(","))),
            ));
        }
    }
    sent
}

/// The recipe's 15 codes and 15 orders, written to the recipe's topics, give the
/// recipe's figures (those of the same data from files); the sink's topic read back is
/// the result table; a restart re-reads the topics to the same table and leaves no stale
/// row in the sink's topic.
#[test]
fn the_recipes_topics_give_the_recipes_figures_and_the_sink_topic_holds_them() {
    let server = KafkaServer::start();
    topics(&server);
    let producer = server.producer();
    let messages = recipe_messages();
    assert_eq!(messages.len(), 30);
    server.produce(&producer, &messages);
    let work = Workdir::new("kafka-recipe");
    let files = crate_dir().join("inputs");
    let from_files = work.stdout(&[
        "run",
        "--codes",
        files.join("discount_codes.csv").to_str().unwrap(),
        "--orders",
        files.join("orders.csv").to_str().unwrap(),
        "--format",
        "csv",
    ]);
    let expected = csv_table(&from_files);
    assert_eq!(expected.len(), 6, "{from_files}");
    let job = start(&work, &server, &["--sink-kafka", "discount_analysis"]);
    job.wait_epochs(1, Duration::from_secs(60));
    let (tables, stderr) = job.stop_at(&expected, Duration::from_secs(10));
    assert_eq!(tables.len(), 1, "{stderr}");
    assert!(stderr.contains("position=discount_codes/"), "{stderr}");
    let held = |server: &KafkaServer| {
        let mut held: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in server.read_topic("discount_analysis") {
            match value {
                Some(value) => held.insert(key, value),
                None => held.remove(&key),
            };
        }
        held
    };
    // Each row as ksqlDB's DISCOUNT_ANALYSIS writes it: upper-case names, exact numbers.
    let as_json = |cells: &[String]| {
        let fields: Vec<String> = discounting::serve::json::KSQL_COLUMNS
            .iter()
            .zip(cells)
            .map(|(n, c)| format!("\"{n}\":{c}"))
            .collect();
        format!("{{{}}}", fields.join(","))
    };
    let sunk = held(&server);
    let wanted: BTreeMap<String, String> = expected
        .iter()
        .map(|(p, cells)| (p.clone(), as_json(cells)))
        .collect();
    assert_eq!(sunk, wanted);
    // Every code of 50% goes: a restart reads everything again, and the sink's topic
    // loses the 50 row by a tombstone.
    let gone: Vec<Sent> = messages
        .iter()
        .filter(|m| m.topic == "discount_codes" && m.key.ends_with("50"))
        .map(|m| message("discount_codes", &m.key, None))
        .collect();
    assert!(!gone.is_empty());
    server.produce(&producer, &gone);
    let mut after = expected.clone();
    after.remove("50");
    let job = start(&work, &server, &["--sink-kafka", "discount_analysis"]);
    job.stop_at(&after, Duration::from_secs(60));
    assert_eq!(
        held(&server).keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
}

/// A random change, as the message written and the change it stands for.
fn random_message(rng: &mut StdRng, debezium: bool) -> (Sent, Change) {
    const CODES: [&str; 6] = ["A10", "B25", "C50", "D5", "E12", ""];
    if rng.random_bool(0.15) {
        let code = CODES[rng.random_range(0..5)];
        if rng.random_bool(0.3) {
            let change = Change::Code {
                code: code.into(),
                percentage_micros: None,
            };
            return (message("discount_codes", code, None), change);
        }
        let percentage = rng.random_range(0..=100_000) as i64 * 1_000;
        let text = discounting::decimal::format_micros(percentage);
        let value = if debezium {
            format!("{{\"before\":null,\"after\":{{\"code\":\"{code}\",\"percentage\":\"{text}\"}},\"op\":\"u\"}}")
        } else {
            format!("{{\"CODE\":\"{code}\",\"PERCENTAGE\":{text}}}")
        };
        let change = Change::Code {
            code: code.into(),
            percentage_micros: Some(percentage),
        };
        return (message("discount_codes", code, Some(value)), change);
    }
    let id: i64 = rng.random_range(1..40);
    let key = id.to_string();
    if rng.random_bool(0.25) {
        let value =
            debezium.then(|| format!("{{\"before\":{{\"id\":{id}}},\"after\":null,\"op\":\"d\"}}"));
        return (
            message("orders", &key, value),
            Change::Order { id, row: None },
        );
    }
    let order = Order {
        discount_code: CODES[rng.random_range(0..6)].into(),
        item_ct: rng.random_range(0..20),
        subtotal_micros: rng.random_range(0..100_000_000),
        customer_id: rng.random_range(1..1000),
        order_time_ms: None,
    };
    let subtotal = discounting::decimal::format_micros(order.subtotal_micros);
    // Debezium writes the database's lower-case names, ksqlDB upper case.
    let name = |n: &str| {
        if debezium {
            n.to_string()
        } else {
            n.to_ascii_uppercase()
        }
    };
    let row = format!(
        "\"{}\":{},\"{}\":{},\"{}\":{subtotal},\"{}\":\"{}\"",
        name("customer_id"),
        order.customer_id,
        name("item_ct"),
        order.item_ct,
        name("order_subtotal"),
        name("discount_code"),
        order.discount_code
    );
    let value = if debezium {
        let op = ["c", "u", "r"][rng.random_range(0..3)];
        format!("{{\"before\":null,\"after\":{{\"id\":{id},{row}}},\"op\":\"{op}\",\"ts_ms\":1}}")
    } else if rng.random_bool(0.5) {
        // The key only in the message key, as a keyed ksqlDB table writes it.
        format!("{{{row}}}")
    } else {
        format!("{{\"ID\":{id},{row}}}")
    };
    let change = Change::Order {
        id,
        row: Some(order),
    };
    (message("orders", &key, Some(value)), change)
}

/// The position a stats line gives: each partition's next offset.
fn positions(line: &str) -> BTreeMap<(String, i32), i64> {
    let field = line
        .split(' ')
        .find_map(|part| part.strip_prefix("position="))
        .unwrap_or_else(|| panic!("no position in {line}"));
    field
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (topic, rest) = part.split_once('/').unwrap();
            let (partition, next) = rest.split_once('@').unwrap();
            (
                (topic.to_string(), partition.parse().unwrap()),
                next.parse().unwrap(),
            )
        })
        .collect()
}

/// Rounds of random messages (upserts with and without the key in the value,
/// tombstones, code corrections) over six partitions: after every epoch the job's table
/// is the recomputation over exactly the offsets the epoch says it holds.
fn random_messages_at(workers: &str, seed: u64, debezium: bool) {
    let server = KafkaServer::start();
    topics(&server);
    let producer = server.producer();
    let mut rng = StdRng::seed_from_u64(seed);
    // Every message written, per partition, in offset order.
    let mut log: BTreeMap<(String, i32), Vec<Change>> = BTreeMap::new();
    let round = |rng: &mut StdRng, log: &mut BTreeMap<(String, i32), Vec<Change>>, n: usize| {
        let batch: Vec<(Sent, Change)> = (0..n).map(|_| random_message(rng, debezium)).collect();
        let sent: Vec<Sent> = batch.iter().map(|(s, _)| s.clone()).collect();
        server.produce(&producer, &sent);
        for (sent, change) in batch {
            log.entry((sent.topic, sent.partition))
                .or_default()
                .push(change);
        }
    };
    round(&mut rng, &mut log, 200);
    let work = Workdir::new("kafka-random");
    let format = if debezium { "debezium" } else { "auto" };
    let job = start(&work, &server, &["-w", workers, "--kafka-format", format]);
    job.wait_epochs(1, Duration::from_secs(60));
    for _ in 0..25 {
        let n = rng.random_range(1..30);
        round(&mut rng, &mut log, n);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..30)));
    }
    let mut everything = Reference::default();
    for changes in log.values() {
        for change in changes {
            everything.apply(change.clone());
        }
    }
    let (tables, stderr) = job.stop_at(&table_of(&everything), Duration::from_secs(30));
    let stats: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("stats: epoch="))
        .collect();
    let shown: BTreeMap<u64, Table> = tables.into_iter().collect();
    let mut previous = Table::new();
    let mut checked = Vec::new();
    for line in &stats {
        let epoch: u64 = line["stats: epoch=".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut reference = Reference::default();
        for (partition, next) in positions(line) {
            for change in &log[&partition][..next as usize] {
                reference.apply(change.clone());
            }
        }
        let expected = table_of(&reference);
        // An epoch that changed no row prints nothing: its table is the one before.
        let table = shown.get(&epoch).unwrap_or(&previous);
        assert_eq!(table, &expected, "epoch {epoch} ({line})");
        previous = table.clone();
        checked.push(epoch);
    }
    // Every epoch that printed a change was checked, and the stream gave several.
    assert!(
        shown.keys().all(|e| checked.contains(e)),
        "{checked:?}\n{stderr}"
    );
    assert!(checked.len() >= 3, "{stderr}");
}

#[test]
fn random_messages_match_the_recomputation_after_every_epoch_one_worker() {
    random_messages_at("1", 11, false);
}

#[test]
fn random_messages_match_the_recomputation_after_every_epoch_two_workers() {
    random_messages_at("2", 12, false);
}

#[test]
fn debezium_envelopes_match_the_recomputation_after_every_epoch() {
    random_messages_at("2", 13, true);
}

/// A Debezium event with its Kafka Connect schema: the subtotal as a base64 `Decimal`,
/// the time as microseconds; a truncate event empties the table.
#[test]
fn debezium_schemas_decimals_and_truncates() {
    let server = KafkaServer::start();
    topics(&server);
    let producer = server.producer();
    let schema = r#"{"type":"struct","fields":[{"type":"struct","field":"after","fields":[
        {"field":"id","type":"int64"},
        {"field":"order_subtotal","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},
        {"field":"order_time","type":"int64","name":"io.debezium.time.MicroTimestamp"}]}]}"#
        .replace('\n', "");
    // 0x041a = 1050: 10.50 at scale 2.
    let event = format!(
        r#"{{"schema":{schema},"payload":{{"before":null,"op":"c","after":{{"id":7,"customer_id":3,"item_ct":2,"order_subtotal":"BBo=","discount_code":"A10","order_time":1762164930123456}}}}}}"#
    );
    server.produce(
        &producer,
        &[
            message("discount_codes", "A10", Some(r#"{"payload":{"op":"r","before":null,"after":{"code":"A10","percentage":"10"}},"schema":{}}"#.into())),
            message("orders", "7", Some(event)),
        ],
    );
    let work = Workdir::new("kafka-debezium");
    let job = start(&work, &server, &["--enriched", "enriched.csv"]);
    job.wait_epochs(1, Duration::from_secs(60));
    let row = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let mut expected = Table::new();
    expected.insert("10".into(), row(&["10", "2", "10.50", "9.45", "1.05", "1"]));
    assert_eq!(job.tables().last().map(|(_, t)| t.clone()), Some(expected));
    server.produce(
        &producer,
        &[message(
            "orders",
            "7",
            Some(r#"{"before":null,"after":null,"op":"t"}"#.into()),
        )],
    );
    let (_, stderr) = job.stop_at(&Table::new(), Duration::from_secs(30));
    let enriched = work.read("enriched.csv");
    assert!(
        enriched.contains("2025-11-03T10:15:30.123Z"),
        "{enriched}\n{stderr}"
    );
}

/// A bad message fails the run naming topic, partition and offset, or with
/// `--bad-rows skip` goes into the rejects while the rest applies.
#[test]
fn a_bad_message_fails_the_run_or_is_skipped_into_the_rejects() {
    let server = KafkaServer::start();
    topics(&server);
    let producer = server.producer();
    let good = message(
        "orders",
        "1",
        Some(
            r#"{"ID":1,"CUSTOMER_ID":1,"ITEM_CT":2,"ORDER_SUBTOTAL":3.5,"DISCOUNT_CODE":"A10"}"#
                .into(),
        ),
    );
    let bad = message(
        "orders",
        "2",
        Some(r#"{"ID":2,"CUSTOMER_ID":1,"ITEM_CT":2,"ORDER_SUBTOTAL":1.1234567,"DISCOUNT_CODE":"A10"}"#.into()),
    );
    server.produce(
        &producer,
        &[
            message(
                "discount_codes",
                "A10",
                Some(r#"{"CODE":"A10","PERCENTAGE":10}"#.into()),
            ),
            good,
            bad.clone(),
        ],
    );
    let work = Workdir::new("kafka-bad");
    let mut job = start(&work, &server, &[]);
    let (code, stderr) = job.wait();
    assert_eq!(code, Some(1), "{stderr}");
    let line = format!(
        "orders partition {} offset 0: column order_subtotal: '1.1234567': 7 fractional digits, at most 6 are accepted",
        bad.partition
    );
    assert!(stderr.contains(&line), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("discounting:"))
            .count(),
        1,
        "{stderr}"
    );
    let job = start(
        &work,
        &server,
        &["--bad-rows", "skip", "--rejects", "rejects.csv"],
    );
    let mut expected = Table::new();
    let row = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    expected.insert("10".into(), row(&["10", "2", "3.50", "3.15", "0.35", "1"]));
    job.stop_at(&expected, Duration::from_secs(60));
    let rejects = work.read("rejects.csv");
    assert!(
        rejects.contains(&format!("orders partition {} offset 0", bad.partition)),
        "{rejects}"
    );
    assert!(rejects.contains("7 fractional digits"), "{rejects}");
}

/// The broker gone mid-run: within the patience given, one clear line and exit 1.
#[test]
fn the_broker_stopped_mid_run_is_a_clear_error() {
    let mut server = KafkaServer::start();
    topics(&server);
    let producer = server.producer();
    server.produce(
        &producer,
        &[message(
            "discount_codes",
            "A10",
            Some(r#"{"CODE":"A10","PERCENTAGE":10}"#.into()),
        )],
    );
    let work = Workdir::new("kafka-gone");
    let mut job = start(&work, &server, &["--kafka-timeout", "3"]);
    job.wait_epochs(1, Duration::from_secs(60));
    drop(producer);
    let killed = Instant::now();
    server.kill();
    let (code, stderr) = job.wait();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(killed.elapsed() < Duration::from_secs(30), "{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].contains(&format!("Kafka at {}: no answer within", server.brokers())),
        "{stderr}"
    );
}

/// Unreachable brokers and a missing topic: one line, exit 1, within the patience.
#[test]
fn unreachable_brokers_and_missing_topics_are_one_line() {
    let work = Workdir::new("kafka-faults");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let brokers = format!("127.0.0.1:{port}");
    let stderr = work.stderr_of_failure(&["run", "--kafka", &brokers, "--kafka-timeout", "2"]);
    assert!(
        stderr.contains(&format!("Kafka at {brokers}: no answer within 2 s")),
        "{stderr}"
    );
    let server = KafkaServer::start();
    server.create_topics(&["orders"], 1);
    let stderr =
        work.stderr_of_failure(&["run", "--kafka", &server.brokers(), "--kafka-timeout", "5"]);
    assert!(
        stderr.contains(&format!(
            "Kafka at {}: no topic discount_codes",
            server.brokers()
        )),
        "{stderr}"
    );
}
