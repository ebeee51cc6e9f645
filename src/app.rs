//! Carrying out a plan: the job, and its outputs as sinks (`sink`) built from the plan.
//!
//! Every output file goes through `output_file`: written whole and renamed into place,
//! so a run that stops early never leaves half a file, and never written over an input.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::{JobPlan, Plan, Report};
use crate::generate::Generator;
use crate::output_file::refuse_outputs_that_are_inputs;
use crate::report::{ReportHistory, ReportKind};
use crate::run::{run_job_observed, Observer, Workers};
use crate::sink::files::{
    AppendedChangelog, ChangelogFile, EnrichedFile, Final, FinalStdout, HtmlReport, LiveStdout,
    Notes, RejectsFile, Stats, STDOUT,
};
use crate::sink::http::HttpSink;
use crate::sink::kafka::KafkaSink;
use crate::sink::postgres::PostgresSink;
use crate::sink::{Pipeline, Sink};
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

/// Runs the plan's job, its outputs as sinks. In a cluster only process 0 writes.
fn run(plan: &JobPlan) -> anyhow::Result<()> {
    // Both before anything is read: a run whose result would be lost, or that would
    // write over its own input, does not start.
    streams::stdout_is_open().context(STDOUT)?;
    refuse_outputs_that_are_inputs(&outputs(plan), &inputs(plan))?;
    let live = plan.report == Report::Live;
    if live {
        // Ctrl-C or SIGTERM: finish the epoch under way, write everything, exit 0.
        let stop = Arc::clone(&plan.job.stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    let pipeline = Arc::new(Pipeline::start(
        sinks(plan)?,
        Arc::clone(&plan.job.durable),
        Arc::clone(&plan.job.stop),
    )?);
    let observer = Arc::clone(&pipeline) as Arc<dyn Observer>;
    let summary = run_job_observed(&plan.job, &plan.workers, observer);
    // An error of the outputs is the cause of a failed run; otherwise the run's own.
    let finished = pipeline.finish(summary.as_ref().ok().and_then(Option::as_ref));
    summary?;
    finished
}

/// The plan's outputs, in the order they are written at the end. Those that connect
/// somewhere do so now, so that a bad address is an error before anything is read; in a
/// cluster only process 0 writes.
fn sinks(plan: &JobPlan) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    let live = plan.report == Report::Live;
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let writes = match &plan.workers {
        Workers::Process { .. } => true,
        Workers::Cluster { process, .. } => *process == 0,
    };
    if live {
        sinks.push(Box::new(LiveStdout {
            format: plan.format,
        }));
    }
    if let (Some((url, table)), true) = (&plan.sink_postgres, writes) {
        sinks.push(Box::new(PostgresSink::connect(url, table)?));
    }
    if let (Some(sink), true) = (&plan.sink_kafka, writes) {
        sinks.push(Box::new(KafkaSink::connect(
            &sink.brokers,
            &sink.topic,
            sink.patience,
        )?));
    }
    if let (Some(addr), true) = (plan.serve, writes) {
        sinks.push(Box::new(HttpSink::start(addr)?));
    }
    if let Some(path) = &plan.changes {
        let (path, format) = (path.clone(), plan.changes_format);
        sinks.push(if live {
            Box::new(AppendedChangelog {
                path,
                format,
                file: None,
            })
        } else {
            Box::new(ChangelogFile {
                path,
                format,
                epochs: Vec::new(),
            })
        });
    }
    if let Some(path) = &plan.html_report {
        let kind = match plan.report {
            Report::WhatIf => ReportKind::WhatIf,
            _ => ReportKind::Run,
        };
        sinks.push(Box::new(HtmlReport {
            path: path.clone(),
            kind,
            history: ReportHistory::default(),
        }));
    }
    if let Some(path) = &plan.enriched {
        sinks.push(Box::new(EnrichedFile {
            path: path.clone(),
            changes: Vec::new(),
        }));
    }
    if let Some(path) = &plan.rejects {
        sinks.push(Box::new(RejectsFile {
            path: path.clone(),
            rejects: Vec::new(),
        }));
    }
    if !plan.quiet {
        sinks.push(Box::new(Notes { rejected: 0 }));
    }
    // After every other live output, so that its outputs_freshness_ms says when they all
    // held the epoch.
    if plan.stats {
        sinks.push(Box::new(Stats {
            live,
            epochs: Vec::new(),
        }));
    }
    let shows = match plan.report {
        Report::Table => Final::Table,
        Report::EpochsAndTable => Final::EpochsAndTable,
        Report::WhatIf => Final::WhatIf,
        Report::Live => Final::AfterLive,
    };
    sinks.push(Box::new(FinalStdout {
        shows,
        format: plan.format,
        epochs: Vec::new(),
    }));
    Ok(sinks)
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
        SourceSpec::Postgres(_) | SourceSpec::Kafka(_) => Vec::new(),
    }
}
