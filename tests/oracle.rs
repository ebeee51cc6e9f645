//! The dataflow against the plain recomputation (`reference`), on random data: random
//! base snapshots and random update epochs (order upserts, corrections and deletes, code
//! corrections, codes that appear late or vanish, deletes of absent keys, several changes
//! to one key in one file), in CSV and JSON Lines, at 1, 2 and 4 workers. The changelog
//! after every epoch, the final table and the enriched orders must all agree.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use discounting::reference::Reference;
use discounting::run::{run_job, Job, JobOutput, Workers};

use crate::util::Workdir;

/// One generated change, written to CSV or JSON Lines.
#[derive(Clone, Debug)]
enum Gen {
    Code {
        code: String,
        percentage: Option<String>,
    },
    Order {
        id: i64,
        fields: Option<[String; 5]>,
    },
}

struct Generator {
    rng: StdRng,
    codes: Vec<String>,
    ids: Vec<i64>,
    next_id: i64,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        let mut rng = StdRng::seed_from_u64(seed);
        // Some codes need CSV quoting; some are named by orders before they exist.
        let mut codes: Vec<String> = (0..10).map(|i| format!("C{i}")).collect();
        codes.push("Q,\"1\"".to_string());
        codes.push("late one".to_string());
        codes.push(format!("L{}", rng.random_range(0..100)));
        Generator {
            rng,
            codes,
            ids: Vec::new(),
            next_id: 1000,
        }
    }

    fn percentage(&mut self) -> String {
        const CHOICES: [&str; 10] = [
            "5",
            "10",
            "15.0",
            "15",
            "20",
            "25.5",
            "33.333333",
            "50",
            "0",
            "100",
        ];
        CHOICES[self.rng.random_range(0..CHOICES.len())].to_string()
    }

    fn code(&mut self) -> String {
        match self.rng.random_range(0..20) {
            0 => String::new(),
            1 => "NEVER".to_string(),
            _ => self.codes[self.rng.random_range(0..self.codes.len())].clone(),
        }
    }

    fn order_fields(&mut self) -> [String; 5] {
        let time = match self.rng.random_range(0..4) {
            0 => String::new(),
            1 => "2026-11-03T10:15:30Z".to_string(),
            2 => "2026-11-03 10:15:30.125".to_string(),
            _ => self
                .rng
                .random_range(1_700_000_000_000i64..1_800_000_000_000)
                .to_string(),
        };
        let micros: i64 = self.rng.random_range(0..300_000_000);
        let subtotal = match self.rng.random_range(0..3) {
            0 => format!("{}.{:02}", micros / 1_000_000, (micros / 10_000) % 100),
            1 => format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000),
            _ => (micros / 1_000_000).to_string(),
        };
        [
            time,
            self.rng.random_range(1..500).to_string(),
            self.rng.random_range(0..25).to_string(),
            subtotal,
            self.code(),
        ]
    }

    fn base(&mut self) -> (Vec<Gen>, Vec<Gen>) {
        let mut codes = Vec::new();
        for index in 0..10 {
            let percentage = Some(self.percentage());
            codes.push(Gen::Code {
                code: self.codes[index].clone(),
                percentage,
            });
        }
        let mut orders = Vec::new();
        for _ in 0..200 {
            let id = self.new_or_known_id();
            orders.push(Gen::Order {
                id,
                fields: Some(self.order_fields()),
            });
        }
        (codes, orders)
    }

    fn new_or_known_id(&mut self) -> i64 {
        if !self.ids.is_empty() && self.rng.random_bool(0.1) {
            self.ids[self.rng.random_range(0..self.ids.len())]
        } else {
            self.next_id += 1;
            self.ids.push(self.next_id);
            self.next_id
        }
    }

    fn epoch(&mut self, size: usize) -> Vec<Gen> {
        let mut changes = Vec::new();
        for _ in 0..size {
            let change = match self.rng.random_range(0..10) {
                0 | 1 => {
                    let code = self.codes[self.rng.random_range(0..self.codes.len())].clone();
                    let percentage = (!self.rng.random_bool(0.25)).then(|| self.percentage());
                    Gen::Code { code, percentage }
                }
                2 => Gen::Order {
                    id: self.rng.random_range(0..3000),
                    fields: None,
                },
                3 | 4 if !self.ids.is_empty() => {
                    let id = self.ids[self.rng.random_range(0..self.ids.len())];
                    Gen::Order { id, fields: None }
                }
                _ => {
                    let id = self.new_or_known_id();
                    Gen::Order {
                        id,
                        fields: Some(self.order_fields()),
                    }
                }
            };
            // Sometimes the same key changes twice in one file: the last change wins.
            if self.rng.random_bool(0.1) {
                changes.push(change.clone());
            }
            changes.push(change);
        }
        changes
    }
}

const ORDER_COLUMNS: [&str; 5] = [
    "order_time",
    "customer_id",
    "item_ct",
    "order_subtotal",
    "discount_code",
];

/// Writes changes as one file: CSV when they touch one table and `csv` is asked for,
/// else JSON Lines (a snapshot when `update` is false).
fn write_changes(
    work: &Workdir,
    name: &str,
    changes: &[Gen],
    update: bool,
    csv: bool,
) -> std::path::PathBuf {
    let one_table = changes.iter().all(|c| matches!(c, Gen::Code { .. }))
        || changes.iter().all(|c| matches!(c, Gen::Order { .. }));
    if csv && one_table && !changes.is_empty() {
        let path = work.path(&format!("{name}.csv"));
        let mut out = csv::Writer::from_path(&path).unwrap();
        let is_code = matches!(changes[0], Gen::Code { .. });
        let mut header: Vec<&str> = if update { vec!["OP"] } else { vec![] };
        if is_code {
            header.extend(["CODE", "PERCENTAGE"]);
        } else {
            header.push("ID");
            header.extend(ORDER_COLUMNS);
        }
        out.write_record(&header).unwrap();
        for change in changes {
            let mut record: Vec<String> = Vec::new();
            match change {
                Gen::Code { code, percentage } => {
                    if update {
                        record.push(
                            if percentage.is_some() {
                                "upsert"
                            } else {
                                "delete"
                            }
                            .into(),
                        );
                    }
                    record.push(code.clone());
                    record.push(percentage.clone().unwrap_or_default());
                }
                Gen::Order { id, fields } => {
                    if update {
                        record.push(if fields.is_some() { "+U" } else { "-D" }.into());
                    }
                    record.push(id.to_string());
                    match fields {
                        Some(fields) => record.extend(fields.iter().cloned()),
                        None => record.extend(std::iter::repeat_n(String::new(), 5)),
                    }
                }
            }
            out.write_record(&record).unwrap();
        }
        out.flush().unwrap();
        return path;
    }
    let path = work.path(&format!("{name}.jsonl"));
    let mut text = String::new();
    for change in changes {
        let mut object = serde_json::Map::new();
        let mut put = |key: &str, value: serde_json::Value| {
            object.insert(key.to_string(), value);
        };
        match change {
            Gen::Code { code, percentage } => {
                if update {
                    put(
                        "op",
                        (if percentage.is_some() {
                            "upsert"
                        } else {
                            "delete"
                        })
                        .into(),
                    );
                    put("table", "discount_codes".into());
                }
                put("CODE", code.clone().into());
                if let Some(p) = percentage {
                    put(
                        "PERCENTAGE",
                        serde_json::from_str::<serde_json::Value>(p).unwrap(),
                    );
                }
            }
            Gen::Order { id, fields } => {
                if update {
                    put("op", (if fields.is_some() { "c" } else { "d" }).into());
                    put("table", "orders".into());
                }
                put("ID", (*id).into());
                if let Some(fields) = fields {
                    for (column, value) in ORDER_COLUMNS.iter().zip(fields) {
                        let value = if value.is_empty() {
                            serde_json::Value::Null
                        } else {
                            value.clone().into()
                        };
                        put(&column.to_ascii_uppercase(), value);
                    }
                }
            }
        }
        text.push_str(&serde_json::Value::Object(object).to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn run(job: &Job, threads: usize) -> JobOutput {
    run_job(job, &Workers::Process { threads })
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a single process returns worker 0's output")
}

fn check_seed(seed: u64) {
    let work = Workdir::new(&format!("oracle-{seed}"));
    let mut generator = Generator::new(seed);
    let (codes, orders) = generator.base();
    let csv = seed % 2 == 0;
    let codes_path = write_changes(&work, "codes", &codes, false, csv);
    let orders_path = write_changes(&work, "orders", &orders, false, !csv);
    let mut epochs = Vec::new();
    let mut updates = Vec::new();
    for index in 0..10 {
        let size = generator.rng.random_range(0..40);
        let changes = generator.epoch(size);
        let as_csv = generator.rng.random_bool(0.5);
        // A CSV update changes one table: split the epoch's changes when needed.
        let codes_only: Vec<Gen> = changes
            .iter()
            .filter(|c| matches!(c, Gen::Code { .. }))
            .cloned()
            .collect();
        let chosen = if as_csv && generator.rng.random_bool(0.5) {
            codes_only
        } else {
            changes
        };
        updates.push(write_changes(
            &work,
            &format!("update-{index:02}"),
            &chosen,
            true,
            as_csv,
        ));
        epochs.push(chosen);
    }
    let job = Job {
        enriched: true,
        ..Job::files(codes_path.clone(), orders_path.clone(), updates)
    };

    let expected = Reference::run(&job).unwrap();
    for threads in [1, 2, 4] {
        let got = run(&job, threads);
        let changes: Vec<_> = got.epochs.iter().flat_map(|e| e.changes.clone()).collect();
        if changes != expected.changes {
            for change in &expected.changes {
                if !changes.contains(change) {
                    println!("in reference, not dataflow: {change:?}");
                }
            }
            for change in &changes {
                if !expected.changes.contains(change) {
                    println!("in dataflow, not reference: {change:?}");
                }
            }
        }
        assert!(
            changes == expected.changes,
            "changelog differs (above), seed {seed}, {threads} workers"
        );
        assert_eq!(
            got.table, expected.table,
            "final table, seed {seed}, {threads} workers"
        );
        let mut enriched = got.enriched.clone();
        enriched.sort();
        assert_eq!(
            enriched, expected.enriched,
            "enriched orders, seed {seed}, {threads} workers"
        );
        assert_eq!(got.epochs.len(), epochs.len() + 1);
    }

    // All updates as one epoch give the same final table as one epoch each.
    let all: Vec<Gen> = epochs.concat();
    let one = write_changes(&work, "all-at-once", &all, true, false);
    let single = Job {
        enriched: true,
        ..Job::files(codes_path, orders_path, vec![one])
    };
    assert_eq!(
        run(&single, 2).table,
        expected.table,
        "one big epoch, seed {seed}"
    );
    std::fs::remove_dir_all(&work.dir).unwrap();
}

#[test]
fn random_epochs_match_recomputation() {
    for seed in 0..8 {
        check_seed(seed);
    }
}
