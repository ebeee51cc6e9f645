//! Files that change while the job reads them: an error naming the file, never an epoch
//! that mixes two versions.

use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::eqnice;
use crate::util::Workdir;

/// An update file of `rows` upserts, every order at `subtotal` (all versions of one
/// length, so that a rewrite in place leaves no shorter tail).
fn version(rows: u64, subtotal: u32) -> String {
    let mut text = String::from("op,id,customer_id,item_ct,order_subtotal,discount_code\n");
    for id in 1..=rows {
        text.push_str(&format!("upsert,{id},1,1,{subtotal}.00,A\n"));
    }
    text
}

#[test]
fn an_update_file_rewritten_while_read_is_an_error_or_one_version() {
    // 200,000 rows (4.8 MB, over 4 MiB) are read in passes from the file.
    rewritten_while_read("changing_update", 200_000);
}

#[test]
fn a_small_update_file_rewritten_while_read_is_an_error_or_one_version() {
    // 20,000 rows (0.5 MB) are read into memory once and parsed from there.
    rewritten_while_read("changing_small_update", 20_000);
    // 80,000 rows (1.9 MB): at two workers, read once to be summarized, then parsed.
    rewritten_while_read("changing_summarized_update", 80_000);
}

/// Runs the job over an update file of `rows` rows while another thread rewrites it in
/// place, alternating two versions: each run gives one version's exact result or the
/// error, and some run meets a rewrite.
fn rewritten_while_read(dir: &str, rows: u64) {
    let work = Workdir::new(dir);
    work.create("codes.csv", "code,percentage\nA,10\n");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,10,A\n",
    );
    let (a, b) = (version(rows, 1), version(rows, 2));
    work.create("a.csv", &a);
    work.create("b.csv", &b);
    let args = |file: &'static str, workers: &'static str| {
        vec![
            "run",
            "--codes",
            "codes.csv",
            "--orders",
            "orders.csv",
            file,
            "--format",
            "csv",
            "-w",
            workers,
        ]
    };
    let of_a = work.stdout(&args("a.csv", "1"));
    let of_b = work.stdout(&args("b.csv", "1"));
    assert_ne!(of_a, of_b);

    work.create("u.csv", &a);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (Arc::clone(&stop), work.path("u.csv"));
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let mut rewrites = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let text = if rewrites % 2 == 0 { &b } else { &a };
                file.seek(SeekFrom::Start(0)).unwrap();
                // In pieces, as a writer does: readers see the file half new.
                for piece in text.as_bytes().chunks(1 << 16) {
                    file.write_all(piece).unwrap();
                }
                rewrites += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            rewrites
        })
    };
    let mut failures = 0;
    // Four runs, and more (up to 20) until one has met a rewrite.
    for (run, workers) in ["1", "2"].into_iter().cycle().take(20).enumerate() {
        if run >= 4 && failures > 0 {
            break;
        }
        let output = work.command(&args("u.csv", workers)).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => assert!(stdout == of_a || stdout == of_b, "a mix: {stdout}"),
            Some(1) => {
                failures += 1;
                eqnice!(
                    "discounting: u.csv: changed while it was being read\n",
                    stderr
                );
                assert!(stdout.is_empty());
            }
            other => panic!("exit {other:?}: {stderr}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    assert!(writer.join().unwrap() > 0);
    assert!(failures > 0, "the rewrites were never seen");
}

#[test]
fn a_base_snapshot_truncated_while_read_is_an_error() {
    let work = Workdir::new("changing_base");
    work.generate(400_000, 0);
    let child = work
        .command(&[
            "run",
            "--codes",
            "discount_codes.csv",
            "--orders",
            "orders.csv",
            "--format",
            "csv",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Loading 400,000 orders takes the debug build about a second: cut the file midway.
    std::thread::sleep(Duration::from_millis(300));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(work.path("orders.csv"))
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len / 2).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    eqnice!(
        "discounting: orders.csv: changed while it was being read\n",
        String::from_utf8_lossy(&output.stderr)
    );
}
