//! What the server holds between epochs: the current table, a bounded history of epochs'
//! changes for clients that reconnect, and the live clients' bounded queues.
//!
//! The job's thread only takes the lock to swap in `Arc`s and `try_send` to each client;
//! it never waits for a client. Documents are turned into JSON on the server's thread,
//! once per epoch, the first time a client or request needs them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use tokio::sync::{mpsc, Notify};

use super::json;
use super::{Metrics, Options, Published};
use crate::result::{ChangeRow, ResultRow};

/// The table as of one epoch.
#[derive(Debug)]
pub struct Snapshot {
    pub epoch: u64,
    pub position: Option<String>,
    pub completed_at: SystemTime,
    pub rows: Vec<ResultRow>,
    json: OnceLock<String>,
}

impl Snapshot {
    /// `{"epoch":N,"position":…,"completed_at":…,"rows":[…]}`.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| self.document(&self.rows))
    }

    /// The same document with only `rows` (a pull query's answer).
    pub fn document(&self, rows: &[ResultRow]) -> String {
        let mut out = String::with_capacity(128 + rows.len() * 160);
        out.push('{');
        json::push_epoch_fields(
            &mut out,
            self.epoch,
            self.position.as_deref(),
            self.completed_at,
        );
        out.push_str(",\"rows\":[");
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::push_row(&mut out, row);
        }
        out.push_str("]}");
        out
    }
}

/// One epoch's changes to the table.
#[derive(Debug)]
pub struct Changes {
    pub epoch: u64,
    pub position: Option<String>,
    pub completed_at: SystemTime,
    pub changes: Vec<ChangeRow>,
    json: OnceLock<String>,
}

impl Changes {
    /// `{"epoch":N,"position":…,"completed_at":…,"changes":[{"DIFF":-1,…},…]}`.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| {
            let mut out = String::with_capacity(128 + self.changes.len() * 170);
            out.push('{');
            json::push_epoch_fields(
                &mut out,
                self.epoch,
                self.position.as_deref(),
                self.completed_at,
            );
            out.push_str(",\"changes\":[");
            for (i, change) in self.changes.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::push_change(&mut out, change);
            }
            out.push_str("]}");
            out
        })
    }
}

/// What a client's stream sends next.
#[derive(Debug, Clone)]
pub enum Item {
    Snapshot(Arc<Snapshot>),
    Changes(Arc<Changes>),
}

struct Client {
    id: u64,
    queue: mpsc::Sender<Item>,
    /// Closes the client's connection.
    kill: Arc<Notify>,
    /// Connected before the first epoch: gets that epoch as a snapshot.
    wants_snapshot: bool,
}

#[derive(Default)]
pub struct State {
    pub current: Option<Arc<Snapshot>>,
    history: VecDeque<Arc<Changes>>,
    history_rows: usize,
    clients: Vec<Client>,
    next_client: u64,
    pub epochs_completed: u64,
    pub clients_dropped: u64,
    pub clients_connected: u64,
    pub metrics: Metrics,
}

impl State {
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }
}

pub struct Shared {
    state: Mutex<State>,
    pub options: Options,
}

/// A new client: what to send first, then its live queue.
pub struct Subscription {
    pub first: Vec<Item>,
    pub queue: mpsc::Receiver<Item>,
    pub guard: ClientGuard,
}

/// Unregisters a client when its stream goes away.
pub struct ClientGuard {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.shared
            .lock()
            .clients
            .retain(|client| client.id != self.id);
    }
}

impl Shared {
    pub fn new(options: Options) -> Shared {
        Shared {
            state: Mutex::new(State::default()),
            options,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data (every update
        // is a few assignments); serve on rather than poison every request.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn publish(&self, published: Published) {
        let Published {
            epoch,
            position,
            table,
            changes,
            completed_at,
        } = published;
        let snapshot = Arc::new(Snapshot {
            epoch,
            position: position.clone(),
            completed_at,
            rows: table,
            json: OnceLock::new(),
        });
        let changes = Arc::new(Changes {
            epoch,
            position,
            completed_at,
            changes,
            json: OnceLock::new(),
        });
        let mut state = self.lock();
        state.current = Some(snapshot.clone());
        state.epochs_completed += 1;
        state.history_rows += changes.changes.len();
        state.history.push_back(changes.clone());
        let (max_epochs, max_rows) = (self.options.history_epochs, self.options.history_rows);
        while state.history.len() > max_epochs
            || (state.history_rows > max_rows && state.history.len() > 1)
        {
            if let Some(old) = state.history.pop_front() {
                state.history_rows -= old.changes.len();
            }
        }
        let mut dropped = 0;
        state.clients.retain_mut(|client| {
            let item = if client.wants_snapshot {
                Item::Snapshot(snapshot.clone())
            } else {
                Item::Changes(changes.clone())
            };
            match client.queue.try_send(item) {
                Ok(()) => {
                    client.wants_snapshot = false;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Fallen behind by a whole queue: closed, never waited for.
                    client.kill.notify_one();
                    dropped += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        state.clients_dropped += dropped;
    }

    pub fn set_metrics(&self, metrics: Metrics) {
        self.lock().metrics = metrics;
    }

    /// Registers a stream client. With `last_event_id` the epoch it saw last: it gets the
    /// epochs after it from the history if they are all there, else the current table.
    /// `None` when `max_clients` are connected already.
    pub fn subscribe(
        self: &Arc<Self>,
        last_event_id: Option<u64>,
        kill: Arc<Notify>,
    ) -> Option<Subscription> {
        let (tx, rx) = mpsc::channel(self.options.client_queue.max(1));
        let mut state = self.lock();
        if state.clients.len() >= self.options.max_clients {
            return None;
        }
        let mut wants_snapshot = false;
        let first = match &state.current {
            None => {
                wants_snapshot = true;
                Vec::new()
            }
            Some(current) => match last_event_id {
                Some(seen) if seen == current.epoch => Vec::new(),
                Some(seen) => match state.history.iter().position(|c| c.epoch == seen) {
                    Some(at) => state
                        .history
                        .iter()
                        .skip(at + 1)
                        .map(|c| Item::Changes(c.clone()))
                        .collect(),
                    None => vec![Item::Snapshot(current.clone())],
                },
                None => vec![Item::Snapshot(current.clone())],
            },
        };
        let id = state.next_client;
        state.next_client += 1;
        state.clients_connected += 1;
        state.clients.push(Client {
            id,
            queue: tx,
            kill,
            wants_snapshot,
        });
        drop(state);
        Some(Subscription {
            first,
            queue: rx,
            guard: ClientGuard {
                id,
                shared: self.clone(),
            },
        })
    }
}
