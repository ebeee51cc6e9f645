//! Upsert tables: a stream of `(key, position, Some(value) | None)` changes applied, epoch
//! by epoch, to keyed state, and what changed sent on.
//!
//! This is differential's `arrange_from_upsert` with two differences the SPEC needs: among
//! changes to one key in one epoch the one with the greatest *position* (the last in the
//! file) wins, not the greatest value; and deletes of absent keys are counted. Changes
//! are exchanged by key, so each worker keeps the keys it owns in one hash map and the
//! previous row of a key is always at hand to retract.
//!
//! Two operators share that machinery. `upsert` sends on rows: `(key, value)` with ±1.
//! `upsert_order_sums` is the orders table as the query needs it: it keeps only each
//! order's code (interned per worker), item count and subtotal, and sends on, per epoch,
//! one consolidated `(code, (orders, Σ item_ct, Σ subtotal))` change per code it touched.
//! That is `explode` and a combiner fused into the upsert: a million-order load leaves
//! the operator as one record per code and worker.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::rc::Rc;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::dataflow::Sums;
use crate::model::{Code, Epoch, Order, OrderId, Position};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A change to one key: its position in its file, and its new value or a delete.
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

    fn count<V>(&mut self, change: &Option<V>, present: bool) {
        match change {
            Some(_) => self.upserts += 1,
            None => {
                self.deletes += 1;
                self.missing_deletes += u64::from(!present);
            }
        }
    }
}

/// The rows one worker owns, each kept as an `S`.
struct Table<K, S> {
    rows: FastMap<K, S>,
}

impl<K: Hash + Eq + Ord, S: PartialEq> Table<K, S> {
    fn new() -> Self {
        Table {
            rows: FastMap::default(),
        }
    }

    /// Applies one epoch's changes in position order per key and calls
    /// `changed(key, old, new)` for every row that changed.
    fn apply(
        &mut self,
        mut changes: Vec<Keyed<K, S>>,
        counters: &mut UpsertCounters,
        mut changed: impl FnMut(&K, Option<S>, Option<&S>),
    ) {
        changes.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        // Grow the table once, to its final size, rather than by doubling (which holds the
        // old and the new table at once).
        self.rows.reserve(
            changes
                .len()
                .saturating_sub(self.rows.capacity() - self.rows.len()),
        );
        let mut changes = changes.into_iter().peekable();
        while let Some((key, _, first)) = changes.next() {
            counters.count(&first, self.rows.contains_key(&key));
            let mut last = first;
            while let Some((_, _, next)) = changes.next_if(|(k, _, _)| *k == key) {
                counters.count(&next, last.is_some());
                last = next;
            }
            match (self.rows.entry(key), last) {
                (Entry::Occupied(mut row), Some(new)) => {
                    if *row.get() != new {
                        let old = std::mem::replace(row.get_mut(), new);
                        changed(row.key(), Some(old), Some(row.get()));
                    }
                }
                (Entry::Occupied(row), None) => {
                    let (key, old) = row.remove_entry();
                    changed(&key, Some(old), None);
                }
                (Entry::Vacant(row), Some(new)) => {
                    let key = row.key();
                    changed(key, None, Some(&new));
                    row.insert(new);
                }
                (Entry::Vacant(_), None) => {}
            }
        }
    }
}

/// What an upsert operator does with its changes: converts each value as it arrives (so
/// that waiting changes take no more room than they must), then applies a completed
/// epoch's changes and says what changed.
trait UpsertLogic<K, V> {
    /// A value as it waits for its epoch, and as the table keeps it.
    type Stored;
    /// An update sent on.
    type Update;
    fn arrive(&mut self, value: V) -> Self::Stored;
    fn apply(
        &mut self,
        epoch: Epoch,
        changes: Vec<Keyed<K, Self::Stored>>,
        updates: &mut Vec<Self::Update>,
    );
}

/// An epoch's changes waiting for the epoch to complete, and the capability to emit at it.
///
/// Changes are kept in chunks that double in size up to `MAX_CHUNK` changes: a large
/// snapshot streams in without one vector reallocating (which holds the old and the new
/// copy at once), and the chunks are large enough to go back to the OS when freed.
struct Pending<K, S> {
    capability: Capability<Epoch>,
    chunks: Vec<Vec<Keyed<K, S>>>,
    len: usize,
}

/// The most changes in one chunk of a `Pending`.
const MAX_CHUNK: usize = 1 << 20;

impl<K, S> Pending<K, S> {
    fn new(capability: Capability<Epoch>) -> Self {
        Pending {
            capability,
            chunks: Vec::new(),
            len: 0,
        }
    }

    fn push(&mut self, change: Keyed<K, S>) {
        if self.chunks.last().is_none_or(|c| c.len() == c.capacity()) {
            let size = self.len.clamp(1024, MAX_CHUNK);
            self.chunks.push(Vec::with_capacity(size));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(change);
            self.len += 1;
        }
    }

    /// All changes in one vector, each chunk freed as soon as it is moved.
    fn into_changes(self) -> (Capability<Epoch>, Vec<Keyed<K, S>>) {
        let mut changes = Vec::with_capacity(self.len);
        for chunk in self.chunks {
            changes.extend(chunk);
        }
        (self.capability, changes)
    }
}

/// The operator shell: exchanges changes by key, holds each epoch's until the epoch is
/// complete, then hands them to `logic`.
fn upsert_operator<'scope, K, V, L, D, R>(
    stream: StreamVec<'scope, Epoch, Keyed<K, V>>,
    name: &str,
    mut logic: L,
) -> VecCollection<'scope, Epoch, D, R>
where
    K: ExchangeData + Hash,
    V: ExchangeData,
    L: UpsertLogic<K, V, Update = (D, Epoch, R)> + 'static,
    D: Clone + 'static,
    R: Clone + 'static,
{
    let by_key = Exchange::new(|(key, _, _): &Keyed<K, V>| key.hashed());
    stream
        .unary_frontier(by_key, name, move |_initial, _info| {
            let mut pending: BTreeMap<Epoch, Pending<K, L::Stored>> = BTreeMap::new();
            let mut updates = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|capability, changes| {
                    if let Some(held) = capability.retain_least(0) {
                        let epoch = *held.time();
                        let waiting = pending.entry(epoch).or_insert_with(|| Pending::new(held));
                        for (key, position, value) in changes.drain(..) {
                            waiting.push((key, position, value.map(|v| logic.arrive(v))));
                        }
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (capability, changes) = entry.remove().into_changes();
                    logic.apply(*capability.time(), changes, &mut updates);
                    output.session(&capability).give_iterator(updates.drain(..));
                }
            }
        })
        .as_collection()
}

/// An upsert table sent on as rows: the retraction of each replaced value and the
/// insertion of each new one.
pub fn upsert<'scope, K, V>(
    stream: StreamVec<'scope, Epoch, Keyed<K, V>>,
    name: &str,
    counters: Rc<RefCell<UpsertCounters>>,
) -> VecCollection<'scope, Epoch, (K, V), i128>
where
    K: ExchangeData + Hash + Eq,
    V: ExchangeData + PartialEq,
{
    let logic = Rows {
        table: Table::new(),
        counters,
    };
    upsert_operator(stream, name, logic)
}

struct Rows<K, V> {
    table: Table<K, V>,
    counters: Rc<RefCell<UpsertCounters>>,
}

impl<K: Hash + Eq + Ord + Clone, V: PartialEq + Clone> UpsertLogic<K, V> for Rows<K, V> {
    type Stored = V;
    type Update = ((K, V), Epoch, i128);

    fn arrive(&mut self, value: V) -> V {
        value
    }

    fn apply(&mut self, epoch: Epoch, changes: Vec<Keyed<K, V>>, updates: &mut Vec<Self::Update>) {
        let mut counters = self.counters.borrow_mut();
        self.table.apply(changes, &mut counters, |key, old, new| {
            if let Some(old) = old {
                updates.push(((key.clone(), old), epoch, -1));
            }
            if let Some(new) = new {
                updates.push(((key.clone(), new.clone()), epoch, 1));
            }
        });
    }
}

/// What the query needs of an order: its code (interned), item count and subtotal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OrderFacts {
    /// Index into the worker's code list; `NO_CODE` for an order without a code.
    code: u32,
    item_ct: i64,
    subtotal_micros: i64,
}

const NO_CODE: u32 = u32::MAX;

/// Codes seen by one worker, each given a small number.
#[derive(Default)]
struct Interner {
    numbers: FastMap<Code, u32>,
    codes: Vec<Code>,
}

impl Interner {
    fn number(&mut self, code: Code) -> u32 {
        if code.is_empty() {
            return NO_CODE;
        }
        let next = self.codes.len() as u32;
        *self.numbers.entry(code).or_insert_with_key(|code| {
            self.codes.push(code.clone());
            next
        })
    }
}

/// The orders table as the query needs it: per epoch, one `(code, sums)` change per code
/// whose orders changed, consolidated on this worker. Orders without a code are kept (a
/// later upsert may give them one) but never counted.
pub fn upsert_order_sums<'scope>(
    stream: StreamVec<'scope, Epoch, Keyed<OrderId, Order>>,
    counters: Rc<RefCell<UpsertCounters>>,
) -> VecCollection<'scope, Epoch, (Code, ()), Sums> {
    let logic = OrderSums {
        table: Table::new(),
        interner: Interner::default(),
        deltas: Vec::new(),
        touched: Vec::new(),
        counters,
    };
    upsert_operator(stream, "UpsertOrderSums", logic)
}

struct OrderSums {
    table: Table<OrderId, OrderFacts>,
    interner: Interner,
    /// This epoch's change to the sums of each code, indexed by code number, and the
    /// numbers whose change may be non-zero.
    deltas: Vec<Sums>,
    touched: Vec<u32>,
    counters: Rc<RefCell<UpsertCounters>>,
}

impl UpsertLogic<OrderId, Order> for OrderSums {
    type Stored = OrderFacts;
    type Update = ((Code, ()), Epoch, Sums);

    fn arrive(&mut self, order: Order) -> OrderFacts {
        OrderFacts {
            code: self.interner.number(order.discount_code),
            item_ct: order.item_ct,
            subtotal_micros: order.subtotal_micros,
        }
    }

    fn apply(
        &mut self,
        epoch: Epoch,
        changes: Vec<Keyed<OrderId, OrderFacts>>,
        updates: &mut Vec<Self::Update>,
    ) {
        let mut counters = self.counters.borrow_mut();
        let (deltas, touched) = (&mut self.deltas, &mut self.touched);
        deltas.resize(self.interner.codes.len(), (0, 0, 0));
        self.table.apply(changes, &mut counters, |_, old, new| {
            for (facts, sign) in [(old.as_ref(), -1i128), (new, 1)] {
                if let Some(facts) = facts.filter(|f| f.code != NO_CODE) {
                    let sums = &mut deltas[facts.code as usize];
                    if *sums == (0, 0, 0) {
                        touched.push(facts.code);
                    }
                    sums.0 += sign;
                    sums.1 += sign * i128::from(facts.item_ct);
                    sums.2 += sign * i128::from(facts.subtotal_micros);
                }
            }
        });
        for code in touched.drain(..) {
            let sums = std::mem::take(&mut deltas[code as usize]);
            if sums != (0, 0, 0) {
                updates.push((
                    (self.interner.codes[code as usize].clone(), ()),
                    epoch,
                    sums,
                ));
            }
        }
    }
}
