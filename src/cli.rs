//! Command-line arguments, and the plan they resolve to.
//!
//! `Cli` mirrors the flags and checks only what clap can; `Cli::into_plan` resolves
//! defaults (the sample data in `inputs/`), reads the hostfile and checks the flags
//! against each other. The rest of the program sees only the `Plan`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cluster::Patience;
use crate::generate::{Shape, Spec};
use crate::input::BadRows;
use crate::output::{ChangelogFormat, TableFormat};
use crate::run::{Job, Workers};
use crate::source::files::FileSpec;
use crate::source::kafka::messages::ValueFormat;
use crate::source::kafka::KafkaSpec;
use crate::source::postgres::PostgresSpec;
use crate::source::SourceSpec;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

/// Per-discount order analytics, kept exact while orders and codes change.
///
/// Joins orders with discount codes and reports, per discount percentage, the average
/// item count, subtotal, total after discount and discount, and the order count. Both
/// inputs are keyed tables: update files upsert and delete rows, and every epoch's result
/// is the query over the tables as they then are.
#[derive(Debug, Parser)]
#[command(name = "discounting", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the base snapshots, apply each update file as one epoch, print the result.
    ///
    /// With no files, runs the sample data in inputs/ and shows every epoch's changes.
    Run(RunArgs),
    /// Compare the result of the base snapshots with the result after scenario files.
    ///
    /// The scenario files are applied as epochs on top of the base; the base files are
    /// only read. Prints, per percentage, each figure before, after, and the change.
    #[command(name = "what-if")]
    WhatIf(WhatIfArgs),
    /// Write deterministic base snapshots and update files at any scale.
    Generate(GenerateArgs),
}

/// Bounds of `generate`: ids stay far inside 64 bits whatever the updates add, and
/// the codes' table (held in memory while writing) stays small.
const MAX_GENERATED_ORDERS: u64 = 1_000_000_000_000;
const MAX_GENERATED_CODES: u64 = 10_000_000;

/// Above this many workers per process timely's channels (which grow with the square of
/// the workers) no longer fit in any memory.
const MAX_WORKERS: usize = 1024;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Orders in the base snapshot (at most 10^12).
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(0..=MAX_GENERATED_ORDERS))]
    pub orders: u64,
    /// Discount codes (one in twenty arrives only in an update file; at most 10^7).
    #[arg(long, value_name = "M", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(0..=MAX_GENERATED_CODES))]
    pub codes: u64,
    /// Update files to write, one epoch each (at most 10^6).
    #[arg(long, value_name = "K", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub updates: u64,
    /// Changes per update file (at most 10^9).
    #[arg(long, value_name = "U", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub update_size: u64,
    /// Seed: the same seed writes the same files.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// How the files are written: `friendly` (ids in order, epoch-millisecond times,
    /// two-decimal subtotals) or `realistic` (every accepted form, mixed).
    #[arg(long, value_enum, default_value_t = Shape::Friendly)]
    pub shape: Shape,
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Base snapshot of the discount_codes table (.csv, or .jsonl, .json or .ndjson for JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub codes: Option<PathBuf>,
    /// Base snapshot of the orders table (.csv, or .jsonl, .json or .ndjson for JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub orders: Option<PathBuf>,
    /// Update files, applied in the order given, one epoch each.
    #[arg(value_name = "UPDATE_FILE")]
    pub updates: Vec<PathBuf>,
    /// Then keep applying the update files that appear in DIR, in name order, printing
    /// each epoch's changes as it completes, until Ctrl-C (SIGINT) or SIGTERM. A file
    /// counts once its name is final: write it as `.name.csv` or `name.csv.tmp` and
    /// rename it. A bad file is reported and skipped.
    #[arg(long, value_name = "DIR")]
    pub follow: Option<PathBuf>,
    /// Read the tables from a PostgreSQL database (postgres://user@host:port/db), then
    /// follow its logical replication stream, one whole transaction at a time, until
    /// Ctrl-C or SIGTERM. The server needs wal_level = logical; the user REPLICATION and
    /// SELECT on both tables.
    #[arg(long, value_name = "URL", conflicts_with_all = ["codes", "orders", "updates", "follow"])]
    pub postgres: Option<String>,
    /// With --postgres: the orders table (optionally schema-qualified).
    #[arg(long, value_name = "TABLE", default_value = "orders")]
    pub orders_table: String,
    /// With --postgres: the discount codes table (optionally schema-qualified).
    #[arg(long, value_name = "TABLE", default_value = "discount_codes")]
    pub codes_table: String,
    /// With --postgres: the publication to read (created for both tables if absent).
    #[arg(long, value_name = "NAME", default_value = "discounting")]
    pub publication: String,
    /// With --postgres: a named replication slot that outlives the job (it is dropped
    /// and made afresh at each start); without it a temporary slot is used, which goes
    /// with the connection.
    #[arg(long, value_name = "NAME")]
    pub slot: Option<String>,
    /// Read the tables from Kafka topics (BROKERS: host:port[,host:port...]) from their
    /// earliest offsets, then follow them until Ctrl-C or SIGTERM. A message's value is a
    /// row as ksqlDB's JSON format writes it or a Debezium event; a null value deletes
    /// the key's row.
    #[arg(long, value_name = "BROKERS",
          conflicts_with_all = ["codes", "orders", "updates", "follow", "postgres"])]
    pub kafka: Option<String>,
    /// With --kafka: the orders topic.
    #[arg(long, value_name = "TOPIC", default_value = "orders")]
    pub orders_topic: String,
    /// With --kafka: the discount codes topic.
    #[arg(long, value_name = "TOPIC", default_value = "discount_codes")]
    pub codes_topic: String,
    /// With --kafka: how message values are written (auto: each message on its own).
    #[arg(long, value_enum, default_value_t = ValueFormat::Auto)]
    pub kafka_format: ValueFormat,
    /// With --kafka: the consumer group the read offsets are committed to (for
    /// monitoring; a restart reads the topics from the start).
    #[arg(long, value_name = "NAME", default_value = "discounting")]
    pub kafka_group: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct WhatIfArgs {
    /// Base snapshot of the discount_codes table.
    #[arg(long, value_name = "FILE")]
    pub codes: PathBuf,
    /// Base snapshot of the orders table.
    #[arg(long, value_name = "FILE")]
    pub orders: PathBuf,
    /// Scenario files: update files applied on top of the base, in order.
    #[arg(value_name = "SCENARIO_FILE", required = true)]
    pub scenario: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Worker threads in this process.
    #[arg(
        short = 'w',
        long = "workers",
        visible_alias = "threads",
        value_name = "N",
        default_value_t = 1
    )]
    pub workers: usize,
    /// Processes in a timely cluster (each started with the same arguments and files).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub processes: usize,
    /// This process's index in the cluster, from 0; process 0 writes every output.
    #[arg(long, value_name = "I", default_value_t = 0)]
    pub process: usize,
    /// Addresses of the cluster's processes, one host:port per line, in process order.
    #[arg(long, value_name = "FILE")]
    pub hostfile: Option<PathBuf>,
    /// Seconds a cluster process waits for the others to connect before it gives up.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub connect_timeout: u64,
    /// Seconds a cluster process goes on without a heartbeat from another (stopped,
    /// hung or cut off) before the run ends with an error.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub peer_timeout: u64,
    /// How the final table is printed on stdout.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// Write every epoch's changes to the result (the changelog) to FILE, in the form
    /// --changes-format says: CSV by default (epoch,diff,percentage,...).
    #[arg(long, value_name = "FILE")]
    pub changes: Option<PathBuf>,
    /// The changelog's form: CSV with a diff column (epoch,diff,percentage,avg_item_ct,
    /// avg_order_subtotal,avg_order_total,avg_discount_total,order_count), Debezium-style
    /// JSON Lines (op/before/after), or CSV with Flink's row kinds (+I/-U/+U/-D).
    #[arg(long, value_enum, default_value_t = ChangelogFormat::Csv)]
    pub changes_format: ChangelogFormat,
    /// Write a self-contained HTML report: the final table and a bar chart, each figure
    /// epoch by epoch, and for what-if the baseline and scenario side by side.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Write the enriched orders' changes (each counted order with its percentage,
    /// order total and discount total) as CSV.
    #[arg(long, value_name = "FILE")]
    pub enriched: Option<PathBuf>,
    /// Print nothing but results (and errors): no progress, no notes on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print per-epoch figures on stderr, one line each, for scripts:
    /// `stats: epoch=1 rows=1000 seconds=0.000812 rows_per_sec=1231527 resident_bytes=...`.
    #[arg(long)]
    pub stats: bool,
    /// What a bad row does: fail the run (nothing of its file is applied), or skip it.
    #[arg(long, value_enum, default_value_t = BadRowsArg::Fail)]
    pub bad_rows: BadRowsArg,
    /// With --bad-rows skip: write every rejected row with its reason as CSV.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Keep the result in a table of a PostgreSQL database (postgres://user@host/db),
    /// one transaction per epoch with a row in discounting_progress.
    #[arg(long, value_name = "URL")]
    pub sink_postgres: Option<String>,
    /// Serve the result over HTTP at ADDR (e.g. 127.0.0.1:8080): the table as JSON at
    /// /v1/discount_analysis, each epoch's changes as Server-Sent Events at /v1/changes,
    /// a live dashboard at /, Prometheus metrics at /metrics, /healthz.
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<std::net::SocketAddr>,
    /// Write the result to the Kafka topic TOPIC, as ksqlDB's DISCOUNT_ANALYSIS table
    /// does: key the percentage, value the JSON row, a tombstone when a row goes away.
    #[arg(long, value_name = "TOPIC")]
    pub sink_kafka: Option<String>,
    /// With --sink-kafka: the brokers to write to (default: those of --kafka).
    #[arg(long, value_name = "BROKERS", requires = "sink_kafka")]
    pub sink_brokers: Option<String>,
    /// Seconds the Kafka brokers may stay silent (or a sink's write unacknowledged)
    /// before the run ends with an error.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub kafka_timeout: u64,
    /// With --sink-postgres: the result table (optionally schema-qualified).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "discount_analysis",
        requires = "sink_postgres"
    )]
    pub result_table: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BadRowsArg {
    Fail,
    Skip,
}

/// What `main` carries out.
#[derive(Debug, Clone)]
pub enum Plan {
    Job(Box<JobPlan>),
    Generate { spec: Spec, out: PathBuf },
}

/// A job, where to run it, and what to print.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub job: Job,
    pub workers: Workers,
    pub report: Report,
    pub format: TableFormat,
    pub changes: Option<PathBuf>,
    pub changes_format: ChangelogFormat,
    pub html_report: Option<PathBuf>,
    pub enriched: Option<PathBuf>,
    pub rejects: Option<PathBuf>,
    /// A database URL and the table that keeps the result there.
    pub sink_postgres: Option<(String, String)>,
    /// Where the HTTP API and dashboard listen.
    pub serve: Option<std::net::SocketAddr>,
    pub sink_kafka: Option<KafkaSinkPlan>,
    pub stats: bool,
    pub quiet: bool,
}

/// Where `--sink-kafka` writes.
#[derive(Debug, Clone)]
pub struct KafkaSinkPlan {
    pub brokers: String,
    pub topic: String,
    pub patience: Duration,
}

/// What goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The final table.
    Table,
    /// Every epoch's changes, then the final table (the sample run).
    EpochsAndTable,
    /// Baseline against scenario.
    WhatIf,
    /// Each epoch's changes as it completes (follow mode); in text, the final table too.
    Live,
}

impl Cli {
    /// Resolves the arguments into a plan, or says which arguments do not fit together.
    pub fn into_plan(self) -> anyhow::Result<Plan> {
        match self.command {
            Command::Run(args) if args.postgres.is_some() => {
                let source = postgres_source(&args)?;
                plan(source, Report::Live, args.common)
            }
            Command::Run(args) if args.kafka.is_some() => {
                let source = SourceSpec::Kafka(KafkaSpec {
                    brokers: args.kafka.clone().unwrap_or_default(),
                    codes_topic: args.codes_topic.clone(),
                    orders_topic: args.orders_topic.clone(),
                    format: args.kafka_format,
                    group: args.kafka_group.clone(),
                    patience: Duration::from_secs(args.common.kafka_timeout),
                });
                plan(source, Report::Live, args.common)
            }
            Command::Run(args) => {
                let follow = args.follow;
                let (codes, orders, updates, report) = match (args.codes, args.orders) {
                    (Some(codes), Some(orders)) => (codes, orders, args.updates, Report::Table),
                    (None, None) if args.updates.is_empty() => {
                        let (codes, orders, updates) = sample_inputs()?;
                        let report = match args.common.format {
                            TableFormat::Table => Report::EpochsAndTable,
                            _ => Report::Table,
                        };
                        (codes, orders, updates, report)
                    }
                    _ => bail!("give both --codes and --orders (or neither, to run the sample data in inputs/)"),
                };
                let source = SourceSpec::Files(FileSpec {
                    codes,
                    orders,
                    updates,
                    follow: None,
                });
                let mut plan = plan(source, report, args.common)?;
                if let (Some(dir), Plan::Job(job)) = (follow, &mut plan) {
                    if !dir.is_dir() {
                        bail!("--follow {}: not a directory", dir.display());
                    }
                    if let SourceSpec::Files(files) = &mut job.job.source {
                        files.follow = Some(dir);
                    }
                    job.report = Report::Live;
                }
                Ok(plan)
            }
            Command::WhatIf(args) => {
                let source = SourceSpec::Files(FileSpec {
                    codes: args.codes,
                    orders: args.orders,
                    updates: args.scenario,
                    follow: None,
                });
                plan(source, Report::WhatIf, args.common)
            }
            Command::Generate(args) => Ok(Plan::Generate {
                spec: Spec {
                    orders: args.orders,
                    codes: args.codes,
                    updates: args.updates,
                    update_size: args.update_size,
                    seed: args.seed,
                    shape: args.shape,
                },
                out: args.out,
            }),
        }
    }
}

/// The database source of `run --postgres`, its names checked.
fn postgres_source(args: &RunArgs) -> anyhow::Result<SourceSpec> {
    if let Some(slot) = &args.slot {
        let valid = !slot.is_empty()
            && slot.len() <= 63
            && slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            bail!("--slot {slot}: a slot name is 1 to 63 lower-case letters, digits and _");
        }
    }
    Ok(SourceSpec::Postgres(PostgresSpec {
        url: args.postgres.clone().unwrap_or_default(),
        codes_table: args.codes_table.clone(),
        orders_table: args.orders_table.clone(),
        publication: args.publication.clone(),
        slot: args.slot.clone(),
    }))
}

/// A plan for a job over `source`.
fn plan(source: SourceSpec, report: Report, common: CommonArgs) -> anyhow::Result<Plan> {
    let bad_rows = match common.bad_rows {
        BadRowsArg::Fail => BadRows::Fail,
        BadRowsArg::Skip => BadRows::Skip,
    };
    if common.rejects.is_some() && bad_rows == BadRows::Fail {
        bail!("--rejects goes with --bad-rows skip");
    }
    let sink_kafka = match (&common.sink_kafka, &common.sink_brokers, &source) {
        (None, _, _) => None,
        (Some(topic), Some(brokers), _) => Some((topic, brokers.clone())),
        (Some(topic), None, SourceSpec::Kafka(kafka)) => Some((topic, kafka.brokers.clone())),
        (Some(_), None, _) => {
            bail!("--sink-kafka needs --sink-brokers (or --kafka to write to the same brokers)")
        }
    }
    .map(|(topic, brokers)| KafkaSinkPlan {
        brokers,
        topic: topic.clone(),
        patience: Duration::from_secs(common.kafka_timeout),
    });
    Ok(Plan::Job(Box::new(JobPlan {
        job: Job {
            source,
            bad_rows,
            enriched: common.enriched.is_some(),
            progress: !common.quiet && std::io::stderr().is_terminal(),
            stop: Arc::new(AtomicBool::new(false)),
            durable: Arc::new(AtomicU64::new(0)),
        },
        workers: workers(&common)?,
        report,
        format: common.format,
        changes: common.changes,
        changes_format: common.changes_format,
        html_report: common.report,
        enriched: common.enriched,
        rejects: common.rejects,
        sink_postgres: common
            .sink_postgres
            .map(|url| (url, common.result_table.clone())),
        serve: common.serve,
        sink_kafka,
        stats: common.stats,
        quiet: common.quiet,
    })))
}

fn workers(common: &CommonArgs) -> anyhow::Result<Workers> {
    if common.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if common.workers > MAX_WORKERS {
        bail!(
            "--workers {} is more than {MAX_WORKERS}: timely's memory grows with the square of the workers",
            common.workers
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if common.workers > cores && !common.quiet {
        // A note must never end the run, so a stderr that cannot be written is ignored.
        let _ = writeln!(
            std::io::stderr(),
            "discounting: note: --workers {} is more than the {cores} cores here; each worker \
             costs memory (timely's channels grow with the square of the workers) and adds no speed",
            common.workers
        );
    }
    if common.processes == 0 {
        bail!("--processes must be at least 1");
    }
    if common.process >= common.processes {
        bail!(
            "--process {} is not below --processes {}",
            common.process,
            common.processes
        );
    }
    if common.processes == 1 && common.hostfile.is_none() {
        return Ok(Workers::Process {
            threads: common.workers,
        });
    }
    let addresses = match &common.hostfile {
        Some(path) => read_hostfile(path)?,
        // timely's own default: localhost, ports from 2101.
        None => (0..common.processes)
            .map(|i| format!("localhost:{}", 2101 + i))
            .collect(),
    };
    if addresses.len() != common.processes {
        bail!(
            "the hostfile lists {} addresses but --processes is {}",
            addresses.len(),
            common.processes
        );
    }
    Ok(Workers::Cluster {
        threads: common.workers,
        process: common.process,
        addresses,
        patience: Patience {
            connect: Duration::from_secs(common.connect_timeout),
            silence: Duration::from_secs(common.peer_timeout),
        },
    })
}

fn read_hostfile(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the hostfile {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// The sample data: `inputs/` here, or else the one beside the crate's sources.
fn sample_inputs() -> anyhow::Result<(PathBuf, PathBuf, Vec<PathBuf>)> {
    let here = PathBuf::from("inputs");
    let dir = if here.is_dir() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("inputs")
    };
    let codes = dir.join("discount_codes.csv");
    let orders = dir.join("orders.csv");
    if !codes.is_file() || !orders.is_file() {
        bail!(
            "no sample data in {} (give --codes and --orders to run your own files)",
            dir.display()
        );
    }
    let mut updates: Vec<PathBuf> = match std::fs::read_dir(dir.join("updates")) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    updates.sort();
    Ok((codes, orders, updates))
}
