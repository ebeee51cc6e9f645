//! The records of a CSV byte range: lines without a quote split at their commas here,
//! the rest given to csv-core.
//!
//! Without a quote RFC 4180 reduces to lines and commas: a record ends at `\r`, `\n` or
//! `\r\n`, empty lines are no records, and fields are what lies between commas. That is
//! what csv-core does with such a line too, for a fraction of the instructions (its state
//! machine was the largest single cost of a load). A line with a quote in it starts a
//! record that may hold quoted commas and line ends, so csv-core reads that record, from
//! its first byte, and hands back to the line splitter at its end. Property tests below
//! check that the records, their fields and where they start are csv-core's own.

use std::io::{self, BufRead};
use std::ops::Range;

use csv::ByteRecord;
use csv_core::ReadRecordResult;

/// One record: its text, where each field ends in it, and where it starts in the input.
/// (Its line is counted only for a rejected row, by `layout::LineCursor`.)
#[derive(Debug, Default)]
pub struct Record {
    /// A plain line: its fields and the commas between them. A quoted record: its fields
    /// unquoted, back to back.
    text: Vec<u8>,
    ends: Vec<usize>,
    /// Whether a comma lies between consecutive fields in `text` (a plain line).
    commas: bool,
    byte: u64,
}

impl Record {
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
            _ => self.ends[index - 1] + usize::from(self.commas),
        };
        Some(start..end)
    }

    /// The offset of the record's first byte from the start of the input.
    pub fn byte(&self) -> u64 {
        self.byte
    }

    /// The record as csv-core reads it (for a rejected row's text).
    pub fn to_byte_record(&self) -> ByteRecord {
        (0..self.len())
            .filter_map(|i| self.range(i))
            .map(|range| &self.text[range])
            .collect()
    }
}

/// A csv-core reader, ready for a record in the middle of a file. Building csv-core's
/// DFA costs some 100,000 instructions, more than a small update file's records, so each
/// thread keeps the one it last used, reset (csv-core's `Clone` of a reader copies only
/// part of the DFA, so readers are not copied).
struct SpareReader(Option<csv_core::Reader>);

thread_local! {
    static SPARE: std::cell::Cell<Option<csv_core::Reader>> = const { std::cell::Cell::new(None) };
}

impl SpareReader {
    fn take() -> SpareReader {
        // Not `unwrap_or_default`: csv-core's `Default` reader has no DFA built.
        #[allow(clippy::unwrap_or_default)]
        let mut reader = SPARE.take().unwrap_or_else(csv_core::Reader::new);
        reader.reset();
        // csv-core takes a UTF-8 byte order mark off the first bytes it is given after a
        // reset; here they belong to a record in the middle of a file, so it is given a
        // line end (no record) first.
        let (result, ..) = reader.read_record(b"\n", &mut [0], &mut [0]);
        debug_assert_eq!(result, ReadRecordResult::InputEmpty);
        SpareReader(Some(reader))
    }
}

impl std::ops::Deref for SpareReader {
    type Target = csv_core::Reader;
    fn deref(&self) -> &csv_core::Reader {
        self.0
            .as_ref()
            .expect("a spare reader is held until it is dropped")
    }
}

impl std::ops::DerefMut for SpareReader {
    fn deref_mut(&mut self) -> &mut csv_core::Reader {
        self.0
            .as_mut()
            .expect("a spare reader is held until it is dropped")
    }
}

impl Drop for SpareReader {
    fn drop(&mut self) {
        SPARE.set(self.0.take());
    }
}

/// The records of an input, one at a time, in one reused record. The input starts at a
/// record's first byte or at the line end before it.
pub struct Records<R> {
    input: R,
    record: Record,
    /// Bytes of the input consumed so far.
    offset: u64,
    /// The line just read, when it holds a quote and csv-core reads it again.
    line: Vec<u8>,
    quoted: SpareReader,
}

impl<R: BufRead> Records<R> {
    pub fn new(input: R) -> Self {
        Records {
            input,
            record: Record::default(),
            offset: 0,
            line: Vec::new(),
            quoted: SpareReader::take(),
        }
    }

    /// The bytes of the input consumed so far: where the record after the last one given
    /// starts (or the line end before it).
    pub fn consumed(&self) -> u64 {
        self.offset
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> io::Result<Option<&Record>> {
        let record = &mut self.record;
        record.text.clear();
        let mut line_end = None;
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
            let ending = buffer[end];
            self.input.consume(end + 1);
            self.offset += end as u64 + 1;
            // An empty line is no record.
            if !record.text.is_empty() {
                line_end = Some(ending);
                break;
            }
        }
        if record.text.is_empty() {
            return Ok(None);
        }
        if memchr::memchr(b'"', &record.text).is_some() {
            std::mem::swap(&mut record.text, &mut self.line);
            self.read_quoted(line_end)?;
            return Ok(Some(&self.record));
        }
        record.commas = true;
        record.ends.clear();
        push_commas(&record.text, &mut record.ends);
        record.ends.push(record.text.len());
        Ok(Some(&self.record))
    }

    /// Reads the record whose first line (up to `line_end`, the byte that ended it, if
    /// any) is in `self.line`, and whatever of the input csv-core finds still belongs to
    /// it (quoted line ends).
    fn read_quoted(&mut self, line_end: Option<u8>) -> io::Result<()> {
        let mut decoder = Decoder {
            reader: &mut self.quoted,
            record: &mut self.record,
            text_len: 0,
            ends_len: 0,
        };
        decoder.record.commas = false;
        // The line holds no line end, so the record goes on at least to the byte after it.
        decoder.feed(&self.line);
        let mut ended = match line_end {
            Some(byte) => decoder.feed(&[byte]).1,
            None => false,
        };
        while !ended {
            let buffer = self.input.fill_buf()?;
            let at_end = buffer.is_empty();
            let (taken, record_ended) = decoder.feed(buffer);
            self.input.consume(taken);
            self.offset += taken as u64;
            // At the end of the input csv-core ends the record on being given nothing.
            ended = record_ended || at_end;
        }
        decoder.finish();
        Ok(())
    }
}

/// Pushes where each comma of `line` is. Fields are short, so rather than a search
/// started for every comma, each 32 bytes become a mask of their commas in one compare
/// (the compiler makes the loop a vector compare), whose bits are then taken in turn.
fn push_commas(line: &[u8], ends: &mut Vec<usize>) {
    const BLOCK: usize = 32;
    let mut blocks = line.chunks_exact(BLOCK);
    let mut base = 0;
    for block in &mut blocks {
        let mut mask = 0u32;
        for (bit, &byte) in block.iter().enumerate() {
            mask |= u32::from(byte == b',') << bit;
        }
        while mask != 0 {
            ends.push(base + mask.trailing_zeros() as usize);
            mask &= mask - 1;
        }
        base += BLOCK;
    }
    for (i, &byte) in blocks.remainder().iter().enumerate() {
        if byte == b',' {
            ends.push(base + i);
        }
    }
}

/// csv-core writing one record's fields into a `Record`'s buffers, grown as it asks.
struct Decoder<'a> {
    reader: &'a mut csv_core::Reader,
    record: &'a mut Record,
    text_len: usize,
    ends_len: usize,
}

impl Decoder<'_> {
    /// Gives csv-core `input`; returns how much of it csv-core took and whether the record
    /// ended there.
    fn feed(&mut self, mut input: &[u8]) -> (usize, bool) {
        let given = input.len();
        loop {
            let Record { text, ends, .. } = &mut *self.record;
            if self.text_len == text.len() {
                text.resize((2 * text.len()).max(256), 0);
            }
            if self.ends_len == ends.len() {
                ends.resize((2 * ends.len()).max(16), 0);
            }
            let (result, taken, written, ended) = self.reader.read_record(
                input,
                &mut text[self.text_len..],
                &mut ends[self.ends_len..],
            );
            input = &input[taken..];
            self.text_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty => return (given, false),
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::Record | ReadRecordResult::End => {
                    return (given - input.len(), true)
                }
            }
        }
    }

    /// Cuts the record's buffers to what csv-core wrote.
    fn finish(self) {
        self.record.text.truncate(self.text_len);
        self.record.ends.truncate(self.ends_len);
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

    /// The same, read by `Records` through a buffer of `capacity` bytes (small ones put
    /// records, quotes and line ends across refills).
    fn by_records(bytes: &[u8], capacity: usize) -> Vec<(Vec<Vec<u8>>, u64)> {
        let mut reader = Records::new(std::io::BufReader::with_capacity(capacity, bytes));
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
        assert_eq!(by_records(text, 8192), expected);
        assert_eq!(by_csv_core(text), expected);
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_ends() {
        let text = b"\n1,\"a, \"\"b\"\"\",x\n\"2\r\n3\",\r\n\n4,\"\"\n\xEF\xBB\xBF\"5\"";
        let expected = vec![
            (vec![b"1".to_vec(), b"a, \"b\"".to_vec(), b"x".to_vec()], 1),
            (vec![b"2\r\n3".to_vec(), vec![]], 16),
            (vec![b"4".to_vec(), vec![]], 26),
            // The bytes of a byte order mark, in the middle of a file, are a record's own.
            (vec![b"\xEF\xBB\xBF\"5\"".to_vec()], 31),
        ];
        assert_eq!(by_csv_core(text), expected);
        for capacity in [1, 2, 3, 5, 8192] {
            assert_eq!(by_records(text, capacity), expected, "capacity {capacity}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Any input: the same records, fields and starts as csv-core, whatever the buffer's
        /// size. (It starts after a line end, as a worker's range does, where csv-core
        /// would take BOM bytes at the very start for a byte order mark.)
        #[test]
        fn reads_what_csv_core_reads(
            bytes in proptest::collection::vec(
                prop_oneof![
                    Just(b','), Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'a'), Just(b'7'),
                    Just(0xEF), Just(0xBB), Just(0xBF), Just(0xFF), Just(b'\t'), Just(b'\''),
                    Just(b'"'), Just(b'"'),
                ],
                0..80,
            ),
            capacity in prop_oneof![1..8usize, Just(8192)],
        ) {
            let bytes = [b"\n".as_slice(), &bytes].concat();
            prop_assert_eq!(by_records(&bytes, capacity), by_csv_core(&bytes));
        }

        /// Lines longer than a block: every comma, in order.
        #[test]
        fn finds_every_comma(
            line in proptest::collection::vec(prop_oneof![Just(b','), Just(b'a'), Just(0xFF)], 0..200)
        ) {
            let mut ends = Vec::new();
            push_commas(&line, &mut ends);
            let expected: Vec<usize> = (0..line.len()).filter(|&i| line[i] == b',').collect();
            prop_assert_eq!(ends, expected);
        }
    }
}
