//! One client connection on the mio loop: non-blocking connect, the
//! HTTP/1.1 upgrade, then wsloop's sans-I/O [`Connection`] in the client
//! role to decode server frames (and to answer pings and closes).
//!
//! ```text
//! Connecting ──writable──► Upgrading ──101 + Sec-WebSocket-Accept──► Open ──close handshake + FIN──► Done
//! ```
//!
//! Outgoing bytes are an [`Out`]: a count of copies of one pre-built,
//! pre-masked data frame (so a message costs no encoding and no masking,
//! and a burst of them leaves in one `writev`), plus a byte queue for
//! everything else (the upgrade request, pongs, closes, one-off frames),
//! which is only written between whole data frames.

use std::io::{self, IoSlice, Read, Write};
use std::rc::Rc;
use std::time::Instant;

use mio::net::TcpStream;
use wsloop::handshake::accept_key;
use wsloop::{Config, Connection, Event, Role};

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// A prepared upgrade request and the `Sec-WebSocket-Accept` it must get.
#[derive(Clone)]
pub struct Upgrade {
    pub request: Rc<[u8]>,
    pub accept: Rc<str>,
}

impl Upgrade {
    /// A request for `target` on `host` with a key drawn from `seed`.
    pub fn new(host: &str, target: &str, seed: &mut u64) -> Upgrade {
        let mut raw = [0u8; 16];
        for chunk in raw.chunks_mut(8) {
            let v = xorshift(seed).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let key = base64(&raw);
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        Upgrade {
            request: request.into_bytes().into(),
            accept: accept_key(key.as_bytes()).into(),
        }
    }
}

pub fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Bytes waiting for the socket.
#[derive(Default)]
pub struct Out {
    /// Copies of the shared pre-built data frame still to write.
    pub frames: usize,
    /// Bytes of the first of those already written.
    head: usize,
    /// Other bytes, written only between whole data frames.
    bytes: Vec<u8>,
    bytes_pos: usize,
}

impl Out {
    pub fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Writes until everything is out or the socket would block.
    fn flush(&mut self, stream: &mut TcpStream, frame: &[u8]) -> io::Result<()> {
        loop {
            if self.head == 0 && self.bytes_pos < self.bytes.len() {
                match stream.write(&self.bytes[self.bytes_pos..]) {
                    Ok(n) => {
                        self.bytes_pos += n;
                        if self.bytes_pos == self.bytes.len() {
                            self.bytes.clear();
                            self.bytes_pos = 0;
                        }
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if self.frames == 0 {
                return Ok(());
            }
            let mut slices = [IoSlice::new(frame); 64];
            slices[0] = IoSlice::new(&frame[self.head..]);
            let k = self.frames.min(slices.len());
            match stream.write_vectored(&slices[..k]) {
                Ok(n) => {
                    let done = self.head + n;
                    self.frames -= done / frame.len();
                    self.head = done % frame.len();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Upgrading,
    Open,
    /// Finished (cleanly or not): the socket is no longer driven.
    Done,
}

pub struct Client {
    pub stream: TcpStream,
    pub state: State,
    pub conn: Connection,
    pub out: Out,
    upgrade: Upgrade,
    head: Vec<u8>,
    /// When the connect started.
    pub started: Instant,
    /// Whether we started the closing handshake.
    pub closing: bool,
}

impl Client {
    pub fn new(stream: TcpStream, upgrade: Upgrade, config: &Config, now: Instant) -> Client {
        Client {
            stream,
            state: State::Connecting,
            conn: Connection::new(Role::Client, config),
            out: Out::default(),
            upgrade,
            head: Vec::new(),
            started: now,
            closing: false,
        }
    }

    /// Starts the closing handshake (once data frames already queued are
    /// out: [`pump`] holds the close back until then).
    pub fn close(&mut self) {
        if self.state == State::Open && self.conn.is_open() {
            self.closing = true;
            let _ = self.conn.close(1000, "");
        }
    }

    /// Moves what the connection queued (pongs, close frames, one-off
    /// frames) to the byte queue. A close waits for the data frames
    /// queued before it.
    fn pump(&mut self) {
        if self.out.frames > 0 && self.conn.close_sent() {
            return;
        }
        let q = self.conn.outgoing();
        while !q.is_empty() {
            let chunk = q.front();
            let n = chunk.len();
            self.out.bytes.extend_from_slice(chunk);
            q.consume(n);
        }
    }

    /// Queues one frame encoded now (broadcast sender) and writes.
    pub fn send_now(&mut self, msg: wsloop::Message<'_>, frame: &[u8]) -> Result<(), String> {
        self.conn
            .send(msg)
            .map_err(|e| format!("cannot send: {e}"))?;
        self.flush(frame)
    }

    pub fn flush(&mut self, frame: &[u8]) -> Result<(), String> {
        self.pump();
        self.out
            .flush(&mut self.stream, frame)
            .map_err(|e| format!("write: {}", io_kind(&e)))
    }
}

/// What the load generator does with a client's events.
pub trait Handler {
    fn on_open(&mut self, idx: usize, c: &mut Client, now: Instant);
    fn on_message(&mut self, idx: usize, c: &mut Client, text: bool, data: &[u8], now: Instant);
    fn on_ping(&mut self, idx: usize);
    fn on_close_frame(&mut self, idx: usize, c: &mut Client, code: u16);
    /// The server's FIN arrived after the close handshake: a clean end.
    fn on_finished(&mut self, idx: usize, c: &mut Client, now: Instant);
    /// The client failed; `c.state` is still the state it failed in.
    fn on_failed(&mut self, idx: usize, c: &mut Client, error: String);
}

/// An I/O error in words stable enough to be counted by kind.
pub fn io_kind(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::BrokenPipe => "broken pipe".into(),
        io::ErrorKind::AddrNotAvailable => "address not available (out of ports?)".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// How readable a client's socket is, from its readiness event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readable {
    No,
    /// Data: a short read means the socket is drained (a later arrival
    /// raises a new edge).
    Data,
    /// The peer's FIN (or an error) is there too: read to the end.
    Closed,
}

/// Handles one readiness event for client `idx`. `buf` is the shared read
/// buffer, `frame` the shared pre-built data frame.
pub fn drive<H: Handler>(
    c: &mut Client,
    idx: usize,
    readable: Readable,
    buf: &mut [u8],
    frame: &[u8],
    h: &mut H,
) {
    if c.state == State::Done {
        return;
    }
    if let Err(e) = drive_inner(c, idx, readable, buf, frame, h) {
        h.on_failed(idx, c, e); // sees the state the client failed in
        c.state = State::Done;
    }
}

fn drive_inner<H: Handler>(
    c: &mut Client,
    idx: usize,
    readable: Readable,
    buf: &mut [u8],
    frame: &[u8],
    h: &mut H,
) -> Result<(), String> {
    if c.state == State::Connecting {
        if let Ok(Some(e)) | Err(e) = c.stream.take_error() {
            return Err(format!("connect: {}", io_kind(&e)));
        }
        match c.stream.peer_addr() {
            Ok(_) => {
                let _ = c.stream.set_nodelay(true);
                let request = Rc::clone(&c.upgrade.request);
                c.out.push(&request);
                c.state = State::Upgrading;
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
            Err(e) => return Err(format!("connect: {}", io_kind(&e))),
        }
    }
    if readable != Readable::No {
        loop {
            match c.stream.read(buf) {
                Ok(0) => {
                    if c.state == State::Open && c.conn.close_received() {
                        c.state = State::Done;
                        h.on_finished(idx, c, Instant::now());
                        return Ok(());
                    }
                    return Err(match c.state {
                        State::Upgrading => "the server closed the connection during the upgrade",
                        _ => "the server closed the TCP connection without a close frame",
                    }
                    .into());
                }
                Ok(n) => {
                    receive(c, idx, &mut buf[..n], h)?;
                    if c.state == State::Done {
                        return Ok(());
                    }
                    if n < buf.len() && readable == Readable::Data {
                        break; // drained: epoll signals the next arrival
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {}", io_kind(&e))),
            }
        }
    }
    c.flush(frame)
}

fn receive<H: Handler>(
    c: &mut Client,
    idx: usize,
    data: &mut [u8],
    h: &mut H,
) -> Result<(), String> {
    if c.state == State::Upgrading {
        c.head.extend_from_slice(data);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(&c.head) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if c.head.len() <= MAX_HEAD => return Ok(()),
            Ok(httparse::Status::Partial) => return Err("response head too long".into()),
            Err(e) => return Err(format!("malformed upgrade response: {e}")),
        };
        if response.code != Some(101) {
            return Err(format!(
                "upgrade refused with HTTP {}",
                response.code.unwrap_or(0)
            ));
        }
        let accept = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
            .map(|h| h.value);
        if accept.map(<[u8]>::trim_ascii) != Some(c.upgrade.accept.as_bytes()) {
            return Err("wrong or missing Sec-WebSocket-Accept".into());
        }
        let mut rest = std::mem::take(&mut c.head).split_off(len);
        c.state = State::Open;
        h.on_open(idx, c, Instant::now());
        return frames(c, idx, &mut rest, h);
    }
    frames(c, idx, data, h)
}

fn frames<H: Handler>(
    c: &mut Client,
    idx: usize,
    data: &mut [u8],
    h: &mut H,
) -> Result<(), String> {
    let now = Instant::now();
    let mut pos = 0;
    while pos < data.len() {
        let (used, event) = c
            .conn
            .read(&mut data[pos..])
            .map_err(|e| format!("protocol error from the server: {e}"))?;
        pos += used;
        match event {
            None | Some(Event::Pong(_)) => {}
            Some(Event::Message(m)) => {
                h.on_message(idx, c, m.is_text(), m.bytes(), now);
                if let Some(buf) = m.into_buffer() {
                    c.conn.recycle(buf);
                }
            }
            Some(Event::Ping(_)) => h.on_ping(idx),
            Some(Event::Close(close)) => h.on_close_frame(idx, c, close.code),
        }
        if c.state == State::Done {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(
            super::base64(b"the sample nonce"),
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
    }
}
