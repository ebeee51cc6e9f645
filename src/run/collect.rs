//! Worker 0's view of the results, epoch by epoch.

use std::time::Duration;

use differential_dataflow::consolidation::consolidate;

use super::{EnrichedChange, EpochOutput, JobSummary, RunError, WorkerReport};
use crate::dataflow::Outputs;
use crate::input::Reject;
use crate::memory;
use crate::model::{Epoch, UpsertCounters};
use crate::result::{ResultRow, ResultTable};
use crate::source::EpochInfo;

/// It keeps the result and the last epoch's output, never the history of epochs.
#[derive(Default)]
pub(super) struct Collector {
    table: ResultTable,
    baseline: Vec<ResultRow>,
    last: Option<EpochOutput>,
}

impl Collector {
    pub(super) fn finish_epoch(
        &mut self,
        epoch: Epoch,
        info: EpochInfo,
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
        let mut enriched_changes = Vec::new();
        if let Some(enriched) = &outputs.enriched {
            let mut updates: Vec<_> = enriched
                .borrow_mut()
                .drain(..)
                .map(|(order, _, diff)| (order, diff))
                .collect();
            consolidate(&mut updates);
            enriched_changes.extend(updates.into_iter().map(
                |((id, order, percentage_micros), diff)| EnrichedChange {
                    epoch,
                    diff,
                    id,
                    order,
                    percentage_micros,
                },
            ));
        }
        // Rejects in input order, then line order, whichever worker met them.
        let mut rejects = Vec::new();
        for input in 0..info.inputs.len() {
            let mut of_input: Vec<Reject> = reports
                .iter()
                .filter_map(|r| r.shares.get(input))
                .flat_map(|s| s.rejects.iter().cloned())
                .collect();
            of_input.sort_by_key(|r| r.error.line);
            rejects.extend(of_input);
        }
        enriched_changes.sort();
        let done = self.last.insert(EpochOutput {
            epoch,
            files: info.inputs,
            position: info.position,
            transactions: info.transactions,
            freshness: info
                .committed_at
                .and_then(|at| std::time::SystemTime::now().duration_since(at).ok()),
            committed_at: info.committed_at,
            stream_delay: info.stream_delay,
            rows: reports.iter().flat_map(|r| &r.shares).map(|s| s.rows).sum(),
            changes,
            rejects,
            elapsed,
            resident_bytes: memory::resident_bytes(),
            table: self.table.rows().map_err(RunError::Failed)?,
            enriched: enriched_changes,
        });
        Ok(done)
    }

    pub(super) fn finish(self, reports: &[WorkerReport]) -> Result<JobSummary, RunError> {
        let mut codes = UpsertCounters::default();
        let mut orders = UpsertCounters::default();
        for report in reports {
            codes.add(&report.codes);
            orders.add(&report.orders);
        }
        Ok(JobSummary {
            table: self.table.rows().map_err(RunError::Failed)?,
            baseline: self.baseline,
            codes,
            orders,
        })
    }
}
