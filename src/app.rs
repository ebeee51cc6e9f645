//! Carrying out a plan: run the job, then write what was asked for.
//!
//! Every output file goes through `output_file`: written whole and renamed into place,
//! so a run that stops early never leaves half a file, and never written over an input.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::cli::{JobPlan, Plan, Report};
use crate::generate::Generator;
use crate::input::{InputError, Reject};
use crate::output::{self, ChangelogFormat, TableFormat};
use crate::output_file::{refuse_outputs_that_are_inputs, write_whole, Output};
use crate::report::{html_report, ReportKind};
use crate::run::{run_job_observed, EpochOutput, JobOutput, Observer, Quiet};
use crate::source::SourceSpec;
use crate::{note, streams};

/// Carries out a plan.
pub fn execute(plan: &Plan) -> anyhow::Result<()> {
    match plan {
        Plan::Job(job) => run(job),
        Plan::Generate { spec, out } => {
            let generated = Generator::new(spec.clone())
                .write_all(out)
                .with_context(|| format!("cannot write into {}", out.display()))?;
            note!(
                "discounting: wrote {}, {} and {} update files",
                generated.codes.display(),
                generated.orders.display(),
                generated.updates.len()
            );
            Ok(())
        }
    }
}

/// Runs the plan's job and writes its outputs. In a cluster only process 0 writes.
fn run(plan: &JobPlan) -> anyhow::Result<()> {
    // Both before anything is read: a run whose result would be lost, or that would
    // write over its own input, does not start.
    streams::stdout_is_open().context(STDOUT)?;
    refuse_outputs_that_are_inputs(&outputs(plan), &inputs(plan))?;
    let live = plan.report == Report::Live;
    let observer: Arc<dyn Observer> = if live {
        Arc::new(Live::new(plan))
    } else {
        Arc::new(Quiet)
    };
    if live {
        // Ctrl-C or SIGTERM: finish the epoch under way, write everything, exit 0.
        let stop = Arc::clone(&plan.job.stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    let Some(result) = run_job_observed(&plan.job, &plan.workers, observer)? else {
        return Ok(());
    };
    // A live run has appended each epoch to the changelog already.
    if let (Some(path), false) = (&plan.changes, live) {
        write_whole(path, |out| {
            output::write_changelog(out, plan.changes_format, &result.epochs)
        })?;
    }
    if let Some(path) = &plan.html_report {
        let kind = match plan.report {
            Report::WhatIf => ReportKind::WhatIf,
            _ => ReportKind::Run,
        };
        let html = html_report(&result, kind);
        write_whole(path, |out| out.write_all(html.as_bytes()))?;
    }
    if let Some(path) = &plan.enriched {
        write_whole(path, |out| output::write_enriched(out, &result.enriched))?;
    }
    let rejects: Vec<Reject> = result
        .epochs
        .iter()
        .flat_map(|e| e.rejects.iter().cloned())
        .collect();
    if let Some(path) = &plan.rejects {
        write_whole(path, |out| output::write_rejects(out, &rejects))?;
    }
    if !plan.quiet {
        report_counts(&result, rejects.len());
    }
    if plan.stats {
        // A live run has printed each epoch's line already; the peak comes last.
        let epochs = if live { &[][..] } else { &result.epochs[..] };
        output::write_stats(&mut io::stderr().lock(), epochs)
            .context("cannot write the stats to stderr")?;
    }
    write_result(plan, &result).context(STDOUT)
}

/// What an error writing stdout is prefixed with.
const STDOUT: &str = "cannot write the result to stdout";

/// The final table (or comparison) on stdout.
fn write_result(plan: &JobPlan, result: &JobOutput) -> io::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    match plan.report {
        Report::Table => output::write_table(&mut out, &result.table, plan.format)?,
        Report::EpochsAndTable => {
            output::write_epochs_text(&mut out, &result.epochs)?;
            writeln!(out, "final table")?;
            output::write_table(&mut out, &result.table, plan.format)?;
        }
        Report::WhatIf => {
            output::write_comparison(&mut out, &result.baseline, &result.table, plan.format)?
        }
        Report::Live => {
            if plan.format == TableFormat::Table {
                writeln!(out, "final table")?;
                output::write_table(&mut out, &result.table, plan.format)?;
            }
        }
    }
    out.flush()
}

/// Follow mode's output: each epoch's changes on stdout as it completes, appended to the
/// changelog (one write per epoch, synced, so the file only ever holds whole epochs).
struct Live {
    format: TableFormat,
    stats: bool,
    changes: Option<PathBuf>,
    changes_format: ChangelogFormat,
    quiet: bool,
    /// The changelog, put in place of the previous one with the first epoch, then
    /// appended to.
    changelog: Mutex<Option<Output>>,
}

impl Live {
    fn new(plan: &JobPlan) -> Live {
        Live {
            format: plan.format,
            stats: plan.stats,
            changes: plan.changes.clone(),
            changes_format: plan.changes_format,
            quiet: plan.quiet,
            changelog: Mutex::new(None),
        }
    }
}

impl Observer for Live {
    fn epoch(&self, epoch: &EpochOutput) -> io::Result<()> {
        self.print(epoch)
            .map_err(|e| io::Error::new(e.kind(), format!("{STDOUT}: {e}")))?;
        if let Some(path) = &self.changes {
            let mut changelog = self
                .changelog
                .lock()
                .map_err(|_| io::Error::other("changelog lock"))?;
            let mut lines = Vec::new();
            if changelog.is_none() {
                output::write_changelog_header(&mut lines, self.changes_format)?;
            }
            output::write_changelog_rows(&mut lines, self.changes_format, &epoch.changes)?;
            let written = match changelog.as_mut() {
                Some(file) => file.write_durably(&lines),
                None => Output::open(path).and_then(|mut file| {
                    file.write_durably(&lines)?;
                    file.finish()?;
                    *changelog = Some(file);
                    Ok(())
                }),
            };
            written.map_err(|e| io::Error::other(format!("{e:#}")))?;
        }
        if self.stats {
            output::write_epoch_stats(&mut io::stderr().lock(), epoch)?;
        }
        Ok(())
    }

    fn skipped(&self, error: &InputError) {
        if !self.quiet {
            note!("discounting: skipped a bad file: {error}");
        }
    }
}

impl Live {
    /// An epoch's changes on stdout.
    fn print(&self, epoch: &EpochOutput) -> io::Result<()> {
        let mut out = io::stdout().lock();
        match self.format {
            TableFormat::Table => output::write_epochs_text(&mut out, std::slice::from_ref(epoch))?,
            TableFormat::Csv => {
                if epoch.epoch == 0 {
                    output::write_changelog_header(&mut out, ChangelogFormat::Csv)?;
                }
                output::write_changelog_rows(&mut out, ChangelogFormat::Csv, &epoch.changes)?;
            }
            TableFormat::Json => output::write_changes_json(&mut out, &epoch.changes)?,
        }
        out.flush()
    }
}

/// Tells on stderr what changed nothing: rejected rows and deletes of absent keys.
fn report_counts(result: &JobOutput, rejected: usize) {
    if rejected > 0 {
        note!("discounting: {rejected} bad rows skipped");
    }
    for (table, counters) in [
        ("orders", &result.orders),
        ("discount_codes", &result.codes),
    ] {
        if counters.missing_deletes > 0 {
            note!(
                "discounting: {} deletes of {table} keys that were not there (no change)",
                counters.missing_deletes
            );
        }
    }
}

/// The files the plan writes.
fn outputs(plan: &JobPlan) -> Vec<&Path> {
    [
        &plan.changes,
        &plan.html_report,
        &plan.enriched,
        &plan.rejects,
    ]
    .into_iter()
    .flatten()
    .map(PathBuf::as_path)
    .collect()
}

/// The files the job reads (a followed directory's files are not known yet; a
/// database has none).
fn inputs(plan: &JobPlan) -> Vec<&Path> {
    match &plan.job.source {
        SourceSpec::Files(files) => [&files.codes, &files.orders]
            .into_iter()
            .chain(&files.updates)
            .map(PathBuf::as_path)
            .collect(),
        SourceSpec::Postgres(_) => Vec::new(),
    }
}
