//! Upsert tables: a stream of `(key, position, Some(value) | None)` changes applied, epoch
//! by epoch, to keyed state, and what changed sent on.
//!
//! This is differential's `arrange_from_upsert` with two differences the SPEC needs: among
//! changes to one key in one epoch the one with the greatest *position* (the last in the
//! file) wins, not the greatest value; and deletes of absent keys are counted. Changes
//! are exchanged by key, so each worker keeps the keys it owns in one `KeyedTable` and the
//! previous row of a key is always at hand to retract.
//!
//! Two operators share that machinery. `upsert` sends on rows: `(key, value)` with ±1.
//! `upsert_order_sums` is the orders table as the query needs it: it keeps only each
//! order's code (interned per worker), item count and subtotal, and sends on, per epoch,
//! one consolidated `(code, (orders, Σ item_ct, Σ subtotal))` change per code it touched.
//! That is `explode` and a combiner fused into the upsert: a million-order load leaves
//! the operator as one record per code and worker.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::rc::Rc;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::StreamVec;

use crate::keyed_table::{Batch, FastMap, Interpolate, KeyedTable};
use crate::model::{Code, Epoch, OrderAmounts, OrderId, Position, Sums};

pub use crate::model::{Keyed, UpsertCounters};

/// What an upsert operator does with its changes: converts each value as it arrives (so
/// that waiting changes take no more room than they must), then applies a completed
/// epoch's changes and says what changed.
trait UpsertLogic<K, V> {
    /// A value as it waits for its epoch, and as the table keeps it.
    type Stored;
    /// An update sent on.
    type Update;
    fn arrive(&mut self, value: V) -> Self::Stored;
    /// Empties the table: every row it held is retracted.
    fn truncate(&mut self, epoch: Epoch, updates: &mut Vec<Self::Update>);
    fn apply(
        &mut self,
        epoch: Epoch,
        changes: Batch<K, Self::Stored>,
        updates: &mut Vec<Self::Update>,
    );
}

/// An epoch's changes waiting for the epoch to complete, and the capability to emit at it.
struct Pending<K, S> {
    capability: Capability<Epoch>,
    batch: Batch<K, S>,
    /// The position of the epoch's last truncate, if it has one.
    truncated_at: Option<Position>,
}

/// The operator shell: exchanges changes by key, holds each epoch's until the epoch is
/// complete, then hands them to `logic`. Truncates reach every worker: each empties its
/// part, after dropping the epoch's changes that came before the truncate.
fn upsert_operator<'scope, K, V, L, D, R>(
    stream: StreamVec<'scope, Epoch, Keyed<K, V>>,
    truncates: StreamVec<'scope, Epoch, Position>,
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
    let truncates = truncates.broadcast();
    stream
        .binary_frontier(truncates, by_key, Pipeline, name, move |_initial, _info| {
            let mut pending: BTreeMap<Epoch, Pending<K, L::Stored>> = BTreeMap::new();
            let mut updates = Vec::new();
            move |(changes_in, changes_frontier), (truncates_in, truncates_frontier), output| {
                changes_in.for_each(|capability, changes| {
                    if let Some(waiting) = waiting_at(&mut pending, capability) {
                        let arrived = changes.drain(..).map(|(key, position, value)| {
                            (key, position, value.map(|v| logic.arrive(v)))
                        });
                        waiting.batch.extend(arrived);
                    }
                });
                truncates_in.for_each(|capability, positions: &mut Vec<Position>| {
                    if let Some(waiting) = waiting_at(&mut pending, capability) {
                        let last = positions.drain(..).max();
                        waiting.truncated_at = waiting.truncated_at.max(last);
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    let epoch = entry.key();
                    if changes_frontier.less_equal(epoch) || truncates_frontier.less_equal(epoch) {
                        break;
                    }
                    let Pending {
                        capability,
                        mut batch,
                        truncated_at,
                    } = entry.remove();
                    if let Some(position) = truncated_at {
                        batch = batch.after(position);
                        logic.truncate(*capability.time(), &mut updates);
                    }
                    logic.apply(*capability.time(), batch, &mut updates);
                    output.session(&capability).give_iterator(updates.drain(..));
                }
            }
        })
        .as_collection()
}

/// The epoch's pending changes, made on first use, for input at `capability`.
fn waiting_at<K, S>(
    pending: &mut BTreeMap<Epoch, Pending<K, S>>,
    capability: InputCapability<Epoch>,
) -> Option<&mut Pending<K, S>> {
    let held = capability.retain_least(0)?;
    let epoch = *held.time();
    Some(pending.entry(epoch).or_insert_with(|| Pending {
        capability: held,
        batch: Batch::default(),
        truncated_at: None,
    }))
}

/// An upsert table sent on as rows: the retraction of each replaced value and the
/// insertion of each new one.
pub fn upsert<'scope, K, V>(
    stream: StreamVec<'scope, Epoch, Keyed<K, V>>,
    truncates: StreamVec<'scope, Epoch, Position>,
    name: &str,
    counters: Rc<RefCell<UpsertCounters>>,
) -> VecCollection<'scope, Epoch, (K, V), i128>
where
    K: ExchangeData + Hash + Eq + Interpolate,
    V: ExchangeData + PartialEq,
{
    let logic = Rows {
        table: KeyedTable::default(),
        counters,
    };
    upsert_operator(stream, truncates, name, logic)
}

struct Rows<K, V> {
    table: KeyedTable<K, V>,
    counters: Rc<RefCell<UpsertCounters>>,
}

impl<K: Hash + Eq + Ord + Clone + Interpolate, V: PartialEq + Clone> UpsertLogic<K, V>
    for Rows<K, V>
{
    type Stored = V;
    type Update = ((K, V), Epoch, i128);

    fn arrive(&mut self, value: V) -> V {
        value
    }

    fn truncate(&mut self, epoch: Epoch, updates: &mut Vec<Self::Update>) {
        self.table
            .truncate(|key, row| updates.push(((key.clone(), row), epoch, -1)));
    }

    fn apply(&mut self, epoch: Epoch, changes: Batch<K, V>, updates: &mut Vec<Self::Update>) {
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
    code: CodeNumber,
    item_ct: i64,
    subtotal_micros: i64,
}

/// A code's number on one worker: its index in the worker's code list, plus one, or
/// `NO_CODE` for an order without a code. Never zero, so that a change waiting for its
/// epoch (`Option<OrderFacts>`) takes no more room than the facts: 40 bytes an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CodeNumber(NonZeroU32);

const NO_CODE: CodeNumber = CodeNumber(NonZeroU32::MAX);

impl CodeNumber {
    fn index(self) -> Option<usize> {
        (self != NO_CODE).then(|| self.0.get() as usize - 1)
    }
}

/// Codes seen by one worker, each given a small number. Every arriving order asks for
/// its code's number, so a code of up to 15 bytes (most are: the recipe's are 7) is found
/// by its bytes packed into one `u128`, hashed and compared as a number, not as text.
#[derive(Default)]
struct Interner {
    short: FastMap<u128, CodeNumber>,
    long: FastMap<Code, CodeNumber>,
    codes: Vec<Code>,
}

impl Interner {
    fn number(&mut self, code: Code) -> CodeNumber {
        if code.is_empty() {
            return NO_CODE;
        }
        let next = u32::try_from(self.codes.len() + 1)
            .ok()
            .and_then(NonZeroU32::new)
            .map(CodeNumber)
            .filter(|&number| number != NO_CODE)
            .expect("fewer than 2^32 - 1 codes on one worker (each takes 24 bytes or more)");
        let codes = &mut self.codes;
        match packed(&code) {
            Some(packed) => *self.short.entry(packed).or_insert_with(|| {
                codes.push(code);
                next
            }),
            None => *self.long.entry(code).or_insert_with_key(|code| {
                codes.push(code.clone());
                next
            }),
        }
    }
}

/// A code of up to 15 bytes as one number: its bytes, then its length in the last byte,
/// so that codes that differ only in trailing NUL bytes stay apart.
fn packed(code: &str) -> Option<u128> {
    let bytes = code.as_bytes();
    if bytes.len() >= 16 {
        return None;
    }
    let mut packed = [0; 16];
    packed[..bytes.len()].copy_from_slice(bytes);
    packed[15] = bytes.len() as u8;
    Some(u128::from_le_bytes(packed))
}

/// The orders table as the query needs it: per epoch, one `(code, sums)` change per code
/// whose orders changed, consolidated on this worker. Orders without a code are kept (a
/// later upsert may give them one) but never counted.
pub fn upsert_order_sums<'scope>(
    stream: StreamVec<'scope, Epoch, Keyed<OrderId, OrderAmounts>>,
    truncates: StreamVec<'scope, Epoch, Position>,
    counters: Rc<RefCell<UpsertCounters>>,
) -> VecCollection<'scope, Epoch, (Code, ()), Sums> {
    let logic = OrderSums {
        table: KeyedTable::default(),
        interner: Interner::default(),
        deltas: Vec::new(),
        touched: Vec::new(),
        counters,
    };
    upsert_operator(stream, truncates, "UpsertOrderSums", logic)
}

struct OrderSums {
    table: KeyedTable<OrderId, OrderFacts>,
    interner: Interner,
    /// This epoch's change to the sums of each code, by the code's index, and the
    /// indexes whose change may be non-zero.
    deltas: Vec<Sums>,
    touched: Vec<usize>,
    counters: Rc<RefCell<UpsertCounters>>,
}

impl UpsertLogic<OrderId, OrderAmounts> for OrderSums {
    type Stored = OrderFacts;
    type Update = ((Code, ()), Epoch, Sums);

    fn arrive(&mut self, order: OrderAmounts) -> OrderFacts {
        OrderFacts {
            code: self.interner.number(order.discount_code),
            item_ct: order.item_ct,
            subtotal_micros: order.subtotal_micros,
        }
    }

    fn truncate(&mut self, epoch: Epoch, updates: &mut Vec<Self::Update>) {
        let (deltas, touched) = (&mut self.deltas, &mut self.touched);
        deltas.resize(self.interner.codes.len(), (0, 0, 0));
        self.table
            .truncate(|_, facts| add_facts(deltas, touched, &facts, -1));
        self.send_deltas(epoch, updates);
    }

    fn apply(
        &mut self,
        epoch: Epoch,
        changes: Batch<OrderId, OrderFacts>,
        updates: &mut Vec<Self::Update>,
    ) {
        let mut counters = self.counters.borrow_mut();
        let (deltas, touched) = (&mut self.deltas, &mut self.touched);
        deltas.resize(self.interner.codes.len(), (0, 0, 0));
        self.table.apply(changes, &mut counters, |_, old, new| {
            if let Some(old) = &old {
                add_facts(deltas, touched, old, -1);
            }
            if let Some(new) = new {
                add_facts(deltas, touched, new, 1);
            }
        });
        drop(counters);
        self.send_deltas(epoch, updates);
    }
}

/// Adds an order's facts, with `sign`, to its code's change of sums.
fn add_facts(deltas: &mut [Sums], touched: &mut Vec<usize>, facts: &OrderFacts, sign: i128) {
    if let Some(code) = facts.code.index() {
        let sums = &mut deltas[code];
        if *sums == (0, 0, 0) {
            touched.push(code);
        }
        sums.0 += sign;
        sums.1 += sign * i128::from(facts.item_ct);
        sums.2 += sign * i128::from(facts.subtotal_micros);
    }
}

impl OrderSums {
    /// Sends on the epoch's non-zero change of each touched code's sums.
    fn send_deltas(&mut self, epoch: Epoch, updates: &mut Vec<((Code, ()), Epoch, Sums)>) {
        let deltas = &mut self.deltas;
        for code in self.touched.drain(..) {
            let sums = std::mem::take(&mut deltas[code]);
            if sums != (0, 0, 0) {
                updates.push(((self.interner.codes[code].clone(), ()), epoch, sums));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The interner numbers codes as a map from text to first-seen index would,
        /// whichever of its two maps a code goes to.
        #[test]
        fn the_interner_numbers_each_distinct_code_once(
            codes in prop::collection::vec(
                prop_oneof![
                    // Short and long codes near the 15-byte edge, NUL bytes, non-ASCII.
                    "[a\\x00é]{0,3}",
                    "[AB\\x00]{13,18}",
                    "[a-z0-9]{1,40}",
                ],
                0..60,
            )
        ) {
            let mut interner = Interner::default();
            let mut reference: Vec<String> = Vec::new();
            for code in &codes {
                let number = interner.number(Code::from(code.as_str()));
                if code.is_empty() {
                    prop_assert_eq!(number, NO_CODE);
                    continue;
                }
                let index = match reference.iter().position(|seen| seen == code) {
                    Some(index) => index,
                    None => {
                        reference.push(code.clone());
                        reference.len() - 1
                    }
                };
                prop_assert_eq!(number.index(), Some(index));
                prop_assert_eq!(interner.codes[index].as_str(), code.as_str());
            }
            prop_assert_eq!(interner.codes.len(), reference.len());
        }
    }

    /// What a snapshot costs per order: its change as it crosses between workers, while
    /// it waits for the epoch, and its row once applied.
    #[test]
    fn an_order_travels_in_56_bytes_waits_in_40_and_is_held_in_32() {
        assert_eq!(std::mem::size_of::<Keyed<OrderId, OrderAmounts>>(), 56);
        assert_eq!(std::mem::size_of::<Keyed<OrderId, OrderFacts>>(), 40);
        assert_eq!(std::mem::size_of::<(OrderId, OrderFacts)>(), 32);
    }
}
