//! wsloop's in-repo stand-in for the Autobahn|Testsuite fuzzing client,
//! sections 1 to 10, 12 and 13 (permessage-deflate, with the `deflate`
//! feature), against an echo handler of the library running `run()` in a
//! thread of its own.
//!
//! Every Autobahn case is a `#[test]` named after it (`case_5_15` is
//! Autobahn's 5.15) and checks Autobahn's strict ("OK") expectation: the
//! exact frames that come back, in order, then the close behaviour: which
//! side starts the closing handshake, with which code, and that the server
//! closes the TCP connection afterwards, in time. Checks that go beyond
//! Autobahn (the whole close-code range, every UTF-8 vector cut per byte,
//! non-minimal lengths, limits) are named `extra_<section>_...`.
//!
//! `scripts/conformance-report` runs this suite and writes CONFORMANCE.md.

mod client;
#[path = "../support/frame.rs"]
mod frame;
#[cfg(feature = "deflate")]
mod puff;
mod s10_autofrag;
#[cfg(feature = "deflate")]
mod s12_s13_compression;
mod s1_framing;
mod s2_pingpong;
mod s3_reserved_bits;
mod s4_opcodes;
mod s5_fragmentation;
mod s6_utf8;
mod s7_close;
mod s9_limits;

use std::io;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use client::Client;
use wsloop::{Config, ConnId, Ctx, Handler, Message, Server, ShutdownHandle};

/// Autobahn's testee: every message back unchanged.
struct Echo;

impl Handler for Echo {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
        ctx.send(id, msg);
    }
}

/// An echo server with the default [`Config`] running `run()` in its own
/// thread; shut down through its [`ShutdownHandle`] and joined on drop.
pub struct EchoServer {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let addr = "127.0.0.1:0".parse().unwrap();
            // The full windows, so that every answer follows from the offer
            // alone (the defaults' own answers: tests/deflate.rs).
            #[allow(unused_mut)] // changed with the `deflate` feature only
            let mut config = Config::default();
            #[cfg(feature = "deflate")]
            {
                config.deflate.server_max_window_bits = 15;
                config.deflate.client_max_window_bits = 15;
            }
            let mut server = Server::bind(addr, config, Echo)?;
            tx.send((server.local_addr(), server.shutdown_handle()))
                .unwrap();
            server.run()
        });
        let (addr, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server thread did not start");
        EchoServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// A new client, upgraded on `/echo`.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr, "/echo")
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let end = Instant::now() + Duration::from_secs(10);
        while !thread.is_finished() {
            if Instant::now() > end {
                if !std::thread::panicking() {
                    panic!("the server did not shut down within 10 s");
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let result = thread.join();
        if !std::thread::panicking() {
            result
                .expect("the server thread panicked")
                .expect("run() failed");
        }
    }
}

/// One case's connection and its own server; the client is dropped (and
/// its socket closed) before the server is shut down.
pub struct Conn {
    pub client: Client,
    pub server: EchoServer,
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// A fresh server and one client connected to it.
pub fn open() -> Conn {
    let server = EchoServer::start();
    Conn {
        client: server.connect(),
        server,
    }
}

/// Prints a figure for the report: `scripts/conformance-report` collects
/// the `METRIC` lines of the passed cases (Autobahn reports 9.x as times).
pub fn metric(case: &str, what: &str, elapsed: Duration, bytes: u64) {
    let ms = elapsed.as_secs_f64() * 1e3;
    let mib_s = bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64().max(1e-9);
    println!("METRIC {case} | {what} | {ms:.1} ms | {mib_s:.1} MiB/s");
}
