//! Where the workers run, how they are started, and what a failed worker is reported as.

use std::sync::OnceLock;

use timely::worker::Worker;

use super::RunError;
use crate::cluster::{self, Patience};

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
        /// How long to wait for the other processes, to connect and once running.
        patience: Patience,
    },
}

impl Workers {
    /// This process's index in the cluster.
    pub fn process(&self) -> usize {
        match self {
            Workers::Process { .. } => 0,
            Workers::Cluster { process, .. } => *process,
        }
    }

    /// Starts the workers, each running `work`.
    pub(super) fn execute<T, F>(
        &self,
        work: F,
    ) -> Result<timely::communication::WorkerGuards<T>, RunError>
    where
        T: Send + 'static,
        F: Fn(&mut Worker) -> T + Send + Sync + 'static,
    {
        match self {
            Workers::Process { threads } => {
                timely::execute(timely::Config::process(*threads), work)
                    .map_err(|e| start_failure(*threads, &e))
            }
            Workers::Cluster {
                threads,
                process,
                addresses,
                patience,
            } => {
                let (allocators, guard) = cluster::start(addresses, *process, *threads, *patience)
                    .map_err(|e| RunError::Failed(format!("cannot start the workers: {e}")))?;
                timely::execute::execute_from(
                    allocators,
                    guard,
                    timely::WorkerConfig::default(),
                    work,
                )
                .map_err(|e| start_failure(*threads, &e))
            }
        }
    }
}

/// The first worker panic, with where it happened (a panic's payload lacks the place).
static FIRST_WORKER_PANIC: OnceLock<String> = OnceLock::new();

/// Called by the panic hook: keeps the first worker thread's panic for the run's error
/// and returns true, so that the hook prints nothing; false for any other thread.
pub fn note_worker_panic(thread: Option<&str>, panic: &str) -> bool {
    if !thread.is_some_and(|name| name.starts_with("timely:work-")) {
        return false;
    }
    let _ = FIRST_WORKER_PANIC.set(panic.replace('\n', " "));
    true
}

/// The error when the workers cannot all be started (`spawn` failed: timely passes the
/// `io::Error` on in its `Debug` form, whose `message` is the readable part).
fn start_failure(threads: usize, error: &str) -> RunError {
    let reason = error
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(error, |(message, _)| message);
    RunError::Failed(format!(
        "cannot start {threads} worker threads ({reason}); lower --workers or raise the process's memory or thread limits"
    ))
}

/// The error for a worker (or timely thread) that stopped with `message`.
pub(super) fn worker_failure(message: &str) -> RunError {
    let message = FIRST_WORKER_PANIC.get().map_or(message, String::as_str);
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

pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown failure".to_string())
}
