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
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::rc::Rc;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::keyed_table::{Batch, KeyedTable};
use crate::model::{Code, Epoch, OrderAmounts, OrderId, Sums};

pub use crate::model::{Keyed, UpsertCounters};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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
        changes: Batch<K, Self::Stored>,
        updates: &mut Vec<Self::Update>,
    );
}

/// An epoch's changes waiting for the epoch to complete, and the capability to emit at it.
struct Pending<K, S> {
    capability: Capability<Epoch>,
    batch: Batch<K, S>,
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
                        let waiting = pending.entry(epoch).or_insert_with(|| Pending {
                            capability: held,
                            batch: Batch::default(),
                        });
                        let arrived = changes.drain(..).map(|(key, position, value)| {
                            (key, position, value.map(|v| logic.arrive(v)))
                        });
                        waiting.batch.extend(arrived);
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let Pending { capability, batch } = entry.remove();
                    logic.apply(*capability.time(), batch, &mut updates);
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
        table: KeyedTable::default(),
        counters,
    };
    upsert_operator(stream, name, logic)
}

struct Rows<K, V> {
    table: KeyedTable<K, V>,
    counters: Rc<RefCell<UpsertCounters>>,
}

impl<K: Hash + Eq + Ord + Clone, V: PartialEq + Clone> UpsertLogic<K, V> for Rows<K, V> {
    type Stored = V;
    type Update = ((K, V), Epoch, i128);

    fn arrive(&mut self, value: V) -> V {
        value
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

/// Codes seen by one worker, each given a small number.
#[derive(Default)]
struct Interner {
    numbers: FastMap<Code, CodeNumber>,
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
    stream: StreamVec<'scope, Epoch, Keyed<OrderId, OrderAmounts>>,
    counters: Rc<RefCell<UpsertCounters>>,
) -> VecCollection<'scope, Epoch, (Code, ()), Sums> {
    let logic = OrderSums {
        table: KeyedTable::default(),
        interner: Interner::default(),
        deltas: Vec::new(),
        touched: Vec::new(),
        counters,
    };
    upsert_operator(stream, "UpsertOrderSums", logic)
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
            for (facts, sign) in [(old.as_ref(), -1i128), (new, 1)] {
                if let Some((facts, code)) = facts.and_then(|f| Some((f, f.code.index()?))) {
                    let sums = &mut deltas[code];
                    if *sums == (0, 0, 0) {
                        touched.push(code);
                    }
                    sums.0 += sign;
                    sums.1 += sign * i128::from(facts.item_ct);
                    sums.2 += sign * i128::from(facts.subtotal_micros);
                }
            }
        });
        for code in touched.drain(..) {
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

    /// What a snapshot costs per order: its change as it crosses between workers, while
    /// it waits for the epoch, and its row once applied.
    #[test]
    fn an_order_travels_in_56_bytes_waits_in_40_and_is_held_in_32() {
        assert_eq!(std::mem::size_of::<Keyed<OrderId, OrderAmounts>>(), 56);
        assert_eq!(std::mem::size_of::<Keyed<OrderId, OrderFacts>>(), 40);
        assert_eq!(std::mem::size_of::<(OrderId, OrderFacts)>(), 32);
    }
}
