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
    input: InputHandleVec<u64, Message<T>>,
    probe: ProbeHandle<u64>,
    /// Messages as they arrive: a worker that finished a round may send its next
    /// message before this worker has taken the round's, so each says its round.
    received: Rc<RefCell<Vec<Message<T>>>>,
    round: u64,
}

/// A round's number, the sending worker's index, and its value.
type Message<T> = (u64, usize, T);

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
                .inspect(move |message: &Message<T>| sink.borrow_mut().push(message.clone()))
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
        self.round += 1;
        self.input.send((self.round, worker.index(), value));
        self.input.advance_to(self.round);
        // Park between steps: in follow mode the other workers wait here, possibly for
        // long, while worker 0 waits for a file. So this wait has no limit of its own: a
        // peer process that stops answering is found by the cluster's heartbeats
        // (`cluster.rs`), which end the run with one line.
        while self.probe.less_than(&self.round) {
            worker.step_or_park(Some(Duration::from_millis(100)));
        }
        let round = self.round;
        let (mut messages, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *self.received.borrow_mut())
                .into_iter()
                .partition(|(of, _, _)| *of == round);
        *self.received.borrow_mut() = later;
        messages.sort_by_key(|(_, index, _)| *index);
        if messages.len() != worker.peers() {
            return Err(PeerLost {
                heard_from: messages.len(),
                peers: worker.peers(),
            });
        }
        Ok(messages.into_iter().map(|(_, _, value)| value).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers that leave a round at different moments send their next round's value
    /// while a slower one still waits in the round before; every round must still hand
    /// each worker exactly that round's values.
    #[test]
    fn each_round_returns_that_rounds_values_when_workers_run_ahead() {
        let rounds = 300u64;
        // A round that takes another round's value leaves some worker waiting for ever,
        // so the workers run on a thread of their own and the test waits a bounded time.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = timely::execute(timely::Config::process(3), move |worker| {
                let mut all = AllGather::<(u64, usize)>::new(worker);
                for round in 1..=rounds {
                    // Uneven work between rounds, so workers leave each round at different times.
                    if (round as usize + worker.index()) % 3 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    let values = all.round(worker, (round, worker.index())).unwrap();
                    assert_eq!(values, vec![(round, 0), (round, 1), (round, 2)]);
                }
            });
            let _ = done.send(outcome.map(|workers| workers.join()));
        });
        let workers = finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the workers did not finish their rounds within 60 s")
            .unwrap();
        workers.into_iter().for_each(|worker| worker.unwrap());
    }
}
