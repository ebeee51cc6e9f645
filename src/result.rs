//! The result table: per-percentage sums turned into printed rows, and the changelog of
//! those rows from one epoch to the next.
//!
//! Figures are rounded only here, half up on the exact rational value. A change is what a
//! reader sees: if every printed value of a row stays the same, nothing changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decimal::{self, SCALE};
use crate::model::Sums;
use crate::model::{Epoch, MAX_PERCENTAGE_MICROS};

/// Column names of the result, in the SPEC's order.
pub const COLUMNS: [&str; 6] = [
    "percentage",
    "avg_item_ct",
    "avg_order_subtotal",
    "avg_order_total",
    "avg_discount_total",
    "order_count",
];

/// One row of the result as printed. Rows sort by percentage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResultRow {
    /// Kept for ordering; printed as `values[0]`.
    pub percentage_micros: i64,
    /// The printed values, in `COLUMNS` order.
    pub values: [String; 6],
}

/// One line of the changelog: a row leaves (`diff` −1) or arrives (+1) at an epoch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChangeRow {
    pub epoch: Epoch,
    pub diff: i8,
    pub row: ResultRow,
}

/// Computes the printed row of a group, or why it cannot be printed exactly.
///
/// `avg_order_total` = Σ subtotal × (100 − p) / 100 / n and `avg_discount_total` =
/// Σ subtotal × p / 100 / n, each computed as one exact fraction of integers.
pub fn result_row(percentage_micros: i64, sums: Sums) -> Result<ResultRow, String> {
    let (orders, item_ct, subtotal) = sums;
    let not_exact = || {
        format!(
            "the sums of percentage {} leave the exact range",
            decimal::format_micros(percentage_micros)
        )
    };
    let orders = u128::try_from(orders)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(not_exact)?;
    let item_ct = u128::try_from(item_ct).map_err(|_| not_exact())?;
    let subtotal = u128::try_from(subtotal).map_err(|_| not_exact())?;
    let p = u128::try_from(percentage_micros).map_err(|_| not_exact())?;
    let hundred = MAX_PERCENTAGE_MICROS as u128;
    let scale = SCALE as u128;
    let money_denominator = orders.checked_mul(scale).ok_or_else(not_exact)?;
    let share_denominator = money_denominator
        .checked_mul(hundred)
        .ok_or_else(not_exact)?;
    let quotient = |numerator: Option<u128>, denominator: u128, digits: u32| {
        numerator
            .and_then(|n| decimal::format_quotient(n, denominator, digits))
            .ok_or_else(not_exact)
    };
    Ok(ResultRow {
        percentage_micros,
        values: [
            decimal::format_micros(percentage_micros),
            quotient(Some(item_ct), orders, 0)?,
            quotient(Some(subtotal), money_denominator, 2)?,
            quotient(
                subtotal.checked_mul(hundred - p.min(hundred)),
                share_denominator,
                2,
            )?,
            quotient(subtotal.checked_mul(p), share_denominator, 2)?,
            orders.to_string(),
        ],
    })
}

/// The printed rows of a whole table of sums, sorted by percentage.
pub fn rows_of(sums: &BTreeMap<i64, Sums>) -> Result<Vec<ResultRow>, String> {
    sums.iter().map(|(p, s)| result_row(*p, *s)).collect()
}

/// The changelog lines that turn `before` into `after` at `epoch`: for each percentage
/// whose printed row differs, −1 for the old row and +1 for the new one.
pub fn diff_rows(epoch: Epoch, before: &[ResultRow], after: &[ResultRow]) -> Vec<ChangeRow> {
    let index = |rows: &[ResultRow]| -> BTreeMap<i64, ResultRow> {
        rows.iter()
            .map(|r| (r.percentage_micros, r.clone()))
            .collect()
    };
    let (before, after) = (index(before), index(after));
    let mut changes = Vec::new();
    let percentages: std::collections::BTreeSet<i64> =
        before.keys().chain(after.keys()).copied().collect();
    for p in percentages {
        let (old, new) = (before.get(&p), after.get(&p));
        if old == new {
            continue;
        }
        if let Some(row) = old {
            changes.push(ChangeRow {
                epoch,
                diff: -1,
                row: row.clone(),
            });
        }
        if let Some(row) = new {
            changes.push(ChangeRow {
                epoch,
                diff: 1,
                row: row.clone(),
            });
        }
    }
    changes
}

/// The result as worker 0 keeps it: the current sums per percentage.
#[derive(Debug, Default)]
pub struct ResultTable {
    sums: BTreeMap<i64, Sums>,
}

impl ResultTable {
    /// Applies one epoch's changes to the sums and returns that epoch's changelog lines.
    pub fn apply(
        &mut self,
        epoch: Epoch,
        updates: impl IntoIterator<Item = (i64, Sums)>,
    ) -> Result<Vec<ChangeRow>, String> {
        // The sums of each touched percentage as they were before this epoch.
        let mut touched: BTreeMap<i64, Option<Sums>> = BTreeMap::new();
        for (p, (n, items, subtotal)) in updates {
            touched
                .entry(p)
                .or_insert_with(|| self.sums.get(&p).copied());
            let current = self.sums.entry(p).or_insert((0, 0, 0));
            current.0 += n;
            current.1 += items;
            current.2 += subtotal;
        }
        let mut changes = Vec::new();
        for (p, old) in touched {
            let new = self.sums.get(&p).copied().filter(|s| *s != (0, 0, 0));
            if new.is_none() {
                self.sums.remove(&p);
            }
            let old_row = old.map(|s| result_row(p, s)).transpose()?;
            let new_row = new.map(|s| result_row(p, s)).transpose()?;
            changes.extend(diff_rows(epoch, old_row.as_slice(), new_row.as_slice()));
        }
        Ok(changes)
    }

    pub fn rows(&self) -> Result<Vec<ResultRow>, String> {
        rows_of(&self.sums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(p: i64, sums: Sums) -> Vec<String> {
        result_row(p * SCALE, sums).unwrap().values.to_vec()
    }

    #[test]
    fn figures_of_one_group() {
        // Two orders at 50%: 201.17 and 199.85 with 3 and 10 items.
        let sums = (2, 13, 401_020_000);
        assert_eq!(
            values(50, sums),
            ["50", "7", "200.51", "100.26", "100.26", "2"]
        );
    }

    #[test]
    fn ties_round_up() {
        // One order of 146.07 at 50%: total and discount are both exactly 73.035.
        assert_eq!(
            values(50, (1, 5, 146_070_000)),
            ["50", "5", "146.07", "73.04", "73.04", "1"]
        );
        // 5 items over 2 orders is 2.5 -> 3.
        assert_eq!(
            values(0, (2, 5, 0)),
            ["0", "3", "0.00", "0.00", "0.00", "2"]
        );
    }

    #[test]
    fn a_group_that_empties_leaves_the_table() {
        let mut table = ResultTable::default();
        let added = table
            .apply(0, [(15 * SCALE, (1, 2, 10 * SCALE as i128))])
            .unwrap();
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].diff, 1);
        let removed = table
            .apply(1, [(15 * SCALE, (-1, -2, -10 * SCALE as i128))])
            .unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].diff, -1);
        assert!(table.rows().unwrap().is_empty());
    }

    #[test]
    fn a_change_that_prints_the_same_is_no_change() {
        let mut table = ResultTable::default();
        table.apply(0, [(10 * SCALE, (2, 2, 2_000_000))]).unwrap();
        // Items 2 -> 3 over 2 orders: 1 -> 1.5 -> prints "2": a change.
        let changed = table.apply(1, [(10 * SCALE, (0, 1, 0))]).unwrap();
        assert_eq!(changed.len(), 2);
        // Subtotal + 0.000001: every printed figure stays the same.
        let same = table.apply(2, [(10 * SCALE, (0, 0, 1))]).unwrap();
        assert!(same.is_empty());
    }

    #[test]
    fn groups_that_cannot_be_printed_exactly_are_errors_not_panics() {
        assert!(result_row(0, (0, 0, 0)).is_err());
        assert!(result_row(0, (-1, 0, 0)).is_err());
        assert!(result_row(SCALE, (1, 0, i128::MAX)).is_err());
    }
}
