//! The epoch protocol every worker follows, for any source of epochs:
//!
//! 1. read: worker 0 asks the source for the next epoch, and one round tells every
//!    worker its descriptor (so all read the same epochs in one order);
//! 2. each worker reads its share (sent into the dataflow as it is read for a large
//!    snapshot, otherwise held);
//! 3. agree: one round tells every worker whether all shares were read without error,
//!    so that an epoch is applied by all workers or by none. An epoch the leader alone
//!    reads (a database's transaction, a Kafka poll) is read before step 1, whose round
//!    then carries the verdict: such an epoch has one round, not two. When the source
//!    knows its next epoch without waiting (update files on the command line), the
//!    leader announces it in this round, which spares the next epoch its step 1;
//! 4. advance the inputs and step until the probe says the epoch is complete;
//! 5. collect: worker 0 reads the epoch's result changes, tells the observer, and then
//!    the source that the epoch is done (a database is acknowledged only then).

use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use timely::worker::Worker;

use super::collect::Collector;
use super::progress::Progress;
use super::{AgreedArgument, Job, JobSummary, Observer, RunError, WorkerReport};
use crate::control::{AllGather, PeerLost};
use crate::dataflow::{self, Inputs, Outputs};
use crate::input::{BadRows, InputError, Share, ShareReport};
use crate::model::{Change, Epoch, Position};
use crate::source::{Control, EpochSource, WithSource};

/// While a snapshot is sent, the worker steps every this many rows, so that what was
/// sent does not pile up in channels as well as in the operators.
const STEP_EVERY: u64 = 1 << 14;

/// The longest a worker waiting for an epoch to complete parks between two looks.
const PARK: std::time::Duration = std::time::Duration::from_millis(1);

/// The leader's word on what comes next.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Next<E> {
    /// The next epoch; `read` when the leader read it alone before announcing it, with
    /// the error it met if any (so that the epoch needs no round of its own to agree).
    Epoch {
        descriptor: E,
        read: Option<Result<(), (usize, InputError)>>,
    },
    End,
    /// The source failed (a lost database connection, say): every worker stops.
    Failed(String),
}

/// Runs every epoch of one worker's source; the loop of the module's comment.
pub(super) struct EpochLoop<'a> {
    pub worker: &'a mut Worker,
    pub job: &'a Job,
    pub observer: &'a dyn Observer,
    /// This process's index in the cluster (for errors that name processes).
    pub process: usize,
}

impl WithSource for EpochLoop<'_> {
    type Output = Result<Option<JobSummary>, RunError>;

    fn with<S: EpochSource>(self, mut source: S) -> Self::Output {
        let EpochLoop {
            worker,
            job,
            observer,
            process,
        } = self;
        let share = Share {
            index: worker.index(),
            peers: worker.peers(),
        };
        let leader = share.index == 0;
        // Before anything is read: every process was given the same arguments.
        let mine = (process, job.agreed_arguments());
        let all = AllGather::new(worker)
            .round(worker, mine)
            .map_err(peer_lost)?;
        if let Some(difference) = disagreement(&all) {
            return Err(RunError::Failed(difference));
        }
        let mut inputs = Inputs::new(job.enriched);
        let outputs = worker.dataflow(|scope| dataflow::build(scope, &mut inputs));
        let mut state = WorkerState {
            share,
            inputs,
            outputs,
            agree: AllGather::new(worker),
            summaries: AllGather::new(worker),
            collector: leader.then(Collector::default),
        };
        let mut next = AllGather::<Option<Next<S::Epoch>>>::new(worker);
        let mut epoch: Epoch = 0;
        // The next epoch when the last agreeing round announced it.
        let mut announced: Option<Announced<S::Epoch>> = None;
        loop {
            let control = Control {
                stop: &job.stop,
                durable: &job.durable,
            };
            // The epoch's clock starts when the leader has it, not while the source waits
            // for it; for one announced during the last epoch, when that one is done.
            let mut started = Instant::now();
            let (decided, read_first) = match announced.take() {
                Some(ahead) => ahead,
                None => {
                    let mut read_first = None;
                    let proposal = leader.then(|| {
                        propose(&mut source, &control, job, &mut read_first, &mut started)
                    });
                    let decided = next.round(worker, proposal).map_err(peer_lost)?;
                    (decided.into_iter().next().flatten(), read_first)
                }
            };
            let (descriptor, read) = match decided {
                Some(Next::Epoch { descriptor, read }) => (descriptor, read),
                Some(Next::Failed(reason)) => return Err(RunError::Failed(reason)),
                Some(Next::End) | None => break,
            };
            let read =
                read.map(|verdict| read_first.unwrap_or_else(|| ReadFirst::elsewhere(verdict)));
            let applied = state.epoch(
                worker,
                job,
                &mut source,
                (epoch, started),
                &descriptor,
                read,
                observer,
                &mut announced,
            );
            match applied {
                Ok(()) => epoch += 1,
                Err(RunError::Input(error)) if source.skips_bad_epochs(&descriptor) => {
                    if leader {
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
        let reports = state
            .agree
            .round(worker, (counts, None))
            .map_err(peer_lost)?;
        let reports: Vec<WorkerReport> = reports.into_iter().map(|(report, _)| report).collect();
        state.collector.map(|c| c.finish(&reports)).transpose()
    }
}

/// The leader's proposal of the next epoch, and when the source gave it (`given`); an
/// epoch it reads alone is read here, into `read_first`.
fn propose<S: EpochSource>(
    source: &mut S,
    control: &Control,
    job: &Job,
    read_first: &mut Option<ReadFirst>,
    given: &mut Instant,
) -> Next<S::Epoch> {
    let next = source.next_epoch(control);
    *given = Instant::now();
    match next {
        Ok(Some(descriptor)) => {
            let read = source.read_by_leader_alone(&descriptor).then(|| {
                let first = ReadFirst::of(source, &descriptor, job.bad_rows);
                let verdict = first.report.error.clone().map_or(Ok(()), Err);
                *read_first = Some(first);
                verdict
            });
            Next::Epoch { descriptor, read }
        }
        Ok(None) => Next::End,
        Err(reason) => Next::Failed(reason),
    }
}

/// The next epoch as an agreeing round announced it (every worker's copy of the
/// leader's word), and, at the leader, what it read of it alone.
type Announced<E> = (Option<Next<E>>, Option<ReadFirst>);

/// One worker's dataflow handles and what it keeps between epochs.
struct WorkerState<Summary: timely::ExchangeData + Clone, E: timely::ExchangeData + Clone> {
    share: Share,
    inputs: Inputs,
    outputs: Outputs,
    /// Each worker's report, and from the leader the next epoch when it is announced.
    agree: AllGather<(WorkerReport, Option<Next<E>>)>,
    summaries: AllGather<Option<Summary>>,
    collector: Option<Collector>,
}

impl<Summary: timely::ExchangeData + Clone, E: timely::ExchangeData + Clone + Debug>
    WorkerState<Summary, E>
{
    /// Reads this worker's share of the epoch, agrees with the others that all were
    /// read without error, applies the epoch and (worker 0) gathers its results. An
    /// epoch the leader read alone before announcing it (`read`) skips both steps.
    #[allow(clippy::too_many_arguments)]
    fn epoch<S: EpochSource<Summary = Summary, Epoch = E>>(
        &mut self,
        worker: &mut Worker,
        job: &Job,
        source: &mut S,
        (epoch, started): (Epoch, Instant),
        descriptor: &S::Epoch,
        read: Option<ReadFirst>,
        observer: &dyn Observer,
        announced: &mut Option<Announced<E>>,
    ) -> Result<(), RunError> {
        let info = source.info(descriptor);
        let (reports, held) = match read {
            Some(first) => {
                let mut reports = vec![WorkerReport::default(); self.share.peers];
                reports[0] = first.report;
                (reports, first.held)
            }
            None => {
                let (reports, held, ahead) =
                    self.read_and_agree(worker, job, source, descriptor, &info.inputs)?;
                *announced = ahead;
                (reports, held)
            }
        };
        if let Some(error) = first_error(&reports) {
            return Err(RunError::Input(error));
        }
        // Stepped as a snapshot is while it is sent, so that the changes flow on to their
        // workers while they are in cache rather than pile up in the channels first.
        for (sent, (position, change)) in (1u64..).zip(held) {
            self.inputs.send(position, change);
            if sent % STEP_EVERY == 0 {
                worker.step();
            }
        }
        self.inputs.advance_to(epoch + 1);
        let probe = &self.outputs.probe;
        // Park rather than spin while other workers finish their part: a spinning worker
        // takes a core from the ones it waits for (and, with a database source, from the
        // server). Messages wake a parked worker; the bound is only a safety net.
        while probe.less_than(&(epoch + 1)) {
            worker.step_or_park(Some(PARK));
        }
        if let Some(collector) = self.collector.as_mut() {
            let done =
                collector.finish_epoch(epoch, info, &reports, &self.outputs, started.elapsed())?;
            observer.epoch(done).map_err(|e| {
                RunError::Failed(format!("cannot write epoch {epoch}'s output: {e}"))
            })?;
            source.applied(descriptor).map_err(RunError::Failed)?;
            // Only now, with every output written, may the source acknowledge the epoch.
            if observer.holds_epochs_on_return() {
                job.durable.fetch_max(epoch + 1, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Every worker reads its share (a large snapshot straight into the dataflow, else
    /// held), then one round gathers every worker's report, and the next epoch if the
    /// leader knows it without waiting.
    fn read_and_agree<S: EpochSource<Summary = Summary, Epoch = E>>(
        &mut self,
        worker: &mut Worker,
        job: &Job,
        source: &mut S,
        descriptor: &S::Epoch,
        inputs_read: &[String],
    ) -> Result<ReadAndAgreed<E>, RunError> {
        let leader = self.share.index == 0;
        let summaries = if source.exchanges_summaries(descriptor, self.share.peers) {
            let mine = source.summarize(descriptor, self.share);
            Some(self.summaries.round(worker, mine).map_err(peer_lost)?)
        } else {
            None
        };

        let send_while_reading = source.send_while_reading(descriptor);
        let mut held: Vec<(Position, Change)> = Vec::new();
        let mut progress = Progress::new(leader && job.progress);
        let mut sent = 0u64;
        let inputs = &mut self.inputs;
        let read = source.read_share(
            descriptor,
            self.share,
            summaries.as_deref(),
            job.bad_rows,
            &mut |position, change| {
                if send_while_reading {
                    inputs.send(position, change);
                    sent += 1;
                    if sent % STEP_EVERY == 0 {
                        worker.step();
                        progress.show(inputs_read, sent);
                    }
                } else {
                    held.push((position, change));
                }
            },
        );
        progress.clear();
        // Asked only now, after this epoch's files were read: the next one is looked at
        // when the leader comes to it, as without announcing.
        let mut read_first = None;
        let ahead = (leader && source.next_is_ready()).then(|| {
            let control = Control {
                stop: &job.stop,
                durable: &job.durable,
            };
            propose(source, &control, job, &mut read_first, &mut Instant::now())
        });
        let mut gathered = self
            .agree
            .round(worker, (WorkerReport::of(read), ahead))
            .map_err(peer_lost)?;
        let announced = gathered
            .first_mut()
            .and_then(|(_, ahead)| ahead.take())
            .map(|next| (Some(next), read_first));
        let reports = gathered.into_iter().map(|(report, _)| report).collect();
        Ok((reports, held, announced))
    }
}

/// Every worker's report, this worker's changes held until all were read, and the next
/// epoch if the round announced it.
type ReadAndAgreed<E> = (
    Vec<WorkerReport>,
    Vec<(Position, Change)>,
    Option<Announced<E>>,
);

/// An epoch the leader read alone before announcing it (a stream it holds): its report
/// and changes; the other workers know only its verdict.
struct ReadFirst {
    report: WorkerReport,
    held: Vec<(Position, Change)>,
}

impl ReadFirst {
    /// The leader reads the whole epoch, as the only worker.
    fn of<S: EpochSource>(source: &mut S, descriptor: &S::Epoch, bad_rows: BadRows) -> ReadFirst {
        let mut held = Vec::new();
        let alone = Share { index: 0, peers: 1 };
        let read = source.read_share(
            descriptor,
            alone,
            None,
            bad_rows,
            &mut |position, change| held.push((position, change)),
        );
        ReadFirst {
            report: WorkerReport::of(read),
            held,
        }
    }

    /// What a worker other than the leader knows of it.
    fn elsewhere(verdict: Result<(), (usize, InputError)>) -> ReadFirst {
        ReadFirst {
            report: WorkerReport {
                error: verdict.err(),
                ..WorkerReport::default()
            },
            held: Vec::new(),
        }
    }
}

impl WorkerReport {
    fn of(read: Result<Vec<ShareReport>, (usize, InputError)>) -> WorkerReport {
        match read {
            Ok(shares) => WorkerReport {
                shares,
                ..WorkerReport::default()
            },
            Err(error) => WorkerReport {
                error: Some(error),
                ..WorkerReport::default()
            },
        }
    }
}

/// The error every worker reports for an epoch: the first in input order, whichever
/// worker met it, so that it is the same for any number of workers.
fn first_error(reports: &[WorkerReport]) -> Option<InputError> {
    reports
        .iter()
        .filter_map(|r| r.error.as_ref())
        .min_by_key(|(index, error)| (*index, error.line.unwrap_or(0)))
        .map(|(_, error)| error.clone())
}

/// The first argument in which some process differs from process 0, as one line.
fn disagreement(all: &[(usize, Vec<AgreedArgument>)]) -> Option<String> {
    let (first, reference) = all.first()?;
    all.iter().find_map(|(process, theirs)| {
        reference
            .iter()
            .zip(theirs)
            .find(|(ours, theirs)| ours != theirs)
            .map(|((name, ours, shown), (_, theirs, _))| {
                let verb = if name.starts_with("the ") { "differ" } else { "differs" };
                if *shown {
                    let show = |v: &str| if v.is_empty() { "none".to_string() } else { v.to_string() };
                    format!(
                        "{name} {verb} between processes: {} in process {first}, {} in process {process}",
                        show(ours),
                        show(theirs)
                    )
                } else {
                    format!("{name} {verb} between processes {first} and {process}")
                }
            })
    })
}

fn peer_lost(lost: PeerLost) -> RunError {
    RunError::Failed(format!(
        "a worker stopped: heard from {} of {} workers",
        lost.heard_from, lost.peers
    ))
}
