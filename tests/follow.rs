//! Follow mode with a real directory: files dropped in while the binary runs are applied
//! as epochs and printed as they complete, a bad file is reported and skipped, and
//! SIGINT ends the run with exit code 0 and complete outputs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use crate::eqnice;
use crate::util::Workdir;

/// Lines of a child's stream, as they come.
pub(crate) fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Waits for a line that satisfies `wanted`, returning every line read until then.
pub(crate) fn wait_for(lines: &Receiver<String>, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let done = wanted(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!("gave up waiting; lines so far: {seen:#?}"),
        }
    }
}

/// Writes a file as a well-behaved producer does: under a hidden name, then renamed.
pub(crate) fn drop_file(work: &Workdir, name: &str, contents: &str) {
    let hidden = format!("incoming/.{name}");
    work.create(&hidden, contents);
    std::fs::rename(work.path(&hidden), work.path(&format!("incoming/{name}"))).unwrap();
}

/// A work directory with one code (A, 10%), one order of it, and an empty `incoming`.
pub(crate) fn one_order_and_a_directory(name: &str) -> Workdir {
    let work = Workdir::new(name);
    work.create("codes.csv", "code,percentage\nA,10\n");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,10,A\n",
    );
    std::fs::create_dir_all(work.path("incoming")).unwrap();
    work
}

/// An update file that sets the one order's subtotal.
pub(crate) fn upsert_order_1(subtotal: u32) -> String {
    format!("op,id,customer_id,item_ct,order_subtotal,discount_code\nupsert,1,1,1,{subtotal},A\n")
}

/// A followed run, killed if a test ends (or fails) before it exits: a follow run never
/// ends by itself, and a failing test must not leave it running.
pub(crate) struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `discounting run` on codes.csv and orders.csv following `incoming`, with
/// `extra` arguments; returns the child and its stdout and stderr lines.
pub(crate) fn follow(
    work: &Workdir,
    extra: &[&str],
) -> (Running, Receiver<String>, Receiver<String>) {
    let mut args = vec![
        "run",
        "--codes",
        "codes.csv",
        "--orders",
        "orders.csv",
        "--follow",
        "incoming",
    ];
    args.extend(extra);
    let mut child = work
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    (Running(child), stdout, stderr)
}

/// Sends `name` (as `kill` writes signals: `-INT`, `-TERM`) to a child.
fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn files_dropped_in_are_applied_until_sigint() {
    let work = Workdir::new("follow");
    work.create("codes.csv", "code,percentage\nA,10\nB,50\n");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,10,A\n2,1,3,30,B\n",
    );
    work.create(
        "incoming/01-first.csv",
        "op,id,customer_id,item_ct,order_subtotal,discount_code\nupsert,3,1,1,20,A\n",
    );
    let (mut child, stdout, stderr) = follow(
        &work,
        &["--format", "csv", "--changes", "changes.csv", "-w", "2"],
    );

    // The base, then the file that was there before the run.
    let mut seen = wait_for(&stdout, |l| l.starts_with("1,+1,10,"));
    // A file dropped in while it runs.
    drop_file(&work, "02-second.csv", "op,code,percentage\nupsert,B,25\n");
    seen.extend(wait_for(&stdout, |l| l.starts_with("2,+1,25,")));
    // A bad file is reported and skipped; nothing of it is applied.
    drop_file(
        &work,
        "03-bad.csv",
        "op,id,customer_id,item_ct,order_subtotal\nupsert,9,1,1,1000\nupsert,10,1,x,1\n",
    );
    let errors = wait_for(&stderr, |l| l.contains("skipped"));
    eqnice!(
        "discounting: skipped incoming/03-bad.csv:3: column item_ct: 'x' is not an integer",
        errors.last().unwrap().as_str()
    );
    // The next good file is the next epoch.
    drop_file(
        &work,
        "04-fourth.jsonl",
        "{\"op\":\"delete\",\"table\":\"orders\",\"id\":1}\n",
    );
    seen.extend(wait_for(&stdout, |l| l.starts_with("3,+1,10,")));

    signal(&child, "-INT");
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "SIGINT ends a followed run normally");

    let expected = "\
epoch,diff,percentage,avg_item_ct,avg_order_subtotal,avg_order_total,avg_discount_total,order_count
0,+1,10,1,10.00,9.00,1.00,1
0,+1,50,3,30.00,15.00,15.00,1
1,-1,10,1,10.00,9.00,1.00,1
1,+1,10,1,15.00,13.50,1.50,2
2,+1,25,3,30.00,22.50,7.50,1
2,-1,50,3,30.00,15.00,15.00,1
3,-1,10,1,15.00,13.50,1.50,2
3,+1,10,1,20.00,18.00,2.00,1";
    eqnice!(expected, seen.join("\n"));
    eqnice!(format!("{expected}\n"), work.read("changes.csv"));
}

#[test]
fn sigterm_ends_a_followed_run_normally_too() {
    let work = Workdir::new("follow_term");
    work.create("codes.csv", "code,percentage\nA,10\n");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,10,A\n",
    );
    work.create("incoming/.keep", "");
    let (mut child, stdout, _stderr) = follow(&work, &[]);
    wait_for(&stdout, |l| l.starts_with("epoch 0:"));
    signal(&child, "-TERM");
    // In text form the final table closes the output.
    let rest = wait_for(&stdout, |l| l.trim_start().starts_with("10 "));
    assert!(rest.iter().any(|l| l == "final table"), "{rest:#?}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn files_renamed_in_quickly_are_all_applied_in_name_order() {
    let work = one_order_and_a_directory("follow_many");
    let count = 2_000;
    // Each file changes the one order: any file applied out of order, twice or never
    // shows in the changelog.
    let names: Vec<String> = (1..=count).map(|i| format!("u{i:05}.csv")).collect();
    let contents = |i: usize| {
        format!("op,id,customer_id,item_ct,order_subtotal,discount_code\nupsert,1,1,1,{i}.25,A\nupsert,{},1,2,1,A\n", i + 1)
    };
    for (i, name) in names.iter().enumerate() {
        work.create(&format!("plain/{name}"), &contents(i + 1));
    }
    let (mut child, stdout, _stderr) = follow(
        &work,
        &["--format", "csv", "--changes", "followed.csv", "--stats"],
    );
    wait_for(&stdout, |l| l.starts_with("0,"));
    for (i, name) in names.iter().enumerate() {
        drop_file(&work, name, &contents(i + 1));
    }
    wait_for(&stdout, |l| l.starts_with(&format!("{count},")));
    signal(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(0));

    let mut plain = vec![
        "run",
        "--codes",
        "codes.csv",
        "--orders",
        "orders.csv",
        "--changes",
        "plain.csv",
    ];
    let paths: Vec<String> = names.iter().map(|n| format!("plain/{n}")).collect();
    plain.extend(paths.iter().map(String::as_str));
    work.stdout(&plain);
    let changes = work.read("followed.csv");
    assert_eq!(
        changes
            .lines()
            .filter(|l| l.starts_with(&format!("{count},")))
            .count(),
        2
    );
    eqnice!(work.read("plain.csv"), changes);
}

#[test]
fn a_late_file_named_earlier_a_dangling_link_and_a_directory_are_reported() {
    let work = one_order_and_a_directory("follow_late");
    let (mut child, stdout, stderr) = follow(&work, &["--format", "csv"]);
    wait_for(&stdout, |l| l.starts_with("0,"));
    drop_file(&work, "02.csv", &upsert_order_1(20));
    wait_for(&stdout, |l| l.starts_with("1,+1,10,1,20.00"));
    drop_file(&work, "01.csv", &upsert_order_1(30));
    std::os::unix::fs::symlink("nowhere.csv", work.path("incoming/03.csv")).unwrap();
    std::fs::create_dir_all(work.path("incoming/04.csv")).unwrap();
    drop_file(&work, "05.csv", &upsert_order_1(50));
    // The next applied file is epoch 2: nothing else was applied.
    wait_for(&stdout, |l| l.starts_with("2,+1,10,1,50.00"));
    let reported = wait_for(&stderr, |l| l.contains("04.csv"));
    eqnice!(
        "discounting: skipped incoming/01.csv: named before incoming/02.csv, which was already applied; rename it to sort after
discounting: skipped incoming/03.csv: a symbolic link to nothing (dangling); it is not read
discounting: skipped incoming/04.csv: a directory named as a data file; it is not read",
        reported.join("\n")
    );
    signal(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // Each is reported once.
    let rest: Vec<String> = stderr.try_iter().collect();
    assert!(rest.iter().all(|l| !l.contains("skipped")), "{rest:#?}");
}

#[test]
fn a_file_made_again_under_an_applied_name_after_it_was_removed_is_refused() {
    // The job forgets the names of applied files once they are gone (so that a long run's
    // memory follows the directory); a file made again under such a name is still refused.
    let work = one_order_and_a_directory("follow_again");
    let (mut child, stdout, stderr) = follow(&work, &["--format", "csv"]);
    wait_for(&stdout, |l| l.starts_with("0,"));
    drop_file(&work, "01.csv", &upsert_order_1(20));
    wait_for(&stdout, |l| l.starts_with("1,+1,10,1,20.00"));
    drop_file(&work, "02.csv", &upsert_order_1(30));
    wait_for(&stdout, |l| l.starts_with("2,+1,10,1,30.00"));
    std::fs::remove_file(work.path("incoming/01.csv")).unwrap();
    std::fs::remove_file(work.path("incoming/02.csv")).unwrap();
    // Longer than the interval at which the directory is listed.
    std::thread::sleep(Duration::from_millis(1500));
    drop_file(&work, "01.csv", &upsert_order_1(40));
    drop_file(&work, "02.csv", &upsert_order_1(50));
    drop_file(&work, "03.csv", &upsert_order_1(60));
    wait_for(&stdout, |l| l.starts_with("3,+1,10,1,60.00"));
    let reported = wait_for(&stderr, |l| l.contains("skipped incoming/02.csv"));
    eqnice!(
        "discounting: skipped incoming/01.csv: named before incoming/02.csv, which was already applied; rename it to sort after
discounting: skipped incoming/02.csv: made again under the name of the file applied last; rename it to sort after",
        reported.join("\n")
    );
    signal(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_removed_directory_ends_the_run_with_an_error() {
    let work = one_order_and_a_directory("follow_removed");
    let (mut child, stdout, stderr) = follow(&work, &["--format", "csv"]);
    wait_for(&stdout, |l| l.starts_with("0,"));
    std::fs::remove_dir_all(work.path("incoming")).unwrap();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(1));
    let lines: Vec<String> = stderr.iter().collect();
    eqnice!(
        "discounting: the followed directory incoming was removed",
        lines.join("\n")
    );
}
