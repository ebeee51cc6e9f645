//! The query's join, `orders JOIN discount_codes ON discount_code = code`, on what the
//! query keeps of each side: every code's order sums (`upsert_order_sums`) and every
//! code's percentage (the codes' upsert). Its output is the sums by percentage.
//!
//! One side is a small table and the other is one record per code, so each worker keeps,
//! for the codes it owns, each code's sums and its percentage in one map, and an epoch
//! moves each code it touched from what it added to its percentage before to what it adds
//! now, summed by percentage before anything leaves. Differential's `join_core` did the
//! same through three arrangements (both inputs and the consolidation after), whose
//! cursors and merges were about half of a 1,000-change epoch's dataflow.
//!
//! A code's percentages are kept with their counts, as a collection has them, so the
//! output is the bilinear join's for any input: Σ count × sums at each percentage.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;

use differential_dataflow::{Hashable, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::StreamVec;

use crate::keyed_table::FastMap;
use crate::model::{add_sums, Code, Epoch, Sums};

/// What one worker knows of a code.
#[derive(Default)]
struct CodeState {
    sums: Sums,
    /// The code's percentages (micros) with their counts: one, with count 1, for a code
    /// in the table.
    percentages: Vec<(i64, i128)>,
}

impl CodeState {
    /// Adds `sign` × what the code contributes to each percentage into `by_percentage`.
    fn contribute(&self, sign: i128, by_percentage: &mut BTreeMap<i64, Sums>) {
        if self.sums == (0, 0, 0) {
            return;
        }
        for &(percentage, count) in &self.percentages {
            add_sums(
                by_percentage.entry(percentage).or_default(),
                sign * count,
                self.sums,
            );
        }
    }

    fn is_empty(&self) -> bool {
        self.sums == (0, 0, 0) && self.percentages.is_empty()
    }
}

/// One epoch's changes to the codes a worker owns, waiting for the epoch to complete.
struct Pending {
    capability: Capability<Epoch>,
    sums: Vec<(Code, Sums)>,
    percentages: Vec<(Code, i64, i128)>,
}

/// The sums by percentage (micros): per epoch and worker, one update per percentage
/// whose sums changed.
pub fn sums_by_percentage<'scope>(
    sums_by_code: VecCollection<'scope, Epoch, (Code, ()), Sums>,
    codes: VecCollection<'scope, Epoch, (Code, i64), i128>,
) -> StreamVec<'scope, Epoch, (i64, Epoch, Sums)> {
    // Both sides of a code go to the same worker.
    let sums_pact = Exchange::new(|((code, ()), _, _): &((Code, ()), Epoch, Sums)| code.hashed());
    let codes_pact = Exchange::new(|((code, _), _, _): &((Code, i64), Epoch, i128)| code.hashed());
    sums_by_code.inner.binary_frontier(
        codes.inner,
        sums_pact,
        codes_pact,
        "SumsByPercentage",
        |_initial, _info| {
            let mut pending: BTreeMap<Epoch, Pending> = BTreeMap::new();
            let mut codes: FastMap<Code, CodeState> = FastMap::default();
            move |(sums_in, sums_frontier), (codes_in, codes_frontier), output| {
                sums_in.for_each(|capability, updates| {
                    let Some(waiting) = waiting_at(&mut pending, capability) else {
                        return;
                    };
                    let arrived = updates.drain(..).map(|((code, ()), _, sums)| (code, sums));
                    waiting.sums.extend(arrived);
                });
                codes_in.for_each(|capability, updates| {
                    let Some(waiting) = waiting_at(&mut pending, capability) else {
                        return;
                    };
                    let arrived = updates
                        .drain(..)
                        .map(|((code, percentage), _, count)| (code, percentage, count));
                    waiting.percentages.extend(arrived);
                });
                while let Some(entry) = pending.first_entry() {
                    let epoch = *entry.key();
                    if sums_frontier.less_equal(&epoch) || codes_frontier.less_equal(&epoch) {
                        break;
                    }
                    let Pending {
                        capability,
                        sums,
                        percentages,
                    } = entry.remove();
                    let by_percentage = apply(&mut codes, sums, percentages);
                    let updates = by_percentage
                        .into_iter()
                        .filter(|(_, sums)| *sums != (0, 0, 0))
                        .map(|(percentage, sums)| (percentage, epoch, sums));
                    output.session(&capability).give_iterator(updates);
                }
            }
        },
    )
}

/// The epoch's pending changes, made on first use, for input at `capability`.
fn waiting_at(
    pending: &mut BTreeMap<Epoch, Pending>,
    capability: InputCapability<Epoch>,
) -> Option<&mut Pending> {
    let held = capability.retain_least(0)?;
    Some(pending.entry(*held.time()).or_insert_with(|| Pending {
        capability: held,
        sums: Vec::new(),
        percentages: Vec::new(),
    }))
}

/// Applies one epoch's changes to the codes they touch; returns the change to the sums of
/// each percentage.
fn apply(
    codes: &mut FastMap<Code, CodeState>,
    sums: Vec<(Code, Sums)>,
    percentages: Vec<(Code, i64, i128)>,
) -> BTreeMap<i64, Sums> {
    // Each touched code once: its change of sums and of percentages.
    let mut touched: FastMap<Code, (Sums, Vec<(i64, i128)>)> = FastMap::default();
    for (code, delta) in sums {
        add_sums(&mut touched.entry(code).or_default().0, 1, delta);
    }
    for (code, percentage, count) in percentages {
        touched.entry(code).or_default().1.push((percentage, count));
    }
    let mut by_percentage = BTreeMap::new();
    for (code, (delta, changed)) in touched {
        let mut slot = match codes.entry(code) {
            Entry::Occupied(slot) => slot,
            Entry::Vacant(slot) => slot.insert_entry(CodeState::default()),
        };
        let state = slot.get_mut();
        state.contribute(-1, &mut by_percentage);
        add_sums(&mut state.sums, 1, delta);
        for (percentage, count) in changed {
            match state.percentages.iter_mut().find(|(p, _)| *p == percentage) {
                Some(held) => held.1 += count,
                None => state.percentages.push((percentage, count)),
            }
        }
        state.percentages.retain(|(_, count)| *count != 0);
        state.contribute(1, &mut by_percentage);
        if state.is_empty() {
            // The code left both sides: nothing of it is kept.
            slot.remove();
        }
    }
    by_percentage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(name: &str) -> Code {
        Code::from(name)
    }

    #[test]
    fn a_code_moves_its_sums_with_its_percentage() {
        let mut codes = FastMap::default();
        // Orders of A before A is a code: nothing is counted.
        let sums = vec![(code("A"), (2, 5, 300))];
        assert!(apply(&mut codes, sums, Vec::new())
            .values()
            .all(|s| *s == (0, 0, 0)));
        // A arrives at 10%: its orders count there.
        let at_ten = apply(&mut codes, Vec::new(), vec![(code("A"), 10, 1)]);
        assert_eq!(at_ten, BTreeMap::from([(10, (2, 5, 300))]));
        // Corrected to 20% in the same epoch as one more order: all of it moves.
        let corrected = apply(
            &mut codes,
            vec![(code("A"), (1, 1, 100))],
            vec![(code("A"), 10, -1), (code("A"), 20, 1)],
        );
        assert_eq!(
            corrected,
            BTreeMap::from([(10, (-2, -5, -300)), (20, (3, 6, 400))])
        );
        // Deleted: its sums leave, and once its orders go too nothing of it is kept.
        let deleted = apply(
            &mut codes,
            vec![(code("A"), (-3, -6, -400))],
            vec![(code("A"), 20, -1)],
        );
        assert_eq!(deleted, BTreeMap::from([(20, (-3, -6, -400))]));
        assert!(codes.is_empty());
    }
}
