//! The result over HTTP (`--serve ADDR`): the current table as JSON, each epoch's changes
//! as Server-Sent Events, Prometheus metrics, a health check and a live dashboard.
//!
//! The job hands each completed epoch to [`Server::publish`], which never waits: it swaps
//! the new table in under a short lock and offers the epoch to each stream client's
//! bounded queue. A client whose queue is full has fallen behind and is disconnected;
//! the job is never slowed by a client. The server runs on a thread of its own with its
//! own single-threaded tokio runtime and binds nothing but the address it is given.
//!
//! Wiring it into the job:
//!
//! ```no_run
//! use discounting::serve::{Metrics, Published, Server};
//! let server = Server::start("127.0.0.1:8080".parse().unwrap()).unwrap();
//! // after each completed epoch, on worker 0's thread:
//! server.publish(Published {
//!     epoch: 0,
//!     position: None,
//!     table: Vec::new(),
//!     changes: Vec::new(),
//!     completed_at: std::time::SystemTime::now(),
//! });
//! server.set_metrics(Metrics { rows_applied: 30, ..Metrics::default() });
//! // at the end of the job:
//! server.shutdown();
//! ```

mod http;
pub mod json;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use anyhow::Context as _;

use crate::result::{ChangeRow, ResultRow};

/// The dashboard page: one self-contained HTML file (inline style and script).
/// Its style and chart are the HTML report's too (`src/look/`).
pub const DASHBOARD_HTML: &str = concat!(
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    "<link rel=\"icon\" href=\"data:,\">\n<title>discounting · live</title>\n<style>\n",
    include_str!("../look/look.css"),
    "</style>\n</head>\n",
    include_str!("dashboard.html"),
    "<script>\n",
    include_str!("../look/chart.js"),
    include_str!("dashboard.js"),
    "</script>\n</body>\n</html>\n",
);

/// One completed epoch as the job hands it over.
#[derive(Debug, Clone)]
pub struct Published {
    pub epoch: u64,
    /// The source position the epoch reflects (e.g. a PostgreSQL LSN `0/16B3F28`).
    pub position: Option<String>,
    /// The whole result table after the epoch, sorted by percentage.
    pub table: Vec<ResultRow>,
    /// The epoch's changelog lines (−1 old row, +1 new row), as `result` makes them.
    pub changes: Vec<ChangeRow>,
    pub completed_at: SystemTime,
}

/// Figures the job knows and the server cannot: shown on `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Input rows applied so far.
    pub rows_applied: u64,
    /// How far the job is behind its source, in bytes (e.g. WAL bytes), if known.
    pub lag_bytes: Option<u64>,
    /// How far behind in time, in milliseconds, if known.
    pub lag_ms: Option<u64>,
}

/// Limits of what the server keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Epochs of changes kept for clients that reconnect with `Last-Event-ID`.
    pub history_epochs: usize,
    /// Changelog rows kept in that history at most (the newest epoch is always kept).
    pub history_rows: usize,
    /// Epochs queued for one stream client before it counts as too slow and is dropped.
    pub client_queue: usize,
    /// Stream clients at once; one more is refused with 503.
    pub max_clients: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            history_epochs: 1000,
            history_rows: 200_000,
            client_queue: 256,
            max_clients: 1000,
        }
    }
}

/// The running HTTP server. Dropping it shuts it down too.
pub struct Server {
    shared: Arc<state::Shared>,
    local_addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (only that address) and serves on a thread of its own; returns as
    /// soon as the socket listens. Port 0 picks a free port: see [`Server::local_addr`].
    pub fn start(addr: SocketAddr) -> anyhow::Result<Server> {
        Server::start_with(addr, Options::default())
    }

    pub fn start_with(addr: SocketAddr, options: Options) -> anyhow::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr}"))?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP server's runtime")?;
        let shared = Arc::new(state::Shared::new(options));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let router = http::router(shared.clone());
        let thread = std::thread::Builder::new()
            .name("serve".into())
            .spawn(move || {
                runtime.block_on(http::accept_loop(listener, router, stopped));
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })
            .context("cannot start the HTTP server's thread")?;
        Ok(Server {
            shared,
            local_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Hands over a completed epoch. Never blocks on a client: it takes a short lock and
    /// offers the epoch to each stream client's bounded queue (a full one is dropped).
    pub fn publish(&self, epoch: Published) {
        self.shared.publish(epoch);
    }

    /// Replaces the job's own figures shown on `/metrics`.
    pub fn set_metrics(&self, metrics: Metrics) {
        self.shared.set_metrics(metrics);
    }

    /// Stops listening, closes every connection and waits for the server's thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}
