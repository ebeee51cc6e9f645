//! Property tests (proptest) over arbitrary input: the parsers never panic, a file read in
//! shares by any number of workers gives exactly what one reader gives, and whole update
//! files give the dataflow and the plain recomputation the same answer or the same error.
//!
//! `PROPTEST_CASES` sets how many cases each property runs (default here: 64, a few
//! seconds); the README says how long they were run beyond that.

use proptest::prelude::*;

use discounting::decimal::{format_micros, parse_micros};
use discounting::input::{
    parse_timestamp, read_share_with, summarize_share, BadRows, InputError, Part, Role, Share,
    Source,
};
use discounting::model::{Change, Position, Table};
use discounting::reference::Reference;
use discounting::run::{run_job, Job, Workers};

use crate::util::Workdir;

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes that make CSV and JSON structure likely: separators, quotes, line ends, digits,
/// signs, BOM and invalid UTF-8 bytes, and the words the readers look for.
fn structured_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xff".to_vec()),
        Just(b" ".to_vec()),
        Just(b"upsert".to_vec()),
        Just(b"delete".to_vec()),
        Just(b"{\"op\":\"upsert\",\"table\":\"orders\",".to_vec()),
        Just(b"\"id\":".to_vec()),
        Just(b"}".to_vec()),
        Just(b"1.5".to_vec()),
        Just(b"-".to_vec()),
        Just(b"NaN".to_vec()),
        Just(b"1e3".to_vec()),
        "[0-9]{1,22}".prop_map(String::into_bytes),
        "[A-Za-z_]{1,6}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(pieces, 0..max).prop_map(|pieces| pieces.concat())
}

const ORDER_HEADERS: [&str; 4] = [
    "id,customer_id,item_ct,order_subtotal,discount_code\n",
    "op,id,customer_id,item_ct,order_subtotal,discount_code\n",
    "op,code,percentage\n",
    "",
];

type Read = Result<(Vec<(Position, Change)>, Vec<String>), InputError>;

/// The changes a share reads, with its rejects (as text), or its error; its cuts placed
/// from every worker's part when `parts` are given, else by scanning the whole file.
fn read(
    path: &std::path::Path,
    role: Role,
    share: Share,
    bad_rows: BadRows,
    parts: Option<&[Part]>,
) -> Read {
    let source = Source::new(path, role);
    let content = std::fs::read(path).unwrap();
    // From the file, and from its bytes in memory (as a file read once is): the same.
    let [from_file, from_memory] = [None, Some(content.as_slice())].map(|content| {
        let mut changes = Vec::new();
        read_share_with(&source, share, bad_rows, parts, content, &mut |p, c| {
            changes.push((p, c))
        })
        .map(|report| {
            let rejects = report
                .rejects
                .iter()
                .map(|r| format!("{} ({})", r.error, r.row))
                .collect();
            (changes, rejects)
        })
    });
    assert_eq!(from_file, from_memory, "read from the file and from memory");
    from_file
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn decimals_never_panic_and_round_trip(text in "\\PC{0,30}", micros in any::<i64>()) {
        let _ = parse_micros(&text);
        prop_assert_eq!(parse_micros(&format_micros(micros)), Ok(micros));
    }

    #[test]
    fn timestamps_never_panic_and_read_every_form(text in "\\PC{0,40}", ms in -62_000_000_000_000i64..250_000_000_000_000) {
        let _ = parse_timestamp(&text);
        let time = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        prop_assert_eq!(parse_timestamp(&ms.to_string()), Ok(ms));
        prop_assert_eq!(parse_timestamp(&time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)), Ok(ms));
        prop_assert_eq!(parse_timestamp(&time.format("%Y-%m-%d %H:%M:%S%.3f").to_string()), Ok(ms));
    }
}

proptest! {
    #![proptest_config(cases(128))]

    /// Any content, in shares of 2 to 4 workers, cut by scanning the whole file or from
    /// the workers' summaries of their parts: never a panic; the same first error, or
    /// the same changes in the same order and the same rejects as one reader, in fail and
    /// skip mode. (Positions only order changes: a row after blank lines may be placed at
    /// their start or its own, so they are not compared.)
    #[test]
    fn shares_read_what_one_reader_reads(
        header in 0..ORDER_HEADERS.len(),
        body in structured_bytes(60),
        csv in any::<bool>(),
        update in any::<bool>(),
        peers in 2usize..5,
        skip in any::<bool>(),
    ) {
        let work = Workdir::new("fuzz-shares");
        let mut content = ORDER_HEADERS[header].as_bytes().to_vec();
        content.extend(&body);
        let path = work.path(if csv { "f.csv" } else { "f.jsonl" });
        std::fs::write(&path, &content).unwrap();
        let role = if update { Role::Update } else { Role::Snapshot(Table::Orders) };
        let bad_rows = if skip { BadRows::Skip } else { BadRows::Fail };
        let whole = read(&path, role, Share { index: 0, peers: 1 }, bad_rows, None);
        // Every worker's part, summarized by that worker, as a run exchanges them.
        // From the file and from its bytes in memory, the same.
        let summarize = |content| -> Result<Vec<Part>, _> {
            (0..peers)
                .map(|index| {
                    let share = Share { index, peers };
                    summarize_share(&Source::new(&path, role), share, content)
                })
                .collect()
        };
        let summaries = summarize(None);
        prop_assert_eq!(&summaries, &summarize(Some(content.as_slice())));
        let mut ways = vec![None];
        if let Ok(summaries) = &summaries {
            ways.push(Some(summaries.as_slice()));
        }
        for parts in ways {
            let mut read_changes = Vec::new();
            let mut rejects = Vec::new();
            let mut errors = Vec::new();
            for index in 0..peers {
                match read(&path, role, Share { index, peers }, bad_rows, parts) {
                    Ok((changes, rejected)) => {
                        read_changes.extend(changes);
                        rejects.extend(rejected);
                    }
                    Err(e) => errors.push(e),
                }
            }
            match &whole {
                Ok((changes, rejected)) => {
                    prop_assert!(errors.is_empty(), "shares failed where one reader did not: {:?}", errors);
                    read_changes.sort_by_key(|(p, _)| *p);
                    let read_changes: Vec<&Change> = read_changes.iter().map(|(_, c)| c).collect();
                    let changes: Vec<&Change> = changes.iter().map(|(_, c)| c).collect();
                    prop_assert_eq!(read_changes, changes);
                    prop_assert_eq!(&rejects, rejected);
                }
                Err(e) => {
                    let first = errors.iter().min_by_key(|e| e.line.unwrap_or(0)).map(|e| e.to_string());
                    prop_assert_eq!(first, Some(e.to_string()));
                }
            }
        }
        std::fs::remove_dir_all(&work.dir).unwrap();
    }
}

/// A few lines of an update file, mostly valid, some not.
fn update_file() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        (1i64..8, 0u32..4, 0i64..30, 0u32..100_000, "[A-C]?").prop_map(|(id, op, items, cents, code)| {
            let op = ["upsert", "+U", "c", "insert"][op as usize];
            format!("{{\"op\":\"{op}\",\"table\":\"orders\",\"id\":{id},\"customer_id\":1,\"item_ct\":{items},\"order_subtotal\":{}.{:02},\"discount_code\":\"{code}\"}}", cents / 100, cents % 100)
        }),
        (1i64..8).prop_map(|id| format!("{{\"op\":\"delete\",\"table\":\"orders\",\"id\":{id}}}")),
        ("[A-D]", 0u32..101).prop_map(|(code, p)| format!("{{\"op\":\"upsert\",\"table\":\"discount_codes\",\"code\":\"{code}\",\"percentage\":{p}}}")),
        "[A-D]".prop_map(|code| format!("{{\"op\":\"-D\",\"table\":\"discount_codes\",\"code\":\"{code}\"}}")),
        structured_bytes(8).prop_map(|b| String::from_utf8_lossy(&b).replace('\n', " ")),
    ];
    proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(cases(64))]

    /// Whole update files: the dataflow (1 and 2 workers) and the recomputation agree on
    /// the changelog and the table, or fail with the same error.
    #[test]
    fn update_files_match_the_recomputation(files in proptest::collection::vec(update_file(), 1..4), skip in any::<bool>()) {
        let work = Workdir::new("fuzz-updates");
        let codes = work.create("codes.csv", "code,percentage\nA,10\nB,25.5\n");
        let orders = work.create("orders.csv", "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,2,10,A\n2,1,3,20.5,B\n3,1,1,5,C\n");
        let updates = files.iter().enumerate().map(|(i, text)| work.create(&format!("u{i}.jsonl"), text)).collect();
        let job = Job {
            bad_rows: if skip { BadRows::Skip } else { BadRows::Fail },
            ..Job::files(codes, orders, updates)
        };
        let expected = Reference::run(&job);
        for threads in [1, 2] {
            let got = run_job(&job, &Workers::Process { threads });
            match (&expected, got) {
                (Ok(expected), Ok(Some(got))) => {
                    let changes: Vec<_> = got.epochs.iter().flat_map(|e| e.changes.clone()).collect();
                    prop_assert_eq!(&changes, &expected.changes);
                    prop_assert_eq!(&got.table, &expected.table);
                }
                (Err(expected), Err(got)) => prop_assert_eq!(expected.to_string(), got.to_string()),
                (expected, got) => prop_assert!(false, "reference {:?}, dataflow {:?}", expected.as_ref().err(), got.err()),
            }
        }
        std::fs::remove_dir_all(&work.dir).unwrap();
    }
}
