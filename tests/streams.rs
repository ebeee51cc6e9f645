//! The standard streams: a full or closed stdout is an error that names stdout, a full
//! stderr never stops a run, and a reader that goes away (`| head`) is no error.

use std::fs::OpenOptions;
use std::process::{Command, Stdio};

use crate::util::Workdir;

const CODES: &str = "code,percentage\nA,10\nB,20\n";
// A bad row and a delete of an absent key: both are noted on stderr.
const ORDERS: &str =
    "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,10,A\n2,2,2,20,B\n3,x,1,1,A\n";
const UPDATE: &str = "op,id\ndelete,99\n";
const RUN: &[&str] = &[
    "run",
    "--codes",
    "codes.csv",
    "--orders",
    "orders.csv",
    "update.csv",
    "--bad-rows",
    "skip",
];

fn fixture(name: &str) -> Workdir {
    let work = Workdir::new(name);
    work.create("codes.csv", CODES);
    work.create("orders.csv", ORDERS);
    work.create("update.csv", UPDATE);
    work
}

fn dev_full() -> Stdio {
    Stdio::from(OpenOptions::new().write(true).open("/dev/full").unwrap())
}

#[test]
fn a_full_stdout_is_an_error_naming_stdout() {
    let work = fixture("full_stdout");
    let output = work.command(RUN).stdout(dev_full()).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("discounting: cannot write the result to stdout: No space left on device"),
        "{stderr}"
    );
}

#[test]
fn a_full_stderr_does_not_stop_a_successful_run() {
    let work = fixture("full_stderr");
    let output = work.command(RUN).stderr(dev_full()).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "no abort (134), no panic (101)"
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("order_count"), "{stdout}");
}

#[test]
fn a_closed_stdout_is_an_error() {
    let work = fixture("closed_stdout");
    let output = Command::new("sh")
        .current_dir(&work.dir)
        .arg("-c")
        .arg(r#"exec "$0" "$@" >&-"#)
        .arg(env!("CARGO_BIN_EXE_discounting"))
        .args(RUN)
        .args(["--changes", "changes.csv"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        "discounting: cannot write the result to stdout: Bad file descriptor (os error 9)\n",
        stderr
    );
    // Found before anything is read or written.
    assert!(!work.path("changes.csv").exists());
}

#[test]
fn a_reader_that_goes_away_is_no_error() {
    let work = fixture("broken_pipe");
    let mut child = work
        .command(RUN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
