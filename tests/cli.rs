//! The built binary on small fixtures whose figures are worked out by hand below.

use crate::eqnice;
use crate::util::{crate_dir, Workdir};

const CODES: &str = "code,percentage\nTEN,10\nQUARTER,25.5\nHALF,50\n";
const ORDERS: &str = "\
id,order_time,customer_id,item_ct,order_subtotal,discount_code
1,2026-11-03T10:00:00Z,1,2,10.00,TEN
2,,2,3,20.01,TEN
3,1793700930000,3,1,99.99,QUARTER
4,2026-11-03 10:00:00,4,5,100,NOPE
5,,5,4,146.07,HALF
";
// NOPE appears at 10% (order 4 starts counting); HALF is deleted (its group goes).
const UPDATE_1: &str = "op,code,percentage\nupsert,NOPE,10\ndelete,HALF\n";
// Order 3 is corrected to 5 items under TEN; order 99 was never there.
const UPDATE_2: &str = concat!(
    "{\"op\":\"u\",\"table\":\"orders\",\"id\":3,\"customer_id\":3,\"item_ct\":5,\"order_subtotal\":\"99.99\",\"discount_code\":\"TEN\"}\n",
    "{\"op\":\"d\",\"table\":\"orders\",\"id\":99}\n",
);

const HEADER: &str =
    "percentage,avg_item_ct,avg_order_subtotal,avg_order_total,avg_discount_total,order_count\n";

fn fixture(name: &str) -> Workdir {
    let work = Workdir::new(name);
    work.create("codes.csv", CODES);
    work.create("orders.csv", ORDERS);
    work.create("u1.csv", UPDATE_1);
    work.create("u2.jsonl", UPDATE_2);
    work
}

const BASE: &[&str] = &["run", "--codes", "codes.csv", "--orders", "orders.csv"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    BASE.iter().copied().chain(extra.iter().copied()).collect()
}

#[test]
fn hand_computed_base() {
    let work = fixture("hand_computed_base");
    // 10%: orders 1 and 2. Items 5/2 = 2.5 -> 3. Subtotal 30.01/2 = 15.005 -> 15.01.
    //      Total 30.01 * 0.9 / 2 = 13.5045 -> 13.50. Discount 30.01 * 0.1 / 2 = 1.5005 -> 1.50.
    // 25.5%: order 3, 99.99: total 74.49255 -> 74.49, discount 25.49745 -> 25.50.
    // 50%: order 5, 146.07: total and discount 73.035 -> 73.04.
    // Order 4's code NOPE names no code: not counted.
    let expected = format!(
        "{HEADER}10,3,15.01,13.50,1.50,2\n25.5,1,99.99,74.49,25.50,1\n50,4,146.07,73.04,73.04,1\n"
    );
    eqnice!(expected, work.stdout(&args(&["--format", "csv"])));
}

#[test]
fn changelog_of_updates() {
    let work = fixture("changelog_of_updates");
    let stdout = work.stdout(&args(&[
        "u1.csv",
        "u2.jsonl",
        "--format",
        "csv",
        "--changes",
        "changes.csv",
    ]));
    // After u2, 10% holds orders 1-4: items 15/4 -> 4, subtotal 230.00/4 = 57.50,
    // total 51.75, discount 5.75.
    eqnice!(format!("{HEADER}10,4,57.50,51.75,5.75,4\n"), stdout);
    let expected = "\
epoch,diff,percentage,avg_item_ct,avg_order_subtotal,avg_order_total,avg_discount_total,order_count
0,+1,10,3,15.01,13.50,1.50,2
0,+1,25.5,1,99.99,74.49,25.50,1
0,+1,50,4,146.07,73.04,73.04,1
1,-1,10,3,15.01,13.50,1.50,2
1,+1,10,3,43.34,39.00,4.33,3
1,-1,50,4,146.07,73.04,73.04,1
2,-1,10,3,43.34,39.00,4.33,3
2,+1,10,4,57.50,51.75,5.75,4
2,-1,25.5,1,99.99,74.49,25.50,1
";
    eqnice!(expected, work.read("changes.csv"));
}

#[test]
fn a_delete_of_a_missing_key_is_reported() {
    let work = fixture("missing_delete");
    let output = work.command(&args(&["u2.jsonl"])).output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    eqnice!(
        "discounting: 1 deletes of orders keys that were not there (no change)\n",
        stderr
    );
}

#[test]
fn any_number_of_workers_gives_the_same_answers() {
    let work = fixture("workers");
    let one = work.stdout(&args(&["u1.csv", "u2.jsonl", "--changes", "one.csv"]));
    for workers in ["2", "3", "--threads=4"] {
        let flag: Vec<&str> = if workers.starts_with("--") {
            vec![workers]
        } else {
            vec!["-w", workers]
        };
        let mut extra = vec!["u1.csv", "u2.jsonl", "--changes", "many.csv"];
        extra.extend(flag);
        eqnice!(one, work.stdout(&args(&extra)));
        eqnice!(work.read("one.csv"), work.read("many.csv"));
    }
}

#[test]
fn json_rows_use_ksqldb_column_names() {
    let work = fixture("json");
    let stdout = work.stdout(&args(&["--format", "json"]));
    let first = stdout.lines().next().unwrap();
    eqnice!(
        "{\"PERCENTAGE\":10,\"AVG_ITEM_CT\":3,\"AVG_ORDER_SUBTOTAL\":15.01,\"AVG_ORDER_TOTAL\":13.50,\"AVG_DISCOUNT_TOTAL\":1.50,\"ORDER_COUNT\":2}",
        first
    );
    for line in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON");
    }
}

#[test]
fn enriched_orders() {
    let work = fixture("enriched");
    work.stdout(&args(&["u1.csv", "--enriched", "enriched.csv"]));
    let expected = "\
epoch,diff,id,order_time,customer_id,item_ct,order_subtotal,discount_code,percentage,order_total,discount_total
0,+1,1,2026-11-03T10:00:00.000Z,1,2,10,TEN,10,9,1
0,+1,2,,2,3,20.01,TEN,10,18.009,2.001
0,+1,3,2026-11-03T10:15:30.000Z,3,1,99.99,QUARTER,25.5,74.49255,25.49745
0,+1,5,,5,4,146.07,HALF,50,73.035,73.035
1,+1,4,2026-11-03T10:00:00.000Z,4,5,100,NOPE,10,90,10
1,-1,5,,5,4,146.07,HALF,50,73.035,73.035
";
    eqnice!(expected, work.read("enriched.csv"));
}

#[test]
fn what_if_compares_baseline_and_scenario() {
    let work = fixture("what_if");
    let stdout = work.stdout(&[WHAT_IF, &["--format", "csv"]].concat());
    let expected = "\
percentage,avg_item_ct_baseline,avg_item_ct_scenario,avg_item_ct_change,avg_order_subtotal_baseline,avg_order_subtotal_scenario,avg_order_subtotal_change,avg_order_total_baseline,avg_order_total_scenario,avg_order_total_change,avg_discount_total_baseline,avg_discount_total_scenario,avg_discount_total_change,order_count_baseline,order_count_scenario,order_count_change
10,3,3,+0,15.01,43.34,+28.33,13.50,39.00,+25.50,1.50,4.33,+2.83,2,3,+1
25.5,1,1,+0,99.99,99.99,+0.00,74.49,74.49,+0.00,25.50,25.50,+0.00,1,1,+0
50,4,,,146.07,,,73.04,,,73.04,,,1,0,-1
";
    eqnice!(expected, stdout);
    eqnice!(CODES, work.read("codes.csv"));
}

const WHAT_IF: &[&str] = &[
    "what-if",
    "--codes",
    "codes.csv",
    "--orders",
    "orders.csv",
    "u1.csv",
];

#[test]
fn what_if_json_has_the_rows_of_run_json() {
    let work = fixture("what_if_json");
    let json = work.stdout(&[WHAT_IF, &["--format", "json"]].concat());
    let baseline = work.stdout(&args(&["--format", "json"]));
    let scenario = work.stdout(&args(&["u1.csv", "--format", "json"]));
    let (baseline, scenario): (Vec<&str>, Vec<&str>) =
        (baseline.lines().collect(), scenario.lines().collect());
    // Each side is a row exactly as `run --format json` writes it; 50% is gone in the
    // scenario, so its averages have no change and its order count falls by one.
    let expected = format!(
        "{{\"PERCENTAGE\":10,\"BASELINE\":{},\"SCENARIO\":{},\"CHANGE\":{{\"AVG_ITEM_CT\":0,\"AVG_ORDER_SUBTOTAL\":28.33,\"AVG_ORDER_TOTAL\":25.50,\"AVG_DISCOUNT_TOTAL\":2.83,\"ORDER_COUNT\":1}}}}\n\
         {{\"PERCENTAGE\":25.5,\"BASELINE\":{},\"SCENARIO\":{},\"CHANGE\":{{\"AVG_ITEM_CT\":0,\"AVG_ORDER_SUBTOTAL\":0.00,\"AVG_ORDER_TOTAL\":0.00,\"AVG_DISCOUNT_TOTAL\":0.00,\"ORDER_COUNT\":0}}}}\n\
         {{\"PERCENTAGE\":50,\"BASELINE\":{},\"SCENARIO\":null,\"CHANGE\":{{\"AVG_ITEM_CT\":null,\"AVG_ORDER_SUBTOTAL\":null,\"AVG_ORDER_TOTAL\":null,\"AVG_DISCOUNT_TOTAL\":null,\"ORDER_COUNT\":-1}}}}\n",
        baseline[0], scenario[0], baseline[1], scenario[1], baseline[2]
    );
    eqnice!(expected, json);
    assert!(baseline[0].starts_with("{\"PERCENTAGE\":10,\"AVG_ITEM_CT\":3,"));
}

#[test]
fn what_if_table_is_one_block_per_percentage_within_100_columns() {
    let work = fixture("what_if_table");
    let expected = "\
percentage 10
                      baseline  scenario  change
  avg_item_ct                3         3      +0
  avg_order_subtotal     15.01     43.34  +28.33
  avg_order_total        13.50     39.00  +25.50
  avg_discount_total      1.50      4.33   +2.83
  order_count                2         3      +1

percentage 25.5
                      baseline  scenario  change
  avg_item_ct                1         1      +0
  avg_order_subtotal     99.99     99.99   +0.00
  avg_order_total        74.49     74.49   +0.00
  avg_discount_total     25.50     25.50   +0.00
  order_count                1         1      +0

percentage 50 (only in the baseline)
                      baseline  scenario  change
  avg_item_ct                4
  avg_order_subtotal    146.07
  avg_order_total        73.04
  avg_discount_total     73.04
  order_count                1         0      -1
";
    eqnice!(expected, work.stdout(WHAT_IF));
    // Generated data at scale: large figures still fit a 100-column terminal.
    work.generate(20_000, 2);
    let stdout = work.stdout(&[
        "what-if",
        "--codes",
        "discount_codes.csv",
        "--orders",
        "orders.csv",
        "update-1.jsonl",
        "update-2.jsonl",
    ]);
    let widest = stdout.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 100, "{widest} columns:\n{stdout}");
    assert!(stdout.lines().count() > 20, "{stdout}");
}

#[test]
fn sample_run_shows_epochs_and_final_table() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_discounting"))
        .current_dir(crate_dir())
        .args(["run"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("epoch 0: inputs/discount_codes.csv, inputs/orders.csv (30 rows)\n"),
        "{stdout}"
    );
    // The recipe's 15% group: orders 1002, 1004, 1007, 1008, 1012, Σ 365.18 over 5:
    // 73.036 -> 73.04; total 62.0806 -> 62.08; discount 10.9554 -> 10.96; items 18/5 -> 4.
    assert!(stdout.contains("  +1          15            4               73.04            62.08               10.96            5\n"), "{stdout}");
    assert!(stdout.contains("\nfinal table\n"));
}

#[test]
fn sample_run_final_table_as_csv() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_discounting"))
        .current_dir(crate_dir())
        .args(["run", "--format", "csv"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let expected = format!(
        "{HEADER}15,5,82.01,69.70,12.30,4\n20,4,78.61,62.89,15.72,4\n25,9,120.33,90.25,30.08,3\n30,8,130.64,91.45,39.19,1\n35,6,150.00,97.50,52.50,1\n50,7,200.51,100.26,100.26,2\n"
    );
    eqnice!(expected, String::from_utf8(output.stdout).unwrap());
}

#[test]
fn changelog_in_flink_and_debezium_forms() {
    let work = fixture("changelog_forms");
    work.stdout(&args(&[
        "u1.csv",
        "u2.jsonl",
        "--changes",
        "flink.csv",
        "--changes-format",
        "flink",
    ]));
    let expected = "\
epoch,op,percentage,avg_item_ct,avg_order_subtotal,avg_order_total,avg_discount_total,order_count
0,+I,10,3,15.01,13.50,1.50,2
0,+I,25.5,1,99.99,74.49,25.50,1
0,+I,50,4,146.07,73.04,73.04,1
1,-U,10,3,15.01,13.50,1.50,2
1,+U,10,3,43.34,39.00,4.33,3
1,-D,50,4,146.07,73.04,73.04,1
2,-U,10,3,43.34,39.00,4.33,3
2,+U,10,4,57.50,51.75,5.75,4
2,-D,25.5,1,99.99,74.49,25.50,1
";
    eqnice!(expected, work.read("flink.csv"));

    work.stdout(&args(&[
        "u1.csv",
        "u2.jsonl",
        "--changes",
        "debezium.jsonl",
        "--changes-format",
        "debezium",
    ]));
    let debezium = work.read("debezium.jsonl");
    let lines: Vec<&str> = debezium.lines().collect();
    assert_eq!(lines.len(), 7, "{debezium}");
    eqnice!(
        "{\"op\":\"c\",\"epoch\":0,\"before\":null,\"after\":{\"PERCENTAGE\":10,\"AVG_ITEM_CT\":3,\"AVG_ORDER_SUBTOTAL\":15.01,\"AVG_ORDER_TOTAL\":13.50,\"AVG_DISCOUNT_TOTAL\":1.50,\"ORDER_COUNT\":2}}",
        lines[0]
    );
    eqnice!(
        "{\"op\":\"u\",\"epoch\":1,\"before\":{\"PERCENTAGE\":10,\"AVG_ITEM_CT\":3,\"AVG_ORDER_SUBTOTAL\":15.01,\"AVG_ORDER_TOTAL\":13.50,\"AVG_DISCOUNT_TOTAL\":1.50,\"ORDER_COUNT\":2},\"after\":{\"PERCENTAGE\":10,\"AVG_ITEM_CT\":3,\"AVG_ORDER_SUBTOTAL\":43.34,\"AVG_ORDER_TOTAL\":39.00,\"AVG_DISCOUNT_TOTAL\":4.33,\"ORDER_COUNT\":3}}",
        lines[3]
    );
    assert!(lines[4].starts_with("{\"op\":\"d\",\"epoch\":1,\"before\":{\"PERCENTAGE\":50,"));
    assert!(lines[4].ends_with(",\"after\":null}"));
    for line in lines {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON");
    }
}

#[test]
fn quiet_prints_only_results() {
    let work = fixture("quiet");
    let output = work
        .command(&args(&["u2.jsonl", "--quiet", "--format", "csv"]))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8(output.stdout)
        .unwrap()
        .starts_with(HEADER));
}

/// The page as headless Chromium leaves it once its script ran (`--dump-dom`), within
/// a bounded wait.
fn rendered(work: &Workdir, html: &str) -> String {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let chromium = std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into());
    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-sync",
            "--window-size=1200,900",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.path("profile").display()
        ))
        .arg(work.path(html))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "the report tests need headless Chromium at {chromium:?} (apt-get install -y \
                 chromium, or set CHROMIUM): {e}"
            )
        });
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not render {html} in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap().unwrap()
}

#[test]
fn html_reports_are_self_contained() {
    let work = fixture("html");
    work.stdout(&args(&["u1.csv", "u2.jsonl", "--report", "run.html"]));
    let html = work.read("run.html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    // The final table, exact, and the exact figures of the last epochs.
    assert!(
        html.contains("<td>10</td><td>4</td><td>57.50</td><td>51.75</td><td>5.75</td><td>4</td>"),
        "{html}"
    );
    assert!(html.contains("<th>epoch 0</th><th>epoch 1</th><th>epoch 2</th>"));
    // Epoch 1 moved order 4 to 10%: 3 orders of 130.01 together, 43.34 each.
    assert!(
        html.contains("<tr><td>10</td><td>15.01</td><td>43.34</td><td>57.50</td></tr>"),
        "{html}"
    );
    for outside in ["src=", "href=", "url(", "@import", "https://", "fetch("] {
        assert!(
            !html.contains(outside),
            "the report must not load anything: {outside}"
        );
    }
    assert_eq!(
        html.matches("<script").count(),
        2,
        "the charts' data and the one chart function, inline"
    );
    assert!(html.contains(include_str!("../src/look/look.css")));
    assert!(html.contains(include_str!("../src/look/chart.js")));
    // Drawn: three bars for the one group left, and five line charts (one per figure)
    // of a line per percentage seen (10, 25.5 and 50, which went at epoch 1 and so is a
    // single dot), each chart with ticks on both axes.
    let dom = rendered(&work, "run.html");
    assert_eq!(dom.matches("<rect").count(), 3, "{dom}");
    assert_eq!(dom.matches("<path").count(), 15, "{dom}");
    assert_eq!(dom.matches("<circle").count(), 5, "{dom}");
    assert!(dom.matches("class=\"grid\"").count() >= 6 * 3, "{dom}");
    assert_eq!(dom.matches(">epoch</text>").count(), 5, "{dom}");
    assert_eq!(dom.matches(">currency units per order</text>").count(), 3);

    work.stdout(&[
        "what-if",
        "--codes",
        "codes.csv",
        "--orders",
        "orders.csv",
        "u1.csv",
        "--report",
        "what-if.html",
    ]);
    let html = work.read("what-if.html");
    // 10%: subtotal 15.01 -> 43.34 is marked as a rise; 50% loses its order.
    assert!(
        html.contains(
            "<td><span class=\"was\">15.01</span> → 43.34 <span class=\"change up\">+28.33</span></td>"
        ),
        "{html}"
    );
    assert!(
        html.contains(
            "<td><span class=\"was\">146.07</span> → –</td><td><span class=\"was\">73.04</span> → –</td>"
        ),
        "{html}"
    );
    assert!(
        html.contains(
            "<td><span class=\"was\">1</span> → 0 <span class=\"change down\">-1</span></td>"
        ),
        "{html}"
    );
    // Baseline and scenario charts: 3 groups of 3 bars, then 2.
    let dom = rendered(&work, "what-if.html");
    assert_eq!(dom.matches("<rect").count(), 15, "{dom}");
}

#[test]
fn a_report_of_1000_epochs_stays_small() {
    let work = Workdir::new("report_1000_epochs");
    work.stdout(&[
        "generate",
        "--orders",
        "2000",
        "--codes",
        "100",
        "--updates",
        "1000",
        "--update-size",
        "5",
        "--seed",
        "5",
        "--out",
        ".",
    ]);
    let mut run = vec![
        "run",
        "--codes",
        "discount_codes.csv",
        "--orders",
        "orders.csv",
        "--report",
        "big.html",
        "--format",
        "csv",
        "-q",
    ];
    let updates: Vec<String> = (1..=1000).map(|i| format!("update-{i:04}.jsonl")).collect();
    run.extend(updates.iter().map(String::as_str));
    work.stdout(&run);
    let html = work.read("big.html");
    // 1,001 epochs of 12 percentages: 251 epochs drawn, 8 in exact tables.
    assert!(html.len() < 200_000, "{} bytes", html.len());
    assert!(html.contains("One epoch in 4 is drawn (251 of 1001), and the last."));
    assert!(html.contains("<th>epoch 993</th>") && html.contains("<th>epoch 1000</th>"));
    assert!(!html.contains("<th>epoch 992</th>"));
    assert!(html.contains("update-0001.jsonl … update-1000.jsonl (1000 files)"));
}

/// `generate --shape realistic` writes the forms real exports have, and the job reads
/// them the same at any worker count; an unknown shape is refused by name.
#[test]
fn generate_writes_realistic_files_the_job_reads() {
    let work = Workdir::new("generate_realistic");
    let generate = [
        "generate",
        "--orders",
        "3000",
        "--codes",
        "50",
        "--updates",
        "4",
        "--update-size",
        "200",
        "--shape",
        "realistic",
        "--out",
        ".",
    ];
    work.stdout(&generate);
    let codes = work.read("discount_codes.csv");
    assert!(
        codes.starts_with("\u{feff}Code,percentage\r\n"),
        "{codes:.40}"
    );
    let orders = work.read("orders.csv");
    let header = orders.lines().next().unwrap();
    assert!(
        header.contains("Id") && header.contains("ORDER_SUBTOTAL"),
        "{header}"
    );
    assert!(orders.contains('"'), "some fields are quoted");
    // The three time forms: RFC 3339, the space form, epoch milliseconds.
    let times: Vec<&str> = orders
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1))
        .collect();
    assert!(times.iter().any(|t| t.contains('T')));
    assert!(times.iter().any(|t| t.contains(' ')));
    assert!(times
        .iter()
        .any(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())));
    let updates = [
        "update-1.jsonl",
        "update-2.csv",
        "update-3.jsonl",
        "update-4.csv",
    ];
    for update in updates {
        assert!(work.path(update).is_file(), "{update}");
    }
    let run = |workers: &str, changes: &str| {
        let mut args = vec![
            "run",
            "-w",
            workers,
            "--codes",
            "discount_codes.csv",
            "--orders",
            "orders.csv",
            "--changes",
            changes,
            "--format",
            "csv",
            "-q",
        ];
        args.extend(updates);
        work.stdout(&args)
    };
    let one = run("1", "changes-1.csv");
    assert_eq!(one, run("2", "changes-2.csv"));
    assert!(one.starts_with(HEADER) && one.lines().count() > 1, "{one}");
    let changelog = work.read("changes-1.csv");
    assert_eq!(changelog, work.read("changes-2.csv"));
    let epochs: std::collections::BTreeSet<&str> = changelog
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        epochs.into_iter().collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4"]
    );

    let refused = work
        .command(&["generate", "--shape", "bogus", "--out", "x"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("invalid value 'bogus' for '--shape <SHAPE>'")
            && stderr.contains("[possible values: friendly, realistic]"),
        "{stderr}"
    );
}
