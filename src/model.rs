//! The two keyed tables and the changes that update them.
//!
//! Amounts and percentages are micros (see `decimal`); times are epoch milliseconds.
//! An empty discount code or order time is `""` / `None`, as the SPEC reads an empty cell.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A discount code. Codes are short, so they are held inline, without a heap allocation.
pub type Code = CompactString;

/// Key of the orders table.
pub type OrderId = i64;

/// A logical time: the base snapshots are epoch 0, each update file the next epoch.
pub type Epoch = u64;

/// Position of a change in its file (the byte offset of its row). Within one epoch the
/// change with the greatest position wins, whichever worker read it.
pub type Position = u64;

/// One row of the orders table, without its key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Order {
    pub discount_code: Code,
    pub item_ct: i64,
    pub subtotal_micros: i64,
    pub customer_id: i64,
    pub order_time_ms: Option<i64>,
}

impl Order {
    /// What the query counts of the order.
    pub fn amounts(&self) -> OrderAmounts {
        OrderAmounts {
            discount_code: self.discount_code.clone(),
            item_ct: self.item_ct,
            subtotal_micros: self.subtotal_micros,
        }
    }
}

/// What the query counts of an order: its code, item count and subtotal. The dataflow's
/// orders carry only this (56 bytes a change rather than 80), unless the enriched orders
/// are asked for, which need whole rows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderAmounts {
    pub discount_code: Code,
    pub item_ct: i64,
    pub subtotal_micros: i64,
}

/// The largest percentage, in micros.
pub const MAX_PERCENTAGE_MICROS: i64 = 100 * crate::decimal::SCALE;

/// The two tables of the SPEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Table {
    DiscountCodes,
    Orders,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::DiscountCodes => "discount_codes",
            Table::Orders => "orders",
        }
    }
}

/// One upsert (`Some`) or delete (`None`) of one key, or a whole table emptied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Code {
        code: Code,
        percentage_micros: Option<i64>,
    },
    Order {
        id: OrderId,
        row: Option<Order>,
    },
    /// Every row of the table is deleted (a database's TRUNCATE); changes after it in
    /// the same epoch (greater positions) still apply.
    Truncate {
        table: Table,
    },
}

/// Per-percentage sums carried as a difference: (orders, Σ item_ct, Σ subtotal micros).
pub type Sums = (i128, i128, i128);

/// Adds `times` × `sums` into `into`.
pub fn add_sums(into: &mut Sums, times: i128, sums: Sums) {
    into.0 += times * sums.0;
    into.1 += times * sums.1;
    into.2 += times * sums.2;
}

/// A change to a keyed table: its key, its position (the greatest wins within an epoch),
/// and the new value, or `None` for a delete.
pub type Keyed<K, V> = (K, Position, Option<V>);

/// How many changes an upsert table applied, counted by the worker that owns the keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertCounters {
    pub upserts: u64,
    pub deletes: u64,
    /// Deletes of a key that was not there: they change nothing.
    pub missing_deletes: u64,
}

impl UpsertCounters {
    pub fn add(&mut self, other: &UpsertCounters) {
        self.upserts += other.upserts;
        self.deletes += other.deletes;
        self.missing_deletes += other.missing_deletes;
    }

    pub(crate) fn count<V>(&mut self, change: &Option<V>, present: bool) {
        match change {
            Some(_) => self.upserts += 1,
            None => {
                self.deletes += 1;
                self.missing_deletes += u64::from(!present);
            }
        }
    }
}
