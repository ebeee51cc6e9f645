//! Starting the processes of a timely cluster: the connections are made here, with a
//! bounded wait, and handed to timely.
//!
//! timely's own set-up retries a missing peer forever and prints its progress on stdout,
//! which must hold the result alone. The connection pattern is timely's: each process
//! listens on its own address, connects to every process below it and says who it is,
//! and accepts every process above it. Here both ends of a connection say who they are
//! and how many workers they run, within the wait (so a port answered by anything else
//! is an error, not a hang), and a second connection per pair carries heartbeats.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};

/// The allocators of this process's workers, connected to every other process, and the
/// guard that keeps the network threads alive.
pub type Started = (Vec<AllocatorBuilder>, Box<dyn std::any::Any + Send>);

/// How the cluster is connected and watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// How long to wait for the other processes to connect and answer.
    pub connect: Duration,
    /// How long a process may go without a heartbeat from a peer before the run ends.
    pub silence: Duration,
}

/// Connects process `process` of `addresses.len()` to all the others, waiting at most
/// `patience.connect` for them, and builds the allocators of its `threads` workers.
/// Every process must run the same number of workers: that is checked here, in the
/// handshake, because timely would index past its channels otherwise.
pub fn start(
    addresses: &[String],
    process: usize,
    threads: usize,
    patience: Patience,
) -> Result<Started, String> {
    let me = Greeting {
        process,
        threads,
        kind: Kind::Data,
    };
    let sockets = connect(addresses, me, patience.connect)?;
    let mut data = Vec::with_capacity(sockets.len());
    for (peer, pair) in sockets.into_iter().enumerate() {
        data.push(pair.map(|(data, heartbeat)| {
            heartbeats(peer, heartbeat, patience.silence);
            data
        }));
    }
    let hooks = Hooks::default();
    let local =
        ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) =
        initialize_networking_from_sockets(local, data, process, threads, hooks)
            .map_err(|e| format!("cannot start the cluster's network threads: {e}"))?;
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        Box::new(guard),
    ))
}

/// What each end of a new connection says first: who it is, how many workers it runs,
/// and what the connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Greeting {
    process: usize,
    threads: usize,
    kind: Kind,
}

/// Each pair of processes has two connections: timely's, and one that carries only
/// heartbeats, so that a peer's silence is seen whatever its workers are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Heartbeat,
}

impl Greeting {
    /// Says "discounting", so that any other program on the port is told apart.
    const MAGIC: [u8; 4] = *b"DSCT";
    const LEN: usize = 21;

    fn encode(&self) -> [u8; Self::LEN] {
        let mut bytes = [0u8; Self::LEN];
        bytes[..4].copy_from_slice(&Self::MAGIC);
        bytes[4..12].copy_from_slice(&(self.process as u64).to_be_bytes());
        bytes[12..20].copy_from_slice(&(self.threads as u64).to_be_bytes());
        bytes[20] = match self.kind {
            Kind::Data => 0,
            Kind::Heartbeat => 1,
        };
        bytes
    }

    fn decode(bytes: &[u8; Self::LEN]) -> Option<Greeting> {
        let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let kind = match bytes[20] {
            0 => Kind::Data,
            1 => Kind::Heartbeat,
            _ => return None,
        };
        (bytes[..4] == Self::MAGIC).then(|| Greeting {
            process: usize::try_from(word(4)).unwrap_or(usize::MAX),
            threads: usize::try_from(word(12)).unwrap_or(usize::MAX),
            kind,
        })
    }

    /// The error for two processes that run different numbers of workers.
    fn check_threads(&self, theirs: &Greeting) -> Result<(), String> {
        if self.threads == theirs.threads {
            return Ok(());
        }
        let (low, high) = if self.process < theirs.process {
            (self, theirs)
        } else {
            (theirs, self)
        };
        Err(format!(
            "--workers differs between processes: {} in process {}, {} in process {}",
            low.threads, low.process, high.threads, high.process
        ))
    }
}

/// Sends our greeting on `stream` and reads the peer's, both bounded by `deadline`
/// (a listener that accepts and says nothing must not hold us past it).
fn exchange(stream: &mut TcpStream, me: Greeting, deadline: Instant) -> std::io::Result<Greeting> {
    // At least a second, so that a connection made at the last moment can still answer.
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))?;
    stream.write_all(&me.encode())?;
    let mut bytes = [0u8; Greeting::LEN];
    stream.read_exact(&mut bytes)?;
    // timely's threads expect blocking sockets without timeouts.
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    Greeting::decode(&bytes).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not a discounting process",
        )
    })
}

/// Says what a failed handshake with a peer was, in one line.
fn handshake_error(e: std::io::Error, wait: Duration) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no answer within {}s", wait.as_secs())
        }
        std::io::ErrorKind::UnexpectedEof => "it closed the connection".to_string(),
        _ => e.to_string(),
    }
}

/// Per other process, in process order (`None` at our own index): timely's socket and
/// the heartbeat socket.
type Sockets = Vec<Option<(TcpStream, TcpStream)>>;

fn connect(addresses: &[String], me: Greeting, patience: Duration) -> Result<Sockets, String> {
    let process = me.process;
    let deadline = Instant::now() + patience;
    let own = &addresses[process];
    // Listen first, so that processes above us can queue their connections meanwhile.
    let listener = TcpListener::bind(own.as_str())
        .map_err(|e| format!("cannot listen on {own} (process {process}): {e}"))?;
    let mut data: Vec<Option<TcpStream>> = (0..addresses.len()).map(|_| None).collect();
    let mut beats: Vec<Option<TcpStream>> = (0..addresses.len()).map(|_| None).collect();

    for (peer, address) in addresses.iter().enumerate().take(process) {
        for kind in [Kind::Data, Kind::Heartbeat] {
            let mut stream = connect_until(address, deadline).map_err(|e| {
                format!(
                    "cannot reach process {peer} at {address} within {}s: {e}",
                    patience.as_secs()
                )
            })?;
            let greeting = Greeting { kind, ..me };
            let theirs = exchange(&mut stream, greeting, deadline).map_err(|e| {
                format!(
                    "process {peer} at {address} did not answer the handshake: {}",
                    handshake_error(e, patience)
                )
            })?;
            if theirs.process != peer {
                return Err(format!(
                    "{address} answers as process {}, but it is process {peer} in the hostfile",
                    theirs.process
                ));
            }
            me.check_threads(&theirs)?;
            match kind {
                Kind::Data => data[peer] = Some(stream),
                Kind::Heartbeat => beats[peer] = Some(stream),
            }
        }
    }

    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {own}: {e}"))?;
    let missing = |data: &[Option<TcpStream>], beats: &[Option<TcpStream>]| -> Vec<usize> {
        (process + 1..addresses.len())
            .filter(|p| data[*p].is_none() || beats[*p].is_none())
            .collect()
    };
    while !missing(&data, &beats).is_empty() {
        match listener.accept() {
            Ok((mut stream, from)) => {
                stream
                    .set_nonblocking(false)
                    .and_then(|()| stream.set_nodelay(true))
                    .map_err(|e| format!("connection from {from}: {e}"))?;
                // Our greeting answers theirs: the other end reads it the same way.
                let theirs = exchange(&mut stream, me, deadline).map_err(|e| {
                    format!(
                        "connection from {from} did not say which process it is: {}",
                        handshake_error(e, patience)
                    )
                })?;
                let peer = theirs.process;
                let slots = match theirs.kind {
                    Kind::Data => &mut data,
                    Kind::Heartbeat => &mut beats,
                };
                if peer <= process || peer >= addresses.len() || slots[peer].is_some() {
                    return Err(format!("connection from {from} claims to be process {peer}, which is not expected here"));
                }
                me.check_threads(&theirs)?;
                slots[peer] = Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let missing: Vec<String> = missing(&data, &beats)
                        .iter()
                        .map(usize::to_string)
                        .collect();
                    return Err(format!(
                        "process {} did not connect within {}s",
                        missing.join(", "),
                        patience.as_secs()
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("cannot accept connections on {own}: {e}")),
        }
    }
    Ok(data
        .into_iter()
        .zip(beats)
        .map(|(data, beat)| data.zip(beat))
        .collect())
}

/// How often a process tells each peer that it is alive.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Beats on `stream` and watches the peer's beats, on two threads of their own.
///
/// Why heartbeats and not a limit on how long a round of `AllGather` may take: the
/// workers legitimately wait long, for the next file in follow mode or the next
/// transaction from a database, and for a large snapshot to be read or a large epoch to
/// be computed; a time limit on those waits would fail slow runs. A process whose
/// heartbeat thread has gone quiet for `silence` is stopped (SIGSTOP), hung or cut off,
/// whatever its workers were doing, and no wait on it would ever end: the run ends here
/// with one line and exit code 1, as it does when timely loses a peer (no output file is
/// written by a run that has not finished).
fn heartbeats(peer: usize, stream: TcpStream, silence: Duration) {
    let Ok(mut beat) = stream.try_clone() else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name(format!("heartbeat-to-{peer}"))
        .spawn(move || {
            // Ends when the peer has gone (a write fails), or with the process.
            while beat.write_all(&[1]).is_ok() {
                std::thread::sleep(HEARTBEAT);
            }
        });
    let mut watch = stream;
    let _ = std::thread::Builder::new()
        .name(format!("heartbeat-from-{peer}"))
        .spawn(move || {
            if watch.set_read_timeout(Some(silence)).is_err() {
                return;
            }
            let mut byte = [0u8; 64];
            loop {
                match watch.read(&mut byte) {
                    Ok(0) => return, // the peer finished, or died: timely says which
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        eprintln!(
                            "discounting: no word from process {peer} for {}s: it is stopped, hung or cut off",
                            silence.as_secs()
                        );
                        std::process::exit(1);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
}

/// Connects to `address`, retrying until `deadline` while the peer is not listening yet.
fn connect_until(address: &str, deadline: Instant) -> std::io::Result<TcpStream> {
    loop {
        let attempt = resolve(address).and_then(|target| {
            let left = deadline.saturating_duration_since(Instant::now());
            TcpStream::connect_timeout(&target, left.max(Duration::from_millis(10)))
        });
        match attempt {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn resolve(address: &str) -> std::io::Result<SocketAddr> {
    address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{address} resolves to no address"),
        )
    })
}
