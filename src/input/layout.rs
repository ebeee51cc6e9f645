//! Cutting a file into one byte range per worker, on record boundaries.
//!
//! A CSV newline ends a record only outside quotes, and the quote rules are csv-core's: a
//! quote opens a quoted field only at the start of a field (or right after the closing
//! quote of an escaped `""`), anywhere else it is a literal. Whether a newline is inside
//! quotes depends on everything before it, so the file is first cut into equal *parts*,
//! one per worker, and each part is summarized (`Part`) for every state it may be entered
//! in: outside quotes, just after a closing quote, or inside quotes. The summaries, put
//! together in file order, give the true state at every part, hence every cut and the
//! line it is on (`layout`). Each worker can summarize only its own part and exchange
//! summaries with the others (what a run does), or summarize every part itself (`scan`).
//! Quotes are found with `memchr` and newlines counted with `bytecount` (SIMD).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use serde::{Deserialize, Serialize};

use super::block::with_block;

/// One worker's byte range `[start, end)` and the line number its first record is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub start: u64,
    pub end: u64,
    pub first_line: u64,
}

/// The cuts of a file, and where a CSV quote opened that the file never closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub chunks: Vec<Chunk>,
    pub unclosed_quote: Option<u64>,
}

/// Where a position stands with respect to CSV quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum QuoteState {
    Outside,
    /// Outside, and the byte before was a closing quote: a quote here opens again (`""`).
    JustClosed,
    Inside,
}

const ENTRY_STATES: [QuoteState; 3] = [
    QuoteState::Outside,
    QuoteState::JustClosed,
    QuoteState::Inside,
];

/// What a part does when entered in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Passage {
    exit: QuoteState,
    /// The first newline outside quotes: its offset, and the newlines of the part up to
    /// and including it.
    first_cut: Option<(u64, u64)>,
    /// Where the quoted field still open at the part's end opened, if inside the part.
    open_quote: Option<u64>,
}

impl Passage {
    fn new(entry: QuoteState) -> Passage {
        Passage {
            exit: entry,
            first_cut: None,
            open_quote: None,
        }
    }

    /// Bytes without a quote, at `offset`; `line_ends_to(i)` counts the part's line ends
    /// up to and including the span's byte `i` (asked for once, at the first cut).
    fn span(&mut self, bytes: &[u8], offset: u64, line_ends_to: impl Fn(usize) -> u64) {
        if bytes.is_empty() || self.exit == QuoteState::Inside {
            return;
        }
        self.exit = QuoteState::Outside;
        if self.first_cut.is_none() {
            if let Some(i) = memchr::memchr(b'\n', bytes) {
                self.first_cut = Some((offset + i as u64, line_ends_to(i)));
            }
        }
    }

    /// A quote at `offset`, after the byte `before`.
    fn quote(&mut self, offset: u64, before: Option<u8>) {
        let opens = match self.exit {
            QuoteState::Inside => {
                self.exit = QuoteState::JustClosed;
                return;
            }
            QuoteState::JustClosed => true,
            QuoteState::Outside => matches!(before, Some(b',' | b'\n' | b'\r')),
        };
        if opens {
            self.exit = QuoteState::Inside;
            self.open_quote = Some(offset);
        }
    }
}

/// A summary of one part of a file, for every state it may be entered in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    start: u64,
    end: u64,
    /// The size of the whole file, so that parts of different versions are not mixed.
    file_len: u64,
    newlines: u64,
    passages: [Passage; 3],
}

/// Where the parts of a file of `len` bytes whose records start at `data_start` begin,
/// and the last one ends: part `k > 0` begins just before the `k`-th of `peers` equal
/// shares, so that a newline that ends the byte before a share counts as its cut.
fn part_bounds(data_start: u64, len: u64, peers: usize) -> Vec<u64> {
    let span = len.saturating_sub(data_start);
    let mut bounds = vec![data_start.min(len)];
    for k in 1..peers as u64 {
        let target = data_start + (u128::from(span) * u128::from(k) / peers as u128) as u64;
        bounds.push(target.saturating_sub(1).max(data_start).min(len));
    }
    bounds.push(len);
    bounds
}

/// Summarizes part `index` of `peers` of `file`, whose records start at `data_start`.
/// Quotes count only in CSV.
pub fn summarize(
    file: &mut (impl Read + Seek),
    data_start: u64,
    peers: usize,
    index: usize,
    csv: bool,
) -> io::Result<Part> {
    with_block(|block| summarize_in(block, file, data_start, peers, index, csv))
}

/// `summarize`, reading through `block`.
fn summarize_in(
    block: &mut [u8],
    file: &mut (impl Read + Seek),
    data_start: u64,
    peers: usize,
    index: usize,
    csv: bool,
) -> io::Result<Part> {
    let file_len = file.seek(SeekFrom::End(0))?;
    let bounds = part_bounds(data_start, file_len, peers.max(1));
    let (start, end) = (bounds[index], bounds[index + 1]);
    let mut before = match start {
        0 => None,
        _ => {
            file.seek(SeekFrom::Start(start - 1))?;
            let mut byte = [0u8];
            file.read_exact(&mut byte)?;
            Some(byte[0])
        }
    };
    file.seek(SeekFrom::Start(start))?;
    let mut passages = ENTRY_STATES.map(Passage::new);
    let mut newlines = 0;
    let mut offset = start;
    let mut part = file.by_ref().take(end - start);
    loop {
        let read = read_full(&mut part, block)?;
        if read == 0 {
            break;
        }
        let bytes = &block[..read];
        // Line ends are counted once a block: quotes are not line ends, so the spans
        // between quotes add up to the same count (and one count per span was most of
        // the time on files with a quoted column).
        let line_ends_to = |i: usize| newlines + line_ends(&bytes[..=i], before, csv);
        let found = csv.then(|| memchr::memchr_iter(b'"', bytes));
        let mut from = 0;
        for quote in found.into_iter().flatten().chain(std::iter::once(read)) {
            let between = &bytes[from..quote];
            for passage in &mut passages {
                passage.span(between, offset + from as u64, |i| line_ends_to(from + i));
            }
            if quote == read {
                break;
            }
            let at = offset + quote as u64;
            let previous = if quote > 0 {
                Some(bytes[quote - 1])
            } else {
                before
            };
            for passage in &mut passages {
                passage.quote(at, previous);
            }
            from = quote + 1;
        }
        newlines += line_ends(bytes, before, csv);
        before = bytes.last().copied();
        offset += read as u64;
    }
    Ok(Part {
        start,
        end,
        file_len,
        newlines,
        passages,
    })
}

/// The cuts of a file from the summaries of all its parts, in order; `data_line` is the
/// line its records start on. `None` if the parts are not of one version of one file.
pub fn layout(parts: &[Part], data_line: u64) -> Option<Layout> {
    let first = parts.first()?;
    let len = first.file_len;
    let bounds = part_bounds(first.start, len, parts.len());
    let fits = parts
        .iter()
        .enumerate()
        .all(|(k, part)| (part.start, part.end, part.file_len) == (bounds[k], bounds[k + 1], len));
    if !fits {
        return None;
    }
    // Each part entered in its true state, with the newlines before it.
    let mut state = QuoteState::Outside;
    let mut before = data_line - 1;
    let mut open_quote = None;
    let mut taken = Vec::with_capacity(parts.len());
    for part in parts {
        let passage = part.passages[state as usize];
        taken.push((passage, before));
        open_quote = match passage.exit {
            QuoteState::Inside => passage.open_quote.or(open_quote),
            _ => None,
        };
        state = passage.exit;
        before += part.newlines;
    }
    let end = (len, 1 + before);
    // The cut of share `k` is just after the first newline outside quotes from part `k`.
    let cut = |k: usize| {
        taken[k..]
            .iter()
            .find_map(|(passage, before)| {
                passage
                    .first_cut
                    .map(|(at, newlines)| (at + 1, 1 + before + newlines))
            })
            .unwrap_or(end)
    };
    let mut cuts = vec![(first.start, data_line)];
    cuts.extend((1..parts.len()).map(cut));
    cuts.push(end);
    let chunks = cuts
        .windows(2)
        .map(|w| Chunk {
            start: w[0].0,
            end: w[1].0,
            first_line: w[0].1,
        })
        .collect();
    Some(Layout {
        chunks,
        unclosed_quote: (state == QuoteState::Inside)
            .then_some(open_quote)
            .flatten(),
    })
}

/// Cuts `file` (whose records start at `data_start`) into `peers` chunks, summarizing
/// every part here.
pub fn scan(
    file: &mut (impl Read + Seek),
    data_start: u64,
    peers: usize,
    csv: bool,
) -> io::Result<Layout> {
    let parts = (0..peers.max(1))
        .map(|index| summarize(file, data_start, peers, index, csv))
        .collect::<io::Result<Vec<Part>>>()?;
    let data_line = 1 + newlines_before(file, data_start, csv)?;
    layout(&parts, data_line).ok_or_else(|| io::Error::other("the file changed while it was read"))
}

/// The line ends (`line_ends`) in the first `offset` bytes of `file`.
pub fn newlines_before(file: &mut (impl Read + Seek), offset: u64, csv: bool) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut head = file.by_ref().take(offset);
    let mut newlines = 0;
    let mut before = None;
    with_block(|block| loop {
        let read = read_full(&mut head, block)?;
        if read == 0 {
            return Ok(newlines);
        }
        newlines += line_ends(&block[..read], before, csv);
        before = Some(block[read - 1]);
    })
}

/// The line ends in `bytes` (which follow the byte `before`): in CSV every record
/// terminator the readers accept, `\n`, `\r\n` and a lone `\r`, each once (counted at its
/// `\r`, or at a `\n` that no `\r` precedes); in JSON Lines, where a `\r` is whitespace,
/// only `\n`. Every line number of the readers comes from here.
pub fn line_ends(bytes: &[u8], before: Option<u8>, csv: bool) -> u64 {
    let newlines = bytecount::count(bytes, b'\n') as u64;
    if !csv {
        return newlines;
    }
    let returns = bytecount::count(bytes, b'\r') as u64;
    if returns == 0 && before != Some(b'\r') {
        return newlines;
    }
    let pairs = memchr::memmem::find_iter(bytes, b"\r\n").count() as u64
        + u64::from(before == Some(b'\r') && bytes.first() == Some(&b'\n'));
    newlines + returns - pairs
}

/// The line of each rejected CSV record of a worker's range, counted forward from the
/// last one asked for: the range is read at most once more, however many rows are
/// rejected.
pub struct LineCursor {
    byte: u64,
    line: u64,
    before: Option<u8>,
}

impl LineCursor {
    /// A cursor at `byte`, the start of `line`, after the byte `before`.
    pub fn new(byte: u64, line: u64, before: Option<u8>) -> LineCursor {
        LineCursor { byte, line, before }
    }

    /// The line of the record at `byte`. The csv reader places a record that follows
    /// blank lines at the start of those blank lines, so they are skipped too. Records
    /// are asked for in file order; an earlier byte (the line end just before the range)
    /// is where the cursor is.
    pub fn record_line(&mut self, path: &std::path::Path, byte: u64) -> u64 {
        let mut count = || -> io::Result<()> {
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(self.byte))?;
            let mut block = vec![0u8; 1 << 16];
            loop {
                let read = read_full(&mut file, &mut block)?;
                if read == 0 {
                    return Ok(());
                }
                let block = &block[..read];
                // Up to the record's byte, then over the line ends that start there.
                let before_record = block.len().min(byte.saturating_sub(self.byte) as usize);
                let blank = block[before_record..]
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
                let counted = &block[..before_record + blank];
                self.line += line_ends(counted, self.before, true);
                self.byte += counted.len() as u64;
                self.before = counted.last().copied().or(self.before);
                if counted.len() < read {
                    return Ok(());
                }
            }
        };
        // Counting is only for the message: a read error leaves the line counted so far.
        let _ = count();
        self.line
    }
}

fn read_full(file: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
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

    /// The summaries of every part of `text`, as each worker makes its own.
    fn parts_of(text: &str, data_start: u64, peers: usize) -> Vec<Part> {
        with_file(text, |file| {
            (0..peers)
                .map(|index| summarize(file, data_start, peers, index, true).unwrap())
                .collect()
        })
    }

    fn layout_of(text: &str, data_start: u64, peers: usize, csv: bool) -> Layout {
        with_file(text, |file| scan(file, data_start, peers, csv).unwrap())
    }

    fn with_file<T>(text: &str, read: impl FnOnce(&mut File) -> T) -> T {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("discounting-layout-{}-{n}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let result = read(&mut File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        result
    }

    /// What `summarize` must find, one byte at a time: for each entry state, the state at
    /// the part's end, its first newline outside quotes and the line ends up to it, and
    /// where a quote still open at the end opened.
    fn summary_by_bytes(text: &[u8], start: usize, end: usize, csv: bool) -> (u64, [Passage; 3]) {
        let line_end = |i: usize| match text[i] {
            b'\n' => !(csv && i > 0 && text[i - 1] == b'\r'),
            b'\r' => csv,
            _ => false,
        };
        let passages = ENTRY_STATES.map(|entry| {
            let mut passage = Passage::new(entry);
            let mut ends = 0;
            for i in start..end {
                ends += u64::from(line_end(i));
                if csv && text[i] == b'"' {
                    let before = i.checked_sub(1).map(|j| text[j]);
                    passage.quote(i as u64, before);
                } else if passage.exit != QuoteState::Inside {
                    passage.exit = QuoteState::Outside;
                    if passage.first_cut.is_none() && text[i] == b'\n' {
                        passage.first_cut = Some((i as u64, ends));
                    }
                }
            }
            passage
        });
        let newlines = (start..end).filter(|&i| line_end(i)).count() as u64;
        (newlines, passages)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Line ends counted once a block, quotes found with memchr, blocks of any size:
        /// the same summary as a walk over the bytes.
        #[test]
        fn a_summary_is_what_a_walk_over_the_bytes_finds(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["a", "bc", ",", "\"", "\"\"", "\n", "\r", "\r\n"]),
                0..60,
            ),
            data_start in 0usize..8,
            peers in 1usize..5,
            block in proptest::prop_oneof![1usize..9, proptest::strategy::Just(1 << 18)],
            csv in proptest::bool::ANY,
        ) {
            let text = pieces.concat();
            let data_start = data_start.min(text.len()) as u64;
            let bounds = part_bounds(data_start, text.len() as u64, peers);
            for index in 0..peers {
                let part = with_file(&text, |file| {
                    summarize_in(&mut vec![0; block], file, data_start, peers, index, csv).unwrap()
                });
                let (start, end) = (bounds[index] as usize, bounds[index + 1] as usize);
                let (newlines, passages) = summary_by_bytes(text.as_bytes(), start, end, csv);
                proptest::prop_assert_eq!((part.start, part.end), (start as u64, end as u64));
                proptest::prop_assert_eq!(part.newlines, newlines);
                proptest::prop_assert_eq!(part.passages, passages);
            }
        }
    }

    #[test]
    fn parts_of_two_versions_of_a_file_do_not_fit_together() {
        let before = "h\na,1\nb,2\nc,3\n";
        let after = "h\na,1\nb,2\nc,3\nd,4\n";
        let mut parts = parts_of(before, 2, 2);
        assert!(layout(&parts, 2).is_some());
        parts[1] = parts_of(after, 2, 2).swap_remove(1);
        assert_eq!(layout(&parts, 2), None);
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
            }
        );
        assert_eq!(
            layout.chunks[1],
            Chunk {
                start: 10,
                end: 18,
                first_line: 4,
            }
        );
        assert_eq!(layout.unclosed_quote, None);
    }

    #[test]
    fn a_newline_inside_quotes_is_not_a_cut() {
        let text = "h\n\"a\nb\nc\nd\",1\ne,2\n";
        let layout = layout_of(text, 2, 3, true);
        let starts: Vec<u64> = layout.chunks.iter().map(|c| c.start).collect();
        assert_eq!(starts, vec![2, 14, 14]);
        assert_eq!(layout.chunks[1].first_line, 6);
    }

    #[test]
    fn an_escaped_quote_split_between_two_parts_keeps_the_field_open() {
        // Part 0 is `"xx"` and ends on what may be a closing quote; part 1 starts with the
        // quote that makes it `""`, so the newline after it is inside the field.
        let text = "h\n\"xx\"\"\ny\",1\n";
        let layout = layout_of(text, 2, 2, true);
        let chunks: Vec<(u64, u64, u64)> = layout
            .chunks
            .iter()
            .map(|c| (c.start, c.end, c.first_line))
            .collect();
        assert_eq!(chunks, vec![(2, 13, 2), (13, 13, 4)]);
        assert_eq!(layout.unclosed_quote, None);
    }

    #[test]
    fn escaped_and_literal_quotes_keep_the_state_right() {
        // "x""y" is one quoted field; a"b is a literal quote inside an unquoted field.
        let text = "h\n\"x\"\"y\",a\"b\nq,2\n";
        assert_eq!(layout_of(text, 2, 1, true).unclosed_quote, None);
        let open = "h\nok,1\n\"never closed,2\nz,3\n";
        // The quote that opens "never closed is the file's eighth byte.
        assert_eq!(layout_of(open, 2, 1, true).unclosed_quote, Some(7));
        assert_eq!(layout_of(open, 2, 3, true).unclosed_quote, Some(7));
    }

    #[test]
    fn more_workers_than_records_get_empty_chunks() {
        let layout = layout_of("h\na\n", 2, 4, false);
        assert_eq!(layout.chunks.iter().filter(|c| c.start < c.end).count(), 1);
        assert_eq!(layout.chunks.last().unwrap().end, 4);
    }
}
