//! Cutting a file into one byte range per worker, on record boundaries.
//!
//! Every worker scans the whole file for quotes (`memchr`) and counts the newlines
//! between them (`bytecount`, SIMD), which costs a small fraction of parsing, and so
//! every worker computes the same cuts without talking to the others. A CSV newline ends a record only outside quotes; the
//! quote rules are csv-core's: a quote opens a quoted field only at the start of a field
//! (or right after the closing quote of an escaped `""`), anywhere else it is a literal.

use std::fs::File;
use std::io::{self, Read};

/// One worker's byte range `[start, end)` and the line number its first record is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub start: u64,
    pub end: u64,
    pub first_line: u64,
    /// Whether a CSV quote is in the range: without one, a record is its line's fields.
    pub has_quotes: bool,
}

/// The cuts of a file, and whether a CSV quote is still open at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub chunks: Vec<Chunk>,
    /// The line on which a quoted field opened that the file never closes.
    pub unclosed_quote_line: Option<u64>,
}

/// Scans `file` (whose records start at `data_start`) and cuts it into `peers` chunks.
pub fn scan(file: &mut File, data_start: u64, peers: usize, csv: bool) -> io::Result<Layout> {
    let len = file.metadata()?.len();
    let span = len.saturating_sub(data_start);
    let targets: Vec<u64> = (1..peers as u64)
        .map(|k| data_start + (u128::from(span) * u128::from(k) / peers as u128) as u64)
        .collect();

    let mut cuts: Vec<(u64, u64)> = Vec::with_capacity(peers + 1);
    let mut quoted = vec![false; peers.max(1)];
    let mut data_line = None;
    let mut newlines: u64 = 0;
    let mut in_quotes = false;
    let mut last_close: Option<u64> = None;
    let mut quote_line = 0;
    let mut prev_byte: Option<u8> = None;
    let mut block = vec![0u8; 1 << 18];
    let mut offset: u64 = 0;
    // A UTF-8 byte order mark is not part of the first field.
    let mut field_start_at: u64 = 0;

    loop {
        let read = read_full(file, &mut block)?;
        if read == 0 {
            break;
        }
        let bytes = &block[..read];
        if offset == 0 && bytes.starts_with(b"\xEF\xBB\xBF") {
            field_start_at = 3;
        }
        if data_line.is_none() && data_start < offset + read as u64 {
            let header = &bytes[..(data_start - offset) as usize];
            data_line = Some(1 + newlines + bytecount::count(header, b'\n') as u64);
        }
        // Quotes are rare: find each, and between two count newlines (SIMD) and look for
        // cuts, which a newline makes only outside quotes.
        let quotes = csv
            .then(|| memchr::memchr_iter(b'"', bytes))
            .into_iter()
            .flatten();
        let mut from = 0;
        for quote in quotes.chain(std::iter::once(read)) {
            let between = &bytes[from..quote];
            if !in_quotes {
                let mut search = from;
                while let Some(&target) = targets.get(cuts.len()) {
                    // A cut is just after the first newline at or after `target - 1`.
                    let begin = (target.saturating_sub(1).saturating_sub(offset) as usize)
                        .clamp(search, quote);
                    let Some(found) = memchr::memchr(b'\n', &bytes[begin..quote]) else {
                        break;
                    };
                    let at = begin + found;
                    let line = 1 + newlines + bytecount::count(&bytes[from..=at], b'\n') as u64;
                    let next = offset + at as u64 + 1;
                    while targets.get(cuts.len()).is_some_and(|&t| t <= next) {
                        cuts.push((next, line));
                    }
                    search = at + 1;
                }
            }
            newlines += bytecount::count(between, b'\n') as u64;
            if quote == read {
                break;
            }
            let at = offset + quote as u64;
            // Every cut before the quote is known by now, so it is in chunk `cuts.len()`.
            if at >= data_start {
                let chunk = cuts.len().min(quoted.len() - 1);
                quoted[chunk] = true;
            }
            if in_quotes {
                in_quotes = false;
                last_close = Some(at);
            } else {
                let before = if quote > 0 {
                    Some(bytes[quote - 1])
                } else {
                    prev_byte
                };
                let opens = at == field_start_at
                    || matches!(before, Some(b',') | Some(b'\n') | Some(b'\r'))
                    || last_close.is_some_and(|c| c + 1 == at);
                if opens {
                    in_quotes = true;
                    quote_line = 1 + newlines;
                }
            }
            from = quote + 1;
        }
        prev_byte = bytes.last().copied();
        offset += read as u64;
    }

    let data_line = data_line.unwrap_or(1 + newlines);
    while cuts.len() < targets.len() {
        cuts.push((len, 1 + newlines));
    }
    let mut bounds = vec![(data_start.min(len), data_line)];
    bounds.extend(cuts);
    bounds.push((len, 1 + newlines));
    let chunks = bounds
        .windows(2)
        .zip(quoted)
        .map(|(w, has_quotes)| Chunk {
            start: w[0].0,
            end: w[1].0,
            first_line: w[0].1,
            has_quotes,
        })
        .collect();
    Ok(Layout {
        chunks,
        unclosed_quote_line: in_quotes.then_some(quote_line),
    })
}

/// The line a CSV record is really on. The csv reader places a record that follows
/// blank lines at the start of those blank lines (`byte`, on line `line`), so the line
/// terminators from there on are counted here. Only called for a rejected row.
pub fn record_line(path: &std::path::Path, byte: u64, line: u64) -> u64 {
    let count = || -> io::Result<u64> {
        let mut file = File::open(path)?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(byte))?;
        let mut block = vec![0u8; 1 << 12];
        let mut newlines = 0;
        loop {
            let read = read_full(&mut file, &mut block)?;
            let run = block[..read]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'));
            let (mut length, mut ends) = (0, 0);
            for &b in run {
                length += 1;
                ends += u64::from(b == b'\n');
            }
            newlines += ends;
            if length < read || read == 0 {
                return Ok(line + newlines);
            }
        }
    };
    count().unwrap_or(line)
}

fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn layout_of(text: &str, data_start: u64, peers: usize, csv: bool) -> Layout {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("discounting-layout-{}-{n}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let mut file = File::open(&path).unwrap();
        let layout = scan(&mut file, data_start, peers, csv).unwrap();
        std::fs::remove_file(&path).unwrap();
        layout
    }

    #[test]
    fn cuts_only_between_records() {
        // header "h\n" is 2 bytes; records of 4 bytes each.
        let text = "h\na,1\nb,2\nc,3\nd,4\n";
        let layout = layout_of(text, 2, 2, true);
        assert_eq!(layout.chunks.len(), 2);
        assert_eq!(
            layout.chunks[0],
            Chunk {
                start: 2,
                end: 10,
                first_line: 2,
                has_quotes: false,
            }
        );
        assert_eq!(
            layout.chunks[1],
            Chunk {
                start: 10,
                end: 18,
                first_line: 4,
                has_quotes: false,
            }
        );
        assert_eq!(layout.unclosed_quote_line, None);
    }

    #[test]
    fn a_newline_inside_quotes_is_not_a_cut() {
        let text = "h\n\"a\nb\nc\nd\",1\ne,2\n";
        let layout = layout_of(text, 2, 3, true);
        let starts: Vec<u64> = layout.chunks.iter().map(|c| c.start).collect();
        assert_eq!(starts, vec![2, 14, 14]);
        assert_eq!(layout.chunks[1].first_line, 6);
        let quoted: Vec<bool> = layout.chunks.iter().map(|c| c.has_quotes).collect();
        assert_eq!(quoted, vec![true, false, false]);
    }

    #[test]
    fn escaped_and_literal_quotes_keep_the_state_right() {
        // "x""y" is one quoted field; a"b is a literal quote inside an unquoted field.
        let text = "h\n\"x\"\"y\",a\"b\nq,2\n";
        assert_eq!(layout_of(text, 2, 1, true).unclosed_quote_line, None);
        let open = "h\nok,1\n\"never closed,2\nz,3\n";
        assert_eq!(layout_of(open, 2, 1, true).unclosed_quote_line, Some(3));
    }

    #[test]
    fn more_workers_than_records_get_empty_chunks() {
        let layout = layout_of("h\na\n", 2, 4, false);
        assert_eq!(layout.chunks.iter().filter(|c| c.start < c.end).count(), 1);
        assert_eq!(layout.chunks.last().unwrap().end, 4);
    }
}
