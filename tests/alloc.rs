//! The echo path allocates nothing per message once warm: counted with a
//! counting global allocator that only counts inside `Server::poll_once`
//! (the test's own client work is outside the window). Plain echoes, and
//! compressed ones (permessage-deflate) with and without context takeover.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wsloop::{Config, ConnId, Ctx, Handler, Message, Server};

#[path = "support/frame.rs"]
mod frame;

use frame::Frame;

struct Counting;

thread_local! {
    // Const-initialised, no destructor: using them never allocates. Per
    // thread, so tests running side by side do not count each other.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is a thread-local counter bump, which neither allocates nor
// touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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
    Frame::new(opcode, payload)
        .mask(Some([0x11, 0x22, 0x33, 0x44]))
        .encode()
}

/// Steps the server until `want` bytes came back to the client; returns the
/// allocations counted inside `poll_once` meanwhile.
fn echo_once(
    server: &mut Server<Echo>,
    client: &mut TcpStream,
    request: &[u8],
    want: usize,
) -> usize {
    step_until(server, client, request, |got| got.len() >= want).0
}

/// Writes `request`, then steps the server and reads what comes back until
/// `done` says it is all there; returns the allocations counted inside
/// `poll_once` meanwhile, and the bytes.
fn step_until(
    server: &mut Server<Echo>,
    client: &mut TcpStream,
    request: &[u8],
    mut done: impl FnMut(&[u8]) -> bool,
) -> (usize, Vec<u8>) {
    client.write_all(request).expect("write");
    let before = allocations();
    let mut got = Vec::new();
    // Reads as large as the largest echo: the client keeps up, as a healthy
    // one does (a slow reader makes the server queue, and the pool may then
    // grow a buffer or its list before it settles).
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&got) {
        assert!(Instant::now() < deadline, "echo did not come back");
        COUNTING.with(|c| c.set(true));
        server
            .poll_once(Some(Duration::from_millis(5)))
            .expect("poll");
        COUNTING.with(|c| c.set(false));
        match client.read(&mut buf) {
            Ok(0) => panic!("server closed"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    (allocations() - before, got)
}

fn connect(server: &mut Server<Echo>) -> TcpStream {
    connect_with(server, "").0
}

/// Upgrades a client with the extra header lines `extra` (each ending in
/// CRLF); returns the stream and the response head.
fn connect_with(server: &mut Server<Echo>, extra: &str) -> (TcpStream, String) {
    let mut client = TcpStream::connect(server.local_addr()).expect("connect");
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    client.write_all(request.as_bytes()).expect("write request");
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
    (client, String::from_utf8(head).expect("ASCII head"))
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

/// Compressed echoes (permessage-deflate, RFC 7692): the client sends RSV1
/// frames it compressed without context; the server inflates each into a
/// pooled buffer and compresses the echo into another.
#[cfg(feature = "deflate")]
mod deflate {
    use super::*;
    use wsloop::proto::deflate::{Deflater, Inflater};
    use wsloop::proto::frame::{decode_header, Decoded};

    /// Distinct chat-like messages of about 1 KiB, cycled so that the
    /// compressed sizes (both ways) vary from echo to echo, and last a
    /// random-looking token (base64 letters) that deflate at level 1 (fixed
    /// Huffman codes, 8 bits for such a letter) cannot make smaller: the
    /// server sends it as is and resets its compressor.
    fn messages() -> Vec<Vec<u8>> {
        const WORDS: &[&str] = &[
            "hello", "the", "build", "is", "green", "again", "after", "lunch", "can", "you",
            "review", "my", "patch", "for", "deflate", "window", "bits", "thanks", "see",
            "tomorrow", "meeting", "moved", "to", "three", "o'clock",
        ];
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let mut messages: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                let mut text = format!(
                    "{{\"type\":\"message\",\"room\":\"general\",\"user\":\"user{:04}\",\"text\":\"",
                    i * 37
                );
                while text.len() < 1000 {
                    text.push_str(rng.choice(WORDS).unwrap());
                    text.push(' ');
                }
                text.push_str("\"}");
                text.into_bytes()
            })
            .collect();
        messages.push((0..1000).map(|_| *rng.choice(BASE64).unwrap()).collect());
        messages
    }

    const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// `payload` compressed without context in a masked text frame with
    /// RSV1 (what the client sends).
    fn compressed_frame(payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        Deflater::new(15, 6, true).compress(payload, &mut body);
        Frame::text(body)
            .rsv(0b100) // RSV1: a compressed message
            .mask(Some([0x11, 0x22, 0x33, 0x44]))
            .encode()
    }

    /// Writes `request`, steps the server until one whole frame came back;
    /// returns the allocations inside `poll_once` and the frame.
    fn echo_frame(
        server: &mut Server<Echo>,
        client: &mut TcpStream,
        request: &[u8],
    ) -> (usize, Vec<u8>) {
        step_until(server, client, request, |got| match decode_header(got) {
            Ok(Decoded::Complete(h, n)) if got.len() as u64 >= n as u64 + h.len => {
                assert_eq!(got.len() as u64, n as u64 + h.len, "one frame back");
                true
            }
            _ => false,
        })
    }

    /// Runs 50 compressed echoes to warm up, then `measured` more, on a
    /// server with `config` and a client offering `offer` (the server must
    /// answer `answer`), each echo inflated and checked; returns the
    /// allocations counted in the measured ones.
    fn compressed_echoes(config: Config, offer: &str, answer: &str, measured: usize) -> usize {
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), config, Echo).unwrap();
        let extra = format!("Sec-WebSocket-Extensions: {offer}\r\n");
        let (mut client, head) = connect_with(&mut server, &extra);
        assert!(
            head.contains(&format!("Sec-WebSocket-Extensions: {answer}\r\n")),
            "{head}"
        );
        let messages = messages();
        let frames: Vec<Vec<u8>> = messages.iter().map(|m| compressed_frame(m)).collect();
        // The server may keep context: one decompressor for the connection.
        let mut inflater = Inflater::new(false);
        let mut total = 0;
        let mut first = 0;
        for i in 0..50 + measured {
            let k = i % frames.len();
            let (allocs, echo) = echo_frame(&mut server, &mut client, &frames[k]);
            let Ok(Decoded::Complete(h, n)) = decode_header(&echo) else {
                panic!("not a frame")
            };
            // Chat text comes back compressed; the token as is.
            let compressed = k + 1 < messages.len();
            let rsv = if compressed { 0b100 } else { 0 };
            assert_eq!((h.fin, h.rsv, h.opcode), (true, rsv, 1), "echo {i}");
            let mut text = Vec::new();
            if compressed {
                inflater.feed(&echo[n..], &mut text, 1 << 20).unwrap();
                inflater.finish(&mut text, 1 << 20).unwrap();
            } else {
                text.extend_from_slice(&echo[n..]);
            }
            assert_eq!(text, messages[k], "echo {i}");
            if i == 0 {
                first = allocs;
            } else if i >= 50 {
                total += allocs;
            }
        }
        // The counter works: the first compressed message created the
        // codecs (this test's thread has no spares yet).
        assert!(first > 0, "the first compressed echo allocated nothing?");
        total
    }

    #[test]
    fn compressed_echo_with_context_takeover_allocates_nothing_once_warm() {
        // A browser's offer; the server keeps the last 4 KiB each way and
        // borrows the loop's codecs for each message.
        let total = compressed_echoes(
            Config::default(),
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            200,
        );
        assert_eq!(total, 0, "allocations in 200 compressed echoes");
    }

    #[test]
    fn compressed_echo_without_context_takeover_allocates_nothing_once_warm() {
        // No context either way: the codecs are borrowed from the loop's
        // spares for each message and given back.
        let mut config = Config::default();
        config.deflate.server_no_context_takeover = true;
        config.deflate.client_no_context_takeover = true;
        let total = compressed_echoes(
            config,
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=12",
            200,
        );
        assert_eq!(total, 0, "allocations in 200 compressed echoes");
    }
}
