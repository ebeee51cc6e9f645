//! The dataflow that keeps the SPEC's query current:
//!
//! ```sql
//! SELECT dc.percentage, AVG(o.item_ct), AVG(o.order_subtotal),
//!        AVG(o.order_subtotal * (100 - dc.percentage) / 100.0),
//!        AVG(o.order_subtotal * (dc.percentage / 100.0)), COUNT(*)
//! FROM orders o JOIN discount_codes dc ON o.discount_code = dc.code
//! GROUP BY dc.percentage
//! ```
//!
//! Both tables are upsert inputs (`upsert`), keyed by `code` and `id`. Every average is a
//! sum divided by a count, and all sums are linear, so each order is exploded into the
//! difference `(1, item_ct, subtotal)` of its code (inside the orders' upsert operator,
//! which also consolidates them per epoch): orders collapse into one record per code, and
//! a code correction joins one record, not every order that used the code. The discounted
//! totals follow exactly from Σ subtotal and the percentage, so they need no sums of their
//! own. The per-percentage sums go to worker 0, which turns them into rows.

use std::cell::RefCell;
use std::rc::Rc;

use timely::dataflow::operators::core::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Exchange, Inspect, Probe};
use timely::dataflow::{InputHandleVec, Scope};

use crate::model::{Code, Epoch, Order, OrderId, Position};
use crate::upsert::{upsert, upsert_order_sums, UpsertCounters};

/// Per-percentage sums carried as a difference: (orders, Σ item_ct, Σ subtotal micros).
pub type Sums = (i128, i128, i128);

/// An order counted in the result, with the percentage of its code.
pub type EnrichedOrder = (OrderId, Order, i64);

/// Updates gathered at worker 0, drained by the epoch loop.
pub type Gathered<D, R> = Rc<RefCell<Vec<(D, Epoch, R)>>>;

/// The two upsert inputs of one worker.
pub struct Inputs {
    pub codes: InputHandleVec<Epoch, (Code, Position, Option<i64>)>,
    pub orders: InputHandleVec<Epoch, (OrderId, Position, Option<Order>)>,
}

/// What the epoch loop reads back once an epoch is complete.
pub struct Outputs {
    pub probe: ProbeHandle<Epoch>,
    /// Changes to the per-percentage sums (only worker 0 receives any).
    pub sums: Gathered<i64, Sums>,
    /// Changes to the enriched orders, when asked for (only worker 0 receives any).
    pub enriched: Option<Gathered<EnrichedOrder, i128>>,
    pub code_counters: Rc<RefCell<UpsertCounters>>,
    pub order_counters: Rc<RefCell<UpsertCounters>>,
}

/// Builds the dataflow in `scope`; `with_enriched` also maintains the enriched orders.
pub fn build(scope: Scope<'_, Epoch>, inputs: &mut Inputs, with_enriched: bool) -> Outputs {
    let code_counters = Rc::new(RefCell::new(UpsertCounters::default()));
    let order_counters = Rc::new(RefCell::new(UpsertCounters::default()));
    let codes = upsert(
        inputs.codes.to_stream(scope),
        "UpsertCodes",
        Rc::clone(&code_counters),
    );
    let orders = inputs.orders.to_stream(scope);
    let sums_by_code = upsert_order_sums(orders.clone(), Rc::clone(&order_counters));

    let codes_by_code = codes.arrange_by_key();
    let sums_by_percentage = sums_by_code
        .join_core(codes_by_code.clone(), |_code, &(), &percentage| {
            Some(percentage)
        })
        .consolidate();

    let probe = ProbeHandle::new();
    let sums = gather_at_worker_zero(sums_by_percentage.inner, &probe);

    // The enriched orders need whole rows: a second upsert of the orders, kept only when
    // asked for (its counts would repeat the first one's).
    let enriched = with_enriched.then(|| {
        let ignored = Rc::new(RefCell::new(UpsertCounters::default()));
        let enriched_orders = upsert(orders, "UpsertOrderRows", ignored)
            .filter(|(_, order)| !order.discount_code.is_empty())
            .map(|(id, order)| (order.discount_code.clone(), (id, order)))
            .join_core(codes_by_code, |_code, (id, order), &percentage| {
                Some((*id, order.clone(), percentage))
            });
        gather_at_worker_zero(enriched_orders.inner, &probe)
    });

    Outputs {
        probe,
        sums,
        enriched,
        code_counters,
        order_counters,
    }
}

/// Sends every update of `stream` to worker 0 and keeps it there for the epoch loop.
fn gather_at_worker_zero<D, R>(
    stream: timely::dataflow::StreamVec<'_, Epoch, (D, Epoch, R)>,
    probe: &ProbeHandle<Epoch>,
) -> Gathered<D, R>
where
    D: timely::ExchangeData + Clone,
    R: timely::ExchangeData + Clone,
{
    let gathered: Gathered<D, R> = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&gathered);
    stream
        .exchange(|_| 0)
        .inspect(move |update| sink.borrow_mut().push(update.clone()))
        .probe_with(probe);
    gathered
}
