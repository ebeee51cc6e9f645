//! Running the job: timely workers, the epoch loop (`epochs`), and gathering results at
//! worker 0 (`collect`). What is read each epoch comes from a source (`crate::source`).

mod collect;
mod epochs;
mod progress;
mod workers;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::input::{BadRows, InputError, Reject, ShareReport};
use crate::model::{Epoch, Order, OrderId, UpsertCounters};
use crate::result::{ChangeRow, ResultRow};
use crate::source::files::FileSpec;
use crate::source::SourceSpec;

pub use workers::{note_worker_panic, Workers};

/// What to compute: where the epochs come from, and how.
#[derive(Debug, Clone)]
pub struct Job {
    pub source: SourceSpec,
    pub bad_rows: BadRows,
    /// Also maintain the enriched orders (each counted order with its percentage).
    pub enriched: bool,
    /// Show reading progress of large inputs on stderr (when it is a terminal).
    pub progress: bool,
    /// Set (by Ctrl-C or SIGTERM) to end a live source after the epoch under way.
    pub stop: Arc<AtomicBool>,
    /// How many epochs every durable output holds: a source may acknowledge those.
    pub durable: Arc<AtomicU64>,
}

impl Job {
    /// A job over files: two base snapshots and update files, failing on bad rows.
    pub fn files(codes: PathBuf, orders: PathBuf, updates: Vec<PathBuf>) -> Job {
        Job {
            source: SourceSpec::Files(FileSpec {
                codes,
                orders,
                updates,
                follow: None,
            }),
            bad_rows: BadRows::Fail,
            enriched: false,
            progress: false,
            stop: Arc::new(AtomicBool::new(false)),
            durable: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// One argument that every process of a cluster must be given alike: its name, and its
/// value, and whether an error may show it (not a URL: it may hold a password).
pub type AgreedArgument = (String, String, bool);

impl Job {
    /// The arguments that every process must be given alike, as each has them: they
    /// decide what is read and how, and process 0's would silently overrule the others'.
    pub fn agreed_arguments(&self) -> Vec<AgreedArgument> {
        let path = |p: &std::path::Path| p.display().to_string();
        let mut agreed = match &self.source {
            SourceSpec::Files(files) => vec![
                ("--codes", path(&files.codes), true),
                ("--orders", path(&files.orders), true),
                (
                    "the update files",
                    files
                        .updates
                        .iter()
                        .map(|p| path(p))
                        .collect::<Vec<_>>()
                        .join(" "),
                    true,
                ),
                (
                    "--follow",
                    files.follow.as_deref().map_or("none".to_string(), path),
                    true,
                ),
            ],
            SourceSpec::Postgres(pg) => vec![
                ("--postgres", pg.url.clone(), false),
                ("--codes-table", pg.codes_table.clone(), true),
                ("--orders-table", pg.orders_table.clone(), true),
                ("--publication", pg.publication.clone(), true),
                ("--slot", pg.slot.clone().unwrap_or_default(), true),
            ],
            SourceSpec::Kafka(kafka) => vec![
                ("--kafka", kafka.brokers.clone(), true),
                ("--codes-topic", kafka.codes_topic.clone(), true),
                ("--orders-topic", kafka.orders_topic.clone(), true),
                ("--kafka-format", format!("{:?}", kafka.format), true),
            ],
        };
        let bad_rows = match self.bad_rows {
            BadRows::Fail => "fail",
            BadRows::Skip => "skip",
        };
        agreed.push(("--bad-rows", bad_rows.to_string(), true));
        let enriched = if self.enriched { "given" } else { "not given" };
        agreed.push(("--enriched", enriched.to_string(), true));
        agreed
            .into_iter()
            .map(|(name, value, shown)| (name.to_string(), value, shown))
            .collect()
    }
}

/// What is told, as it happens, about a run: each completed epoch, each skipped file.
/// Worker 0 calls it, in epoch order.
pub trait Observer: Send + Sync {
    /// An epoch is complete; an error here ends the run.
    fn epoch(&self, _epoch: &EpochOutput) -> std::io::Result<()> {
        Ok(())
    }
    /// An update file was refused and, in follow mode, skipped.
    fn skipped(&self, _error: &InputError) {}
    /// Whether every output holds an epoch once `epoch` returns. An observer that hands
    /// epochs on (to a thread of sinks) says no, and advances `Job::durable` itself.
    fn holds_epochs_on_return(&self) -> bool {
        true
    }
}

/// An observer that is told nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// A changed enriched order: an order counted (`diff` +1) or no longer counted (−1) at
/// `epoch`, with the percentage of its code. Sorts by epoch, id, diff.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnrichedChange {
    pub epoch: Epoch,
    pub id: OrderId,
    pub diff: i128,
    pub order: Order,
    pub percentage_micros: i64,
}

/// What one epoch did, and the result after it.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochOutput {
    pub epoch: Epoch,
    /// The inputs read: file names, or a database's tables.
    pub files: Vec<String>,
    /// Where the source stands after the epoch (a database's LSN), if it has positions.
    pub position: Option<String>,
    /// Upstream transactions applied in the epoch (zero for files).
    pub transactions: u64,
    /// From the commit of the epoch's first upstream transaction until the epoch was
    /// complete: how fresh the result is, where the source tells commit times.
    pub freshness: Option<Duration>,
    /// When the epoch's first upstream transaction was committed, where the source tells.
    pub committed_at: Option<std::time::SystemTime>,
    /// How long after that commit the job received it (the upstream part of freshness).
    pub stream_delay: Option<Duration>,
    /// Rows read into changes.
    pub rows: u64,
    pub changes: Vec<ChangeRow>,
    /// Rows left out under `--bad-rows skip`, in input and line order.
    pub rejects: Vec<Reject>,
    /// From the start of reading the epoch's inputs until its results were complete.
    pub elapsed: Duration,
    /// Bytes resident in process 0 once the epoch was complete, where the OS tells.
    pub resident_bytes: Option<u64>,
    /// The whole result table after the epoch.
    pub table: Vec<ResultRow>,
    /// The enriched orders' changes of the epoch (when asked for), by id and diff.
    pub enriched: Vec<EnrichedChange>,
}

/// What worker 0 holds at the end of a run: the result, never the history of epochs
/// (outputs that want it keep it), so a long run's memory follows its state.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    /// The table after the base snapshots (epoch 0).
    pub baseline: Vec<ResultRow>,
    /// The table after the last epoch.
    pub table: Vec<ResultRow>,
    pub codes: UpsertCounters,
    pub orders: UpsertCounters,
}

/// Everything a run produced, epoch by epoch (`run_job`, for tests and benchmarks).
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    pub epochs: Vec<EpochOutput>,
    /// The table after the base snapshots (epoch 0).
    pub baseline: Vec<ResultRow>,
    /// The table after the last epoch.
    pub table: Vec<ResultRow>,
    pub enriched: Vec<EnrichedChange>,
    pub codes: UpsertCounters,
    pub orders: UpsertCounters,
}

/// Why a run stopped.
#[derive(Debug)]
pub enum RunError {
    /// A bad file or row (under `BadRows::Fail`).
    Input(InputError),
    /// Anything else: a worker that stopped, a cluster that could not start, a source
    /// that failed.
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Input(error) => error.fmt(f),
            RunError::Failed(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `job` on `workers` and returns every epoch's output and the result, as worker 0
/// gathered them (`None` in the other processes of a cluster).
pub fn run_job(job: &Job, workers: &Workers) -> Result<Option<JobOutput>, RunError> {
    let recorder = Arc::new(Recorder::default());
    let summary = run_job_observed(job, workers, Arc::clone(&recorder) as Arc<dyn Observer>)?;
    let epochs = std::mem::take(&mut *recorder.epochs.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(summary.map(|summary| JobOutput {
        enriched: epochs
            .iter()
            .flat_map(|e| e.enriched.iter().cloned())
            .collect(),
        epochs,
        baseline: summary.baseline,
        table: summary.table,
        codes: summary.codes,
        orders: summary.orders,
    }))
}

/// An observer that keeps every epoch's output.
#[derive(Default)]
pub struct Recorder {
    pub epochs: Mutex<Vec<EpochOutput>>,
}

impl Observer for Recorder {
    fn epoch(&self, epoch: &EpochOutput) -> std::io::Result<()> {
        self.epochs
            .lock()
            .map_err(|_| std::io::Error::other("recorder lock"))?
            .push(epoch.clone());
        Ok(())
    }
}

/// Runs `job` on `workers`, telling `observer` of each epoch as it completes, and
/// returns the result (`None` in the other processes of a cluster).
pub fn run_job_observed(
    job: &Job,
    workers: &Workers,
    observer: Arc<dyn Observer>,
) -> Result<Option<JobSummary>, RunError> {
    let job = Arc::new(job.clone());
    let process = workers.process();
    // timely reports a lost peer by panicking in its network threads, in the workers that
    // then find their channels poisoned, and in the guard that joins the network threads
    // when it is dropped (inside `join`); all of them become one error here.
    let joined = std::panic::catch_unwind(AssertUnwindSafe(|| {
        workers
            .execute(move |worker| {
                job.source.drive(epochs::EpochLoop {
                    worker,
                    job: &job,
                    observer: &*observer,
                    process,
                })
            })
            .map(|guards| guards.join())
    }));
    let results = match joined {
        Ok(Ok(results)) => results,
        Ok(Err(e)) => return Err(e),
        Err(panic) => return Err(workers::worker_failure(&workers::panic_message(&*panic))),
    };
    let mut output = None;
    let mut error = None;
    for result in results {
        match result {
            Ok(Ok(Some(gathered))) => output = Some(gathered),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                error.get_or_insert(e);
            }
            Err(panic) => {
                error.get_or_insert(workers::worker_failure(&panic));
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(output),
    }
}

/// What a worker tells the others after reading its share of an epoch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WorkerReport {
    /// The first error, with the index of its input within the epoch.
    error: Option<(usize, InputError)>,
    /// One report per input of the epoch that was read.
    shares: Vec<ShareReport>,
    /// The upsert counts of the keys this worker owns, so far.
    codes: UpsertCounters,
    orders: UpsertCounters,
}
