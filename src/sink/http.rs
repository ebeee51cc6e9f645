//! `--serve ADDR`: each completed epoch published to the HTTP API and dashboard
//! (`crate::serve`), which never makes the job wait for a client.

use std::time::SystemTime;

use super::Sink;
use crate::run::EpochOutput;
use crate::serve::{Metrics, Published, Server};

pub struct HttpSink {
    pub server: Server,
    rows_applied: u64,
}

impl HttpSink {
    pub fn start(addr: std::net::SocketAddr) -> anyhow::Result<HttpSink> {
        Ok(HttpSink {
            server: Server::start(addr).map_err(|e| anyhow::anyhow!("--serve: {e:#}"))?,
            rows_applied: 0,
        })
    }
}

impl Sink for HttpSink {
    fn name(&self) -> String {
        format!("--serve {}", self.server.local_addr())
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        self.rows_applied += epoch.rows;
        self.server.set_metrics(Metrics {
            rows_applied: self.rows_applied,
            lag_bytes: None,
            lag_ms: epoch.freshness.map(|f| f.as_millis() as u64),
        });
        self.server.publish(Published {
            epoch: epoch.epoch,
            position: epoch.position.clone(),
            table: epoch.table.clone(),
            changes: epoch.changes.clone(),
            completed_at: SystemTime::now(),
        });
        Ok(())
    }
}
