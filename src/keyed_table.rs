//! One worker's part of a keyed table: a sorted run of rows plus a hash map of the
//! changes made since the run was built (a two-level LSM tree).
//!
//! A hash map of ten million orders keeps up to half its buckets empty, and every row of
//! a snapshot inserted into it is a cache miss and, on a machine whose fresh pages are
//! slow to fault in, a page touched twice. A sorted run holds exactly its rows and is
//! built by one pass over an epoch's sorted changes. So a large epoch (a base snapshot)
//! is merged into the run; a small one (an update file) goes into the map; and the map is
//! merged into the run once it holds an eighth as many rows, which keeps a lookup at one
//! probe of the map and one search of the run, and a merge's cost amortized over
//! the changes that filled the map.

use std::collections::HashMap;
use std::hash::Hash;

use crate::model::{Keyed, Position, UpsertCounters};

/// A hash map with a fast hasher (keys are the job's own ids and codes).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One epoch's changes as they arrive, in any order.
///
/// Changes are sorted by key (and position) before they are applied, and most arrive
/// nearly sorted: a file is usually in key order, each worker reads a range of it, and
/// each sender's batches come in the order it read them. So the batch keeps a few
/// *lanes*, each already sorted, and puts each arriving run of changes in the lane whose
/// last change is the greatest one not after it (which takes as many lanes as there are
/// senders); a change that fits no lane goes to an overflow that is sorted at the end,
/// and so does the rest of an epoch whose changes show no key order (an update file in
/// random order). The lanes and the sorted overflow are merged as the table takes them.
pub struct Batch<K, V> {
    lanes: Vec<Chunked<Keyed<K, V>>>,
    overflow: Chunked<Keyed<K, V>>,
    /// Changes that left the lane the change before them (in the same container) went to.
    misfits: usize,
    /// Once the input shows no useful order, every later change goes to the overflow.
    unordered: bool,
}

/// The most lanes a batch keeps: enough for one per sending worker of a large cluster.
const MAX_LANES: usize = 16;

/// Past this many changes in the overflow, more of them than in lanes means the input is
/// in no useful order.
const UNORDERED: usize = 1 << 12;

/// Past this many misfits, and one in eight changes or more, the input is in no useful
/// order: a small update file's changes in random key order each looked through every
/// lane (some 500 instructions a change), then were merged from sixteen short lanes.
const MISFITS: usize = 64;

impl<K, V> Default for Batch<K, V> {
    fn default() -> Self {
        Batch {
            lanes: Vec::new(),
            overflow: Chunked::default(),
            misfits: 0,
            unordered: false,
        }
    }
}

/// The order changes are applied in: by key, then by position in the file.
fn sort_key<K, V>(change: &Keyed<K, V>) -> (&K, Position) {
    (&change.0, change.1)
}

fn in_order<K: Ord, V>(a: &Keyed<K, V>, b: &Keyed<K, V>) -> bool {
    sort_key(a) <= sort_key(b)
}

impl<K: Ord, V> Batch<K, V> {
    /// Adds the changes of one arriving container.
    pub fn extend(&mut self, changes: impl IntoIterator<Item = Keyed<K, V>>) {
        // Once most changes have fit no lane the input is not in key order: stop looking.
        let in_lanes: usize = self.lanes.iter().map(|lane| lane.len).sum();
        if self.overflow.len > UNORDERED && self.overflow.len > in_lanes {
            self.unordered = true;
        }
        let mut lane = None;
        for change in changes {
            if self.unordered {
                self.overflow.push(change);
                continue;
            }
            let fits =
                |lane: &Chunked<Keyed<K, V>>| lane.last().is_none_or(|l| in_order(l, &change));
            if !lane.is_some_and(|i| fits(&self.lanes[i])) {
                // A sender's container is in key order when its input is: a change that
                // leaves the lane of the one before it says the input is not.
                if lane.is_some() {
                    self.misfits += 1;
                    if self.misfits > MISFITS && self.misfits * 8 > self.len() {
                        self.unordered = true;
                        self.overflow.push(change);
                        continue;
                    }
                }
                lane = self.best_lane(&change);
            }
            match lane {
                Some(i) => self.lanes[i].push(change),
                None => self.overflow.push(change),
            }
        }
    }

    /// The lane whose last change is the greatest one not after `change`, or a new lane.
    fn best_lane(&mut self, change: &Keyed<K, V>) -> Option<usize> {
        let best = (0..self.lanes.len())
            .filter_map(|i| self.lanes[i].last().map(|last| (i, last)))
            .filter(|(_, last)| in_order(last, change))
            .max_by(|(_, a), (_, b)| sort_key(a).cmp(&sort_key(b)))
            .map(|(i, _)| i);
        if best.is_none() && self.lanes.len() < MAX_LANES {
            self.lanes.push(Chunked::default());
            return Some(self.lanes.len() - 1);
        }
        best
    }

    pub fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.len).sum::<usize>() + self.overflow.len
    }

    /// Only the changes after `position` (those a truncate there leaves standing).
    pub fn after(self, position: Position) -> Batch<K, V> {
        let mut kept = Batch::default();
        kept.extend(self.into_sorted().filter(|change| change.1 > position));
        kept
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The changes in key order, and in position order within a key.
    fn into_sorted(self) -> impl Iterator<Item = Keyed<K, V>> {
        // Each overflow chunk, once sorted, is one more lane.
        let overflow = self.overflow.chunks.into_iter().map(|mut chunk| {
            chunk.sort_unstable_by(|a, b| sort_key(a).cmp(&sort_key(b)));
            vec![chunk]
        });
        let lanes = self
            .lanes
            .into_iter()
            .map(|lane| lane.chunks)
            .chain(overflow);
        itertools::kmerge_by(lanes.map(|chunks| chunks.into_iter().flatten()), in_order)
    }
}

/// A vector in chunks that double in size up to `MAX_CHUNK` elements: a large snapshot
/// streams in without a vector reallocating (which holds and touches the old and the new
/// copy at once), and each chunk is freed as soon as it has been read.
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

/// The most elements in one chunk.
const MAX_CHUNK: usize = 1 << 20;

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    fn push(&mut self, value: T) {
        if self.chunks.last().is_none_or(|c| c.len() == c.capacity()) {
            let size = self.len.clamp(1024, MAX_CHUNK);
            self.chunks.push(Vec::with_capacity(size));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(value);
            self.len += 1;
        }
    }

    fn last(&self) -> Option<&T> {
        self.chunks.last().and_then(|c| c.last())
    }
}

/// What an epoch does to one key: its value at the end of the epoch (`None`: absent),
/// and whether the first change was a delete (which is a missing delete if the key was
/// not there before the epoch).
struct Outcome<K, V> {
    key: K,
    last: Option<V>,
    first_deletes: bool,
}

/// Folds each key's changes, sorted by key and position, into its outcome, counting
/// every change but the first's presence-dependent part.
fn outcomes<'a, K: Eq + 'a, V: 'a>(
    changes: impl Iterator<Item = Keyed<K, V>> + 'a,
    counters: &'a mut UpsertCounters,
) -> impl Iterator<Item = Outcome<K, V>> + 'a {
    let mut changes = changes.peekable();
    std::iter::from_fn(move || {
        let (key, _, first) = changes.next()?;
        let first_deletes = first.is_none();
        counters.count(&first, true);
        let mut last = first;
        while let Some((_, _, next)) = changes.next_if(|(k, _, _)| *k == key) {
            counters.count(&next, last.is_some());
            last = next;
        }
        Some(Outcome {
            key,
            last,
            first_deletes,
        })
    })
}

/// Rows sorted by key, each key once, with every `FENCE_EVERY`th key copied into a small
/// index: a lookup searches the index (a few megabytes at ten million rows, mostly in
/// cache) and then one block of rows, rather than a chain of cache misses across the
/// whole run.
///
/// For keys whose place can be guessed (`Interpolate`: ids, mostly dense), the lookup
/// first reads the fence and the row where the key would stand were the keys evenly
/// spread, and searches outward from there only when the guess misses: in a table larger
/// than the cache each step of a binary search was a cache miss, and those misses were
/// most of an update epoch's time on ten million orders.
pub struct SortedRun<K, V> {
    rows: Vec<(K, V)>,
    fences: Vec<K>,
}

/// Keys whose place among sorted keys can be guessed from two known keys.
pub trait Interpolate: Sized {
    /// About where `key` stands among `steps` evenly spread places from `low` (place 0)
    /// to `high` (place `steps`); `None` where no guess can be made (text, a key below
    /// `low`). A guess may be wrong, never harmful: the lookup searches on from it.
    fn place(_low: &Self, _high: &Self, _key: &Self, _steps: usize) -> Option<usize> {
        None
    }
}

/// Text keys (discount codes) are not guessed.
impl Interpolate for compact_str::CompactString {}

macro_rules! interpolate_integers {
    ($($int:ty),*) => {$(
        impl Interpolate for $int {
            fn place(low: &Self, high: &Self, key: &Self, steps: usize) -> Option<usize> {
                let span = i128::from(*high) - i128::from(*low);
                let from_low = i128::from(*key) - i128::from(*low);
                let steps = i128::try_from(steps).ok()?;
                if span <= 0 {
                    return None;
                }
                usize::try_from(from_low.checked_mul(steps)? / span).ok()
            }
        }
    )*};
}

interpolate_integers!(i32, i64, u32, u64);

const FENCE_EVERY: usize = 32;

impl<K, V> Default for SortedRun<K, V> {
    fn default() -> Self {
        SortedRun {
            rows: Vec::new(),
            fences: Vec::new(),
        }
    }
}

impl<K: Ord + Clone, V> SortedRun<K, V> {
    /// The run of `rows`, which are sorted by key, each key once.
    pub fn from_sorted(rows: Vec<(K, V)>) -> Self {
        debug_assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
        let fences = rows
            .iter()
            .step_by(FENCE_EVERY)
            .map(|(k, _)| k.clone())
            .collect();
        SortedRun { rows, fences }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn into_rows(self) -> Vec<(K, V)> {
        self.rows
    }
}

impl<K: Ord + Interpolate, V> SortedRun<K, V> {
    pub fn get(&self, key: &K) -> Option<&V> {
        let block = self.block_of(key)?;
        let start = block * FENCE_EVERY;
        let rows = &self.rows[start..self.rows.len().min(start + FENCE_EVERY)];
        // The next block's first key bounds this block from above; the last block has its
        // own last key.
        let guess = match self.fences.get(block + 1) {
            Some(next) => K::place(&self.fences[block], next, key, FENCE_EVERY),
            None => K::place(
                &self.fences[block],
                &rows[rows.len() - 1].0,
                key,
                rows.len() - 1,
            ),
        };
        let index = partition_point_from(rows, guess, |(k, _)| k < key);
        rows.get(index).filter(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The block whose first key is the greatest at or below `key`; `None` below the run.
    fn block_of(&self, key: &K) -> Option<usize> {
        let fences = &self.fences;
        let (first, last) = (fences.first()?, fences.last()?);
        let guess = K::place(first, last, key, fences.len() - 1);
        partition_point_from(fences, guess, |fence| fence <= key).checked_sub(1)
    }
}

/// `items.partition_point(below)`, searched outward from `guess` (where it may be) in
/// steps that double: a guess a few places off reads the places beside it, mostly in the
/// same cache lines, where a binary search would jump across the whole slice. Without a
/// guess, a binary search.
fn partition_point_from<T>(items: &[T], guess: Option<usize>, below: impl Fn(&T) -> bool) -> usize {
    let Some(at) = guess else {
        return items.partition_point(below);
    };
    if at < items.len() && below(&items[at]) {
        // The point is past `bound`, and not past `bound + step` once the loop ends.
        let (mut bound, mut step) = (at, 1);
        while bound + step < items.len() && below(&items[bound + step]) {
            bound += step;
            step *= 2;
        }
        let high = items.len().min(bound + step);
        bound + 1 + items[bound + 1..high].partition_point(below)
    } else {
        // The point is at or before `bound`, and past `bound - step` once the loop ends.
        let (mut bound, mut step) = (at.min(items.len()), 1);
        while step <= bound && !below(&items[bound - step]) {
            bound -= step;
            step *= 2;
        }
        let low = bound.saturating_sub(step);
        low + items[low..bound].partition_point(below)
    }
}

/// A keyed table: the rows one worker owns, in segments of consecutive keys.
///
/// Each segment is a sorted run and the changes made to it since it was built; a segment
/// whose changes reach a sixteenth to an eighth of its run (its own `spread`) is merged
/// alone. So the epoch that crosses
/// that threshold pays a pass over one segment (at most twice `segment_rows` rows), not
/// over every row the worker holds: a worker's whole run of ten million orders took a
/// second to merge, in one epoch of a thousand changes.
pub struct KeyedTable<K, V> {
    /// At least one segment, in key order.
    segments: Vec<Segment<K, V>>,
    /// The least key of every segment but the first (which also takes every key below).
    bounds: Vec<K>,
    /// The rows a segment is built with; one that grows past twice as many is split.
    segment_rows: usize,
}

struct Segment<K, V> {
    run: SortedRun<K, V>,
    /// Changes since the run was built: the key's row, or `None` where it was deleted.
    recent: FastMap<K, Option<V>>,
    /// Where between a sixteenth and an eighth of its run (0 to 63 of 64 steps) this
    /// segment's changes are merged. Segments filled by evenly spread changes would
    /// otherwise all be merged in the same few epochs, which is the whole run again.
    spread: usize,
}

impl<K, V> Segment<K, V> {
    fn new(run: SortedRun<K, V>, spread: usize) -> Self {
        Segment {
            run,
            recent: FastMap::default(),
            spread: spread % 64,
        }
    }
}

/// Rows per segment: 4 MB of orders, merged in a few milliseconds.
const SEGMENT_ROWS: usize = 1 << 17;

impl<K, V> Default for KeyedTable<K, V> {
    fn default() -> Self {
        KeyedTable::with_segment_rows(SEGMENT_ROWS)
    }
}

impl<K, V> KeyedTable<K, V> {
    fn with_segment_rows(segment_rows: usize) -> Self {
        KeyedTable {
            segments: vec![Segment::new(SortedRun::default(), 0)],
            bounds: Vec::new(),
            segment_rows: segment_rows.max(1),
        }
    }
}

impl<K: Ord + Hash + Clone, V: PartialEq + Clone> Segment<K, V> {
    /// Whether its recent changes are due to be merged into its run.
    fn is_due(&self) -> bool {
        self.recent.len() > self.run.len() * (64 + self.spread) / 1024
    }

    /// Merges the recent changes into the run.
    fn compact(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        let mut recent: Vec<(K, Option<V>)> =
            std::mem::take(&mut self.recent).into_iter().collect();
        recent.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let changes = recent.len();
        let outcomes = recent.into_iter().map(|(key, last)| Outcome {
            key,
            last,
            first_deletes: false,
        });
        let run = std::mem::take(&mut self.run);
        // Room for every change to add a row: pages not written to are never touched.
        let mut merged = Vec::with_capacity(run.len() + changes);
        merge(
            run.into_rows().into_iter(),
            outcomes,
            |_, _| {},
            |row| merged.push(row),
        );
        // On Linux a large vector shrinks in place (mremap), without a copy.
        merged.shrink_to_fit();
        self.run = SortedRun::from_sorted(merged);
    }
}

impl<K: Ord + Hash + Clone + Interpolate, V: PartialEq + Clone> KeyedTable<K, V> {
    /// Applies one epoch's changes (per key the last in position order wins) and calls
    /// `changed(key, old, new)` for every row that changed.
    pub fn apply(
        &mut self,
        batch: Batch<K, V>,
        counters: &mut UpsertCounters,
        mut changed: impl FnMut(&K, Option<V>, Option<&V>),
    ) {
        let changes = batch.len();
        let rows: usize = self.segments.iter().map(|s| s.run.len()).sum();
        let large = changes >= rows / 8;
        let mut epoch_counts = UpsertCounters::default();
        let outcomes = outcomes(batch.into_sorted(), &mut epoch_counts);
        let mut missing_deletes = 0;
        let mut seen = |outcome: &Outcome<K, V>, old: Option<V>| {
            if outcome.first_deletes && old.is_none() {
                missing_deletes += 1;
            }
            if old.as_ref() != outcome.last.as_ref() {
                changed(&outcome.key, old, outcome.last.as_ref());
            }
        };
        if large {
            self.merge_all(outcomes, rows + changes, seen);
        } else {
            // Outcomes come in key order, so the segments they touch do too.
            let mut touched: Vec<usize> = Vec::new();
            for outcome in outcomes {
                let index = self.bounds.partition_point(|bound| *bound <= outcome.key);
                let segment = &mut self.segments[index];
                let in_run = segment.run.get(&outcome.key);
                let old = match segment.recent.get(&outcome.key) {
                    Some(row) => row.clone(),
                    None => in_run.cloned(),
                };
                let needs_tombstone = in_run.is_some();
                seen(&outcome, old);
                // A key that is not in the run needs no tombstone once deleted.
                if outcome.last.is_none() && !needs_tombstone {
                    segment.recent.remove(&outcome.key);
                } else {
                    segment.recent.insert(outcome.key, outcome.last);
                }
                if touched.last() != Some(&index) {
                    touched.push(index);
                }
            }
            // From the last, so that a split does not move the segments still to look at.
            for index in touched.into_iter().rev() {
                let segment = &mut self.segments[index];
                if segment.is_due() {
                    segment.compact();
                    if segment.run.len() > 2 * self.segment_rows {
                        self.split(index);
                    }
                }
            }
        }
        epoch_counts.missing_deletes += missing_deletes;
        counters.add(&epoch_counts);
    }

    /// A large epoch: every segment's rows and the epoch's outcomes merged in one pass into
    /// new segments. Each old segment is freed as soon as it has been read.
    fn merge_all(
        &mut self,
        outcomes: impl Iterator<Item = Outcome<K, V>>,
        most_rows: usize,
        seen: impl FnMut(&Outcome<K, V>, Option<V>),
    ) {
        for segment in &mut self.segments {
            segment.compact();
        }
        let old = std::mem::take(&mut self.segments)
            .into_iter()
            .flat_map(|segment| segment.run.into_rows());
        let size = self.segment_rows;
        let mut built: Vec<Vec<(K, V)>> = Vec::new();
        let mut current: Vec<(K, V)> = Vec::with_capacity(size.min(most_rows));
        merge(old, outcomes, seen, |row| {
            if current.len() == size {
                built.push(std::mem::replace(&mut current, Vec::with_capacity(size)));
            }
            current.push(row);
        });
        current.shrink_to_fit();
        built.push(current);
        self.bounds = built[1..].iter().map(|rows| rows[0].0.clone()).collect();
        // Spreads that differ from one segment to the next, in no order.
        self.segments = built
            .into_iter()
            .enumerate()
            .map(|(index, rows)| Segment::new(SortedRun::from_sorted(rows), index * 37))
            .collect();
    }

    /// Splits segment `index` (just compacted) into two halves.
    fn split(&mut self, index: usize) {
        let mut rows = std::mem::take(&mut self.segments[index].run).into_rows();
        let upper = rows.split_off(rows.len() / 2);
        rows.shrink_to_fit();
        self.bounds.insert(index, upper[0].0.clone());
        self.segments[index].run = SortedRun::from_sorted(rows);
        let spread = self.segments[index].spread + 29;
        self.segments.insert(
            index + 1,
            Segment::new(SortedRun::from_sorted(upper), spread),
        );
    }

    /// Empties the table, calling `removed(key, row)` for every row it held.
    pub fn truncate(&mut self, mut removed: impl FnMut(&K, V)) {
        let segments = std::mem::take(&mut self.segments);
        *self = KeyedTable::with_segment_rows(self.segment_rows);
        for mut segment in segments {
            segment.compact();
            for (key, row) in segment.run.into_rows() {
                removed(&key, row);
            }
        }
    }
}

/// The rows of `old` (sorted by key) with each outcome (sorted by key) applied, handed to
/// `push` in key order; `seen` is told each outcome and the key's row before it.
fn merge<K: Ord, V>(
    old: impl Iterator<Item = (K, V)>,
    outcomes: impl Iterator<Item = Outcome<K, V>>,
    mut seen: impl FnMut(&Outcome<K, V>, Option<V>),
    mut push: impl FnMut((K, V)),
) {
    let mut old = old.peekable();
    for outcome in outcomes {
        while let Some(row) = old.next_if(|(k, _)| *k < outcome.key) {
            push(row);
        }
        let previous = old.next_if(|(k, _)| *k == outcome.key).map(|(_, v)| v);
        seen(&outcome, previous);
        if let Some(value) = outcome.last {
            push((outcome.key, value));
        }
    }
    old.for_each(push);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn batch(changes: &[(u32, Position, Option<i64>)]) -> Batch<u32, i64> {
        // In containers of 100, as timely delivers them.
        let mut batch = Batch::default();
        for container in changes.chunks(100) {
            batch.extend(container.iter().copied());
        }
        batch
    }

    /// How many rows the table holds (a query only the tests need: it looks up every
    /// recent change in the run).
    fn rows_in(table: &KeyedTable<u32, i64>) -> usize {
        let mut len = 0;
        for segment in &table.segments {
            len += segment.run.len();
            for (key, row) in &segment.recent {
                match (segment.run.get(key).is_some(), row.is_some()) {
                    (false, true) => len += 1,
                    (true, false) => len -= 1,
                    _ => {}
                }
            }
        }
        len
    }

    /// Applies `changes` and returns the (key, old, new) changes it reported.
    fn apply(
        table: &mut KeyedTable<u32, i64>,
        counters: &mut UpsertCounters,
        changes: &[(u32, Position, Option<i64>)],
    ) -> Vec<(u32, Option<i64>, Option<i64>)> {
        let mut reported = Vec::new();
        table.apply(batch(changes), counters, |k, old, new| {
            reported.push((*k, old, new.copied()))
        });
        reported
    }

    #[test]
    fn last_change_in_position_order_wins_whatever_the_arrival_order() {
        let mut table = KeyedTable::default();
        let mut counters = UpsertCounters::default();
        let reported = apply(
            &mut table,
            &mut counters,
            &[
                (7, 30, Some(3)),
                (7, 10, Some(1)),
                (9, 5, None),
                (7, 20, None),
            ],
        );
        assert_eq!(reported, vec![(7, None, Some(3))]);
        assert_eq!(
            counters,
            UpsertCounters {
                upserts: 2,
                deletes: 2,
                missing_deletes: 1,
            }
        );
    }

    #[test]
    fn interleaved_sorted_senders_take_one_lane_each() {
        // Two senders, each reading its half of a file in key order, in batches of 10.
        let mut batch = Batch::default();
        for round in 0..50u32 {
            for sender in 0..2u32 {
                let start = sender * 1000 + round * 10;
                batch.extend((start..start + 10).map(|k| (k, u64::from(k), Some(0i64))));
            }
        }
        assert_eq!((batch.lanes.len(), batch.overflow.len), (2, 0));
        let keys: Vec<u32> = batch.into_sorted().map(|(k, _, _)| k).collect();
        let mut expected: Vec<u32> = (0..500).chain(1000..1500).collect();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn changes_in_no_key_order_are_sorted_not_laned() {
        // A small update file in random key order, in one container: once it shows no
        // order the rest goes to the overflow; a file in order with a few keys sent again
        // out of order keeps its lanes.
        let random: Vec<u32> = (0..1000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 100_000)
            .collect();
        let mut batch = Batch::default();
        batch.extend(
            random
                .iter()
                .enumerate()
                .map(|(p, &k)| (k, p as u64, Some(0i64))),
        );
        assert!(
            batch.unordered && batch.overflow.len > 800,
            "{}",
            batch.overflow.len
        );
        let keys: Vec<u32> = batch.into_sorted().map(|(k, _, _)| k).collect();
        let mut expected = random.clone();
        expected.sort_unstable();
        assert_eq!(keys, expected);

        let mut batch = Batch::default();
        let nearly: Vec<u32> = (0..10_000u32)
            .map(|k| if k % 64 == 0 { k / 2 } else { k })
            .collect();
        batch.extend(
            nearly
                .iter()
                .enumerate()
                .map(|(p, &k)| (k, p as u64, Some(0i64))),
        );
        assert!(!batch.unordered, "{} in the overflow", batch.overflow.len);
        assert!(
            batch.overflow.len < 200,
            "{} in the overflow",
            batch.overflow.len
        );
        assert_eq!(batch.into_sorted().count(), nearly.len());
    }

    #[test]
    fn a_sorted_run_finds_every_key_and_no_other() {
        for len in [0, 1, 31, 32, 33, 1000] {
            let run = SortedRun::from_sorted((0..len).map(|i| (3 * i, i)).collect());
            for key in -5..3 * len + 5 {
                let expected = (key >= 0 && key % 3 == 0 && key < 3 * len).then_some(key / 3);
                assert_eq!(run.get(&key).copied(), expected, "key {key} of {len}");
            }
        }
    }

    #[test]
    fn small_epochs_go_to_the_map_and_are_merged_into_the_run() {
        let mut table = KeyedTable::default();
        let mut counters = UpsertCounters::default();
        let snapshot: Vec<_> = (0..100)
            .map(|k| (k, u64::from(k), Some(i64::from(k))))
            .collect();
        apply(&mut table, &mut counters, &snapshot);
        assert_eq!(table.segments.len(), 1);
        let segment = &table.segments[0];
        assert_eq!((segment.run.len(), segment.recent.len()), (100, 0));
        assert_eq!(segment.run.get(&37), Some(&37));
        assert_eq!(segment.run.get(&100), None);

        let reported = apply(
            &mut table,
            &mut counters,
            &[(5, 0, None), (200, 1, Some(2))],
        );
        assert_eq!(reported, vec![(5, Some(5), None), (200, None, Some(2))]);
        assert_eq!(table.segments[0].recent.len(), 2);
        assert_eq!(rows_in(&table), 100);
        // A key deleted again, and a deleted key brought back.
        let reported = apply(
            &mut table,
            &mut counters,
            &[(200, 0, None), (5, 1, Some(50))],
        );
        assert_eq!(reported, vec![(5, None, Some(50)), (200, Some(2), None)]);
        assert_eq!(
            table.segments[0].recent.len(),
            1,
            "a key never in the run needs no tombstone"
        );

        // Enough small epochs, and the map is merged into the run.
        for k in 0..20 {
            apply(&mut table, &mut counters, &[(k, 0, Some(-1))]);
        }
        let segment = &table.segments[0];
        assert!(segment.recent.len() <= segment.run.len() / 8);
        assert_eq!(rows_in(&table), 100);
    }

    /// Random epochs of every size against a `BTreeMap`, with one segment and with many
    /// small ones (merged, split and rebuilt all the time).
    #[test]
    fn agrees_with_a_map_on_random_epochs() {
        for segment_rows in [SEGMENT_ROWS, 64, 7] {
            agrees_with_a_map(KeyedTable::with_segment_rows(segment_rows), 7);
            agrees_with_a_map(KeyedTable::with_segment_rows(segment_rows), 8);
        }
    }

    fn agrees_with_a_map(mut table: KeyedTable<u32, i64>, seed: u64) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut model: BTreeMap<u32, i64> = BTreeMap::new();
        let mut counters = UpsertCounters::default();
        for _ in 0..200 {
            // Mostly small epochs, some large ones, a few past the unordered threshold.
            let size = match rng.random_range(0..100) {
                0..3 => 3 * UNORDERED,
                3..13 => 500,
                _ => rng.random_range(0..8),
            };
            let changes: Vec<_> = (0..size)
                .map(|p| {
                    let key = rng.random_range(0..if size > 500 { 20_000 } else { 300 });
                    let value = rng.random_bool(0.7).then(|| rng.random_range(0..4));
                    (key, p as Position, value)
                })
                .collect();
            let mut expected = Vec::new();
            let mut after = model.clone();
            for &(key, _, value) in &changes {
                match value {
                    Some(v) => after.insert(key, v),
                    None => after.remove(&key),
                };
            }
            let keys: std::collections::BTreeSet<u32> = changes.iter().map(|c| c.0).collect();
            for key in keys {
                let (old, new) = (model.get(&key).copied(), after.get(&key).copied());
                if old != new {
                    expected.push((key, old, new));
                }
            }
            model = after;
            let mut shuffled = changes.clone();
            shuffled.reverse();
            let reported = apply(&mut table, &mut counters, &shuffled);
            assert_eq!(reported, expected);
            assert_eq!(rows_in(&table), model.len());
            // The segments cover the keys in order, each within its bounds.
            assert_eq!(table.bounds.len() + 1, table.segments.len());
            assert!(table.bounds.windows(2).all(|w| w[0] < w[1]));
            for (index, segment) in table.segments.iter().enumerate() {
                let rows = &segment.run.rows;
                let low = index.checked_sub(1).map(|i| table.bounds[i]);
                let high = table.bounds.get(index).copied();
                let within = |k: &u32| low.is_none_or(|l| *k >= l) && high.is_none_or(|h| *k < h);
                assert!(rows
                    .iter()
                    .map(|(k, _)| k)
                    .chain(segment.recent.keys())
                    .all(within));
            }
        }
    }

    /// A small epoch merges at most the segments it touches, each of at most twice the
    /// segment size: never the whole table.
    #[test]
    fn a_small_epoch_merges_only_the_segments_it_touches() {
        let mut table: KeyedTable<u32, i64> = KeyedTable::with_segment_rows(1000);
        let mut counters = UpsertCounters::default();
        let snapshot: Vec<_> = (0..100_000u32)
            .map(|k| (k * 4, u64::from(k), Some(1)))
            .collect();
        apply(&mut table, &mut counters, &snapshot);
        assert_eq!(table.segments.len(), 100);
        assert!(table.segments.iter().all(|s| s.run.len() == 1000));
        // New keys into one segment's range (keys 40,000 to 43,996), until it splits.
        for epoch in 0..40u32 {
            let changes: Vec<_> = (0..100u32)
                .map(|i| {
                    let n = epoch * 100 + i;
                    let key = 40_001 + n % 2 + 4 * (n / 2 % 1000);
                    (key, u64::from(i), Some(2))
                })
                .collect();
            let before: Vec<*const (u32, i64)> =
                table.segments.iter().map(|s| s.run.rows.as_ptr()).collect();
            apply(&mut table, &mut counters, &changes);
            // Untouched segments kept their very rows (a split adds one segment).
            let rebuilt = table
                .segments
                .iter()
                .filter(|s| !before.contains(&s.run.rows.as_ptr()))
                .count();
            assert!(rebuilt <= 2, "epoch {epoch}: {rebuilt} segments rebuilt");
            assert!(table.segments.iter().all(|s| s.run.len() <= 2 * 1000 + 100));
        }
        assert!(table.segments.len() > 100, "the full segment was split");
        assert_eq!(rows_in(&table), 102_000);
    }

    #[test]
    fn a_truncate_removes_every_row_once() {
        let mut table: KeyedTable<u64, u64> = KeyedTable::default();
        let mut counters = UpsertCounters::default();
        let mut batch = Batch::default();
        batch.extend((0..100).map(|k| (k, k, Some(k * 10))));
        table.apply(batch, &mut counters, |_, _, _| {});
        let mut batch = Batch::default();
        batch.extend([(5, 200, Some(1)), (500, 201, Some(2))]);
        table.apply(batch, &mut counters, |_, _, _| {});
        let mut removed = Vec::new();
        table.truncate(|key, row| removed.push((*key, row)));
        removed.sort();
        let mut expected: Vec<(u64, u64)> = (0..100).map(|k| (k, k * 10)).collect();
        expected[5].1 = 1;
        expected.push((500, 2));
        assert_eq!(removed, expected);
        let mut batch = Batch::default();
        batch.extend([(5, 300, None), (7, 301, Some(3))]);
        let mut changed = Vec::new();
        table.apply(batch, &mut counters, |key, old, new| {
            changed.push((*key, old, new.copied()))
        });
        assert_eq!(changed, [(7, None, Some(3))]);
    }

    #[test]
    fn changes_after_a_position_are_kept() {
        let mut batch: Batch<u64, u64> = Batch::default();
        batch.extend([(1, 10, Some(1)), (2, 30, Some(2)), (1, 40, Some(3))]);
        let kept: Vec<_> = batch.after(20).into_sorted().collect();
        assert_eq!(kept, [(1, 40, Some(3)), (2, 30, Some(2))]);
    }

    proptest::proptest! {
        /// The search outward from a guess finds the point a binary search finds, from
        /// any guess, right or wrong, inside the slice or past it.
        #[test]
        fn a_search_from_any_guess_finds_the_partition_point(
            mut items in proptest::collection::vec(-50i64..50, 0..80),
            key in -60i64..60,
            at in 0usize..90,
        ) {
            items.sort_unstable();
            let below = |item: &i64| *item < key;
            proptest::prop_assert_eq!(
                partition_point_from(&items, Some(at), below),
                items.partition_point(below)
            );
        }

        /// A run's lookups are a map's, for keys dense or sparse, clustered, at the ends
        /// of the integers' range, and for keys in the run and not.
        #[test]
        fn a_run_finds_every_key_a_map_holds(
            keys in proptest::collection::btree_set(
                proptest::prop_oneof![
                    0i64..2_000,
                    proptest::prelude::any::<i64>(),
                    proptest::strategy::Just(i64::MIN),
                    proptest::strategy::Just(i64::MAX),
                ],
                0..400,
            ),
            dense_from in 0i64..1_000,
            dense in 0usize..300,
            lookups in proptest::collection::vec(proptest::prelude::any::<i64>(), 0..50),
        ) {
            let mut keys = keys;
            keys.extend((0..dense as i64).map(|i| dense_from + 3 * i));
            let map: BTreeMap<i64, i64> = keys.iter().map(|&k| (k, k.wrapping_mul(7))).collect();
            let run = SortedRun::from_sorted(map.iter().map(|(&k, &v)| (k, v)).collect());
            let near = keys.iter().flat_map(|&k| [k.wrapping_sub(1), k, k.wrapping_add(1)]);
            for key in near.chain(lookups).chain([i64::MIN, i64::MAX, 0]) {
                proptest::prop_assert_eq!(run.get(&key), map.get(&key), "key {}", key);
            }
        }
    }
}
