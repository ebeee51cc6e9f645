//! Carrying out a plan: run the job, then write what was asked for.
//!
//! Output files are written whole to a temporary name beside the target and renamed into
//! place, so a run that stops early never leaves half a file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use crate::cli::{JobPlan, Plan, Report};
use crate::generate::Generator;
use crate::input::Reject;
use crate::output;
use crate::run::{run_job, JobOutput};

/// Carries out a plan.
pub fn execute(plan: &Plan) -> anyhow::Result<()> {
    match plan {
        Plan::Job(job) => run(job),
        Plan::Generate { spec, out } => {
            let generated = Generator::new(spec.clone())
                .write_all(out)
                .with_context(|| format!("cannot write into {}", out.display()))?;
            eprintln!(
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
    let Some(result) = run_job(&plan.job, &plan.workers)? else {
        return Ok(());
    };
    if let Some(path) = &plan.changes {
        write_file(path, |out| output::write_changelog(out, &result.epochs))?;
    }
    if let Some(path) = &plan.enriched {
        write_file(path, |out| output::write_enriched(out, &result.enriched))?;
    }
    let rejects: Vec<Reject> = result
        .epochs
        .iter()
        .flat_map(|e| e.rejects.iter().cloned())
        .collect();
    if let Some(path) = &plan.rejects {
        write_file(path, |out| output::write_rejects(out, &rejects))?;
    }
    report_counts(&result, rejects.len());
    if plan.stats {
        output::write_stats(&mut io::stderr().lock(), &result.epochs)?;
    }

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
    }
    out.flush()?;
    Ok(())
}

/// Tells on stderr what changed nothing: rejected rows and deletes of absent keys.
fn report_counts(result: &JobOutput, rejected: usize) {
    if rejected > 0 {
        eprintln!("discounting: {rejected} bad rows skipped");
    }
    for (table, counters) in [
        ("orders", &result.orders),
        ("discount_codes", &result.codes),
    ] {
        if counters.missing_deletes > 0 {
            eprintln!(
                "discounting: {} deletes of {table} keys that were not there (no change)",
                counters.missing_deletes
            );
        }
    }
}

/// Writes a file whole: to a temporary name first, renamed into place once complete.
fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = Path::new(&temporary);
    let written = File::create(temporary).and_then(|file| {
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    written
        .and_then(|()| std::fs::rename(temporary, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(temporary);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}
