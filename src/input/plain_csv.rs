//! Records of a CSV byte range that holds no quote, the common case, read without
//! csv-core's state machine.
//!
//! Without a quote RFC 4180 reduces to lines and commas: a record ends at `\r`, `\n` or
//! `\r\n`, empty lines are no records, and fields are what lies between commas. That is
//! what csv-core does with such input too (a property test below checks it), for a
//! fraction of the instructions: csv-core's state machine was the largest single cost of
//! a load.

use std::io::{self, BufRead};
use std::ops::Range;

use csv::ByteRecord;

/// One record of a range without quotes: its text (fields and the commas between them),
/// where each field ends in it, and where it starts. (Its line is counted only for a
/// rejected row, by `layout::LineCursor`.)
#[derive(Debug, Default)]
pub struct PlainRecord {
    text: Vec<u8>,
    ends: Vec<usize>,
    byte: u64,
}

impl PlainRecord {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The record's text; `range` indexes into it.
    pub fn as_slice(&self) -> &[u8] {
        &self.text
    }

    pub fn range(&self, index: usize) -> Option<Range<usize>> {
        let end = *self.ends.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] + 1,
        };
        Some(start..end)
    }

    /// The offset of the record's first byte from the start of the input.
    pub fn byte(&self) -> u64 {
        self.byte
    }

    /// The record as csv-core would have read it (for a rejected row's text).
    pub fn to_byte_record(&self) -> ByteRecord {
        (0..self.len())
            .filter_map(|i| self.range(i))
            .map(|range| &self.text[range])
            .collect()
    }
}

/// The records of an input without quotes, one at a time, in one reused record.
pub struct PlainRecords<R> {
    input: R,
    record: PlainRecord,
    /// Bytes of the input consumed so far.
    offset: u64,
}

impl<R: BufRead> PlainRecords<R> {
    pub fn new(input: R) -> Self {
        PlainRecords {
            input,
            record: PlainRecord::default(),
            offset: 0,
        }
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> io::Result<Option<&PlainRecord>> {
        let record = &mut self.record;
        record.text.clear();
        loop {
            if record.text.is_empty() {
                record.byte = self.offset;
            }
            let buffer = self.input.fill_buf()?;
            if buffer.is_empty() {
                break;
            }
            let Some(end) = memchr::memchr2(b'\r', b'\n', buffer) else {
                record.text.extend_from_slice(buffer);
                let length = buffer.len();
                self.input.consume(length);
                self.offset += length as u64;
                continue;
            };
            record.text.extend_from_slice(&buffer[..end]);
            self.input.consume(end + 1);
            self.offset += end as u64 + 1;
            // An empty line is no record.
            if !record.text.is_empty() {
                break;
            }
        }
        if record.text.is_empty() {
            return Ok(None);
        }
        record.ends.clear();
        // Fields are short: a plain loop beats a SIMD search started for every comma.
        let commas = record.text.iter().enumerate().filter(|(_, &b)| b == b',');
        record.ends.extend(commas.map(|(i, _)| i));
        record.ends.push(record.text.len());
        Ok(Some(&self.record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Each record's fields and where its first byte is, as csv-core reads them.
    fn by_csv_core(bytes: &[u8]) -> Vec<(Vec<Vec<u8>>, u64)> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        let mut record = ByteRecord::new();
        let mut records = Vec::new();
        while reader.read_byte_record(&mut record).unwrap() {
            // csv-core places a record after blank lines at their start: move past them.
            let byte = record.position().unwrap().byte() as usize;
            let blank = bytes[byte..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count() as u64;
            let start = byte as u64 + blank;
            records.push((record.iter().map(<[u8]>::to_vec).collect(), start));
        }
        records
    }

    fn by_plain(bytes: &[u8]) -> Vec<(Vec<Vec<u8>>, u64)> {
        let mut reader = PlainRecords::new(bytes);
        let mut records = Vec::new();
        while let Some(record) = reader.next_record().unwrap() {
            let first = bytes[record.byte() as usize];
            assert!(
                !matches!(first, b'\r' | b'\n'),
                "a record starts at its first byte"
            );
            let fields = record.to_byte_record().iter().map(<[u8]>::to_vec).collect();
            records.push((fields, record.byte()));
        }
        records
    }

    #[test]
    fn line_ends_commas_and_blank_lines() {
        let text = b"a,b\r\n\r\n,c,\rd\n\nx";
        let expected = vec![
            (vec![b"a".to_vec(), b"b".to_vec()], 0),
            (vec![vec![], b"c".to_vec(), vec![]], 7),
            (vec![b"d".to_vec()], 11),
            (vec![b"x".to_vec()], 14),
        ];
        assert_eq!(by_plain(text), expected);
        assert_eq!(by_csv_core(text), expected);
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Any input without a quote: the same records, fields and starts as csv-core. (It
        /// starts after a line end, as a worker's range does, where csv-core would take
        /// BOM bytes at the very start for a byte order mark.)
        #[test]
        fn reads_what_csv_core_reads(
            bytes in proptest::collection::vec(
                prop_oneof![
                    Just(b','), Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'a'), Just(b'7'),
                    Just(0xEF), Just(0xBB), Just(0xBF), Just(0xFF), Just(b'\t'), Just(b'\''),
                ],
                0..80,
            )
        ) {
            let bytes = [b"\n".as_slice(), &bytes].concat();
            prop_assert_eq!(by_plain(&bytes), by_csv_core(&bytes));
        }
    }
}
