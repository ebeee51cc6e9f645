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

use crate::model::{
    Change, Code, Epoch, Keyed, Order, OrderAmounts, OrderId, Position, Sums, Table, UpsertCounters,
};
use crate::percentages;
use crate::upsert::{upsert, upsert_order_sums};

/// An order counted in the result, with the percentage of its code.
pub type EnrichedOrder = (OrderId, Order, i64);

/// Updates gathered at worker 0, drained by the epoch loop.
pub type Gathered<D, R> = Rc<RefCell<Vec<(D, Epoch, R)>>>;

/// The upsert inputs of one worker: the codes, what the query counts of the orders, and
/// (for the enriched orders only) whole order rows.
pub struct Inputs {
    codes: UpsertInput<Code, i64>,
    orders: UpsertInput<OrderId, OrderAmounts>,
    order_rows: Option<UpsertInput<OrderId, Order>>,
    /// The positions of truncates of each table (rare: a database's TRUNCATE).
    code_truncates: InputHandleVec<Epoch, Position>,
    order_truncates: InputHandleVec<Epoch, Position>,
}

/// An input of keyed changes.
type UpsertInput<K, V> = InputHandleVec<Epoch, Keyed<K, V>>;

impl Inputs {
    /// Inputs for a dataflow built with or without the enriched orders.
    pub fn new(with_enriched: bool) -> Inputs {
        Inputs {
            codes: InputHandleVec::new(),
            orders: InputHandleVec::new(),
            order_rows: with_enriched.then(InputHandleVec::new),
            code_truncates: InputHandleVec::new(),
            order_truncates: InputHandleVec::new(),
        }
    }

    pub fn send(&mut self, position: Position, change: Change) {
        match change {
            Change::Code {
                code,
                percentage_micros,
            } => self.codes.send((code, position, percentage_micros)),
            Change::Order { id, row } => {
                let amounts = row.as_ref().map(Order::amounts);
                if let Some(rows) = self.order_rows.as_mut() {
                    rows.send((id, position, row));
                }
                self.orders.send((id, position, amounts));
            }
            Change::Truncate {
                table: Table::DiscountCodes,
            } => self.code_truncates.send(position),
            Change::Truncate {
                table: Table::Orders,
            } => self.order_truncates.send(position),
        }
    }

    /// Closes `epoch`: what is sent from now on belongs to a later one.
    pub fn advance_to(&mut self, epoch: Epoch) {
        self.codes.advance_to(epoch);
        self.orders.advance_to(epoch);
        if let Some(rows) = self.order_rows.as_mut() {
            rows.advance_to(epoch);
        }
        self.code_truncates.advance_to(epoch);
        self.order_truncates.advance_to(epoch);
    }
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

/// Builds the dataflow in `scope`; inputs made with `with_enriched` also maintain the
/// enriched orders.
pub fn build(scope: Scope<'_, Epoch>, inputs: &mut Inputs) -> Outputs {
    let code_counters = Rc::new(RefCell::new(UpsertCounters::default()));
    let order_counters = Rc::new(RefCell::new(UpsertCounters::default()));
    let code_truncates = inputs.code_truncates.to_stream(scope);
    let order_truncates = inputs.order_truncates.to_stream(scope);
    let codes = upsert(
        inputs.codes.to_stream(scope),
        code_truncates,
        "UpsertCodes",
        Rc::clone(&code_counters),
    );
    let orders = inputs.orders.to_stream(scope);
    let sums_by_code =
        upsert_order_sums(orders, order_truncates.clone(), Rc::clone(&order_counters));

    let sums_by_percentage = percentages::sums_by_percentage(sums_by_code, codes.clone());

    let probe = ProbeHandle::new();
    let sums = gather_at_worker_zero(sums_by_percentage, &probe);

    // The enriched orders need whole rows: a second upsert of the orders, kept only when
    // asked for (its counts would repeat the first one's).
    let enriched = inputs.order_rows.as_mut().map(|rows| {
        let ignored = Rc::new(RefCell::new(UpsertCounters::default()));
        let enriched_orders = upsert(
            rows.to_stream(scope),
            order_truncates,
            "UpsertOrderRows",
            ignored,
        )
        .filter(|(_, order)| !order.discount_code.is_empty())
        .map(|(id, order)| (order.discount_code.clone(), (id, order)))
        .join_core(codes.arrange_by_key(), |_code, (id, order), &percentage| {
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
