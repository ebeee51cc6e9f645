//! Load throughput, epoch latency and memory of the job at 1 and 2 workers, side by side
//! with the hand-written single-threaded baseline (`baseline.rs`), in one run.
//!
//! Usage: `cargo bench --bench throughput` (1M orders), or with
//! `DISCOUNTING_BENCH_ORDERS=10000000` for 10M. Data is generated off the clock with a fixed
//! seed (`discounting generate`'s generator), in both its shapes: realistic files (every
//! accepted form, mixed) and friendly ones (`DISCOUNTING_BENCH_SHAPES` picks). Every
//! configuration runs in a process of its
//! own, so that its peak memory (VmHWM) is its own: the job is the release binary with
//! `--stats`, the baseline is this program re-run with `--baseline-child`. Timings are the
//! binaries' own per-epoch figures, from the start of reading a file to complete results.
//! Each configuration runs `DISCOUNTING_BENCH_RUNS` times (default 3), the configurations
//! compared with each other in turns (baseline, 1 worker, 2 workers, then again), and
//! every figure is the median of those runs: on 2 cores a single run is noisy, and the
//! host's speed drifts by more than some of the gaps. Last, the reader alone
//! parses the orders snapshot on one thread, for the share of the load that is parsing
//! (`--parse-only FILE` runs just that, once, e.g. under `perf` or `valgrind`). The job's
//! epochs are measured again beside a process that keeps one core busy. Then the job
//! reads an update file of 2,000,000 changes at 1 and 2 workers, and last it runs `DISCOUNTING_BENCH_SPIKE_EPOCHS` (default 200) epochs of 10,000 realistic changes
//! each and reports their latency's p50, p99 and max.

mod baseline;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use discounting::generate::{code_name, Generated, Generator, Shape, Spec};
use discounting::input::{read_share, BadRows, Role, Share, Source};
use discounting::model::Table;
use discounting::source::files::FileSpec;

/// The epochs measured after the load, each `ROUNDS` times with different data. The last
/// is an update file of the generator's shape (JSON Lines of both tables, or for
/// realistic files every other one CSV), the others CSV files the bench writes.
const SCENARIOS: [&str; 5] = [
    "code correction",
    "1000 order upserts",
    "1000 new orders",
    "1000 order deletes",
    "1000 mixed changes",
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
        // A process that keeps one core busy until it is killed.
        Some("--spin") => loop {
            std::hint::black_box(std::time::Instant::now());
        },
        _ => {}
    }
    let orders: u64 = env_number("DISCOUNTING_BENCH_ORDERS", 1_000_000);
    let runs = env_number("DISCOUNTING_BENCH_RUNS", 3) as usize;
    let shapes =
        std::env::var("DISCOUNTING_BENCH_SHAPES").unwrap_or_else(|_| "realistic,friendly".into());
    for name in shapes.split(',').filter(|name| !name.is_empty()) {
        let shape = match name {
            "friendly" => Shape::Friendly,
            "realistic" => Shape::Realistic,
            other => panic!("DISCOUNTING_BENCH_SHAPES: no shape {other:?}"),
        };
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{orders}-{name}"));
        let files = prepare(&dir, orders, shape);
        measure_shape(name, orders, &files, runs);
    }
    if std::env::var("DISCOUNTING_BENCH_LARGE_UPDATE").as_deref() != Ok("0") {
        large_update(orders, runs);
    }
    let spike_epochs = env_number("DISCOUNTING_BENCH_SPIKE_EPOCHS", 200);
    if spike_epochs > 0 {
        spikes(orders, spike_epochs);
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The job's command over `files` (codes, orders, updates...) at `workers` workers.
fn job_command(workers: &str, files: &[PathBuf]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_discounting"));
    command
        .args([
            "run", "--stats", "--format", "csv", "-w", workers, "--codes",
        ])
        .arg(&files[0])
        .arg("--orders")
        .arg(&files[1])
        .args(&files[2..]);
    command
}

/// The baseline and the job at 1 and 2 workers on one shape of files, then the job's
/// epochs again beside a process that keeps a core busy.
fn measure_shape(shape: &str, orders: u64, files: &[PathBuf], runs: usize) {
    let mut baseline_command = Command::new(std::env::current_exe().unwrap());
    baseline_command.arg("--baseline-child").args(files);
    let mut quiet = vec![("baseline".to_string(), baseline_command)];
    for workers in ["1", "2"] {
        quiet.push((
            format!("dataflow -w {workers}"),
            job_command(workers, files),
        ));
    }
    let mut results = measure_in_turns(&mut quiet, runs);
    let baseline = results.remove(0);
    for run in &results {
        assert_eq!(
            run.table, baseline.table,
            "the job and the baseline must give the same answers"
        );
    }
    // A busy core beside the job: with 2 workers, one shares a core with the spinner.
    let mut spinner = Command::new(std::env::current_exe().unwrap())
        .arg("--spin")
        .spawn()
        .unwrap();
    let mut busy: Vec<(String, Command)> = ["1", "2"]
        .iter()
        .map(|workers| {
            (
                format!("busy core -w {workers}"),
                job_command(workers, files),
            )
        })
        .collect();
    results.extend(measure_in_turns(&mut busy, runs));
    spinner.kill().unwrap();
    spinner.wait().unwrap();
    let parse = parse_only(&files[1], runs);
    report(shape, orders, &baseline, &results);
    println!("{shape}.reader.parse_only_rows_per_sec={parse:.0}");
}

/// A realistic base of `orders` and `updates` update files of `size` changes each,
/// generated once into a directory of their own.
fn generated_epochs(orders: u64, updates: u64, size: u64) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-{orders}-realistic-{updates}x{size}"));
    let spec = Spec {
        orders,
        codes: 1000,
        updates,
        update_size: size,
        seed: 43,
        shape: Shape::Realistic,
    };
    let generated = generate_once(&dir, spec);
    let mut files = vec![generated.codes, generated.orders];
    files.extend(generated.updates);
    files
}

/// The files of `spec` in `dir`, generated unless a run before generated them.
fn generate_once(dir: &Path, spec: Spec) -> Generated {
    if !dir.join("orders.csv").exists() {
        eprintln!(
            "bench: generating {} orders ({:?}) and {} update files of {} in {}",
            spec.orders,
            spec.shape,
            spec.updates,
            spec.update_size,
            dir.display()
        );
        return Generator::new(spec).write_all(dir).unwrap();
    }
    let mut updates: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("update-"))
        })
        .collect();
    updates.sort();
    Generated {
        codes: dir.join("discount_codes.csv"),
        orders: dir.join("orders.csv"),
        updates,
    }
}

/// The seconds of each epoch after the base, from a run of the job at `workers`.
fn epoch_seconds(workers: &str, files: &[PathBuf]) -> Vec<f64> {
    eprintln!(
        "bench: running dataflow -w {workers} over {} update files",
        files.len() - 2
    );
    let output = job_command(workers, files).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "-w {workers} failed: {stderr}");
    let seconds: Vec<f64> = stats_lines(&stderr)
        .skip(1)
        .map(|fields| fields["seconds"].parse().unwrap())
        .collect();
    assert_eq!(seconds.len(), files.len() - 2, "one stats line per epoch");
    seconds
}

/// Epochs of 10,000 realistic changes on the base, many of them: each epoch's latency,
/// as p50, p99 and max, at 1 and 2 workers. Among them are the epochs in which a worker's
/// recent changes cross the threshold at which they are merged into its sorted run.
fn spikes(orders: u64, epochs: u64) {
    let files = generated_epochs(orders, epochs, 10_000);
    for workers in ["1", "2"] {
        let mut seconds = epoch_seconds(workers, &files);
        seconds.sort_by(f64::total_cmp);
        let at = |q: f64| seconds[((seconds.len() - 1) as f64 * q).round() as usize] * 1e3;
        println!(
            "spikes: orders={orders} epochs={epochs}x10000 -w {workers}: p50={:.2} ms p99={:.2} ms max={:.2} ms",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}

/// One update file of 2,000,000 realistic changes (CSV and JSON Lines, mixed), read in
/// parallel shares: its changes per second at 1 and 2 workers (median of `runs`).
fn large_update(orders: u64, runs: usize) {
    let mut files = generated_epochs(orders, 2, 2_000_000);
    // Per worker count, per file, each run's rate; the two worker counts in turns.
    let mut per_run = [vec![Vec::new(); 2], vec![Vec::new(); 2]];
    for _ in 0..runs.max(1) {
        for (workers, per_file) in ["1", "2"].iter().zip(&mut per_run) {
            for (index, seconds) in epoch_seconds(workers, &files).into_iter().enumerate() {
                per_file[index].push(2_000_000.0 / seconds);
            }
        }
    }
    let rates: Vec<Vec<f64>> = per_run
        .into_iter()
        .map(|per_file| per_file.into_iter().map(median).collect())
        .collect();
    for (index, file) in files.drain(2..).enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        println!(
            "large update: {name} (2000000 changes): -w 1 {:.0} changes/s, -w 2 {:.0} changes/s ({:.2}x)",
            rates[0][index],
            rates[1][index],
            rates[1][index] / rates[0][index]
        );
    }
}

/// Each `stats:` line of a run as its key=value fields.
fn stats_lines(stderr: &str) -> impl Iterator<Item = std::collections::HashMap<&str, &str>> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("stats: "))
        .filter(|line| line.starts_with("epoch="))
        .map(|line| {
            line.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .collect()
        })
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

/// Generates the base and the generator's update files (if not there yet) and writes the
/// scenario update files.
fn prepare(dir: &Path, orders: u64, shape: Shape) -> Vec<PathBuf> {
    let spec = Spec {
        orders,
        codes: 1000,
        updates: ROUNDS as u64,
        update_size: 1000,
        seed: 42,
        shape,
    };
    let generated = generate_once(dir, spec);
    let codes = generated.codes;
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
    let mut files = vec![codes, generated.orders];
    let header = "op,id,order_time,customer_id,item_ct,order_subtotal,discount_code\n";
    let code = |i: u64| code_name(i % 900, "5");
    // New orders' ids far from those the generator's update files add.
    let new_ids = orders + 1_000_000_000;
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
            let id = new_ids + round * 1000 + i;
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
        files.push(generated.updates[round as usize].clone());
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
    if let Some(peak) = stderr
        .lines()
        .find_map(|line| line.strip_prefix("stats: peak_resident_bytes="))
    {
        measured.peak = peak.parse().unwrap();
    }
    for fields in stats_lines(&stderr) {
        measured.rows.push(fields["rows"].parse().unwrap());
        measured.seconds.push(fields["seconds"].parse().unwrap());
        if measured.rows.len() == 1 {
            measured.resident_after_load = fields
                .get("resident_bytes")
                .and_then(|b| b.parse().ok())
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

/// Runs every configuration `runs` times, in turns (one run of each, then again), so that
/// a change in the host's speed meets all of them alike; for every figure of each, the
/// median of its runs.
fn measure_in_turns(configs: &mut [(String, Command)], runs: usize) -> Vec<Measured> {
    let mut all: Vec<Vec<Measured>> = configs.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs.max(1) {
        for ((name, command), measured) in configs.iter_mut().zip(&mut all) {
            measured.push(measure(name, command));
        }
    }
    all.into_iter().map(median_run).collect()
}

/// One configuration's runs as one: for every figure, the median.
fn median_run(all: Vec<Measured>) -> Measured {
    let epochs = all[0].seconds.len();
    let middle = |values: Vec<u64>| {
        let mut values = values;
        values.sort_unstable();
        values[values.len() / 2]
    };
    Measured {
        name: all[0].name.clone(),
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

fn report(shape: &str, orders: u64, baseline: &Measured, runs: &[Measured]) {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{shape} files: orders={orders} cores={} (each figure the median of the runs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
    .unwrap();
    writeln!(
        out,
        "{:<16} {:>12} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "config",
        "load rows/s",
        "ratio",
        "code ms",
        "upsert ms",
        "new ms",
        "delete ms",
        "mixed ms",
        "held B/ord",
        "peak B/ord"
    )
    .unwrap();
    for run in std::iter::once(baseline).chain(runs) {
        write!(
            out,
            "{:<16} {:>12.0} {:>6.2}",
            run.name,
            run.load_per_second(),
            run.load_per_second() / baseline.load_per_second(),
        )
        .unwrap();
        for s in 0..SCENARIOS.len() {
            write!(out, " {:>9.3}", run.latency_ms(s)).unwrap();
        }
        writeln!(
            out,
            " {:>10.1} {:>10.1}",
            run.resident_after_load as f64 / orders as f64,
            run.peak as f64 / orders as f64,
        )
        .unwrap();
    }
    // One key=value line per figure, for scripts.
    for run in std::iter::once(baseline).chain(runs) {
        let name = format!("{shape}.{}", run.name.replace(' ', ""));
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
