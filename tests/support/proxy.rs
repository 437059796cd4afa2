//! A fault-injecting TCP proxy for one directed Raft link: member `a` dials the proxy
//! instead of member `b`, and the proxy forwards to `b`, or not, as the test says.
//!
//! Modes:
//! * [`LinkMode::Up`]: bytes flow both ways.
//! * [`LinkMode::Blackhole`]: bytes stop flowing (they wait in the proxy and the kernel
//!   buffers, as behind a router that drops packets and TCP retransmits); new
//!   connections are accepted but not connected onwards. Back to `Up`, the delayed bytes
//!   are delivered, late and in order.
//! * [`LinkMode::Drop`]: every connection of the link is closed and new ones are closed
//!   as soon as they are accepted (connection refused/reset).
//!
//! Plain std threads: one accept loop per proxy, two pumps per connection; every loop
//! wakes at least every 50 ms to check the mode and the shutdown flag.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// What a link does with its traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    /// Forward.
    Up = 0,
    /// Hold every byte (a silent partition).
    Blackhole = 1,
    /// Close every connection (a refusing partition).
    Drop = 2,
}

impl LinkMode {
    fn from_u8(v: u8) -> LinkMode {
        match v {
            1 => LinkMode::Blackhole,
            2 => LinkMode::Drop,
            _ => LinkMode::Up,
        }
    }
}

#[derive(Debug, Default)]
struct LinkState {
    mode: AtomicU8,
    /// Bumped on every switch to `Drop`: connections of an older epoch close.
    epoch: AtomicU64,
    shutdown: AtomicBool,
    /// Connections accepted (for the report).
    accepted: AtomicU64,
}

impl LinkState {
    fn mode(&self) -> LinkMode {
        LinkMode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    /// Whether a connection of `epoch` must close now.
    fn must_close(&self, epoch: u64) -> bool {
        self.shutdown.load(Ordering::SeqCst)
            || self.epoch.load(Ordering::SeqCst) != epoch
            || self.mode() == LinkMode::Drop
    }
}

/// One directed link's proxy, listening on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// The address members dial.
    pub addr: SocketAddr,
    /// The address it forwards to.
    pub target: SocketAddr,
    state: Arc<LinkState>,
}

const TICK: Duration = Duration::from_millis(50);

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(LinkState::default());
        let st = Arc::clone(&state);
        thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, target, st))
            .expect("spawn proxy");
        Proxy {
            addr,
            target,
            state,
        }
    }

    /// Sets the link's mode.
    pub fn set(&self, mode: LinkMode) {
        if mode == LinkMode::Drop {
            self.state.epoch.fetch_add(1, Ordering::SeqCst);
        }
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// The link's mode.
    pub fn mode(&self) -> LinkMode {
        self.state.mode()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, state: Arc<LinkState>) {
    while !state.shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                state.accepted.fetch_add(1, Ordering::Relaxed);
                if state.mode() == LinkMode::Drop {
                    drop(client);
                    continue;
                }
                let st = Arc::clone(&state);
                let _ = thread::Builder::new()
                    .name("proxy-conn".into())
                    .spawn(move || connection(client, target, st));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(10)),
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn connection(client: TcpStream, target: SocketAddr, state: Arc<LinkState>) {
    let epoch = state.epoch.load(Ordering::SeqCst);
    let _ = client.set_nonblocking(false);
    // A blackholed link does not even connect onwards until it heals.
    while state.mode() == LinkMode::Blackhole && !state.must_close(epoch) {
        thread::sleep(TICK);
    }
    if state.must_close(epoch) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(TICK));
        let _ = s.set_write_timeout(Some(TICK));
    }
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let st = Arc::clone(&state);
    let up = thread::Builder::new()
        .name("proxy-pump".into())
        .spawn(move || pump(c2, s2, &st, epoch));
    pump(server, client, &state, epoch);
    if let Ok(h) = up {
        let _ = h.join();
    }
}

/// Copies `from` → `to` while the link allows; closes both when it must.
fn pump(mut from: TcpStream, mut to: TcpStream, state: &LinkState, epoch: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    'outer: loop {
        if state.must_close(epoch) {
            break;
        }
        if state.mode() == LinkMode::Blackhole {
            thread::sleep(TICK);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut off = 0;
        while off < n {
            if state.must_close(epoch) {
                break 'outer;
            }
            if state.mode() == LinkMode::Blackhole {
                thread::sleep(TICK);
                continue;
            }
            match to.write(&buf[off..n]) {
                Ok(0) => break 'outer,
                Ok(k) => off += k,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => break 'outer,
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
