//! The hand-written single-threaded answer: hash maps, no dataflow.
//!
//! It reads the same files with the same reader and keeps the same figures incrementally:
//! each order's code is interned, sums are kept per code and per percentage, so a code
//! correction moves one code's sums and an order change touches one code. It is the
//! reference point every benchmark figure is a ratio against, and a test checks that it
//! gives the dataflow's answers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use discounting::input::{read_share, BadRows, InputError, Share};
use discounting::model::{Change, Code};
use discounting::result::{rows_of, ResultRow};
use discounting::run::Job;

type Sums = (i128, i128, i128);

#[derive(Default)]
pub struct Baseline {
    code_ids: HashMap<Code, u32, foldhash::fast::RandomState>,
    /// Per code id: its percentage if the code exists, and the sums of its orders.
    percentage: Vec<Option<i64>>,
    per_code: Vec<Sums>,
    /// Per order: (code id or u32::MAX for none, item_ct, subtotal).
    orders: HashMap<i64, (u32, i64, i64), foldhash::fast::RandomState>,
    per_percentage: BTreeMap<i64, Sums>,
}

/// What one epoch took.
pub struct EpochStats {
    pub rows: u64,
    pub elapsed: Duration,
    /// Resident bytes once the epoch was applied.
    pub resident_bytes: Option<u64>,
}

fn add(sums: &mut Sums, sign: i128, item_ct: i64, subtotal: i64) {
    sums.0 += sign;
    sums.1 += sign * i128::from(item_ct);
    sums.2 += sign * i128::from(subtotal);
}

impl Baseline {
    fn code_id(&mut self, code: Code) -> u32 {
        let next = self.percentage.len() as u32;
        let id = *self.code_ids.entry(code).or_insert(next);
        if id == next {
            self.percentage.push(None);
            self.per_code.push((0, 0, 0));
        }
        id
    }

    fn move_order(&mut self, sign: i128, (code, item_ct, subtotal): (u32, i64, i64)) {
        if code == u32::MAX {
            return;
        }
        add(&mut self.per_code[code as usize], sign, item_ct, subtotal);
        if let Some(p) = self.percentage[code as usize] {
            let group = self.per_percentage.entry(p).or_insert((0, 0, 0));
            add(group, sign, item_ct, subtotal);
            if *group == (0, 0, 0) {
                self.per_percentage.remove(&p);
            }
        }
    }

    fn move_code(&mut self, sign: i128, code: u32) {
        let (Some(p), sums) = (self.percentage[code as usize], self.per_code[code as usize]) else {
            return;
        };
        let group = self.per_percentage.entry(p).or_insert((0, 0, 0));
        group.0 += sign * sums.0;
        group.1 += sign * sums.1;
        group.2 += sign * sums.2;
        if *group == (0, 0, 0) {
            self.per_percentage.remove(&p);
        }
    }

    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Code {
                code,
                percentage_micros,
            } => {
                let id = self.code_id(code);
                self.move_code(-1, id);
                self.percentage[id as usize] = percentage_micros;
                self.move_code(1, id);
            }
            Change::Order { id, row } => {
                let new = row.map(|order| {
                    let code = if order.discount_code.is_empty() {
                        u32::MAX
                    } else {
                        self.code_id(order.discount_code)
                    };
                    (code, order.item_ct, order.subtotal_micros)
                });
                let old = match new {
                    Some(new) => self.orders.insert(id, new),
                    None => self.orders.remove(&id),
                };
                if let Some(old) = old {
                    self.move_order(-1, old);
                }
                if let Some(new) = new {
                    self.move_order(1, new);
                }
            }
        }
    }

    pub fn rows(&self) -> Vec<ResultRow> {
        rows_of(&self.per_percentage).expect("sums in the exact range")
    }

    /// Runs a whole job; returns each epoch's stats and the table after each epoch.
    pub fn run(job: &Job) -> Result<(Vec<EpochStats>, Vec<Vec<ResultRow>>), InputError> {
        let mut baseline = Baseline::default();
        let mut stats = Vec::new();
        let mut tables = Vec::new();
        let whole = Share { index: 0, peers: 1 };
        for sources in job.epochs() {
            let started = Instant::now();
            let mut rows = 0;
            // Like the dataflow, an update file is applied only once it has been read whole.
            let mut changes = Vec::new();
            for source in &sources {
                let report = if sources.len() > 1 {
                    read_share(source, whole, BadRows::Fail, &mut |_, change| {
                        baseline.apply(change)
                    })?
                } else {
                    read_share(source, whole, BadRows::Fail, &mut |_, change| {
                        changes.push(change)
                    })?
                };
                rows += report.rows;
            }
            for change in changes {
                baseline.apply(change);
            }
            tables.push(baseline.rows());
            let elapsed = started.elapsed();
            stats.push(EpochStats {
                rows,
                elapsed,
                resident_bytes: discounting::memory::resident_bytes(),
            });
        }
        Ok((stats, tables))
    }
}
