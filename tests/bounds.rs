//! Arguments out of range are usage errors (exit code 2) with one clear line, never a
//! panic or an abort.

use crate::util::Workdir;

/// Runs the binary with `args` and returns its exit code and stderr.
fn refused(work: &Workdir, args: &[&str]) -> (Option<i32>, String) {
    let output = work.command(args).output().unwrap();
    assert!(output.stdout.is_empty(), "{args:?}");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn huge_numbers_are_usage_errors() {
    let work = Workdir::new("bounds");
    let max = "18446744073709551615";
    for (args, option) in [
        (vec!["run", "--connect-timeout", max], "--connect-timeout"),
        (vec!["run", "--peer-timeout", "0"], "--peer-timeout"),
        (vec!["generate", "--out", "g", "--codes", max], "--codes"),
        (vec!["generate", "--out", "g", "--orders", max], "--orders"),
        (
            vec!["generate", "--out", "g", "--updates", max],
            "--updates",
        ),
        (
            vec!["generate", "--out", "g", "--update-size", max],
            "--update-size",
        ),
    ] {
        let (code, stderr) = refused(&work, &args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: invalid value '") && stderr.contains(option),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!work.path("g").exists());
}

#[test]
fn workers_beyond_what_can_work_are_refused_and_beyond_the_cores_noted() {
    let work = Workdir::new("bounds_workers");
    work.create("codes.csv", "code,percentage\nA,5\n");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,1,A\n",
    );
    fn args(workers: &str) -> Vec<&str> {
        vec![
            "run",
            "--codes",
            "codes.csv",
            "--orders",
            "orders.csv",
            "-w",
            workers,
        ]
    }
    let (code, stderr) = refused(&work, &args("100000"));
    assert_eq!(code, Some(1), "{stderr}");
    crate::eqnice!(
        "discounting: --workers 100000 is more than 1024: timely's memory grows with the square of the workers\n",
        stderr
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let above = (cores + 1).to_string();
    let output = work.command(&args(&above)).output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    crate::eqnice!(
        format!("discounting: note: --workers {above} is more than the {cores} cores here; each worker costs memory (timely's channels grow with the square of the workers) and adds no speed\n"),
        stderr
    );
    let quiet = work
        .command(&[&args(&above)[..], &["--quiet"]].concat())
        .output()
        .unwrap();
    assert!(quiet.status.success() && quiet.stderr.is_empty());
}

/// Threads that cannot all be created (here: an address-space limit of 400 MB, which 100
/// workers' stacks exceed) are one line, not a panic from every worker already started.
#[test]
fn workers_that_cannot_all_start_are_one_line() {
    let work = Workdir::new("bounds_thread_limit");
    // Under a memory limit either a thread cannot be made (what this test is about) or,
    // when the threads already started take the last memory first, an allocation fails
    // and Rust aborts the process (SIGABRT), which depends on how the threads were
    // scheduled. A run that the allocator aborted is tried again.
    let run = || {
        std::process::Command::new("sh")
            .current_dir(&work.dir)
            .args([
                "-c",
                "ulimit -v 400000 && exec \"$0\" run -w 100 --quiet",
                env!("CARGO_BIN_EXE_discounting"),
            ])
            .output()
            .unwrap()
    };
    let output = (0..5)
        .map(|_| run())
        .find(|output| output.status.code().is_some())
        .expect("five runs were all killed by a signal");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    crate::eqnice!(
        "discounting: cannot start 100 worker threads (Resource temporarily unavailable); lower --workers or raise the process's memory or thread limits\n",
        String::from_utf8_lossy(&output.stderr)
    );
}
