//! `discounting`: see `discounting --help`, or README.md.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let result = discounting::cli::Cli::parse()
        .into_plan()
        .and_then(|plan| discounting::app::execute(&plan));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("discounting: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A closed stdout (`discounting run | head`) is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
