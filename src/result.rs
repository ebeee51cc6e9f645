//! The result table: per-percentage sums turned into typed rows of rounded fixed-point
//! figures, and the changelog of those rows from one epoch to the next.
//!
//! Figures are rounded only here, half up on the exact rational value, and stay integers
//! (`Figure`) until a writer prints them. A change is what a reader sees: if every
//! rounded figure of a row stays the same, nothing changed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decimal::{self, SCALE};
use crate::model::{add_sums, Sums};
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

/// How many fractional digits each figure after the percentage is rounded to, in
/// `COLUMNS[1..]` order.
pub const FIGURE_DIGITS: [u32; 5] = [0, 2, 2, 2, 0];

/// An exact fixed-point figure: `units` × 10^−`digits`, printed with exactly `digits`
/// fractional digits (`73.04`, `7`, `-1.50`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Figure {
    pub units: i128,
    pub digits: u32,
}

impl Figure {
    pub fn new(units: i128, digits: u32) -> Figure {
        Figure { units, digits }
    }

    /// `self − earlier`, exact (both have the same digits: they are one column's).
    pub fn change_from(self, earlier: Figure) -> Figure {
        debug_assert_eq!(self.digits, earlier.digits);
        Figure::new(self.units.saturating_sub(earlier.units), self.digits)
    }

    /// With an explicit sign (`+0.00`, `-1`), as changes are printed.
    pub fn signed(self) -> String {
        decimal::format_signed(self.units, self.digits)
    }

    /// The value as a float, for placing a chart's pixels only; never for a sum.
    pub fn for_drawing(self) -> f64 {
        self.units as f64 / 10f64.powi(self.digits as i32)
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = decimal::format_signed(self.units, self.digits);
        f.write_str(text.strip_prefix('+').unwrap_or(&text))
    }
}

/// One row of the result: the percentage and its rounded figures. Rows sort by
/// percentage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResultRow {
    /// Exact, in millionths of a percent (`15_000_000` is 15%).
    pub percentage_micros: i64,
    /// Whole items (0 digits).
    pub avg_item_ct: Figure,
    /// Currency units with 2 digits, like the three below.
    pub avg_order_subtotal: Figure,
    pub avg_order_total: Figure,
    pub avg_discount_total: Figure,
    pub order_count: u64,
}

impl ResultRow {
    /// The percentage as printed: exact, without trailing zeros (`15`, `25.5`).
    pub fn percentage(&self) -> String {
        decimal::format_micros(self.percentage_micros)
    }

    /// The figures after the percentage, in `COLUMNS[1..]` order (the order count as a
    /// figure of 0 digits).
    pub fn figures(&self) -> [Figure; 5] {
        [
            self.avg_item_ct,
            self.avg_order_subtotal,
            self.avg_order_total,
            self.avg_discount_total,
            Figure::new(i128::from(self.order_count), 0),
        ]
    }

    /// The row as printed, in `COLUMNS` order: what the writers put in a cell.
    pub fn values(&self) -> [String; 6] {
        let [a, b, c, d, e] = self.figures().map(|f| f.to_string());
        [self.percentage(), a, b, c, d, e]
    }
}

/// One line of the changelog: a row leaves (`diff` −1) or arrives (+1) at an epoch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChangeRow {
    pub epoch: Epoch,
    pub diff: i8,
    pub row: ResultRow,
}

/// Computes the row of a group, or why it cannot be computed exactly.
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
    let order_count = u64::try_from(orders)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(not_exact)?;
    let orders = u128::from(order_count);
    let item_ct = u128::try_from(item_ct).map_err(|_| not_exact())?;
    let subtotal = u128::try_from(subtotal).map_err(|_| not_exact())?;
    let p = u128::try_from(percentage_micros).map_err(|_| not_exact())?;
    let hundred = MAX_PERCENTAGE_MICROS as u128;
    let scale = SCALE as u128;
    let money_denominator = orders.checked_mul(scale).ok_or_else(not_exact)?;
    let share_denominator = money_denominator
        .checked_mul(hundred)
        .ok_or_else(not_exact)?;
    let figure = |numerator: Option<u128>, denominator: u128, digits: u32| {
        numerator
            .and_then(|n| decimal::rounded_quotient(n, denominator, digits))
            .and_then(|units| i128::try_from(units).ok())
            .map(|units| Figure::new(units, digits))
            .ok_or_else(not_exact)
    };
    Ok(ResultRow {
        percentage_micros,
        avg_item_ct: figure(Some(item_ct), orders, 0)?,
        avg_order_subtotal: figure(Some(subtotal), money_denominator, 2)?,
        avg_order_total: figure(
            subtotal.checked_mul(hundred - p.min(hundred)),
            share_denominator,
            2,
        )?,
        avg_discount_total: figure(subtotal.checked_mul(p), share_denominator, 2)?,
        order_count,
    })
}

/// The rows of a whole table of sums, sorted by percentage.
pub fn rows_of(sums: &BTreeMap<i64, Sums>) -> Result<Vec<ResultRow>, String> {
    sums.iter().map(|(p, s)| result_row(*p, *s)).collect()
}

/// The changelog lines that turn `before` into `after` at `epoch`: for each percentage
/// whose row (its rounded figures) differs, −1 for the old row and +1 for the new one.
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
        for (p, sums) in updates {
            touched
                .entry(p)
                .or_insert_with(|| self.sums.get(&p).copied());
            add_sums(self.sums.entry(p).or_insert((0, 0, 0)), 1, sums);
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

/// One figure of a what-if comparison: baseline, scenario and the exact change between
/// the two rounded figures; an average of a group missing on one side is `None`, as is
/// then its change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FigureChange {
    pub baseline: Option<Figure>,
    pub scenario: Option<Figure>,
    pub change: Option<Figure>,
}

/// One percentage of a what-if comparison; `baseline` or `scenario` is `None` where the
/// group does not exist on that side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub percentage_micros: i64,
    pub baseline: Option<ResultRow>,
    pub scenario: Option<ResultRow>,
    /// In `COLUMNS[1..]` order. A missing group has no averages, but it does have zero
    /// orders, so `order_count` always has a change.
    pub figures: [FigureChange; 5],
}

impl Comparison {
    pub fn percentage(&self) -> String {
        decimal::format_micros(self.percentage_micros)
    }
}

/// Baseline against scenario, per percentage of either.
pub fn compare(baseline: &[ResultRow], scenario: &[ResultRow]) -> Vec<Comparison> {
    let index = |rows: &[ResultRow]| -> BTreeMap<i64, ResultRow> {
        rows.iter()
            .map(|r| (r.percentage_micros, r.clone()))
            .collect()
    };
    let (mut before, mut after) = (index(baseline), index(scenario));
    let percentages: std::collections::BTreeSet<i64> =
        before.keys().chain(after.keys()).copied().collect();
    percentages
        .into_iter()
        .map(|p| {
            let (old, new) = (before.remove(&p), after.remove(&p));
            let side = |row: &Option<ResultRow>, i: usize| match row {
                Some(row) => Some(row.figures()[i]),
                None if i == 4 => Some(Figure::new(0, 0)),
                None => None,
            };
            let figures = std::array::from_fn(|i| {
                let (baseline, scenario) = (side(&old, i), side(&new, i));
                let change = baseline.zip(scenario).map(|(b, s)| s.change_from(b));
                FigureChange {
                    baseline,
                    scenario,
                    change,
                }
            });
            Comparison {
                percentage_micros: p,
                baseline: old,
                scenario: new,
                figures,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(p: i64, sums: Sums) -> Vec<String> {
        result_row(p * SCALE, sums).unwrap().values().to_vec()
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
    fn rows_are_typed_figures() {
        let row = result_row(50 * SCALE, (2, 13, 401_020_000)).unwrap();
        assert_eq!(row.avg_order_subtotal, Figure::new(20_051, 2));
        assert_eq!(row.avg_discount_total, Figure::new(10_026, 2));
        assert_eq!(row.avg_item_ct, Figure::new(7, 0));
        assert_eq!(row.order_count, 2);
        let change = Figure::new(150, 2).change_from(Figure::new(300, 2));
        assert_eq!(
            (change.to_string(), change.signed()),
            ("-1.50".into(), "-1.50".into())
        );
        let none = Figure::new(0, 2).change_from(Figure::new(0, 2));
        assert_eq!(
            (none.to_string(), none.signed()),
            ("0.00".into(), "+0.00".into())
        );
    }

    #[test]
    fn comparison_changes_the_rounded_figures() {
        let baseline = vec![result_row(40 * SCALE, (1, 11, 163_990_000)).unwrap()];
        let scenario = vec![
            result_row(40 * SCALE, (2, 12, 163_990_000)).unwrap(),
            result_row(50 * SCALE, (1, 3, 201_170_000)).unwrap(),
        ];
        let compared = compare(&baseline, &scenario);
        assert_eq!(compared.len(), 2);
        // 163.99 over 1 then 2 orders: 81.995 rounds to 82.00, a change of -81.99.
        let subtotal = compared[0].figures[1];
        assert_eq!(subtotal.baseline, Some(Figure::new(16_399, 2)));
        assert_eq!(subtotal.scenario, Some(Figure::new(8_200, 2)));
        assert_eq!(subtotal.change, Some(Figure::new(-8_199, 2)));
        // 50% is new: no baseline averages, but 0 orders before.
        assert!(compared[1].baseline.is_none());
        assert_eq!(compared[1].figures[1].change, None);
        assert_eq!(compared[1].figures[4].change, Some(Figure::new(1, 0)));
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
