//! Where results go: every output is a sink that receives each completed epoch.
//!
//! Worker 0 hands each epoch to a thread of its own through a bounded queue (`Pipeline`),
//! so a slow sink never slows the dataflow; a sink that falls too far behind is an error
//! of that sink. Live sinks write each epoch as it comes (stdout, an appended changelog,
//! a database table); batch sinks keep what they need and write it whole at the end.
//! Once every sink holds an epoch, the thread advances `Job::durable`, and only then may
//! a source acknowledge it upstream.

pub mod files;
pub mod http;
pub mod kafka;
pub mod postgres;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::anyhow;

use crate::input::InputError;
use crate::run::{EpochOutput, JobSummary, Observer};

/// An output of the job.
pub trait Sink: Send {
    /// What errors call it (`--changes out.csv`).
    fn name(&self) -> String;
    /// An epoch is complete (live sinks write it now).
    fn epoch(&mut self, _epoch: &EpochOutput) -> anyhow::Result<()> {
        Ok(())
    }
    /// Epochs that were waiting together, in order. A sink for which writing the last
    /// one stands for all (a table of the result) writes once; others write each.
    fn epochs(&mut self, epochs: &[Arc<EpochOutput>]) -> anyhow::Result<()> {
        epochs.iter().try_for_each(|epoch| self.epoch(epoch))
    }
    /// A bad input was skipped (follow mode).
    fn skipped(&mut self, _error: &InputError) {}
    /// The run ended well (batch sinks write now).
    fn finish(&mut self, _summary: &JobSummary) -> anyhow::Result<()> {
        Ok(())
    }
}

/// How many completed epochs may wait for the sinks before the slowest is an error.
pub const QUEUE: usize = 1024;

/// At most this many waiting epochs are handed to the sinks at once.
const MAX_BATCH: usize = 256;

enum Message {
    Epoch(Arc<EpochOutput>),
    Skipped(InputError),
}

/// The thread that runs the sinks; it hands them back for `finish`.
type SinkThread = JoinHandle<anyhow::Result<Vec<Box<dyn Sink>>>>;

/// The sinks, on a thread of their own behind a bounded queue; the job's observer.
pub struct Pipeline {
    queue: Mutex<Option<SyncSender<Message>>>,
    thread: Mutex<Option<SinkThread>>,
    /// The sink the thread is writing to now, for the error when the queue is full.
    busy: Arc<Mutex<String>>,
    failed: Arc<Mutex<Option<String>>>,
}

impl Pipeline {
    /// Starts the thread; it advances `durable` as every sink holds each epoch, and
    /// sets `stop` if a sink fails, so that a run waiting for its next epoch (a followed
    /// directory, a database) ends with that sink's error instead of going on without it.
    pub fn start(
        sinks: Vec<Box<dyn Sink>>,
        durable: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Pipeline> {
        let (sender, receiver) = sync_channel(QUEUE);
        let busy = Arc::new(Mutex::new(String::new()));
        let failed = Arc::new(Mutex::new(None));
        let (thread_busy, thread_failed) = (Arc::clone(&busy), Arc::clone(&failed));
        let thread = std::thread::Builder::new()
            .name("sinks".to_string())
            .spawn(move || {
                let drained = drain(sinks, receiver, durable, thread_busy, thread_failed);
                if drained.is_err() {
                    stop.store(true, Ordering::SeqCst);
                }
                drained
            })
            .map_err(|e| anyhow!("cannot start the outputs' thread: {e}"))?;
        Ok(Pipeline {
            queue: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            busy,
            failed,
        })
    }

    /// Waits for the sinks to take every epoch, then lets each finish (batch sinks
    /// write now, in the order given).
    pub fn finish(&self, summary: Option<&JobSummary>) -> anyhow::Result<()> {
        drop(lock(&self.queue).take());
        let Some(thread) = lock(&self.thread).take() else {
            return Ok(());
        };
        let mut sinks = thread
            .join()
            .map_err(|_| anyhow!("the outputs' thread failed"))??;
        if let Some(summary) = summary {
            for sink in &mut sinks {
                sink.finish(summary)?;
            }
        }
        Ok(())
    }

    fn send(&self, message: Message) -> std::io::Result<()> {
        if let Some(reason) = lock(&self.failed).clone() {
            return Err(std::io::Error::other(reason));
        }
        let queue = lock(&self.queue);
        let Some(queue) = queue.as_ref() else {
            return Ok(());
        };
        match queue.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(std::io::Error::other(format!(
                "{} fell {QUEUE} epochs behind the job",
                lock(&self.busy)
            ))),
            // The thread ended: it failed, and says why.
            Err(TrySendError::Disconnected(_)) => Err(std::io::Error::other(
                lock(&self.failed)
                    .clone()
                    .unwrap_or_else(|| "the outputs stopped".to_string()),
            )),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn drain(
    mut sinks: Vec<Box<dyn Sink>>,
    receiver: Receiver<Message>,
    durable: Arc<AtomicU64>,
    busy: Arc<Mutex<String>>,
    failed: Arc<Mutex<Option<String>>>,
) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    let mut next = receiver.recv().ok();
    while let Some(message) = next.take() {
        match message {
            Message::Epoch(epoch) => {
                // Every epoch already waiting goes in one batch, so a sink that writes
                // one transaction per batch catches up instead of falling behind.
                let mut batch = vec![epoch];
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(Message::Epoch(epoch)) => batch.push(epoch),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                for sink in &mut sinks {
                    *lock(&busy) = sink.name();
                    if let Err(error) = sink.epochs(&batch) {
                        let reason = format!("{}: {error:#}", sink.name());
                        *lock(&failed) = Some(reason.clone());
                        return Err(anyhow!(reason));
                    }
                }
                let last = batch.last().map_or(0, |epoch| epoch.epoch);
                durable.fetch_max(last + 1, Ordering::SeqCst);
            }
            Message::Skipped(error) => sinks.iter_mut().for_each(|s| s.skipped(&error)),
        }
        if next.is_none() {
            next = receiver.recv().ok();
        }
    }
    Ok(sinks)
}

impl Observer for Pipeline {
    fn epoch(&self, epoch: &EpochOutput) -> std::io::Result<()> {
        self.send(Message::Epoch(Arc::new(epoch.clone())))
    }

    fn skipped(&self, error: &InputError) {
        let _ = self.send(Message::Skipped(error.clone()));
    }

    fn holds_epochs_on_return(&self) -> bool {
        false
    }
}
