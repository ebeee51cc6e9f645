//! The process's standard streams: notes on stderr that never fail the run, and a stdout
//! that must be there, since the result goes to it.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when the process started with stdout closed (`>&-`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to stderr. A note is never worth the run: a full disk or a closed
/// stderr loses the note, nothing else (`eprintln!` would panic, and a panic while
/// reporting that panic aborts).
pub fn note(args: fmt::Arguments) {
    let _ = writeln!(io::stderr(), "{args}");
}

/// `note!("...", ...)`: `eprintln!` that cannot fail.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::streams::note(format_args!($($arg)*))
    };
}

/// Remembers whether the process started with stdout closed (`>&-`), for
/// `stdout_is_open`. Run first thing in `main`.
///
/// Rust's runtime puts /dev/null, opened read-write, in place of a closed stdin, stdout
/// or stderr before `main` (so that no file opened later becomes fd 1), and a write to
/// it succeeds: the result would be lost without a word. Shells open `>/dev/null`
/// write-only, so a read-write /dev/null on fd 1 is taken for the runtime's.
pub fn remember_closed_stdout() {
    STDOUT_CLOSED.store(is_runtime_dev_null(1), Ordering::SeqCst);
}

fn is_runtime_dev_null(fd: u8) -> bool {
    let same_device =
        |path: &str| fs::metadata(path).map(|m| (m.file_type().is_char_device(), m.rdev()));
    let is_dev_null = match (
        same_device(&format!("/proc/self/fd/{fd}")),
        same_device("/dev/null"),
    ) {
        (Ok(fd), Ok(null)) => fd == null && fd.0,
        _ => false,
    };
    // `flags:` in octal; the access mode is the low two bits (2: read-write).
    let read_write = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).is_ok_and(|info| {
        info.lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
            .is_some_and(|flags| flags & 0o3 == 2)
    });
    is_dev_null && read_write
}

/// Fails when stdout was closed at the start: the result would be lost.
pub fn stdout_is_open() -> io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::SeqCst) {
        Err(io::Error::from_raw_os_error(9)) // EBADF, what a write to fd 1 got
    } else {
        Ok(())
    }
}
