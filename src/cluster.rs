//! Starting the processes of a timely cluster: the connections are made here, with a
//! bounded wait, and handed to timely.
//!
//! timely's own set-up retries a missing peer forever and prints its progress on stdout,
//! which must hold the result alone. The connection pattern is timely's: each process
//! listens on its own address, connects to every process below it and says who it is,
//! and accepts every process above it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};

/// The allocators of this process's workers, connected to every other process, and the
/// guard that keeps the network threads alive.
pub type Started = (Vec<AllocatorBuilder>, Box<dyn std::any::Any + Send>);

/// Connects process `process` of `addresses.len()` to all the others, waiting at most
/// `patience` for them, and builds the allocators of its `threads` workers.
pub fn start(
    addresses: &[String],
    process: usize,
    threads: usize,
    patience: Duration,
) -> Result<Started, String> {
    let sockets = connect(addresses, process, patience)?;
    let hooks = Hooks::default();
    let local =
        ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) =
        initialize_networking_from_sockets(local, sockets, process, threads, hooks)
            .map_err(|e| format!("cannot start the cluster's network threads: {e}"))?;
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        Box::new(guard),
    ))
}

/// One socket per other process, in process order, `None` at our own index.
fn connect(
    addresses: &[String],
    process: usize,
    patience: Duration,
) -> Result<Vec<Option<TcpStream>>, String> {
    let deadline = Instant::now() + patience;
    let own = &addresses[process];
    // Listen first, so that processes above us can queue their connections meanwhile.
    let listener = TcpListener::bind(own.as_str())
        .map_err(|e| format!("cannot listen on {own} (process {process}): {e}"))?;
    let mut sockets: Vec<Option<TcpStream>> = (0..addresses.len()).map(|_| None).collect();

    for (peer, address) in addresses.iter().enumerate().take(process) {
        let mut stream = connect_until(address, deadline).map_err(|e| {
            format!(
                "cannot reach process {peer} at {address} within {}s: {e}",
                patience.as_secs()
            )
        })?;
        stream
            .write_all(&(process as u64).to_be_bytes())
            .map_err(|e| format!("cannot greet process {peer} at {address}: {e}"))?;
        sockets[peer] = Some(stream);
    }

    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {own}: {e}"))?;
    while sockets.iter().skip(process + 1).any(Option::is_none) {
        match listener.accept() {
            Ok((mut stream, from)) => {
                stream
                    .set_nonblocking(false)
                    .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(10))))
                    .map_err(|e| format!("connection from {from}: {e}"))?;
                let mut index = [0u8; 8];
                stream.read_exact(&mut index).map_err(|e| {
                    format!("connection from {from} did not say which process it is: {e}")
                })?;
                stream
                    .set_read_timeout(None)
                    .map_err(|e| format!("connection from {from}: {e}"))?;
                let peer = u64::from_be_bytes(index) as usize;
                if peer <= process || peer >= addresses.len() || sockets[peer].is_some() {
                    return Err(format!("connection from {from} claims to be process {peer}, which is not expected here"));
                }
                sockets[peer] = Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let missing: Vec<String> = (process + 1..addresses.len())
                        .filter(|p| sockets[*p].is_none())
                        .map(|p| p.to_string())
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
    Ok(sockets)
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
