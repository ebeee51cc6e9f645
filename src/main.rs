//! `discounting`: see `discounting --help`, or README.md.

use std::process::ExitCode;

use clap::Parser;
use discounting::note;

fn main() -> ExitCode {
    discounting::streams::remember_closed_stdout();
    // timely reports a lost cluster peer by panicking in its network threads, and the
    // panics cascade through the workers (up to a panic during unwinding, which aborts).
    // The run cannot go on, so it ends at the first one, with one line and exit code 1.
    // Any other failing thread says so in one line; the run then ends with exit code 1.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("timely communication error")
            || message.contains("MergeQueue poisoned")
        {
            note!("discounting: lost the connection to another process of the cluster ({message})");
            std::process::exit(1);
        }
        let thread = std::thread::current();
        // A worker's failure reaches `join` and becomes the run's one error line; when
        // the workers could not all start, the started ones fail too, silently.
        if discounting::run::note_worker_panic(thread.name(), &info.to_string()) {
            return;
        }
        note!(
            "discounting: thread '{}' stopped: {info}",
            thread.name().unwrap_or("unnamed")
        );
    }));
    let result = discounting::cli::Cli::parse()
        .into_plan()
        .and_then(|plan| discounting::app::execute(&plan));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            note!("discounting: {error:#}");
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
