//! The sinks that write files, stdout and stderr.

use std::borrow::Borrow;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::Sink;
use crate::input::{InputError, Reject};
use crate::note;
use crate::output::{self, ChangelogFormat, TableFormat};
use crate::output_file::{write_whole, Output};
use crate::report::{html_report, ReportHistory, ReportKind};
use crate::run::{EnrichedChange, EpochOutput, JobSummary};

/// What an error writing stdout is prefixed with.
pub const STDOUT: &str = "cannot write the result to stdout";

/// Each epoch's changes on stdout as it completes (follow mode, a database).
pub struct LiveStdout {
    pub format: TableFormat,
}

impl Sink for LiveStdout {
    fn name(&self) -> String {
        "stdout".to_string()
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        let mut out = io::stdout().lock();
        let written = match self.format {
            TableFormat::Table => output::write_epochs_text(&mut out, std::slice::from_ref(epoch)),
            TableFormat::Csv => (|| {
                if epoch.epoch == 0 {
                    output::write_changelog_header(&mut out, ChangelogFormat::Csv)?;
                }
                output::write_changelog_rows(&mut out, ChangelogFormat::Csv, &epoch.changes)
            })(),
            TableFormat::Json => output::write_changes_json(&mut out, &epoch.changes),
        };
        written.and_then(|()| out.flush()).context(STDOUT)
    }
}

/// The changelog appended whole epochs at a time, synced (the file only ever holds
/// whole epochs); the first epoch puts it in place of the previous one. Epochs that waited
/// together are written with one sync, so that a sync per epoch does not bound how many
/// epochs a second the changelog keeps up with.
pub struct AppendedChangelog {
    pub path: PathBuf,
    pub format: ChangelogFormat,
    pub file: Option<Output>,
}

impl Sink for AppendedChangelog {
    fn name(&self) -> String {
        format!("--changes {}", self.path.display())
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        self.append(std::slice::from_ref(epoch))
    }

    fn epochs(&mut self, epochs: &[Arc<EpochOutput>]) -> anyhow::Result<()> {
        self.append(epochs)
    }
}

impl AppendedChangelog {
    fn append(&mut self, epochs: &[impl Borrow<EpochOutput>]) -> anyhow::Result<()> {
        let mut lines = Vec::new();
        if self.file.is_none() {
            output::write_changelog_header(&mut lines, self.format)?;
        }
        for epoch in epochs {
            output::write_changelog_rows(&mut lines, self.format, &epoch.borrow().changes)?;
        }
        match self.file.as_mut() {
            Some(file) => file.write_durably(&lines),
            None => {
                let mut file = Output::open(&self.path)?;
                file.write_durably(&lines)?;
                file.finish()?;
                self.file = Some(file);
                Ok(())
            }
        }
    }
}

/// The changelog written whole at the end of a batch run.
pub struct ChangelogFile {
    pub path: PathBuf,
    pub format: ChangelogFormat,
    pub epochs: Vec<EpochOutput>,
}

impl Sink for ChangelogFile {
    fn name(&self) -> String {
        format!("--changes {}", self.path.display())
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        self.epochs.push(changes_only(epoch));
        Ok(())
    }

    fn finish(&mut self, _summary: &JobSummary) -> anyhow::Result<()> {
        write_whole(&self.path, |out| {
            output::write_changelog(out, self.format, &self.epochs)
        })
    }
}

/// An epoch's output without the result table and enriched orders, which a sink that
/// keeps history does not need.
fn changes_only(epoch: &EpochOutput) -> EpochOutput {
    EpochOutput {
        table: Vec::new(),
        enriched: Vec::new(),
        ..epoch.clone()
    }
}

/// The HTML report, written at the end from what it kept, which is bounded (sampled
/// tables and the last few), so that a long live run can write one too.
pub struct HtmlReport {
    pub path: PathBuf,
    pub kind: ReportKind,
    pub history: ReportHistory,
}

impl Sink for HtmlReport {
    fn name(&self) -> String {
        format!("--report {}", self.path.display())
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        self.history.record(epoch);
        Ok(())
    }

    fn finish(&mut self, summary: &JobSummary) -> anyhow::Result<()> {
        let html = html_report(&self.history, &summary.baseline, &summary.table, self.kind);
        write_whole(&self.path, |out| out.write_all(html.as_bytes()))
    }
}

/// The enriched orders' changes, written at the end.
pub struct EnrichedFile {
    pub path: PathBuf,
    pub changes: Vec<EnrichedChange>,
}

impl Sink for EnrichedFile {
    fn name(&self) -> String {
        format!("--enriched {}", self.path.display())
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        self.changes.extend(epoch.enriched.iter().cloned());
        Ok(())
    }

    fn finish(&mut self, _summary: &JobSummary) -> anyhow::Result<()> {
        write_whole(&self.path, |out| output::write_enriched(out, &self.changes))
    }
}

/// Rejected rows, written at the end.
pub struct RejectsFile {
    pub path: PathBuf,
    pub rejects: Vec<Reject>,
}

impl Sink for RejectsFile {
    fn name(&self) -> String {
        format!("--rejects {}", self.path.display())
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        self.rejects.extend(epoch.rejects.iter().cloned());
        Ok(())
    }

    fn finish(&mut self, _summary: &JobSummary) -> anyhow::Result<()> {
        write_whole(&self.path, |out| output::write_rejects(out, &self.rejects))
    }
}

/// Notes on stderr of what changed nothing: rejected rows, deletes of absent keys,
/// skipped files.
pub struct Notes {
    pub rejected: usize,
}

impl Sink for Notes {
    fn name(&self) -> String {
        "stderr".to_string()
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        self.rejected += epoch.rejects.len();
        Ok(())
    }

    fn skipped(&mut self, error: &InputError) {
        note!("discounting: skipped {error}");
    }

    fn finish(&mut self, summary: &JobSummary) -> anyhow::Result<()> {
        if self.rejected > 0 {
            note!("discounting: {} bad rows skipped", self.rejected);
        }
        for (table, counters) in [
            ("orders", &summary.orders),
            ("discount_codes", &summary.codes),
        ] {
            if counters.missing_deletes > 0 {
                note!(
                    "discounting: {} deletes of {table} keys that were not there (no change)",
                    counters.missing_deletes
                );
            }
        }
        Ok(())
    }
}

/// `--stats`: one line per epoch on stderr, as each completes (`live`) or all at the
/// end, then the peak resident memory.
pub struct Stats {
    pub live: bool,
    pub epochs: Vec<EpochOutput>,
}

impl Sink for Stats {
    fn name(&self) -> String {
        "--stats".to_string()
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        if self.live {
            output::write_epoch_stats(&mut io::stderr().lock(), epoch)
                .context("cannot write the stats to stderr")
        } else {
            self.epochs.push(changes_only(epoch));
            Ok(())
        }
    }

    fn finish(&mut self, _summary: &JobSummary) -> anyhow::Result<()> {
        output::write_stats(&mut io::stderr().lock(), &self.epochs)
            .context("cannot write the stats to stderr")
    }
}

/// What stdout shows at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// The final table.
    Table,
    /// Every epoch's changes, then the final table (the sample run).
    EpochsAndTable,
    /// Baseline against scenario.
    WhatIf,
    /// After a live run: in text, the final table (the epochs were shown as they came).
    AfterLive,
}

/// The result on stdout at the end.
pub struct FinalStdout {
    pub shows: Final,
    pub format: TableFormat,
    pub epochs: Vec<EpochOutput>,
}

impl Sink for FinalStdout {
    fn name(&self) -> String {
        "stdout".to_string()
    }

    fn epoch(&mut self, epoch: &EpochOutput) -> anyhow::Result<()> {
        if self.shows == Final::EpochsAndTable {
            self.epochs.push(changes_only(epoch));
        }
        Ok(())
    }

    fn finish(&mut self, summary: &JobSummary) -> anyhow::Result<()> {
        let mut out = BufWriter::new(io::stdout().lock());
        let format = self.format;
        let written = (|| {
            match self.shows {
                Final::Table => output::write_table(&mut out, &summary.table, format)?,
                Final::EpochsAndTable => {
                    output::write_epochs_text(&mut out, &self.epochs)?;
                    writeln!(out, "final table")?;
                    output::write_table(&mut out, &summary.table, format)?;
                }
                Final::WhatIf => {
                    output::write_comparison(&mut out, &summary.baseline, &summary.table, format)?
                }
                Final::AfterLive => {
                    if format == TableFormat::Table {
                        writeln!(out, "final table")?;
                        output::write_table(&mut out, &summary.table, format)?;
                    }
                }
            }
            out.flush()
        })();
        written.context(STDOUT)
    }
}
