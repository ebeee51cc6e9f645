//! The benchmark's hand-written baseline gives the same answers as the from-scratch
//! recomputation and the dataflow, epoch by epoch, on generated data.

use discounting::generate::{Generator, Shape, Spec};
use discounting::reference::Reference;
use discounting::result::diff_rows;
use discounting::run::{run_job, Job, Workers};
use discounting::source::files::FileSpec;
use discounting::source::SourceSpec;

use crate::baseline::Baseline;
use crate::util::Workdir;

/// The files a job over files reads.
fn files_of(job: &Job) -> &FileSpec {
    match &job.source {
        SourceSpec::Files(files) => files,
        other => panic!("not a job over files: {other:?}"),
    }
}

/// The baseline's changelog, epoch by epoch, from its tables.
fn changelog(
    tables: &[Vec<discounting::result::ResultRow>],
) -> Vec<discounting::result::ChangeRow> {
    let mut changes = Vec::new();
    let mut before = Vec::new();
    for (epoch, table) in tables.iter().enumerate() {
        changes.extend(diff_rows(epoch as u64, &before, table));
        before = table.clone();
    }
    changes
}

/// What generated data rarely has: ids repeated in the snapshot (the last row wins), base
/// orders deleted and brought back, deletes of absent orders, an order whose code comes
/// later, and a code and orders changed in one file.
#[test]
fn baseline_handles_repeated_ids_and_base_deletes() {
    let work = Workdir::new("baseline-edges");
    let codes = work.create("codes.csv", "code,percentage\nA10,10\nB20,20\n");
    let orders = work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n\
         5,1,1,10.00,A10\n3,1,2,20.00,B20\n5,1,3,30.00,B20\n1,1,4,40.00,C30\n3,1,5,50.00,\n",
    );
    let updates = vec![
        work.create("u1.csv", "op,id,customer_id,item_ct,order_subtotal,discount_code\ndelete,5\ndelete,99\nupsert,3,1,6,60.00,A10\n"),
        work.create("u2.csv", "op,code,percentage\nupsert,C30,30\n"),
        work.create(
            "u3.jsonl",
            "{\"op\":\"upsert\",\"table\":\"orders\",\"id\":5,\"customer_id\":1,\"item_ct\":7,\"order_subtotal\":\"70.00\",\"discount_code\":\"A10\"}\n\
             {\"op\":\"upsert\",\"table\":\"discount_codes\",\"code\":\"A10\",\"percentage\":15}\n\
             {\"op\":\"delete\",\"table\":\"orders\",\"id\":1}\n",
        ),
    ];
    let job = Job::files(codes, orders, updates);
    let expected = Reference::run(&job).unwrap();
    let (_, tables) = Baseline::run(files_of(&job)).unwrap();
    assert_eq!(changelog(&tables), expected.changes);
    // 20% comes (order 5's last row) and goes (deleted), 10% comes (order 3), 30% comes
    // (its code arrives), then 10% becomes 15% and 30% goes: seven rows in all.
    assert_eq!(expected.changes.len(), 7);
}

#[test]
fn baseline_matches_reference_and_dataflow() {
    baseline_matches_on(Shape::Friendly, 300);
}

/// Files as users have them: every time form, subtotals of 0 to 6 decimals, quoted
/// fields, re-sent and out-of-order ids, update files in CSV and JSON Lines with every op
/// spelling.
#[test]
fn baseline_matches_reference_and_dataflow_on_realistic_files() {
    baseline_matches_on(Shape::Realistic, 300);
}

/// Update files of more than a megabyte (CSV and JSON Lines) are read in parts placed
/// from the workers' exchanged summaries, as base snapshots are.
#[test]
fn large_update_files_read_in_parts_give_the_same_answers() {
    let sizes = baseline_matches_on(Shape::Realistic, 25_000);
    assert!(sizes.iter().all(|bytes| *bytes > 1 << 20), "{sizes:?}");
}

/// Checks the baseline and the dataflow (1 and 2 workers) against the recomputation on
/// generated files of `shape`, and returns the update files' sizes.
fn baseline_matches_on(shape: Shape, update_size: u64) -> Vec<u64> {
    let work = Workdir::new(&format!("baseline-{shape:?}-{update_size}"));
    let spec = Spec {
        orders: 3000,
        codes: 40,
        updates: if update_size > 1000 { 2 } else { 6 },
        update_size,
        seed: 7,
        shape,
    };
    let generated = Generator::new(spec).write_all(&work.dir).unwrap();
    let sizes: Vec<u64> = generated
        .updates
        .iter()
        .map(|update| std::fs::metadata(update).unwrap().len())
        .collect();
    let epochs = 1 + sizes.len();
    let job = Job::files(generated.codes, generated.orders, generated.updates);
    let expected = Reference::run(&job).unwrap();
    let (stats, tables) = Baseline::run(files_of(&job)).unwrap();
    assert_eq!(stats.len(), epochs);
    assert!(stats[1..].iter().all(|epoch| epoch.rows == update_size));
    assert!(
        changelog(&tables) == expected.changes,
        "baseline changelog differs from the reference"
    );
    assert!(!expected.changes.is_empty());
    for threads in [1, 2] {
        let dataflow = run_job(&job, &Workers::Process { threads })
            .unwrap()
            .unwrap();
        assert_eq!(dataflow.table, *tables.last().unwrap(), "{threads} workers");
        let changes: Vec<_> = dataflow
            .epochs
            .iter()
            .flat_map(|epoch| epoch.changes.iter().cloned())
            .collect();
        assert!(
            changes == expected.changes,
            "dataflow changelog differs from the reference at {threads} workers"
        );
    }
    sizes
}
