//! A base snapshot's order row read straight from its record's bytes: the common case of
//! a load, without the per-cell text, `Cow` and error values of the general path
//! (`row::parse_change` over `Cells`), which cost more than the parsing itself.
//!
//! It only ever answers for a row the general path accepts, and then with the same
//! change: any cell it does not read plainly (a sign, a 19th digit, bytes that are not
//! UTF-8, a bad value of any kind) makes it answer `None`, and the general path reads the
//! row again and gives its error. A property test below holds it to that.

use super::csv_records::Record;
use super::row::{Column, COLUMN_COUNT};
use super::timestamp::{parse_timestamp, plain_timestamp};
use crate::decimal::{parse_micros_bytes, plain_digits};
use crate::model::{Change, Code, Order};

/// The order in a snapshot record, when every cell is plainly valid.
pub(super) fn snapshot_order(
    record: &Record,
    columns: &[Option<usize>; COLUMN_COUNT],
) -> Option<Change> {
    let cell = |column: Column| -> Option<&[u8]> {
        let range = record.range(columns[column as usize]?)?;
        let bytes = record.as_slice()[range].trim_ascii();
        (!bytes.is_empty()).then_some(bytes)
    };
    let id = plain_digits(cell(Column::Id)?)?;
    let customer_id = plain_digits(cell(Column::CustomerId)?)?;
    let item_ct = plain_digits(cell(Column::ItemCt)?)?;
    let subtotal_micros = parse_micros_bytes(cell(Column::OrderSubtotal)?).ok()?;
    if subtotal_micros < 0 {
        return None;
    }
    let order_time_ms = match cell(Column::OrderTime) {
        None => None,
        Some(bytes) => Some(match plain_timestamp(bytes) {
            Some(ms) => ms,
            None => parse_timestamp(std::str::from_utf8(bytes).ok()?).ok()?,
        }),
    };
    let discount_code = match cell(Column::DiscountCode) {
        None => Code::default(),
        Some(bytes) => Code::from(std::str::from_utf8(bytes).ok()?),
    };
    Some(Change::Order {
        id,
        row: Some(Order {
            discount_code,
            item_ct,
            subtotal_micros,
            customer_id,
            order_time_ms,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::csv_file::CsvCells;
    use crate::input::csv_records::Records;
    use crate::input::row::{parse_change, Op};
    use crate::model::Table;
    use proptest::prelude::*;

    /// The columns of a header `id,order_time,customer_id,item_ct,order_subtotal,
    /// discount_code` with `extra` unknown columns before them.
    fn columns(extra: usize) -> [Option<usize>; COLUMN_COUNT] {
        let mut columns = [None; COLUMN_COUNT];
        for (i, column) in [
            Column::Id,
            Column::OrderTime,
            Column::CustomerId,
            Column::ItemCt,
            Column::OrderSubtotal,
            Column::DiscountCode,
        ]
        .into_iter()
        .enumerate()
        {
            columns[column as usize] = Some(extra + i);
        }
        columns
    }

    /// Both paths over one line; the fast one's answer, checked against the general one.
    fn both(line: &[u8], extra: usize) -> Option<Change> {
        let mut records = Records::new(line);
        let record = records.next_record().unwrap()?;
        let columns = columns(extra);
        let general = parse_change(
            Table::Orders,
            Op::Upsert,
            &CsvCells {
                record,
                text: std::str::from_utf8(record.as_slice()).ok(),
                columns: &columns,
            },
        );
        let fast = snapshot_order(record, &columns);
        if let Some(change) = &fast {
            assert_eq!(
                Ok(change),
                general.as_ref(),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        fast
    }

    #[test]
    fn plain_rows_take_the_fast_path() {
        for line in [
            &b"1,2026-11-03T10:15:30+01:00,7,3,19.99,ABC15"[..],
            b" 42 ,2026-11-03 10:15:30.5, 7,0,20,",
            b"3,,7,1,0.000001,\"X, Y\"",
            b"4,1793664014007,7,2,5.5",
            b"\"5\",\"2026-11-03T10:15:30Z\",\"7\",\"2\",\"1.25\",\"C\"",
        ] {
            assert!(
                both(line, 0).is_some(),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(both(b"x,1,2,3,4,5,6,7,8", 2).is_some());
    }

    #[test]
    fn anything_unusual_goes_the_general_way() {
        for line in [
            &b"+1,,7,3,19.99,A"[..],
            b"-1,,7,3,19.99,A",
            b"1,,7,-3,19.99,A",
            b"1,,7,3,-19.99,A",
            b"1,,7,3,1.0000001,A",
            b"1234567890123456789,,7,3,1,A",
            b"1,yesterday,7,3,1,A",
            b"1,,7,3,1,\xFF",
            b"1,,,3,1,A",
            b"1,,7,3",
        ] {
            assert!(
                both(line, 0).is_none(),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Random cells: whenever the fast path answers, it answers as the general path.
        #[test]
        fn agrees_with_the_general_path(
            cells in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        4 => b'0'..=b'9',
                        1 => Just(b' '), 1 => Just(b'.'), 1 => Just(b'-'), 1 => Just(b'+'),
                        1 => Just(b':'), 1 => Just(b'T'), 1 => Just(b'Z'), 1 => Just(b'a'),
                        1 => Just(b'"'), 1 => Just(0xFF), 1 => Just(0xC3), 1 => Just(0xA9),
                    ],
                    0..24,
                ),
                0..9,
            ),
            extra in 0..2usize,
        ) {
            let line = cells.join(&b","[..]);
            both(&line, extra);
        }

        /// Valid rows in every time form: the fast path answers, as the general one.
        #[test]
        fn valid_rows_are_read_fast(
            id in 0..1_000_000_000_000i64,
            customer in 0..1_000_000i64,
            items in 0..100i64,
            cents in 0..10_000_000i64,
            millis in 0..4_000_000_000_000i64,
            form in 0..4usize,
        ) {
            let time = match form {
                0 => millis.to_string(),
                1 => chrono::DateTime::from_timestamp_millis(millis).unwrap().to_rfc3339(),
                2 => chrono::DateTime::from_timestamp_millis(millis)
                    .unwrap()
                    .format("%Y-%m-%d %H:%M:%S%.3f")
                    .to_string(),
                _ => String::new(),
            };
            let line = format!("{id},{time},{customer},{items},{}.{:02},CODE", cents / 100, cents % 100);
            prop_assert!(both(line.as_bytes(), 0).is_some(), "{}", line);
        }
    }
}
