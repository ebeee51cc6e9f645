//! Where epochs come from: the seam between the epoch loop and its inputs.
//!
//! A source decides what the next epoch is (worker 0 does, as the leader) as a small
//! serializable descriptor that every worker then receives, and says how each worker
//! reads its share of that epoch: the files on the command line (`files`), then
//! optionally a followed directory (`follow`), a PostgreSQL database (`postgres`), or Kafka
//! topics (`kafka`). Adding a source is a new module and one arm in `SourceSpec::drive`.

pub mod files;
pub mod follow;
pub mod identity;
pub mod kafka;
pub mod postgres;

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::input::{BadRows, InputError, Share, ShareReport};
use crate::model::{Change, Position};

/// What a source tells of one epoch, for the epoch's output and stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochInfo {
    /// The inputs read: file names, or the tables of a database snapshot.
    pub inputs: Vec<String>,
    /// Where the source stands once the epoch is applied (a database's LSN).
    pub position: Option<String>,
    /// Upstream transactions the epoch holds (zero for files).
    pub transactions: u64,
    /// When the epoch's first upstream transaction committed, where the source knows.
    pub committed_at: Option<std::time::SystemTime>,
    /// How long after that commit the job received it, where the source tells: the part
    /// of the freshness spent upstream (in the server and on the wire), not in the job.
    pub stream_delay: Option<std::time::Duration>,
}

/// A source of epochs. Every worker has its own instance; only worker 0's `next_epoch`
/// and `completed` are called.
pub trait EpochSource {
    /// An epoch as every worker receives it: small, the same for all.
    type Epoch: timely::ExchangeData + Clone + Debug;
    /// What each worker tells the others of its share before any reads (file parts).
    type Summary: timely::ExchangeData + Clone;

    /// The leader's decision: the next epoch, waiting for one as long as the source
    /// does (never past `control.stop`); `None` when there are no more. The k-th epoch
    /// given is epoch k; `control.durable` tells how many every durable output holds.
    fn next_epoch(&mut self, control: &Control) -> Result<Option<Self::Epoch>, String>;

    /// Whether `next_epoch` would answer at once, whatever the epoch under way turns out
    /// to be (a list of files known from the start): the leader then asks for it while
    /// the workers agree on the current epoch, and the next epoch needs no round of its
    /// own to be announced.
    fn next_is_ready(&self) -> bool {
        false
    }

    /// Whether the workers exchange summaries before reading `epoch`.
    fn exchanges_summaries(&self, _epoch: &Self::Epoch, _peers: usize) -> bool {
        false
    }

    /// This worker's summary of its share of `epoch` (when summaries are exchanged).
    fn summarize(&mut self, _epoch: &Self::Epoch, _share: Share) -> Option<Self::Summary> {
        None
    }

    /// Reads this worker's share of `epoch`, handing each change to `sink`: one report
    /// per input, or the first error with the index of its input.
    fn read_share(
        &mut self,
        epoch: &Self::Epoch,
        share: Share,
        summaries: Option<&[Option<Self::Summary>]>,
        bad_rows: BadRows,
        sink: &mut dyn FnMut(Position, Change),
    ) -> Result<Vec<ShareReport>, (usize, InputError)>;

    /// Whether the leader alone reads `epoch`, as one worker (a stream only it holds):
    /// it does so before announcing the epoch, and the announcement carries whether the
    /// read failed, which spares the epoch a round between the workers. Not for files:
    /// even a small update file is read faster in shares than by one worker alone.
    fn read_by_leader_alone(&self, _epoch: &Self::Epoch) -> bool {
        false
    }

    /// Whether changes are sent into the dataflow while they are read rather than held
    /// until every worker has read its share without error. Only for an epoch whose
    /// failure ends the run (`skips_bad_epochs` false): the inputs then never advance past
    /// it, and nothing of it is applied.
    fn send_while_reading(&self, _epoch: &Self::Epoch) -> bool {
        false
    }

    fn info(&self, epoch: &Self::Epoch) -> EpochInfo;

    /// The leader, once `epoch` is applied (before its outputs are written: a source
    /// acknowledges upstream only what `Control::durable` says every output holds).
    fn applied(&mut self, _epoch: &Self::Epoch) -> Result<(), String> {
        Ok(())
    }

    /// Whether a bad epoch (under `--bad-rows fail`) is reported and skipped, as a
    /// followed directory does with a bad file, rather than ending the run.
    fn skips_bad_epochs(&self, _epoch: &Self::Epoch) -> bool {
        false
    }
}

/// What the epoch loop tells a source while it waits for the next epoch.
pub struct Control<'a> {
    /// Set by Ctrl-C or SIGTERM: end after the epoch under way.
    pub stop: &'a AtomicBool,
    /// How many epochs every durable output holds (epochs below it may be acknowledged
    /// upstream); it advances while the source waits.
    pub durable: &'a AtomicU64,
}

impl Control<'_> {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }
}

/// Which source a job reads, as given on the command line.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    Files(files::FileSpec),
    Postgres(postgres::PostgresSpec),
    Kafka(kafka::KafkaSpec),
}

/// Something to do with a source of any kind (the epoch loop, the recomputation).
pub trait WithSource {
    type Output;
    fn with<S: EpochSource>(self, source: S) -> Self::Output;
}

impl SourceSpec {
    /// Makes this worker's instance of the source and hands it to `work`: the one place
    /// where sources are chosen.
    pub fn drive<W: WithSource>(&self, work: W) -> W::Output {
        match self {
            SourceSpec::Files(spec) => work.with(files::FileSource::new(spec)),
            SourceSpec::Postgres(spec) => work.with(postgres::PostgresSource::new(spec)),
            SourceSpec::Kafka(spec) => work.with(kafka::KafkaSource::new(spec)),
        }
    }
}
