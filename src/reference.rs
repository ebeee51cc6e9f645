//! The same question answered the plain way: two hash maps, changes applied one at a time
//! in file order, and the result recomputed from scratch after every epoch.
//!
//! It shares nothing with the dataflow but the file readers and the rounding of printed
//! rows, which makes it the oracle the tests compare the dataflow with.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64};

use crate::input::{BadRows, InputError, Share};
use crate::model::Sums;
use crate::model::{Change, Code, Order, OrderId, Table};
use crate::result::{diff_rows, rows_of, ChangeRow, ResultRow};
use crate::run::{EnrichedChange, Job};
use crate::source::{Control, EpochSource, WithSource};

/// The current contents of both tables.
#[derive(Debug, Default, Clone)]
pub struct Reference {
    codes: HashMap<Code, i64>,
    orders: HashMap<OrderId, Order>,
}

/// The changelog, final table and enriched orders' changes of a whole job, computed the
/// plain way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceOutput {
    pub changes: Vec<ChangeRow>,
    pub table: Vec<ResultRow>,
    /// Sorted by epoch, id and diff.
    pub enriched: Vec<EnrichedChange>,
}

impl Reference {
    /// Applies one change, as a keyed table does.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Code {
                code,
                percentage_micros: Some(p),
            } => {
                self.codes.insert(code, p);
            }
            Change::Code {
                code,
                percentage_micros: None,
            } => {
                self.codes.remove(&code);
            }
            Change::Order { id, row: Some(row) } => {
                self.orders.insert(id, row);
            }
            Change::Order { id, row: None } => {
                self.orders.remove(&id);
            }
            Change::Truncate {
                table: Table::DiscountCodes,
            } => self.codes.clear(),
            Change::Truncate {
                table: Table::Orders,
            } => self.orders.clear(),
        }
    }

    /// The per-percentage sums of the current tables, from scratch.
    pub fn sums(&self) -> BTreeMap<i64, Sums> {
        let mut sums: BTreeMap<i64, Sums> = BTreeMap::new();
        for order in self.orders.values() {
            if let Some(&p) = self.codes.get(&order.discount_code) {
                let group = sums.entry(p).or_insert((0, 0, 0));
                group.0 += 1;
                group.1 += i128::from(order.item_ct);
                group.2 += i128::from(order.subtotal_micros);
            }
        }
        sums
    }

    /// Every counted order with the percentage of its code, from scratch.
    pub fn enriched(&self) -> BTreeMap<OrderId, (Order, i64)> {
        self.orders
            .iter()
            .filter_map(|(id, order)| {
                let p = *self.codes.get(&order.discount_code)?;
                Some((*id, (order.clone(), p)))
            })
            .collect()
    }

    /// Runs a whole job: reads every epoch its source gives, whole, with one reader, and
    /// returns the changelog and the final table.
    pub fn run(job: &Job) -> Result<ReferenceOutput, InputError> {
        job.source.drive(Recompute {
            bad_rows: job.bad_rows,
        })
    }
}

/// The recomputation over any source: the same epoch descriptors the dataflow gets, each
/// read whole by one reader.
struct Recompute {
    bad_rows: BadRows,
}

impl WithSource for Recompute {
    type Output = Result<ReferenceOutput, InputError>;

    fn with<S: EpochSource>(self, mut source: S) -> Self::Output {
        let mut tables = Reference::default();
        let mut changes = Vec::new();
        let mut rows = Vec::new();
        let mut enriched = Vec::new();
        let mut counted = BTreeMap::new();
        let whole = Share { index: 0, peers: 1 };
        let (never, durable) = (AtomicBool::new(false), AtomicU64::new(0));
        let control = Control {
            stop: &never,
            durable: &durable,
        };
        let mut epoch = 0;
        while let Some(descriptor) = source
            .next_epoch(&control)
            .map_err(|reason| InputError::file("-", reason))?
        {
            let mut read = Vec::new();
            let shares = source.read_share(&descriptor, whole, None, self.bad_rows, &mut |_, c| {
                read.push(c)
            });
            match shares {
                Ok(_) => {}
                Err(_) if source.skips_bad_epochs(&descriptor) => continue,
                Err((_, error)) => return Err(error),
            }
            for change in read {
                tables.apply(change);
            }
            let next = rows_of(&tables.sums()).map_err(|reason| InputError::file("-", reason))?;
            changes.extend(diff_rows(epoch, &rows, &next));
            rows = next;
            let now = tables.enriched();
            enriched.extend(diff_enriched(epoch, &counted, &now));
            counted = now;
            epoch += 1;
        }
        Ok(ReferenceOutput {
            changes,
            table: rows,
            enriched,
        })
    }
}

/// The enriched orders' changes from one snapshot to the next.
fn diff_enriched(
    epoch: u64,
    before: &BTreeMap<OrderId, (Order, i64)>,
    after: &BTreeMap<OrderId, (Order, i64)>,
) -> Vec<EnrichedChange> {
    let change = |diff: i128, id: &OrderId, (order, p): &(Order, i64)| EnrichedChange {
        epoch,
        diff,
        id: *id,
        order: order.clone(),
        percentage_micros: *p,
    };
    let mut changes = Vec::new();
    for (id, old) in before {
        if after.get(id) != Some(old) {
            changes.push(change(-1, id, old));
        }
    }
    for (id, new) in after {
        if before.get(id) != Some(new) {
            changes.push(change(1, id, new));
        }
    }
    changes.sort();
    changes
}
