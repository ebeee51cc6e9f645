//! The hand-written single-threaded answer: no dataflow, tuned as a careful programmer
//! would tune a one-off loader.
//!
//! It reads the same files with the same reader. A base snapshot's orders go into one
//! vector in file order, which a stable sort by id (linear on a file already in id order)
//! and one pass turn into a sorted array of `(id, code, item_ct, subtotal)` with the last
//! row of each id, 32 bytes an order, searched through every 32nd id as the job's runs
//! are (`SortedRun`); the per-code sums come from one pass over it. Later changes go into
//! a hash map over that array (a delete of an array row is kept as `None`), and each
//! change moves one order's figures: sums are kept per code and per percentage, so a code
//! correction moves one code's sums. It is the reference point every benchmark figure is
//! a ratio against, and a test checks that it gives the dataflow's answers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use discounting::input::{read_share, BadRows, InputError, Role, Share};
use discounting::keyed_table::SortedRun;
use discounting::model::{Change, Code, OrderId, Table};
use discounting::result::{rows_of, ResultRow};
use discounting::source::files::FileSpec;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Sums = (i128, i128, i128);

/// What the question needs of an order: its code number, item count and subtotal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    code: u32,
    item_ct: i64,
    subtotal_micros: i64,
}

/// The code number of an order without a code.
const NO_CODE: u32 = u32::MAX;

#[derive(Default)]
pub struct Baseline {
    code_numbers: FastMap<Code, u32>,
    /// Per code number: its percentage if the code exists, and the sums of its orders.
    percentage: Vec<Option<i64>>,
    per_code: Vec<Sums>,
    /// The base snapshot's orders, sorted by id (with the job's fence index, so that a
    /// lookup costs what it costs the job).
    base: SortedRun<OrderId, Facts>,
    /// Orders changed since: the order, or `None` where a base order was deleted.
    changed: FastMap<OrderId, Option<Facts>>,
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
    fn code_number(&mut self, code: Code) -> u32 {
        if code.is_empty() {
            return NO_CODE;
        }
        let next = self.percentage.len() as u32;
        let number = *self.code_numbers.entry(code).or_insert(next);
        if number == next {
            self.percentage.push(None);
            self.per_code.push((0, 0, 0));
        }
        number
    }

    fn move_order(&mut self, sign: i128, facts: Facts) {
        if facts.code == NO_CODE {
            return;
        }
        let (item_ct, subtotal) = (facts.item_ct, facts.subtotal_micros);
        add(
            &mut self.per_code[facts.code as usize],
            sign,
            item_ct,
            subtotal,
        );
        if let Some(p) = self.percentage[facts.code as usize] {
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

    fn apply_code(&mut self, code: Code, percentage_micros: Option<i64>) {
        let number = self.code_number(code);
        if number == NO_CODE {
            return;
        }
        self.move_code(-1, number);
        self.percentage[number as usize] = percentage_micros;
        self.move_code(1, number);
    }

    /// An order change as the id and its facts (`None`: a delete), to apply in its turn; a
    /// code change is applied at once and gives nothing.
    fn order_or_apply_code(&mut self, change: Change) -> Option<(OrderId, Option<Facts>)> {
        match change {
            Change::Order { id, row } => {
                let facts = row.map(|order| Facts {
                    code: self.code_number(order.discount_code),
                    item_ct: order.item_ct,
                    subtotal_micros: order.subtotal_micros,
                });
                Some((id, facts))
            }
            Change::Code {
                code,
                percentage_micros,
            } => {
                self.apply_code(code, percentage_micros);
                None
            }
            // Files never truncate; only a database does.
            Change::Truncate { .. } => None,
        }
    }

    /// The base orders, given in file order (epoch 0: no order is held yet); the last row
    /// of each id is kept.
    fn load_base(&mut self, mut orders: Vec<(OrderId, Facts)>) {
        orders.sort_by_key(|(id, _)| *id);
        // `dedup_by` keeps the first of equal ids; carry the later row into it.
        orders.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        // Sums by code first, then each code's sums into its percentage's: one update of
        // the per-percentage map per code rather than per order.
        for &(_, facts) in &orders {
            if facts.code != NO_CODE {
                let sums = &mut self.per_code[facts.code as usize];
                add(sums, 1, facts.item_ct, facts.subtotal_micros);
            }
        }
        for code in 0..self.per_code.len() {
            self.move_code(1, code as u32);
        }
        self.base = SortedRun::from_sorted(orders);
    }

    fn current(&self, id: OrderId) -> Option<Facts> {
        match self.changed.get(&id) {
            Some(facts) => *facts,
            None => self.base.get(&id).copied(),
        }
    }

    fn apply_order(&mut self, id: OrderId, new: Option<Facts>) {
        let old = self.current(id);
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.move_order(-1, old);
        }
        if let Some(new) = new {
            self.move_order(1, new);
        }
        self.changed.insert(id, new);
    }

    pub fn rows(&self) -> Vec<ResultRow> {
        rows_of(&self.per_percentage).expect("sums in the exact range")
    }

    /// Runs a whole job; returns each epoch's stats and the table after each epoch.
    pub fn run(files: &FileSpec) -> Result<(Vec<EpochStats>, Vec<Vec<ResultRow>>), InputError> {
        let mut baseline = Baseline::default();
        let mut stats = Vec::new();
        let mut tables = Vec::new();
        let whole = Share { index: 0, peers: 1 };
        for sources in files.epochs() {
            let started = Instant::now();
            let mut rows = 0;
            // Base orders in file order; update changes held until their file has been
            // read whole, since a bad file is applied not at all.
            let mut base = Vec::new();
            let mut changes = Vec::new();
            for source in &sources {
                let report = match source.role {
                    Role::Snapshot(Table::DiscountCodes) => {
                        read_share(source, whole, BadRows::Fail, &mut |_, change| {
                            baseline.order_or_apply_code(change);
                        })?
                    }
                    Role::Snapshot(Table::Orders) => {
                        read_share(source, whole, BadRows::Fail, &mut |_, change| {
                            if let Some((id, Some(facts))) = baseline.order_or_apply_code(change) {
                                base.push((id, facts));
                            }
                        })?
                    }
                    Role::Update => read_share(source, whole, BadRows::Fail, &mut |_, change| {
                        changes.push(change)
                    })?,
                };
                rows += report.rows;
            }
            if !base.is_empty() {
                baseline.load_base(base);
            }
            for change in changes {
                if let Some((id, facts)) = baseline.order_or_apply_code(change) {
                    baseline.apply_order(id, facts);
                }
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
