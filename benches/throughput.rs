//! Load throughput, epoch latency and memory of the job at 1 and 2 workers, side by side
//! with the hand-written single-threaded baseline (`baseline.rs`), in one run.
//!
//! Usage: `cargo bench --bench throughput` (1M orders), or with
//! `DISCOUNTING_BENCH_ORDERS=10000000` for 10M. Data is generated off the clock with a fixed
//! seed (`discounting generate`'s generator). Every configuration runs in a process of its
//! own, so that its peak memory (VmHWM) is its own: the job is the release binary with
//! `--stats`, the baseline is this program re-run with `--baseline-child`. Timings are the
//! binaries' own per-epoch figures, from the start of reading a file to complete results.
//! Each configuration runs `DISCOUNTING_BENCH_RUNS` times (default 3) and every figure is
//! the median of those runs: on 2 cores a single run is noisy. Last, the reader alone
//! parses the orders snapshot on one thread, for the share of the load that is parsing
//! (`--parse-only FILE` runs just that, once, e.g. under `perf` or `valgrind`).

mod baseline;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use discounting::generate::{code_name, Generator, Spec};
use discounting::input::{read_share, BadRows, Role, Share, Source};
use discounting::model::Table;
use discounting::source::files::FileSpec;

/// The epochs measured after the load, each three times with different data.
const SCENARIOS: [&str; 4] = [
    "code correction",
    "1000 order upserts",
    "1000 new orders",
    "1000 order deletes",
];
const ROUNDS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--baseline-child") => return baseline_child(&args[2..]),
        // One pass of the reader over an orders file, to profile it alone.
        Some("--parse-only") => {
            let rate = parse_only(Path::new(&args[2]), 1);
            return println!("reader.parse_only_rows_per_sec={rate:.0}");
        }
        _ => {}
    }
    let orders: u64 = std::env::var("DISCOUNTING_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{orders}"));
    let files = prepare(&dir, orders);

    let runs: usize = std::env::var("DISCOUNTING_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    let mut baseline_command = Command::new(std::env::current_exe().unwrap());
    baseline_command.arg("--baseline-child").args(&files);
    let baseline = measure_median("baseline", &mut baseline_command, runs);
    let mut results = Vec::new();
    for workers in ["1", "2"] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_discounting"));
        command
            .args([
                "run", "--stats", "--format", "csv", "-w", workers, "--codes",
            ])
            .arg(&files[0])
            .arg("--orders")
            .arg(&files[1])
            .args(&files[2..]);
        let run = measure_median(&format!("dataflow -w {workers}"), &mut command, runs);
        assert_eq!(
            run.table, baseline.table,
            "the job and the baseline must give the same answers"
        );
        results.push(run);
    }
    let parse = parse_only(&files[1], runs);
    report(orders, &baseline, &results);
    println!("reader.parse_only_rows_per_sec={parse:.0}");
}

/// Rows per second of the reader alone on one thread: the orders snapshot parsed into
/// changes that go nowhere (the median of `runs` passes). It is what both the baseline
/// and each worker of the job pay before doing anything with an order.
fn parse_only(orders: &Path, runs: usize) -> f64 {
    let source = Source::new(orders, Role::Snapshot(Table::Orders));
    let whole = Share { index: 0, peers: 1 };
    let rates = (0..runs.max(1))
        .map(|_| {
            let started = std::time::Instant::now();
            let report = read_share(&source, whole, BadRows::Fail, &mut |position, change| {
                std::hint::black_box((position, change));
            })
            .unwrap();
            report.rows as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    median(rates)
}

/// Generates the base (if not there yet) and writes the scenario update files.
fn prepare(dir: &Path, orders: u64) -> Vec<PathBuf> {
    let spec = Spec {
        orders,
        codes: 1000,
        updates: 0,
        update_size: 0,
        seed: 42,
    };
    let codes = dir.join("discount_codes.csv");
    let base = dir.join("orders.csv");
    if !base.exists() {
        eprintln!("bench: generating {orders} orders in {}", dir.display());
        Generator::new(spec).write_all(dir).unwrap();
    }
    // The first code of the base: generated with some percentage, corrected here to others.
    let first_code = std::fs::read_to_string(&codes)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let mut files = vec![codes, base];
    let header = "op,id,order_time,customer_id,item_ct,order_subtotal,discount_code\n";
    let code = |i: u64| code_name(i % 900, "5");
    for round in 0..ROUNDS as u64 {
        let write = |name: &str, text: String| {
            let path = dir.join(format!("{name}-{round}.csv"));
            std::fs::write(&path, text).unwrap();
            path
        };
        files.push(write(
            "code-correction",
            format!("op,code,percentage\nupsert,{first_code},{}\n", 17 + round),
        ));
        let mut text = String::from(header);
        for i in 0..1000 {
            let id = 1 + (i * 7919 + round * 104_729) % orders;
            text.push_str(&format!(
                "upsert,{id},1793664000000,{i},{},{}.{:02},{}\n",
                1 + i % 9,
                10 + i % 400,
                i % 100,
                code(i + round)
            ));
        }
        files.push(write("upserts", text));
        let mut text = String::from(header);
        for i in 0..1000 {
            let id = orders + 1 + round * 1000 + i;
            text.push_str(&format!(
                "upsert,{id},1793664000000,{i},{},{}.{:02},{}\n",
                1 + i % 9,
                10 + i % 400,
                i % 100,
                code(i)
            ));
        }
        files.push(write("new", text));
        let mut text = String::from("op,id\n");
        for i in 0..1000 {
            let id = 1 + (i * 15_485_863 + round * 32_452_843 + 5) % orders;
            text.push_str(&format!("delete,{id}\n"));
        }
        files.push(write("deletes", text));
    }
    files
}

struct Measured {
    name: String,
    seconds: Vec<f64>,
    rows: Vec<u64>,
    resident_after_load: u64,
    peak: u64,
    table: String,
}

fn measure(name: &str, command: &mut Command) -> Measured {
    eprintln!("bench: running {name}");
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} failed: {stderr}");
    let mut measured = Measured {
        name: name.to_string(),
        seconds: Vec::new(),
        rows: Vec::new(),
        resident_after_load: 0,
        peak: 0,
        table: String::from_utf8(output.stdout).unwrap(),
    };
    for line in stderr.lines().filter_map(|l| l.strip_prefix("stats: ")) {
        let field = |key: &str| {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(key))
                .map(str::to_string)
        };
        if let Some(peak) = field("peak_resident_bytes=") {
            measured.peak = peak.parse().unwrap();
            continue;
        }
        measured.rows.push(field("rows=").unwrap().parse().unwrap());
        measured
            .seconds
            .push(field("seconds=").unwrap().parse().unwrap());
        if measured.rows.len() == 1 {
            measured.resident_after_load = field("resident_bytes=")
                .unwrap_or_default()
                .parse()
                .unwrap_or(0);
        }
    }
    assert_eq!(
        measured.seconds.len(),
        1 + SCENARIOS.len() * ROUNDS,
        "{name}: one stats line per epoch"
    );
    measured
}

/// Runs a configuration `runs` times and keeps, for every figure, the median.
fn measure_median(name: &str, command: &mut Command, runs: usize) -> Measured {
    let all: Vec<Measured> = (0..runs.max(1)).map(|_| measure(name, command)).collect();
    let epochs = all[0].seconds.len();
    let middle = |values: Vec<u64>| {
        let mut values = values;
        values.sort_unstable();
        values[values.len() / 2]
    };
    Measured {
        name: name.to_string(),
        seconds: (0..epochs)
            .map(|e| median(all.iter().map(|m| m.seconds[e]).collect()))
            .collect(),
        rows: all[0].rows.clone(),
        resident_after_load: middle(all.iter().map(|m| m.resident_after_load).collect()),
        peak: middle(all.iter().map(|m| m.peak).collect()),
        table: all[0].table.clone(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

impl Measured {
    fn load_per_second(&self) -> f64 {
        self.rows[0] as f64 / self.seconds[0]
    }
    /// Median latency of scenario `s` over its rounds, in milliseconds.
    fn latency_ms(&self, s: usize) -> f64 {
        median(
            (0..ROUNDS)
                .map(|r| self.seconds[1 + r * SCENARIOS.len() + s] * 1e3)
                .collect(),
        )
    }
}

fn report(orders: u64, baseline: &Measured, runs: &[Measured]) {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "orders={orders} cores={} (each figure the median of the runs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
    .unwrap();
    writeln!(
        out,
        "{:<14} {:>14} {:>7} {:>11} {:>11} {:>11} {:>11} {:>12} {:>12}",
        "config",
        "load rows/s",
        "ratio",
        "code ms",
        "upsert ms",
        "new ms",
        "delete ms",
        "held B/ord",
        "peak B/ord"
    )
    .unwrap();
    for run in std::iter::once(baseline).chain(runs) {
        writeln!(
            out,
            "{:<14} {:>14.0} {:>7.2} {:>11.3} {:>11.3} {:>11.3} {:>11.3} {:>12.1} {:>12.1}",
            run.name,
            run.load_per_second(),
            run.load_per_second() / baseline.load_per_second(),
            run.latency_ms(0),
            run.latency_ms(1),
            run.latency_ms(2),
            run.latency_ms(3),
            run.resident_after_load as f64 / orders as f64,
            run.peak as f64 / orders as f64,
        )
        .unwrap();
    }
    // One key=value line per figure, for scripts.
    for run in std::iter::once(baseline).chain(runs) {
        let name = run.name.replace(' ', "");
        writeln!(out, "{name}.load_rows_per_sec={:.0}", run.load_per_second()).unwrap();
        for (s, scenario) in SCENARIOS.iter().enumerate() {
            writeln!(
                out,
                "{name}.{}_ms={:.3}",
                scenario.replace(' ', "_"),
                run.latency_ms(s)
            )
            .unwrap();
        }
        writeln!(
            out,
            "{name}.held_bytes_per_order={:.1}",
            run.resident_after_load as f64 / orders as f64
        )
        .unwrap();
        writeln!(
            out,
            "{name}.peak_bytes_per_order={:.1}",
            run.peak as f64 / orders as f64
        )
        .unwrap();
    }
}

/// The baseline on `files` (codes, orders, updates...), printing what `run --stats` prints.
fn baseline_child(files: &[String]) {
    let spec = FileSpec {
        codes: files[0].clone().into(),
        orders: files[1].clone().into(),
        updates: files[2..].iter().map(PathBuf::from).collect(),
        follow: None,
    };
    let (stats, tables) = baseline::Baseline::run(&spec).unwrap_or_else(|e| panic!("{e}"));
    let mut csv = Vec::new();
    discounting::output::write_table(
        &mut csv,
        tables.last().unwrap(),
        discounting::output::TableFormat::Csv,
    )
    .unwrap();
    std::io::stdout().write_all(&csv).unwrap();
    for (epoch, s) in stats.iter().enumerate() {
        let seconds = s.elapsed.as_secs_f64();
        eprint!(
            "stats: epoch={epoch} rows={} seconds={seconds:.6} rows_per_sec={:.0}",
            s.rows,
            s.rows as f64 / seconds
        );
        if epoch == 0 {
            eprint!(" resident_bytes={}", s.resident_bytes.unwrap_or(0));
        }
        eprintln!();
    }
    eprintln!(
        "stats: peak_resident_bytes={}",
        discounting::memory::peak_resident_bytes().unwrap_or(0)
    );
}
