//! The benchmark's hand-written baseline gives the same answers as the from-scratch
//! recomputation and the dataflow, epoch by epoch, on generated data.

use discounting::generate::{Generator, Spec};
use discounting::input::BadRows;
use discounting::reference::Reference;
use discounting::result::diff_rows;
use discounting::run::{run_job, Job, Workers};

use crate::baseline::Baseline;
use crate::util::Workdir;

#[test]
fn baseline_matches_reference_and_dataflow() {
    let work = Workdir::new("baseline");
    let spec = Spec {
        orders: 3000,
        codes: 40,
        updates: 6,
        update_size: 300,
        seed: 7,
    };
    let generated = Generator::new(spec).write_all(&work.dir).unwrap();
    let job = Job {
        codes: generated.codes,
        orders: generated.orders,
        updates: generated.updates,
        follow: None,
        bad_rows: BadRows::Fail,
        enriched: false,
        progress: false,
    };
    let expected = Reference::run(&job).unwrap();
    let (stats, tables) = Baseline::run(&job).unwrap();
    assert_eq!(stats.len(), 7);
    assert!(stats[1..].iter().all(|epoch| epoch.rows == 300));
    let mut changes = Vec::new();
    let mut before = Vec::new();
    for (epoch, table) in tables.iter().enumerate() {
        changes.extend(diff_rows(epoch as u64, &before, table));
        before = table.clone();
    }
    assert!(
        changes == expected.changes,
        "baseline changelog differs from the reference"
    );
    assert!(!expected.changes.is_empty());
    let dataflow = run_job(&job, &Workers::Process { threads: 2 })
        .unwrap()
        .unwrap();
    assert_eq!(dataflow.table, *tables.last().unwrap());
}
