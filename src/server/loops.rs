//! Every core: N full loops in one process, each single-threaded on its
//! own thread with its own `Poll`, serving the same port, linked by a hub
//! so that the loops behave as one server. On Linux each loop has its own
//! listener (`SO_REUSEPORT`: the kernel spreads new connections over
//! them); elsewhere one loop listens and hands each connection to the next
//! loop in turn ([`Balance`]).
//!
//! ```text
//!           ┌─ loop 0: Poll, listener (SO_REUSEPORT), slab, topics ─┐
//! kernel ───┼─ loop 1: ...                                          ├── hub: every loop's inbox
//!           └─ loop N-1                                             ┘
//! Ctx::publish on loop i ──► its subscribers; the turn's frames (Arc) ──► one command per other loop's inbox
//! Ctx::send / LoopHandle::send to a ConnId ──► the inbox of the loop the id names
//! Balance::RoundRobin: loop 0 accepts ──► Adopt(socket) ──► the next loop's inbox (it registers it)
//! ```
//!
//! The hub passes encoded frames, never messages to encode again, and
//! nothing in it is shared but queues and one client count per loop (for
//! `max_clients`, which counts the whole process).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::net::TcpListener;

use super::handle::Hub;
use super::{Handler, LoopHandle, Server};
use crate::config::Config;

/// The most loops that can be linked (the loop index has 8 bits of a
/// [`ConnId`](crate::ConnId)).
pub const MAX_LOOPS: usize = 256;

/// N loops serving one address as one server, each on its own thread.
///
/// ```
/// use wsloop::{Config, ConnId, Ctx, Decision, Handler, Loops, Message, Request};
/// struct Chat;
/// impl Handler for Chat {
///     type Data = ();
///     fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, _: &Request) -> Decision {
///         ctx.subscribe(id, "room");
///         Decision::accept()
///     }
///     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, _: ConnId, msg: Message<'_>) {
///         ctx.publish("room", msg); // reaches "room" on every loop
///     }
/// }
/// let loops = Loops::bind("127.0.0.1:0".parse().unwrap(), 2, Config::default(), |_| Chat)?;
/// let stop = loops.handle();
/// let t = std::thread::spawn(move || stop.shutdown()); // every loop
/// loops.run()?; // the first loop here, the others on their threads
/// t.join().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Loops<H: Handler> {
    servers: Vec<Server<H>>,
}

/// How linked loops share one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Every loop has its own listener with `SO_REUSEPORT` and the kernel
    /// spreads new connections over them, hashing each connection's
    /// addresses and ports: no loop touches another's connections. The
    /// default on Linux (and Android), where the kernel balances.
    Kernel,
    /// One loop listens and hands each connection it accepts to the next
    /// loop in turn, itself included, through that loop's command queue:
    /// an even count per loop on any system, for one queued command and
    /// wake-up per connection. The default elsewhere (macOS and the BSDs
    /// accept `SO_REUSEPORT` but do not spread connections with it).
    RoundRobin,
}

impl Default for Balance {
    fn default() -> Self {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            Balance::Kernel
        } else {
            Balance::RoundRobin
        }
    }
}

/// The threads of the loops started by [`Loops::spawn_others`].
#[derive(Debug)]
pub struct LoopThreads(Vec<JoinHandle<io::Result<()>>>);

impl<H> Loops<H>
where
    H: Handler + Send + 'static,
    H::Data: Send,
{
    /// Builds `n` loops serving `addr`, with the handler `make(i)` for
    /// loop `i`, linked, sharing the port as the system does best
    /// ([`Balance::default`]).
    pub fn bind(
        addr: SocketAddr,
        n: usize,
        config: Config,
        make: impl FnMut(usize) -> H,
    ) -> io::Result<Self> {
        Loops::bind_with(addr, n, Balance::default(), config, make)
    }

    /// [`Loops::bind`] with the port shared as `balance` says: `n`
    /// listeners with `SO_REUSEPORT` ([`reuse_port_listeners`]), or one on
    /// loop 0 and `n - 1` servers [without one](Server::without_listener).
    pub fn bind_with(
        addr: SocketAddr,
        n: usize,
        balance: Balance,
        config: Config,
        mut make: impl FnMut(usize) -> H,
    ) -> io::Result<Self> {
        let listeners = match balance {
            Balance::Kernel => reuse_port_listeners(addr, n)?,
            Balance::RoundRobin => vec![TcpListener::bind(addr)?],
        };
        let mut servers = Vec::with_capacity(n);
        for (i, listener) in listeners.into_iter().enumerate() {
            servers.push(Server::with_listener(listener, config.clone(), make(i))?);
        }
        for i in servers.len()..n {
            servers.push(Server::without_listener(config.clone(), make(i))?);
        }
        Loops::link(servers)
    }

    /// Links servers built by hand (say, the first embedded in the host's
    /// `Poll`, see [`Server::embed`]): loop `i` is `servers[i]`. None may
    /// have had a client yet, a server is linked once, and at least one
    /// listens. When some have no listener ([`Server::without_listener`]),
    /// the ones that listen hand their connections round-robin to every
    /// loop ([`Balance::RoundRobin`]).
    pub fn link(mut servers: Vec<Server<H>>) -> io::Result<Self> {
        let invalid = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
        if servers.is_empty() || servers.len() > MAX_LOOPS {
            return invalid("from 1 to 256 loops can be linked");
        }
        if servers.iter().any(|s| s.core.has_had_clients()) {
            return invalid("a server that has had clients cannot be linked");
        }
        let Some(addr) = servers
            .iter()
            .find(|s| s.listener.is_some())
            .map(Server::local_addr)
        else {
            return invalid("at least one linked server must listen");
        };
        let hand_off = servers.iter().any(|s| s.listener.is_none());
        let servers_id = servers[0].core.backplane_id;
        let hub = Arc::new(Hub {
            inboxes: servers.iter().map(|s| s.core.commands.inbox()).collect(),
            clients: servers.iter().map(|_| AtomicUsize::new(0)).collect(),
            hand_off,
        });
        for (i, server) in servers.iter_mut().enumerate() {
            if !server.core.commands.link(hub.clone()) {
                return invalid("a server can be linked once");
            }
            server.core.index = i as u32;
            // One process to the backplane: loop 0's mark on every loop.
            server.core.backplane_id = servers_id;
            if server.listener.is_none() {
                server.local_addr = addr;
            }
            // Listening loops start their turns at different loops.
            server.next_loop = i;
        }
        Ok(Loops { servers })
    }

    /// A handle to every loop: sends go to the loop that owns the id,
    /// publishes and shutdown to all.
    pub fn handle(&self) -> LoopHandle {
        self.servers[0].handle()
    }

    /// The address the first listening loop listens on (all share the port
    /// when bound by [`Loops::bind`]).
    pub fn local_addr(&self) -> SocketAddr {
        self.servers[0].local_addr()
    }

    /// The servers, loop `i` at `i`: to set TLS, a clock, before running.
    pub fn servers_mut(&mut self) -> &mut [Server<H>] {
        &mut self.servers
    }

    /// Starts every loop but the first, each on a thread of its own
    /// running [`Server::run`], and gives the first back to run (or embed)
    /// on this thread. Join the others with [`LoopThreads::join`] after a
    /// shutdown ([`LoopHandle::shutdown`] stops them all).
    pub fn spawn_others(self) -> io::Result<(Server<H>, LoopThreads)> {
        let mut servers = self.servers.into_iter();
        // `link` refuses an empty list: there is a first.
        let first = servers.next().expect("Loops holds at least one server");
        let mut threads = Vec::new();
        for (i, mut server) in servers.enumerate() {
            let thread = std::thread::Builder::new()
                .name(format!("wsloop-{}", i + 1))
                .spawn(move || server.run());
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // The ones started stop again before the error is told.
                    first.handle().shutdown();
                    let _ = LoopThreads(threads).join();
                    return Err(e);
                }
            }
        }
        Ok((first, LoopThreads(threads)))
    }

    /// Runs every loop until a shutdown has completed on all of them: the
    /// first on this thread, the others on threads of their own.
    pub fn run(self) -> io::Result<()> {
        let (mut first, others) = self.spawn_others()?;
        let result = first.run();
        if result.is_err() {
            first.handle().shutdown();
        }
        let joined = others.join();
        result.and(joined)
    }
}

impl LoopThreads {
    /// Waits for every loop thread to return; the first error (or a
    /// panic, as an error) is returned after all have been joined.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.0 {
            let r = match thread.join() {
                Ok(r) => r,
                Err(_) => Err(io::Error::other("a loop thread panicked")),
            };
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// `n` non-blocking listeners on `addr`, all with `SO_REUSEPORT`, so that
/// the kernel spreads new connections over them (Linux hashes each
/// connection's addresses and ports to one listener). Port 0: the first
/// picks a free port and the others take the same one.
#[cfg(unix)]
pub fn reuse_port_listeners(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpListener>> {
    use socket2::{Domain, Socket, Type};
    let mut addr = addr;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        // The kernel caps it at net.core.somaxconn.
        socket.listen(4096)?;
        let listener = TcpListener::from_std(socket.into());
        addr = listener.local_addr()?; // the port the first one got
        out.push(listener);
    }
    Ok(out)
}

/// Elsewhere one listener only: more loops than one need `SO_REUSEPORT`.
#[cfg(not(unix))]
pub fn reuse_port_listeners(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpListener>> {
    if n > 1 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "more than one loop needs SO_REUSEPORT (Linux and other Unix systems)",
        ));
    }
    Ok(vec![TcpListener::bind(addr)?])
}
