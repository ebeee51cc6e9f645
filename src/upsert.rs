//! An upsert table: a stream of `(key, position, Some(value) | None)` changes becomes the
//! collection of each key's current `(key, value)`.
//!
//! This is differential's `arrange_from_upsert` with two differences the SPEC needs: among
//! changes to one key in one epoch the one with the greatest *position* (the last in the
//! file) wins, not the greatest value; and deletes of absent keys are counted. Changes
//! are exchanged by key, so each worker keeps the keys it owns in one hash map and the
//! previous value of a key is always at hand to retract.

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

use crate::model::{Epoch, Position};

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
            None if present => self.deletes += 1,
            None => {
                self.deletes += 1;
                self.missing_deletes += 1;
            }
        }
    }
}

/// A change to one key: its position in its file, and its new value or a delete.
type Keyed<K, V> = (K, Position, Option<V>);

/// An epoch's changes waiting for the epoch to complete, and the capability to emit at it.
type Pending<K, V> = (Capability<Epoch>, Vec<Keyed<K, V>>);

/// Applies the changes of each completed epoch, in position order per key, and emits the
/// retraction of each replaced value and the insertion of each new one.
pub fn upsert<'scope, K, V>(
    stream: StreamVec<'scope, Epoch, Keyed<K, V>>,
    name: &str,
    counters: Rc<RefCell<UpsertCounters>>,
) -> VecCollection<'scope, Epoch, (K, V), i128>
where
    K: ExchangeData + Hash + Eq,
    V: ExchangeData + PartialEq,
{
    let by_key = Exchange::new(|(key, _, _): &Keyed<K, V>| key.hashed());
    stream
        .unary_frontier(by_key, name, move |_initial, _info| {
            let mut state: HashMap<K, V> = HashMap::new();
            // Changes of epochs not yet complete, with a capability to emit at each.
            let mut pending: BTreeMap<Epoch, Pending<K, V>> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|capability, changes| {
                    if let Some(held) = capability.retain_least(0) {
                        let epoch = *held.time();
                        pending
                            .entry(epoch)
                            .or_insert_with(|| (held, Vec::new()))
                            .1
                            .append(changes);
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (capability, mut changes) = entry.remove();
                    let epoch = *capability.time();
                    changes.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                    let mut session = output.session(&capability);
                    let mut counters = counters.borrow_mut();
                    let mut changes = changes.into_iter().peekable();
                    while let Some((key, _, first)) = changes.next() {
                        counters.count(&first, state.contains_key(&key));
                        let mut last = first;
                        while let Some((_, _, next)) = changes.next_if(|(k, _, _)| *k == key) {
                            counters.count(&next, last.is_some());
                            last = next;
                        }
                        match (state.entry(key), last) {
                            (Entry::Occupied(mut row), Some(new)) => {
                                if *row.get() != new {
                                    let old = std::mem::replace(row.get_mut(), new.clone());
                                    session.give(((row.key().clone(), old), epoch, -1));
                                    session.give(((row.key().clone(), new), epoch, 1));
                                }
                            }
                            (Entry::Occupied(row), None) => {
                                let (key, old) = row.remove_entry();
                                session.give(((key, old), epoch, -1));
                            }
                            (Entry::Vacant(row), Some(new)) => {
                                session.give(((row.key().clone(), new.clone()), epoch, 1));
                                row.insert(new);
                            }
                            (Entry::Vacant(_), None) => {}
                        }
                    }
                }
            }
        })
        .as_collection()
}
