//! Outputs never destroy anything: an output that is an input is refused, a device or a
//! FIFO is written in place, a symlink is written through to its target, and a replaced
//! file keeps its mode.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use crate::util::Workdir;

const CODES: &str = "code,percentage\nA,10\nB,20\n";
const ORDERS: &str =
    "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,10,A\n2,2,2,20,B\n";
const CHANGELOG_HEADER: &str = "epoch,diff,percentage,";

fn fixture(name: &str) -> Workdir {
    let work = Workdir::new(name);
    work.create("codes.csv", CODES);
    work.create("orders.csv", ORDERS);
    work
}

fn run_with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--codes", "codes.csv", "--orders", "orders.csv"];
    args.extend(extra);
    args.extend(["--format", "csv"]);
    args
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let work = fixture("output_is_input");
    fs::hard_link(work.path("codes.csv"), work.path("hard.csv")).unwrap();
    std::os::unix::fs::symlink("codes.csv", work.path("soft.csv")).unwrap();
    for (flag, output) in [
        ("--changes", "codes.csv"),
        ("--changes", "./codes.csv"),
        ("--rejects", "hard.csv"),
        ("--enriched", "soft.csv"),
        ("--report", "orders.csv"),
    ] {
        let stderr = work.stderr_of_failure(&run_with(&[flag, output, "--bad-rows", "skip"]));
        let input = if output == "orders.csv" {
            "orders.csv"
        } else {
            "codes.csv"
        };
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "discounting: cannot write {output}: it is the input {input}"
            )),
            "{flag} {output}: {stderr}"
        );
    }
    assert_eq!(work.read("codes.csv"), CODES);
    assert_eq!(work.read("orders.csv"), ORDERS);
    assert!(fs::symlink_metadata(work.path("soft.csv"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn dev_null_is_written_in_place() {
    let work = fixture("dev_null");
    work.stdout(&run_with(&[
        "--changes",
        "/dev/null",
        "--enriched",
        "/dev/null",
    ]));
    let null = fs::symlink_metadata("/dev/null").unwrap();
    assert!(
        null.file_type().is_char_device(),
        "/dev/null is still a device"
    );
}

#[test]
fn a_symlink_output_writes_its_target_and_stays_a_link() {
    let work = fixture("symlink_output");
    work.create("real/changes.csv", "the previous changelog\n");
    std::os::unix::fs::symlink("real/changes.csv", work.path("changes.csv")).unwrap();
    // A dangling link is written through too: its target appears.
    std::os::unix::fs::symlink("real/rejects.csv", work.path("rejects.csv")).unwrap();
    work.stdout(&run_with(&[
        "--changes",
        "changes.csv",
        "--bad-rows",
        "skip",
        "--rejects",
        "rejects.csv",
    ]));
    for link in ["changes.csv", "rejects.csv"] {
        let metadata = fs::symlink_metadata(work.path(link)).unwrap();
        assert!(metadata.file_type().is_symlink(), "{link} is still a link");
    }
    assert!(work.read("real/changes.csv").starts_with(CHANGELOG_HEADER));
    assert!(work.read("real/rejects.csv").starts_with("file,line,"));
    let leftovers = fs::read_dir(work.path("real"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        })
        .count();
    assert_eq!(leftovers, 0, "no temporary file left beside the target");
}

#[test]
fn a_replaced_output_keeps_its_mode() {
    let work = fixture("output_mode");
    let changes = work.create("changes.csv", "the previous changelog\n");
    fs::set_permissions(&changes, fs::Permissions::from_mode(0o640)).unwrap();
    work.stdout(&run_with(&["--changes", "changes.csv"]));
    assert!(work.read("changes.csv").starts_with(CHANGELOG_HEADER));
    let mode = fs::metadata(&changes).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640, "mode {mode:o}");
}

#[test]
fn a_fifo_output_is_streamed_to_its_reader() {
    let work = fixture("fifo_output");
    let fifo = work.path("changes.fifo");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            fs::File::open(fifo)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        })
    };
    work.stdout(&run_with(&["--changes", "changes.fifo"]));
    let streamed = reader.join().unwrap();
    assert!(streamed.starts_with(CHANGELOG_HEADER), "{streamed}");
    assert_eq!(streamed.lines().count(), 3, "{streamed}");
    let metadata = fs::symlink_metadata(&fifo).unwrap();
    assert!(metadata.file_type().is_fifo(), "the FIFO is still a FIFO");
}
