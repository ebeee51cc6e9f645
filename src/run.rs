//! Running the job: timely workers, the epoch loop, and gathering results at worker 0.
//!
//! Each epoch is three steps on every worker: read this worker's share of the epoch's
//! files; agree with every other worker that all shares were read without error (so that
//! an epoch is applied by all workers or by none); then advance the inputs and step until
//! the probe says the epoch is complete, when worker 0 reads the epoch's result changes.
//! The base snapshots are sent while they are read (they can be large); an update file is
//! held until the agreement, so nothing of a bad one reaches the dataflow.

use std::collections::{BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use differential_dataflow::consolidation::consolidate;
use serde::{Deserialize, Serialize};
use timely::worker::Worker;

use crate::cluster;
use crate::control::{AllGather, PeerLost};
use crate::dataflow::{self, Inputs, Outputs};
use crate::input::{
    read_share_with, summarize_share, BadRows, InputError, Part, Reject, Role, Share, ShareReport,
    Source,
};
use crate::memory;
use crate::model::{Change, Epoch, Order, OrderId, Position, Table};
use crate::result::{ChangeRow, ResultRow, ResultTable};
use crate::upsert::UpsertCounters;

/// What to compute: the base snapshots, the update files (one epoch each), and how.
#[derive(Debug, Clone)]
pub struct Job {
    pub codes: PathBuf,
    pub orders: PathBuf,
    pub updates: Vec<PathBuf>,
    /// After the update files, keep applying the files that appear in a directory.
    pub follow: Option<Follow>,
    pub bad_rows: BadRows,
    /// Also maintain the enriched orders (each counted order with its percentage).
    pub enriched: bool,
    /// Show reading progress of large files on stderr (when it is a terminal).
    pub progress: bool,
}

impl Job {
    /// The files of epoch 0: the two base snapshots.
    pub fn base(&self) -> Vec<Source> {
        vec![
            Source::new(&self.codes, Role::Snapshot(Table::DiscountCodes)),
            Source::new(&self.orders, Role::Snapshot(Table::Orders)),
        ]
    }

    /// The files of each epoch: the two snapshots, then one update file per epoch
    /// (without a followed directory's files).
    pub fn epochs(&self) -> Vec<Vec<Source>> {
        std::iter::once(self.base())
            .chain(
                self.updates
                    .iter()
                    .map(|path| vec![Source::new(path, Role::Update)]),
            )
            .collect()
    }
}

/// A directory to follow: every complete update file that appears in it is applied as
/// the next epoch, in name order, until `stop` is set.
///
/// A file is complete when its name is final: writers create it under a name that starts
/// with `.` or has another extension (`.tmp`, `.part`) and rename it when done. Only
/// `.csv`, `.jsonl`, `.json` and `.ndjson` files whose names do not start with `.` count.
#[derive(Debug, Clone)]
pub struct Follow {
    pub dir: PathBuf,
    pub stop: Arc<AtomicBool>,
}

impl Follow {
    /// How often the directory is looked at while nothing is new.
    const POLL: Duration = Duration::from_millis(100);

    /// The complete update files in the directory now, in name order.
    fn complete_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                let visible = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'));
                visible && path.is_file() && Source::new(path, Role::Update).format().is_ok()
            })
            .collect();
        files.sort();
        files
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
}

/// An observer that is told nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// Where the workers run: threads of this process, or a timely cluster of processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workers {
    Process {
        threads: usize,
    },
    Cluster {
        threads: usize,
        process: usize,
        addresses: Vec<String>,
        /// How long to wait for the other processes to connect.
        patience: Duration,
    },
}

impl Workers {
    /// Starts the workers, each running `work`.
    fn execute<T, F>(&self, work: F) -> Result<timely::communication::WorkerGuards<T>, String>
    where
        T: Send + 'static,
        F: Fn(&mut Worker) -> T + Send + Sync + 'static,
    {
        match self {
            Workers::Process { threads } => {
                timely::execute(timely::Config::process(*threads), work)
            }
            Workers::Cluster {
                threads,
                process,
                addresses,
                patience,
            } => {
                let (allocators, guard) = cluster::start(addresses, *process, *threads, *patience)?;
                timely::execute::execute_from(
                    allocators,
                    guard,
                    timely::WorkerConfig::default(),
                    work,
                )
            }
        }
    }
}

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

/// What one epoch did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochOutput {
    pub epoch: Epoch,
    pub files: Vec<String>,
    /// Rows read into changes.
    pub rows: u64,
    pub changes: Vec<ChangeRow>,
    /// Rows left out under `--bad-rows skip`, in file and line order.
    pub rejects: Vec<Reject>,
    /// From the start of reading the epoch's files until its results were complete.
    pub elapsed: Duration,
    /// Bytes resident in process 0 once the epoch was complete, where the OS tells.
    pub resident_bytes: Option<u64>,
}

/// Everything a run produced, as held by worker 0.
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
    /// Anything else: a worker that stopped, a cluster that could not start.
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

/// Runs `job` on `workers` and returns what worker 0 gathered (`None` in the other
/// processes of a cluster).
pub fn run_job(job: &Job, workers: &Workers) -> Result<Option<JobOutput>, RunError> {
    run_job_observed(job, workers, Arc::new(Quiet))
}

/// Runs `job` as `run_job` does, telling `observer` of each epoch as it completes.
pub fn run_job_observed(
    job: &Job,
    workers: &Workers,
    observer: Arc<dyn Observer>,
) -> Result<Option<JobOutput>, RunError> {
    let job = Arc::new(job.clone());
    // timely reports a lost peer by panicking in its network threads, in the workers that
    // then find their channels poisoned, and in the guard that joins the network threads
    // when it is dropped (inside `join`); all of them become one error here.
    let joined = std::panic::catch_unwind(AssertUnwindSafe(|| {
        workers
            .execute(move |worker| run_worker(worker, &job, &*observer))
            .map(|guards| guards.join())
    }));
    let results = match joined {
        Ok(Ok(results)) => results,
        Ok(Err(e)) => return Err(RunError::Failed(format!("cannot start the workers: {e}"))),
        Err(panic) => return Err(worker_failure(&panic_message(&*panic))),
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
                error.get_or_insert(worker_failure(&panic));
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(output),
    }
}

/// The error for a worker (or timely thread) that stopped with `message`.
fn worker_failure(message: &str) -> RunError {
    let lost_peer = [
        "timely communication error",
        "MergeQueue poisoned",
        "Send thread panic",
    ]
    .iter()
    .any(|sign| message.contains(sign));
    if lost_peer {
        RunError::Failed(format!(
            "lost the connection to another process of the cluster ({message})"
        ))
    } else {
        RunError::Failed(format!("a worker failed: {message}"))
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown failure".to_string())
}

/// What a worker tells the others after reading its share of an epoch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WorkerReport {
    /// The first error, with the index of its file within the epoch.
    error: Option<(usize, InputError)>,
    /// One report per file of the epoch that was read.
    shares: Vec<ShareReport>,
    /// The upsert counts of the keys this worker owns, so far.
    codes: UpsertCounters,
    orders: UpsertCounters,
}

fn run_worker(
    worker: &mut Worker,
    job: &Job,
    observer: &dyn Observer,
) -> Result<Option<JobOutput>, RunError> {
    let share = Share {
        index: worker.index(),
        peers: worker.peers(),
    };
    let mut inputs = Inputs::new(job.enriched);
    let outputs = worker.dataflow(|scope| dataflow::build(scope, &mut inputs));
    let mut state = WorkerState {
        share,
        inputs,
        outputs,
        agree: AllGather::new(worker),
        parts: AllGather::new(worker),
        collector: (share.index == 0).then(Collector::default),
    };
    let mut next_file = AllGather::<Option<PathBuf>>::new(worker);

    state.epoch(worker, job, 0, &job.base(), observer)?;
    // Worker 0 decides which update file comes next (in follow mode it watches a
    // directory); every worker takes its word, so all read the same files in one order.
    let mut feed = (share.index == 0).then(|| Feed::new(job));
    let mut epoch: Epoch = 1;
    loop {
        let proposal = feed.as_mut().and_then(Feed::next);
        let decided = next_file.round(worker, proposal).map_err(peer_lost)?;
        let Some(path) = decided.into_iter().next().flatten() else {
            break;
        };
        let sources = [Source::new(path, Role::Update)];
        match state.epoch(worker, job, epoch, &sources, observer) {
            Ok(()) => epoch += 1,
            // A followed stream goes on past a bad file, which is applied not at all.
            Err(RunError::Input(error)) if job.follow.is_some() => {
                if share.index == 0 {
                    observer.skipped(&error);
                }
            }
            Err(error) => return Err(error),
        }
    }

    let counts = WorkerReport {
        codes: *state.outputs.code_counters.borrow(),
        orders: *state.outputs.order_counters.borrow(),
        ..WorkerReport::default()
    };
    let reports = state.agree.round(worker, counts).map_err(peer_lost)?;
    state.collector.map(|c| c.finish(&reports)).transpose()
}

/// One worker's dataflow handles and what it keeps between epochs.
struct WorkerState {
    share: Share,
    inputs: Inputs,
    outputs: Outputs,
    agree: AllGather<WorkerReport>,
    /// Each worker's summary of its part of each file of an epoch.
    parts: AllGather<Vec<Option<Part>>>,
    collector: Option<Collector>,
}

impl WorkerState {
    /// Reads this worker's share of the epoch's files, agrees with the others that all
    /// were read without error, applies the epoch and (worker 0) gathers its results.
    fn epoch(
        &mut self,
        worker: &mut Worker,
        job: &Job,
        epoch: Epoch,
        sources: &[Source],
        observer: &dyn Observer,
    ) -> Result<(), RunError> {
        let started = Instant::now();
        // Base snapshots go straight in; an update file waits for the agreement.
        let send_while_reading = epoch == 0;
        let mut held: Vec<(Position, Change)> = Vec::new();
        let mut report = WorkerReport::default();
        let mut progress = Progress::new(self.share.index == 0 && job.progress);
        let parts = self.share_parts(worker, epoch, sources)?;
        let inputs = &mut self.inputs;
        for (index, source) in sources.iter().enumerate() {
            let mut sent = 0u64;
            let parts = parts[index].as_deref();
            let read = read_share_with(
                source,
                self.share,
                job.bad_rows,
                parts,
                &mut |position, change| {
                    if send_while_reading {
                        inputs.send(position, change);
                        // Let the dataflow take what was sent, so that it does not pile up
                        // in channels as well as in the operators.
                        sent += 1;
                        if sent % STEP_EVERY == 0 {
                            worker.step();
                            progress.show(source, sent);
                        }
                    } else {
                        held.push((position, change));
                    }
                },
            );
            match read {
                Ok(share_report) => report.shares.push(share_report),
                Err(error) => {
                    report.error = Some((index, error));
                    break;
                }
            }
        }
        progress.clear();
        let reports = self.agree.round(worker, report).map_err(peer_lost)?;
        if let Some(error) = first_error(&reports) {
            return Err(RunError::Input(error));
        }
        for (position, change) in held {
            inputs.send(position, change);
        }
        inputs.advance_to(epoch + 1);
        let probe = &self.outputs.probe;
        worker.step_while(|| probe.less_than(&(epoch + 1)));
        if let Some(collector) = self.collector.as_mut() {
            let done = collector.finish_epoch(
                epoch,
                sources,
                &reports,
                &self.outputs,
                started.elapsed(),
            )?;
            observer.epoch(done).map_err(|e| {
                RunError::Failed(format!("cannot write epoch {epoch}'s output: {e}"))
            })?;
        }
        Ok(())
    }
}

impl WorkerState {
    /// Every worker's part of each base snapshot, in worker order, so that no worker scans
    /// a whole snapshot to find its share: each summarizes its own part, and one round
    /// tells all. Update files, mostly small, are scanned by every worker instead, which
    /// spares each epoch that round. A file some worker could not summarize (it will fail
    /// to read it too) is scanned.
    fn share_parts(
        &mut self,
        worker: &mut Worker,
        epoch: Epoch,
        sources: &[Source],
    ) -> Result<Vec<Option<Vec<Part>>>, RunError> {
        if self.share.peers == 1 || epoch > 0 {
            return Ok(vec![None; sources.len()]);
        }
        let mine = sources
            .iter()
            .map(|source| summarize_share(source, self.share).ok())
            .collect();
        let all = self.parts.round(worker, mine).map_err(peer_lost)?;
        Ok((0..sources.len())
            .map(|file| {
                all.iter()
                    .map(|of_worker| of_worker.get(file).cloned().flatten())
                    .collect()
            })
            .collect())
    }
}

/// Worker 0's source of update files: those given, then (in follow mode) every complete
/// file that appears in the followed directory, in name order, until asked to stop.
struct Feed {
    queued: VecDeque<PathBuf>,
    follow: Option<(Follow, BTreeSet<PathBuf>)>,
}

impl Feed {
    fn new(job: &Job) -> Feed {
        Feed {
            queued: job.updates.iter().cloned().collect(),
            follow: job.follow.clone().map(|f| (f, BTreeSet::new())),
        }
    }

    /// The next update file, waiting for one in follow mode; `None` at the end.
    fn next(&mut self) -> Option<PathBuf> {
        let Some((follow, taken)) = self.follow.as_mut() else {
            return self.queued.pop_front();
        };
        loop {
            if follow.stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(path) = self.queued.pop_front() {
                return Some(path);
            }
            for path in follow.complete_files() {
                if taken.insert(path.clone()) {
                    self.queued.push_back(path);
                }
            }
            if self.queued.is_empty() {
                std::thread::sleep(Follow::POLL);
            }
        }
    }
}

/// A spinner on stderr that counts the rows worker 0 has read of a large file; drawn only
/// when asked for (stderr is a terminal and not `--quiet`).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            bar: enabled.then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                let style = indicatif::ProgressStyle::with_template(
                    "{spinner} reading {msg}: {human_pos} rows of this worker's share, {elapsed}",
                );
                if let Ok(style) = style {
                    bar.set_style(style);
                }
                bar
            }),
        }
    }

    fn show(&mut self, source: &Source, rows: u64) {
        if let Some(bar) = &self.bar {
            if bar.position() == 0 {
                bar.set_message(source.name());
            }
            bar.set_position(rows);
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// While a base snapshot is sent, the worker steps every this many rows.
const STEP_EVERY: u64 = 1 << 14;

/// The error every worker reports for an epoch: the first in file order, whichever
/// worker met it, so that it is the same for any number of workers.
fn first_error(reports: &[WorkerReport]) -> Option<InputError> {
    reports
        .iter()
        .filter_map(|r| r.error.as_ref())
        .min_by_key(|(index, error)| (*index, error.line.unwrap_or(0)))
        .map(|(_, error)| error.clone())
}

fn peer_lost(lost: PeerLost) -> RunError {
    RunError::Failed(format!(
        "a worker stopped: heard from {} of {} workers",
        lost.heard_from, lost.peers
    ))
}

/// Worker 0's view of the results, epoch by epoch.
#[derive(Default)]
struct Collector {
    table: ResultTable,
    epochs: Vec<EpochOutput>,
    baseline: Vec<ResultRow>,
    enriched: Vec<EnrichedChange>,
}

impl Collector {
    fn finish_epoch(
        &mut self,
        epoch: Epoch,
        sources: &[Source],
        reports: &[WorkerReport],
        outputs: &Outputs,
        elapsed: Duration,
    ) -> Result<&EpochOutput, RunError> {
        let updates: Vec<_> = outputs
            .sums
            .borrow_mut()
            .drain(..)
            .map(|(percentage, _, sums)| (percentage, sums))
            .collect();
        let changes = self.table.apply(epoch, updates).map_err(RunError::Failed)?;
        if epoch == 0 {
            self.baseline = self.table.rows().map_err(RunError::Failed)?;
        }
        if let Some(enriched) = &outputs.enriched {
            let mut updates: Vec<_> = enriched
                .borrow_mut()
                .drain(..)
                .map(|(order, _, diff)| (order, diff))
                .collect();
            consolidate(&mut updates);
            self.enriched.extend(updates.into_iter().map(
                |((id, order, percentage_micros), diff)| EnrichedChange {
                    epoch,
                    diff,
                    id,
                    order,
                    percentage_micros,
                },
            ));
        }
        let mut rejects = Vec::new();
        for file in 0..sources.len() {
            let mut of_file: Vec<Reject> = reports
                .iter()
                .filter_map(|r| r.shares.get(file))
                .flat_map(|s| s.rejects.iter().cloned())
                .collect();
            of_file.sort_by_key(|r| r.error.line);
            rejects.extend(of_file);
        }
        self.epochs.push(EpochOutput {
            epoch,
            files: sources.iter().map(Source::name).collect(),
            rows: reports.iter().flat_map(|r| &r.shares).map(|s| s.rows).sum(),
            changes,
            rejects,
            elapsed,
            resident_bytes: memory::resident_bytes(),
        });
        Ok(&self.epochs[self.epochs.len() - 1])
    }

    fn finish(self, reports: &[WorkerReport]) -> Result<JobOutput, RunError> {
        let mut codes = UpsertCounters::default();
        let mut orders = UpsertCounters::default();
        for report in reports {
            codes.add(&report.codes);
            orders.add(&report.orders);
        }
        Ok(JobOutput {
            table: self.table.rows().map_err(RunError::Failed)?,
            epochs: self.epochs,
            baseline: self.baseline,
            enriched: self.enriched,
            codes,
            orders,
        })
    }
}
