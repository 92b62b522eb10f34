//! Shared helpers of the event-loop tests: a recording [`Handler`], a raw
//! WebSocket client over `std::net::TcpStream` that does the upgrade by
//! hand and speaks frames byte for byte (built with [`frame::Frame`]), and
//! helpers to step a server or run it in a thread.
//!
//! Stepped tests run the server in the test thread, so a client must never
//! block waiting for it: write (queued, non-blocking), step the server with
//! [`step_until`], and let the condition read what has arrived with
//! [`RawClient::pump`].

#![allow(dead_code)]

pub mod frame;
pub mod process;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsloop::proto::handshake::{accept_key, Request};
use wsloop::{Config, ConnId, Ctx, Decision, Handler, Message, Server, ShutdownHandle};

/// How long any wait in these tests may take before it is a failure.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// The key of RFC 6455 §1.3 and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

// ---------------------------------------------------------------------------
// The recording handler
// ---------------------------------------------------------------------------

/// A message as the handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Text(String),
    Binary(Vec<u8>),
}

impl Msg {
    pub fn as_message(&self) -> Message<'_> {
        match self {
            Msg::Text(s) => Message::Text(s),
            Msg::Binary(b) => Message::Binary(b),
        }
    }
}

/// What the handler saw, in order.
#[derive(Debug, Default)]
pub struct Log {
    /// Accepted clients, with the request path.
    pub opens: Vec<(ConnId, String)>,
    /// Messages received (only when `Rec::record` is set).
    pub messages: Vec<(ConnId, Msg)>,
    /// Messages received, counted even when not recorded.
    pub message_count: usize,
    /// `on_close` calls: id, code, reason.
    pub closes: Vec<(ConnId, u16, String)>,
    /// `on_timer` calls: tag.
    pub timers: Vec<u64>,
    /// Whether `ctx.data(id)` was reachable during each `on_close`.
    pub data_in_close: Vec<bool>,
}

impl Log {
    pub fn closes_of(&self, id: ConnId) -> Vec<u16> {
        self.closes
            .iter()
            .filter(|(c, _, _)| *c == id)
            .map(|(_, code, _)| *code)
            .collect()
    }
}

/// A handler that echoes every message and records everything in a shared
/// [`Log`]. Text commands (not echoed):
///
/// - `!close <code> [reason]`: the server closes the connection with `code`.
///
/// Paths: `/reject/<status>` makes `on_open` reject with that status;
/// `/http` answers a plain GET with 200 `hello` (other plain GETs get None,
/// so 426).
pub struct Rec {
    pub log: Arc<Mutex<Log>>,
    pub echo: bool,
    pub record: bool,
    /// Chosen when the client offers it.
    pub protocol: Option<String>,
    /// Chosen whether or not the client offers it (a handler bug).
    pub force_protocol: Option<String>,
    /// Sent from `on_open`, before the 101 is even queued.
    pub greeting: Option<String>,
    /// `on_timer` sets a new timer after this long, with the next tag.
    pub rearm: Option<Duration>,
}

impl Rec {
    pub fn new() -> (Rec, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        (
            Rec {
                log: Arc::clone(&log),
                echo: true,
                record: true,
                protocol: None,
                force_protocol: None,
                greeting: None,
                rearm: None,
            },
            log,
        )
    }

    pub fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }
}

pub fn lock(log: &Arc<Mutex<Log>>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-connection data: messages received so far.
#[derive(Debug, Default)]
pub struct Count(pub u64);

impl Handler for Rec {
    type Data = Count;

    fn on_open(&mut self, ctx: &mut Ctx<'_, Count>, id: ConnId, req: &Request) -> Decision {
        if let Some(status) = req.path().strip_prefix("/reject/") {
            return Decision::reject(status.parse().unwrap_or(403), "rejected by the test");
        }
        self.log().opens.push((id, req.path().to_string()));
        if let Some(g) = &self.greeting {
            ctx.send(id, Message::Text(g));
        }
        if let Some(p) = &self.force_protocol {
            return Decision::accept_protocol(p.clone());
        }
        match &self.protocol {
            Some(p) if req.protocols().any(|o| o == p) => Decision::accept_protocol(p.clone()),
            _ => Decision::accept(),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Count>, id: ConnId, msg: Message<'_>) {
        if let Some(count) = ctx.data(id) {
            count.0 += 1;
        }
        if let Message::Text(text) = msg {
            if let Some(args) = text.strip_prefix("!close ") {
                let (code, reason) = args.split_once(' ').unwrap_or((args, ""));
                ctx.close(id, code.parse().expect("close code"), reason);
                return;
            }
        }
        {
            let mut log = self.log();
            log.message_count += 1;
            if self.record {
                let m = match msg {
                    Message::Text(t) => Msg::Text(t.to_string()),
                    Message::Binary(b) => Msg::Binary(b.to_vec()),
                };
                log.messages.push((id, m));
            }
        }
        if self.echo {
            ctx.send(id, msg);
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_, Count>, id: ConnId, code: u16, reason: &str) {
        let data = ctx.data(id).is_some();
        let mut log = self.log();
        log.closes.push((id, code, reason.to_string()));
        log.data_in_close.push(data);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Count>, _timer: wsloop::TimerId, tag: u64) {
        self.log().timers.push(tag);
        if let Some(after) = self.rearm {
            ctx.set_timer(after, tag + 1);
        }
    }

    fn on_http(&mut self, req: &Request) -> Option<wsloop::HttpResponse> {
        (req.path() == "/http").then(|| wsloop::HttpResponse::text(200, "hello"))
    }
}

// ---------------------------------------------------------------------------
// Stepping and running servers
// ---------------------------------------------------------------------------

/// Steps `server` (1 ms polls) until `cond` holds; panics after [`DEADLINE`].
pub fn step_until<H: Handler>(
    server: &mut Server<H>,
    what: &str,
    mut cond: impl FnMut(&mut Server<H>) -> bool,
) {
    let end = Instant::now() + DEADLINE;
    loop {
        server.poll_once(Some(Duration::from_millis(1))).unwrap();
        if cond(server) {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for: {what}");
    }
}

/// Steps `server` `n` times without waiting.
pub fn step<H: Handler>(server: &mut Server<H>, n: usize) {
    for _ in 0..n {
        server.poll_once(Some(Duration::ZERO)).unwrap();
    }
}

/// Steps `server` for about `d` of wall time.
pub fn step_for<H: Handler>(server: &mut Server<H>, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        server.poll_once(Some(Duration::from_millis(1))).unwrap();
    }
}

/// A server running `run()` in its own thread; shut down and joined on drop.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// Builds the server inside a new thread (a `Server` is not `Send`).
    pub fn start<H: Handler + Send + 'static>(config: Config, handler: H) -> Running {
        Running::start_with(config, handler, |_| ())
    }

    /// The same over TLS with `tls`.
    #[cfg(feature = "tls")]
    #[allow(dead_code)] // the interop tests' wss runs use it
    pub fn start_tls<H: Handler + Send + 'static>(
        config: Config,
        handler: H,
        tls: std::sync::Arc<rustls::ServerConfig>,
    ) -> Running {
        Running::start_with(config, handler, move |server| server.set_tls(tls))
    }

    fn start_with<H, F>(config: Config, handler: H, setup: F) -> Running
    where
        H: Handler + Send + 'static,
        F: FnOnce(&mut Server<H>) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut server = Server::bind(localhost(), config, handler)?;
            setup(&mut server);
            tx.send((server.local_addr(), server.shutdown_handle()))
                .unwrap();
            server.run()
        });
        let (addr, handle) = rx
            .recv_timeout(DEADLINE)
            .expect("server thread did not start");
        Running {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Requests a shutdown and waits (bounded) for `run()` to return.
    pub fn stop(&mut self) -> io::Result<()> {
        self.handle.shutdown();
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let end = Instant::now() + Duration::from_secs(20);
        while !thread.is_finished() {
            assert!(Instant::now() < end, "server did not shut down");
            std::thread::sleep(Duration::from_millis(5));
        }
        thread.join().expect("server thread panicked")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.handle.shutdown();
            if let Some(thread) = self.thread.take() {
                let end = Instant::now() + Duration::from_secs(20);
                while !thread.is_finished() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if thread.is_finished() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// Waits (sleeping, for threaded servers) until `cond` holds on the log.
pub fn wait_log(log: &Arc<Mutex<Log>>, what: &str, mut cond: impl FnMut(&Log) -> bool) {
    let end = Instant::now() + DEADLINE;
    loop {
        if cond(&lock(log)) {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

#[allow(unused_imports)] // each test crate uses what it needs
pub use frame::{Frame, LenForm, BINARY, CLOSE, CONT, MASK, PING, PONG, TEXT};

/// A frame with any first byte bits, any payload and an optional mask (the
/// payload is masked with it): [`Frame`] in one call.
pub fn encode(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    Frame::new(opcode, payload)
        .fin(fin)
        .rsv(rsv)
        .mask(mask)
        .encode()
}

/// A final client frame masked with [`MASK`].
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    Frame::new(opcode, payload).encode()
}

pub fn text(s: &str) -> Vec<u8> {
    Frame::text(s).encode()
}

pub fn binary(b: &[u8]) -> Vec<u8> {
    Frame::binary(b).encode()
}

/// A masked close frame with `code` and `reason`.
pub fn close(code: u16, reason: &str) -> Vec<u8> {
    Frame::close(code, reason).encode()
}

/// A frame received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> &str {
        assert_eq!(self.opcode, TEXT, "not a text frame: {self:?}");
        std::str::from_utf8(&self.payload).unwrap()
    }

    /// The status code of a close frame (1005 when it has none).
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {:?}", self.short());
        match self.payload.len() {
            0 => 1005,
            _ => u16::from_be_bytes([self.payload[0], self.payload[1]]),
        }
    }

    pub fn short(&self) -> String {
        format!(
            "Frame {{ op: {:#x}, fin: {}, len: {} }}",
            self.opcode,
            self.fin,
            self.payload.len()
        )
    }
}

/// Parses one frame from the front of `buf`: the frame and its length.
pub fn parse_frame(buf: &[u8]) -> Option<(Received, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut pos) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            )
        }
        n => (n as usize, 2),
    };
    let mut key = [0; 4];
    if masked {
        if buf.len() < pos + 4 {
            return None;
        }
        key.copy_from_slice(&buf[pos..pos + 4]);
        pos += 4;
    }
    if buf.len() < pos + len {
        return None;
    }
    let mut payload = buf[pos..pos + len].to_vec();
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    let frame = Received {
        fin: buf[0] & 0x80 != 0,
        rsv: (buf[0] >> 4) & 7,
        opcode: buf[0] & 0x0f,
        masked,
        payload,
    };
    Some((frame, pos + len))
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// An upgrade request for `path` with extra header lines.
pub fn upgrade_request(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (n, v) in extra {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// An HTTP response received from the server.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a valid 101 for [`KEY`].
    pub fn assert_upgraded(&self) {
        assert_eq!(self.status, 101, "{self:?}");
        assert_eq!(self.header("Sec-WebSocket-Accept"), Some(ACCEPT));
        assert_eq!(accept_key(KEY.as_bytes()), ACCEPT);
        assert!(self
            .header("Upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket")));
    }
}

/// Parses a response head (and a `Content-Length` body) from the front of
/// `buf`: the response and its length.
pub fn parse_response(buf: &[u8]) -> Option<(HttpResponse, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).expect("ASCII response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
    if buf.len() < end + len {
        return None;
    }
    let body = buf[end..end + len].to_vec();
    Some((
        HttpResponse {
            status,
            headers,
            body,
        },
        end + len,
    ))
}

// ---------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------

/// A client over a std `TcpStream` that writes exact bytes and parses what
/// the server sends. Writes are queued and made without blocking by
/// [`RawClient::pump`], so the server can run in the same thread.
pub struct RawClient {
    pub stream: TcpStream,
    /// Bytes received and not parsed yet.
    pub inbuf: Vec<u8>,
    out: VecDeque<u8>,
    /// The server closed the connection (read returned 0).
    pub eof: bool,
    /// A read or write failed (reset).
    pub error: Option<io::ErrorKind>,
    /// Total bytes received.
    pub received: usize,
    /// Whether `pump` reads (false: a client that stopped reading).
    pub reading: bool,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        RawClient {
            stream,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            eof: false,
            error: None,
            received: 0,
            reading: true,
        }
    }

    /// Queues bytes and writes what the socket takes now.
    pub fn send(&mut self, bytes: &[u8]) {
        self.out.extend(bytes);
        self.pump();
    }

    /// Whether queued bytes are still waiting for the socket.
    pub fn sending(&self) -> bool {
        !self.out.is_empty()
    }

    /// Writes queued bytes and reads what arrived, without blocking.
    pub fn pump(&mut self) {
        self.stream.set_nonblocking(true).unwrap();
        while !self.out.is_empty() && self.error.is_none() {
            let (a, _) = self.out.as_slices();
            match self.stream.write(a) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.error = Some(e.kind()),
            }
        }
        if self.reading {
            self.read_available();
        }
        self.stream.set_nonblocking(false).unwrap();
    }

    fn read_available(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        while !self.eof && self.error.is_none() {
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    self.received += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.error = Some(e.kind()),
            }
        }
    }

    /// The connection is over from the server's side (EOF or reset).
    pub fn closed(&self) -> bool {
        self.eof || self.error.is_some()
    }

    /// Takes the next complete frame from what was received.
    pub fn take_frame(&mut self) -> Option<Received> {
        let (frame, n) = parse_frame(&self.inbuf)?;
        self.inbuf.drain(..n);
        Some(frame)
    }

    /// Takes a complete HTTP response from what was received.
    pub fn take_response(&mut self) -> Option<HttpResponse> {
        let (resp, n) = parse_response(&self.inbuf)?;
        self.inbuf.drain(..n);
        Some(resp)
    }

    // --- with a server stepped in this thread ---

    /// Pumps and steps `server` until a frame is complete.
    pub fn frame<H: Handler>(&mut self, server: &mut Server<H>) -> Received {
        let mut got = None;
        step_until(server, "a frame from the server", |_| {
            self.pump();
            got = self.take_frame();
            got.is_some() || self.closed()
        });
        got.unwrap_or_else(|| panic!("connection ended before a frame: {:?}", self.error))
    }

    /// Pumps and steps `server` until a response head (and body) is complete.
    pub fn response<H: Handler>(&mut self, server: &mut Server<H>) -> HttpResponse {
        let mut got = None;
        step_until(server, "an HTTP response", |_| {
            self.pump();
            got = self.take_response();
            got.is_some() || self.closed()
        });
        got.unwrap_or_else(|| {
            panic!(
                "connection ended before a response: {:?} {:?}",
                self.error,
                String::from_utf8_lossy(&self.inbuf)
            )
        })
    }

    /// Pumps and steps `server` until the server ended the connection.
    pub fn wait_closed<H: Handler>(&mut self, server: &mut Server<H>) {
        step_until(server, "the server to close the TCP connection", |_| {
            self.pump();
            self.closed()
        });
    }

    /// Pumps and steps `server` until every queued byte was written.
    pub fn flush<H: Handler>(&mut self, server: &mut Server<H>) {
        step_until(server, "the client's writes", |_| {
            self.pump();
            !self.sending()
        });
    }

    /// Connects and upgrades on `path`, stepping `server`.
    pub fn open<H: Handler>(server: &mut Server<H>, path: &str) -> RawClient {
        let mut c = RawClient::connect(server.local_addr());
        c.send(&upgrade_request(path, &[]));
        c.response(server).assert_upgraded();
        c
    }

    // --- with a server running in another thread ---

    /// Writes `bytes` (blocking).
    pub fn write_blocking(&mut self, bytes: &[u8]) {
        assert!(self.out.is_empty());
        self.stream.write_all(bytes).expect("write");
    }

    fn read_blocking(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                self.inbuf.extend_from_slice(&buf[..n]);
                self.received += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!("read timed out after {DEADLINE:?}")
            }
            Err(e) => self.error = Some(e.kind()),
        }
    }

    /// Reads (blocking, bounded by the read timeout) until a frame is complete.
    pub fn frame_blocking(&mut self) -> Received {
        loop {
            if let Some(f) = self.take_frame() {
                return f;
            }
            assert!(!self.closed(), "connection ended before a frame");
            self.read_blocking();
        }
    }

    /// Reads (blocking) until a response is complete.
    pub fn response_blocking(&mut self) -> HttpResponse {
        loop {
            if let Some(r) = self.take_response() {
                return r;
            }
            assert!(!self.closed(), "connection ended before a response");
            self.read_blocking();
        }
    }

    /// Connects and upgrades on `path` against a server in another thread.
    pub fn open_blocking(addr: SocketAddr, path: &str) -> RawClient {
        let mut c = RawClient::connect(addr);
        c.write_blocking(&upgrade_request(path, &[]));
        c.response_blocking().assert_upgraded();
        c
    }

    /// Reads until the server closes the connection (blocking).
    pub fn wait_closed_blocking(&mut self) {
        while !self.closed() {
            self.read_blocking();
        }
    }

    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }
}

/// A deterministic pseudo-random payload: the same for the same seed.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut out = vec![0; len];
    fastrand::Rng::with_seed(seed.into()).fill(&mut out);
    out
}

// ---------------------------------------------------------------------------
// Re-running one test in a child process
// ---------------------------------------------------------------------------

/// Set in a child process started by [`run_in_child`].
pub const CHILD_ENV: &str = "WSLOOP_TEST_CHILD";

/// Whether this process is a child started by [`run_in_child`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the test `name` of this test binary again in a child process, under
/// `ulimit -n {nofile}` (for tests that need a higher or lower descriptor
/// limit than the harness has), and asserts it passed within `within`.
pub fn run_in_child(name: &str, nofile: u64, within: Duration) {
    let exe = std::env::current_exe().unwrap();
    let done = process::run_with_deadline(
        std::process::Command::new("/bin/sh")
            .args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\"")])
            .arg(exe)
            .args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, "1"),
        within,
    );
    let status = done
        .status
        .unwrap_or_else(|| panic!("the child running {name} did not finish within {within:?}"));
    let (out, err) = (done.stdout, done.stderr);
    assert!(
        status.success(),
        "child running {name} failed:\n{out}\n{err}"
    );
    assert!(
        out.contains("1 passed"),
        "the child did not run {name}:\n{out}"
    );
}

/// The soft and hard limits on open descriptors (Linux), if known.
pub fn fd_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut nums = line.split_whitespace().filter_map(|w| {
        w.parse::<u64>()
            .ok()
            .or((w == "unlimited").then_some(u64::MAX))
    });
    Some((nums.next()?, nums.next()?))
}
