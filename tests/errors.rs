//! Bad input: a one-line error naming file, line and column, exit code 1 (never a
//! panic's 101), nothing printed or written; or, with `--bad-rows skip`, the rejects.

use crate::eqnice;
use crate::util::Workdir;

const CODES: &str = "code,percentage\nA,10\nB,20\n";
const ORDERS: &str =
    "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,10,A\n2,2,2,20,B\n";

fn fixture(name: &str) -> Workdir {
    let work = Workdir::new(name);
    work.create("codes.csv", CODES);
    work.create("orders.csv", ORDERS);
    work
}

fn run_with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--codes", "codes.csv", "--orders", "orders.csv"];
    args.extend(extra);
    args
}

#[test]
fn missing_file() {
    let work = fixture("missing_file");
    let stderr = work.stderr_of_failure(&run_with(&["nowhere.csv"]));
    eqnice!(
        "discounting: nowhere.csv: cannot open: No such file or directory (os error 2)\n",
        stderr
    );
}

#[test]
fn bad_files_each_get_their_error() {
    let cases: &[(&str, &str, &str)] = &[
        ("empty.csv", "", "empty.csv: empty file: a CSV file needs a header row"),
        ("dup.csv", "op,id,ID\n", "dup.csv:1: duplicate column 'id'"),
        ("none.csv", "op,name\n", "none.csv:1: an update header needs an id column (orders) or a code column (discount_codes)"),
        ("both.csv", "op,id,code\n", "both.csv:1: an update header has both id and code: one CSV update file changes one table"),
        ("noop.csv", "id,customer_id\n", "noop.csv:1: an update header needs an op column"),
        ("open.csv", "op,id\ndelete,1\ndelete,\"2\n", "open.csv:3: a quoted field is never closed"),
        ("u.txt", "op,id\n", "u.txt: unknown file type: expected a .csv, .jsonl, .json or .ndjson file"),
        ("op.csv", "op,id\nmerge,1\n", "op.csv:2: column op: unknown op 'merge' (expected upsert or delete, or insert, +, -, c, r, u, d, +I, +U, -U, -D)"),
        ("key.csv", "op,id\ndelete,\n", "key.csv:2: column id: is required but empty or missing"),
        ("wide.csv", "op,id\ndelete,1,2\n", "wide.csv:2: 3 fields, but the header names only 2"),
        ("pct.csv", "op,code,percentage\nupsert,A,100.5\n", "pct.csv:2: column percentage: must be between 0 and 100"),
        ("json.jsonl", "{\"op\":\"d\",\"table\":\"orders\",\"id\":1} {}\n", "json.jsonl:1: not valid JSON: trailing characters at line 1 column 36"),
        ("arr.jsonl", "[]\n", "arr.jsonl:1: expected a JSON object"),
        ("type.jsonl", "{\"op\":\"upsert\",\"table\":\"orders\",\"id\":1,\"customer_id\":1,\"item_ct\":[1],\"order_subtotal\":1}\n", "type.jsonl:1: column item_ct: expected a string or a number, found an array"),
    ];
    let work = fixture("bad_files");
    for (name, contents, expected) in cases {
        work.create(name, contents);
        let stderr = work.stderr_of_failure(&run_with(&[name]));
        eqnice!(format!("discounting: {expected}\n"), stderr);
    }
}

#[test]
fn bad_base_snapshot() {
    let work = fixture("bad_base");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal\n1,1,1,10\n2,2,-2,20\n",
    );
    let stderr = work.stderr_of_failure(&run_with(&[]));
    eqnice!(
        "discounting: orders.csv:3: column item_ct: must not be negative\n",
        stderr
    );
    work.create("orders.csv", "op,id,customer_id,item_ct,order_subtotal\n");
    let stderr = work.stderr_of_failure(&run_with(&[]));
    eqnice!(
        "discounting: orders.csv:1: a base snapshot has no op column\n",
        stderr
    );
}

#[test]
fn invalid_utf8_is_an_error_with_its_column() {
    let work = fixture("utf8");
    std::fs::write(
        work.path("u.csv"),
        b"op,code,percentage\nupsert,\xff\xfe,5\n",
    )
    .unwrap();
    let stderr = work.stderr_of_failure(&run_with(&["u.csv"]));
    eqnice!(
        "discounting: u.csv:2: column code: is not valid UTF-8\n",
        stderr
    );
}

#[test]
fn nothing_of_a_bad_epoch_is_written() {
    let work = fixture("bad_epoch");
    work.create("good.csv", "op,id\ndelete,1\n");
    work.create(
        "bad.csv",
        "op,id,customer_id,item_ct,order_subtotal\nupsert,3,1,1,1\nupsert,4,1,x,1\n",
    );
    let args = run_with(&[
        "good.csv",
        "bad.csv",
        "--changes",
        "changes.csv",
        "--enriched",
        "enriched.csv",
    ]);
    let stderr = work.stderr_of_failure(&args);
    eqnice!(
        "discounting: bad.csv:3: column item_ct: 'x' is not an integer\n",
        stderr
    );
    assert!(!work.path("changes.csv").exists());
    assert!(!work.path("enriched.csv").exists());
}

#[test]
fn the_first_error_in_the_file_is_reported_whatever_the_workers() {
    let work = fixture("first_error");
    let mut text = String::from("op,id,customer_id,item_ct,order_subtotal\n");
    for id in 0..400 {
        let subtotal = if id == 150 || id == 390 {
            "1.2345678".to_string()
        } else {
            id.to_string()
        };
        text.push_str(&format!("upsert,{id},1,1,{subtotal}\n"));
    }
    work.create("u.csv", &text);
    let expected = "discounting: u.csv:152: column order_subtotal: '1.2345678': 7 fractional digits, at most 6 are accepted\n";
    for workers in ["1", "2", "4"] {
        eqnice!(
            expected,
            // Quiet: above the cores, -w 4 would add a note.
            work.stderr_of_failure(&run_with(&["u.csv", "-w", workers, "--quiet"]))
        );
    }
}

#[test]
fn skip_mode_writes_rejects_and_applies_the_rest() {
    let work = fixture("skip");
    work.create("u.csv", "op,id,customer_id,item_ct,order_subtotal,discount_code\nupsert,3,1,1,30,A\nupsert,4,1,1,-4,A\nmerge,5,1,1,5,A\n\"upsert\",\"6\",\"1\",\"1\",\"1,5\",A\n");
    let output = work
        .command(&run_with(&[
            "u.csv",
            "--bad-rows",
            "skip",
            "--rejects",
            "rejects.csv",
            "--format",
            "csv",
            "-w",
            "2",
        ]))
        .output()
        .unwrap();
    assert!(output.status.success());
    // A: orders 1 (10) and 3 (30); B: order 2 (20).
    eqnice!(
        "percentage,avg_item_ct,avg_order_subtotal,avg_order_total,avg_discount_total,order_count\n10,1,20.00,18.00,2.00,2\n20,2,20.00,16.00,4.00,1\n",
        String::from_utf8(output.stdout).unwrap()
    );
    eqnice!(
        "discounting: 3 bad rows skipped\n",
        String::from_utf8(output.stderr).unwrap()
    );
    let expected = "\
file,line,column,reason,row
u.csv,3,order_subtotal,must not be negative,\"upsert,4,1,1,-4,A\"
u.csv,4,op,\"unknown op 'merge' (expected upsert or delete, or insert, +, -, c, r, u, d, +I, +U, -U, -D)\",\"merge,5,1,1,5,A\"
u.csv,5,order_subtotal,\"'1,5' is not a decimal\",\"upsert,6,1,1,\"\"1,5\"\",A\"
";
    eqnice!(expected, work.read("rejects.csv"));
}

#[test]
fn flags_that_do_not_fit_together() {
    let work = fixture("flags");
    eqnice!(
        "discounting: --rejects goes with --bad-rows skip\n",
        work.stderr_of_failure(&run_with(&["--rejects", "r.csv"]))
    );
    eqnice!(
        "discounting: give both --codes and --orders (or neither, to run the sample data in inputs/)\n",
        work.stderr_of_failure(&["run", "--codes", "codes.csv"])
    );
    eqnice!(
        "discounting: --process 2 is not below --processes 2\n",
        work.stderr_of_failure(&run_with(&["--processes", "2", "--process", "2"]))
    );
}

#[test]
fn more_bad_cells_each_get_their_error() {
    let header = "op,id,customer_id,item_ct,order_subtotal,discount_code\n";
    let cases: &[(&str, &str)] = &[
        (
            "upsert,1,1,1,NaN,A",
            "column order_subtotal: 'NaN': NaN and infinities are not accepted",
        ),
        (
            "upsert,1,1,1,-inf,A",
            "column order_subtotal: '-inf': NaN and infinities are not accepted",
        ),
        (
            "upsert,9223372036854775808,1,1,1,A",
            "column id: '9223372036854775808' does not fit in 64 bits",
        ),
        (
            "upsert,1,1,99999999999999999999,1,A",
            "column item_ct: '99999999999999999999' does not fit in 64 bits",
        ),
        (
            "upsert,1,1,1,9223372036854.775808,A",
            "column order_subtotal: '9223372036854.775808': out of range",
        ),
        (
            "upsert,1,x,1,1,A",
            "column customer_id: 'x' is not an integer",
        ),
    ];
    let work = fixture("bad_cells");
    for (row, reason) in cases {
        work.create("u.csv", &format!("{header}{row}\n"));
        eqnice!(
            format!("discounting: u.csv:2: {reason}\n"),
            work.stderr_of_failure(&run_with(&["u.csv"]))
        );
    }
    work.create("p.csv", "op,code,percentage\nupsert,A,-0.5\n");
    eqnice!(
        "discounting: p.csv:2: column percentage: must be between 0 and 100\n",
        work.stderr_of_failure(&run_with(&["p.csv"]))
    );
    work.create(
        "o.jsonl",
        "{\"op\":\"upsert\",\"table\":\"orders\",\"id\":{\"n\":1}}\n",
    );
    eqnice!(
        "discounting: o.jsonl:1: column id: expected a string or a number, found an object\n",
        work.stderr_of_failure(&run_with(&["o.jsonl"]))
    );
    work.create("orders.csv", "id,customer_id,order_subtotal\n1,1,1\n");
    eqnice!(
        "discounting: orders.csv:1: missing column 'item_ct'\n",
        work.stderr_of_failure(&run_with(&[]))
    );
}

#[test]
fn odd_but_valid_files_are_accepted_with_the_right_answer() {
    let work = Workdir::new("odd_files");
    // A BOM, CRLF, upper-case names in another order, an unknown column, a quoted code
    // holding a comma, a quote and a line break.
    work.create(
        "codes.csv",
        "\u{feff}PERCENTAGE,Note,CODE\r\n10,\"first, plain\",A\r\n20,x,\"B,\"\"2\"\"\nX\"\r\n",
    );
    work.create(
        "orders.csv",
        "ID,DISCOUNT_CODE,ORDER_SUBTOTAL,ITEM_CT,CUSTOMER_ID,ORDER_TIME\r\n1,A,10.5,1,7,\r\n2,\"B,\"\"2\"\"\nX\",20,3,7,2026-11-03 10:00:00\r\n",
    );
    work.create("header-only.csv", "op,id\r\n");
    work.create("empty.jsonl", "");
    let stdout = work.stdout(&[
        "run",
        "--codes",
        "codes.csv",
        "--orders",
        "orders.csv",
        "header-only.csv",
        "empty.jsonl",
        "--format",
        "csv",
        "--changes",
        "changes.csv",
    ]);
    eqnice!(
        "percentage,avg_item_ct,avg_order_subtotal,avg_order_total,avg_discount_total,order_count\n10,1,10.50,9.45,1.05,1\n20,3,20.00,16.00,4.00,1\n",
        stdout
    );
    // The two empty epochs change nothing.
    assert_eq!(work.read("changes.csv").lines().count(), 3);
}

#[test]
fn sums_at_the_largest_accepted_values_stay_exact() {
    let work = Workdir::new("largest");
    work.create("codes.csv", "code,percentage\nHALF,50\nTINY,0.000001\n");
    let big = "9223372036854.775807";
    let items = "9223372036854775807";
    let mut orders = String::from("id,customer_id,item_ct,order_subtotal,discount_code\n");
    for (id, code) in [
        (1, "HALF"),
        (2, "HALF"),
        (3, "HALF"),
        (4, "TINY"),
        (5, "TINY"),
    ] {
        orders.push_str(&format!("{id},1,{items},{big},{code}\n"));
    }
    work.create("orders.csv", &orders);
    let stdout = work.stdout(&[
        "run",
        "--codes",
        "codes.csv",
        "--orders",
        "orders.csv",
        "--format",
        "csv",
    ]);
    // 9223372036854.775807 * 0.99999999 = 9223371944621.0550... and * 0.00000001 = 92233.7203...
    eqnice!(
        format!(
            "percentage,avg_item_ct,avg_order_subtotal,avg_order_total,avg_discount_total,order_count\n\
             0.000001,{items},9223372036854.78,9223371944621.06,92233.72,2\n\
             50,{items},9223372036854.78,4611686018427.39,4611686018427.39,3\n"
        ),
        stdout
    );
}

#[test]
fn a_killed_run_leaves_the_previous_output_whole() {
    let work = Workdir::new("killed");
    work.generate(400_000, 1);
    work.create("changes.csv", "the previous changelog\n");
    let args = [
        "run",
        "--codes",
        "discount_codes.csv",
        "--orders",
        "orders.csv",
        "update-1.jsonl",
        "--changes",
        "changes.csv",
        "--format",
        "csv",
    ];
    let mut child = work
        .command(&args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Loading 400,000 orders takes the debug build about a second: kill it midway.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    let _ = child.wait();
    eqnice!("the previous changelog\n", work.read("changes.csv"));
    work.stdout(&args);
    let changelog = work.read("changes.csv");
    assert!(changelog.starts_with("epoch,diff,percentage,"));
    assert!(changelog.ends_with('\n'));
    assert!(
        changelog
            .lines()
            .skip(1)
            .all(|line| line.split(',').count() == 8),
        "every line complete"
    );
    let leftovers = std::fs::read_dir(&work.dir).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp-")
    });
    assert_eq!(
        leftovers.count(),
        0,
        "no temporary file is left after a complete run"
    );
}

#[test]
fn a_bad_cell_with_control_characters_is_shown_escaped_on_one_line() {
    let work = fixture("escaped_cell");
    work.create(
        "u.csv",
        "op,id,customer_id,item_ct,order_subtotal\nupsert,5,1,\"1\n\x1b[31mred\rx\",1\n",
    );
    let stderr = work.stderr_of_failure(&run_with(&["u.csv"]));
    eqnice!(
        "discounting: u.csv:2: column item_ct: '1\\n\\x1b[31mred\\rx' is not an integer\n",
        stderr
    );
    assert!(!stderr
        .trim_end_matches('\n')
        .contains(|c: char| c.is_control()));
}

#[test]
fn a_huge_bad_cell_is_cut_in_the_message_and_whole_in_the_rejects() {
    let work = fixture("huge_cell");
    let cell = "x".repeat(1 << 20);
    work.create(
        "u.csv",
        &format!("op,id,customer_id,item_ct,order_subtotal\nupsert,5,1,{cell},1\n"),
    );
    let stderr = work.stderr_of_failure(&run_with(&["u.csv"]));
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.len() < 1_000, "{} bytes", stderr.len());
    assert!(
        stderr.contains("… (1048576 bytes) is not an integer"),
        "{stderr}"
    );
    work.stdout(&run_with(&[
        "u.csv",
        "--bad-rows",
        "skip",
        "--rejects",
        "rejects.csv",
    ]));
    assert!(work
        .read("rejects.csv")
        .contains(&format!("upsert,5,1,{cell},1")));
}

#[test]
fn order_times_are_those_the_enriched_output_can_write_back() {
    let work = fixture("order_time_range");
    work.create(
        "edges.csv",
        "op,id,order_time,customer_id,item_ct,order_subtotal,discount_code\n\
         upsert,5,253402300799999,1,1,1,A\nupsert,6,-62167219200000,1,1,1,A\n",
    );
    work.stdout(&run_with(&["edges.csv", "--enriched", "enriched.csv"]));
    let enriched = work.read("enriched.csv");
    assert!(
        enriched.contains(",5,9999-12-31T23:59:59.999Z,"),
        "{enriched}"
    );
    assert!(
        enriched.contains(",6,0000-01-01T00:00:00.000Z,"),
        "{enriched}"
    );
    work.create(
        "late.csv",
        "op,id,order_time,customer_id,item_ct,order_subtotal\nupsert,5,253402300800000,1,1,1\n",
    );
    eqnice!(
        "discounting: late.csv:2: column order_time: '253402300800000' is outside the years 0000 to 9999\n",
        work.stderr_of_failure(&run_with(&["late.csv"]))
    );
}

#[test]
fn a_fifo_input_is_refused_with_one_clear_line() {
    let work = fixture("fifo_input");
    let status = std::process::Command::new("mkfifo")
        .arg(work.path("u.csv"))
        .status()
        .unwrap();
    assert!(status.success());
    for args in [
        run_with(&["u.csv"]),
        vec!["run", "--codes", "codes.csv", "--orders", "u.csv"],
    ] {
        let mut child = work
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Opening a FIFO with no writer would wait forever: the refusal comes first.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{args:?} waits on the FIFO");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        eqnice!(
            "discounting: u.csv: not a regular file (a pipe or device cannot be read in parallel shares); copy it to a file first\n",
            String::from_utf8(output.stderr).unwrap()
        );
    }
}

#[test]
fn a_cr_only_file_reports_errors_on_their_lines() {
    let work = fixture("cr_only");
    // Records ended by a bare CR, as old Mac tools write them; the bad row is line 3.
    let orders = "id,customer_id,item_ct,order_subtotal,discount_code\r1,1,1,10,A\r2,x,2,20,B\r";
    work.create("cr.csv", orders);
    for workers in ["1", "2"] {
        eqnice!(
            "discounting: cr.csv:3: column customer_id: 'x' is not an integer\n",
            work.stderr_of_failure(&[
                "run",
                "--codes",
                "codes.csv",
                "--orders",
                "cr.csv",
                "-w",
                workers
            ])
        );
    }
    // The same with a quote in the file (read by csv-core) and CR LF mixed in.
    work.create(
        "mixed.csv",
        "op,id,customer_id,item_ct,order_subtotal,discount_code\r\nupsert,1,1,1,\"10\",A\rupsert,2,1,1,10,A\n\rupsert,3,y,1,1,A\r",
    );
    eqnice!(
        "discounting: mixed.csv:5: column customer_id: 'y' is not an integer\n",
        work.stderr_of_failure(&run_with(&["mixed.csv"]))
    );
}
