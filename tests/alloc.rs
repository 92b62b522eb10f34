//! The echo path allocates nothing per message once warm: counted with a
//! counting global allocator that only counts inside `Server::poll_once`
//! (the test's own client work is outside the window).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wsloop::{Config, ConnId, Ctx, Handler, Message, Server};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised, no destructor: reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is an atomic counter bump, which neither allocates nor
// touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Echo;

impl Handler for Echo {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
        ctx.send(id, msg);
    }
}

/// A masked client frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Steps the server until `want` bytes came back to the client; returns the
/// allocations counted inside `poll_once` meanwhile.
fn echo_once(
    server: &mut Server<Echo>,
    client: &mut TcpStream,
    request: &[u8],
    want: usize,
) -> usize {
    client.write_all(request).expect("write");
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut got = 0;
    let mut buf = vec![0u8; want.max(1)];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < want {
        assert!(Instant::now() < deadline, "echo did not come back");
        COUNTING.with(|c| c.set(true));
        server
            .poll_once(Some(Duration::from_millis(5)))
            .expect("poll");
        COUNTING.with(|c| c.set(false));
        match client.read(&mut buf[got..]) {
            Ok(0) => panic!("server closed"),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn connect(server: &mut Server<Echo>) -> TcpStream {
    let mut client = TcpStream::connect(server.local_addr()).expect("connect");
    client
        .write_all(
            b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .expect("write request");
    client.set_nonblocking(true).expect("nonblocking");
    let mut head = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !head.ends_with(b"\r\n\r\n") {
        assert!(Instant::now() < deadline, "no 101");
        server
            .poll_once(Some(Duration::from_millis(5)))
            .expect("poll");
        let mut byte = [0u8; 1];
        while let Ok(1) = client.read(&mut byte) {
            head.push(byte[0]);
            if head.ends_with(b"\r\n\r\n") {
                break;
            }
        }
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    client
}

#[test]
fn echo_path_allocates_nothing_per_message_once_warm() {
    let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), Config::default(), Echo).unwrap();
    let mut client = connect(&mut server);
    for (opcode, size) in [(1u8, 16usize), (2, 1024), (2, 60_000)] {
        let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let request = frame(opcode, &payload);
        let header = if size < 126 { 2 } else { 4 };
        // Warm up: the pool and the queues reach their working sizes.
        for _ in 0..20 {
            echo_once(&mut server, &mut client, &request, header + size);
        }
        let mut total = 0;
        for _ in 0..200 {
            total += echo_once(&mut server, &mut client, &request, header + size);
        }
        assert_eq!(total, 0, "allocations in 200 echoes of {size} bytes");
    }
}
