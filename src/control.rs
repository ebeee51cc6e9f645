//! A tiny side dataflow through which every worker hands one message to every other.
//!
//! Workers use it to agree before they act: whether an epoch's files were read without
//! error (so that all of them apply it, or none), and to bring counts to worker 0. It runs
//! over the same timely connections as the job, so it works across processes too.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use timely::dataflow::operators::core::probe::Handle as ProbeHandle;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::InputHandleVec;
use timely::worker::Worker;

/// All-gather of one `T` per worker per round.
pub struct AllGather<T: timely::ExchangeData + Clone> {
    input: InputHandleVec<u64, (usize, T)>,
    probe: ProbeHandle<u64>,
    received: Rc<RefCell<Vec<(usize, T)>>>,
    round: u64,
}

/// Some worker stopped before the round completed.
#[derive(Debug)]
pub struct PeerLost {
    pub heard_from: usize,
    pub peers: usize,
}

impl<T: timely::ExchangeData + Clone> AllGather<T> {
    pub fn new(worker: &mut Worker) -> Self {
        let mut input = InputHandleVec::new();
        let probe = ProbeHandle::new();
        let received = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&received);
        worker.dataflow(|scope| {
            input
                .to_stream(scope)
                .broadcast()
                .inspect(move |message: &(usize, T)| sink.borrow_mut().push(message.clone()))
                .probe_with(&probe);
        });
        AllGather {
            input,
            probe,
            received,
            round: 0,
        }
    }

    /// Sends `value` to every worker and returns every worker's value, by worker index.
    pub fn round(&mut self, worker: &mut Worker, value: T) -> Result<Vec<T>, PeerLost> {
        self.input.send((worker.index(), value));
        self.round += 1;
        self.input.advance_to(self.round);
        // Park between steps: in follow mode the other workers wait here, possibly for
        // long, while worker 0 waits for a file. So this wait has no limit of its own: a
        // peer process that stops answering is found by the cluster's heartbeats
        // (`cluster.rs`), which end the run with one line.
        while self.probe.less_than(&self.round) {
            worker.step_or_park(Some(Duration::from_millis(100)));
        }
        let mut messages = std::mem::take(&mut *self.received.borrow_mut());
        messages.sort_by_key(|(index, _)| *index);
        if messages.len() != worker.peers() {
            return Err(PeerLost {
                heard_from: messages.len(),
                peers: worker.peers(),
            });
        }
        Ok(messages.into_iter().map(|(_, value)| value).collect())
    }
}
