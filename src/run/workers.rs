//! Where the workers run, how they are started, and what a failed worker is reported as.

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
    ) -> Result<timely::communication::WorkerGuards<T>, String>
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

/// The error for a worker (or timely thread) that stopped with `message`.
pub(super) fn worker_failure(message: &str) -> RunError {
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
