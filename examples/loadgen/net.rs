//! One client connection on the mio loop: non-blocking connect, the
//! HTTP/1.1 upgrade, then wsloop's sans-I/O [`Connection`] in the client
//! role to decode server frames (and to answer pings and closes).
//!
//! ```text
//! Connecting ──writable──► Upgrading ──101 + Sec-WebSocket-Accept──► Open ──close handshake + FIN──► Done
//! ```
//!
//! Outgoing bytes are an [`Out`]: a count of data frames still to send,
//! taken in turn from a ring of pre-built, pre-masked ones (usually one; so
//! a message costs no encoding, masking or compressing, and a burst of them
//! leaves in one `writev`), plus a byte queue for everything else (the
//! upgrade request, pongs, closes, one-off frames), which is only written
//! between whole data frames.
//!
//! With permessage-deflate (RFC 7692) the server's frames are read here
//! ([`Inbound`]): wsloop's client role knows no RSV1. Data messages are
//! inflated, control frames handed to the [`Connection`].

use base64::Engine as _;
use std::io::{self, IoSlice, Read, Write};
use std::rc::Rc;
use std::time::Instant;

use mio::net::TcpStream;
use rustls::ClientConnection;
use wsloop::proto::deflate::Inflater;
use wsloop::proto::frame::{decode_header, Decoded};
use wsloop::proto::handshake::accept_key;
use wsloop::proto::{Connection, Event, OpCode, Role};
use wsloop::Config;

/// A client's socket: plain, or TLS through rustls (`wss://`). Reads and
/// writes keep the non-blocking contract: `WouldBlock` when the socket
/// has nothing more, or takes nothing more.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<(TcpStream, ClientConnection)>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.0,
        }
    }

    /// Whether a short read may leave bytes behind (TLS reads a record at
    /// a time): then only `WouldBlock` means drained.
    fn reads_in_records(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Writes the ciphertext rustls holds (the handshake's, records the
    /// socket did not take).
    fn push(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(tls) => push_tls(&mut tls.0, &mut tls.1),
        }
    }
}

fn push_tls(tcp: &mut TcpStream, conn: &mut ClientConnection) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(tcp)?;
    }
    Ok(())
}

/// `push_tls`, where a full socket is no error (the rest waits in rustls).
fn push_some(tcp: &mut TcpStream, conn: &mut ClientConnection) -> io::Result<()> {
    match push_tls(tcp, conn) {
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
        _ => Ok(()),
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (tcp, conn) = match self {
            Stream::Plain(tcp) => return tcp.read(buf),
            Stream::Tls(tls) => {
                let (tcp, conn) = &mut **tls;
                (tcp, conn)
            }
        };
        loop {
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: close_notify
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if conn.read_tls(tcp)? == 0 {
                return Ok(0);
            }
            conn.process_new_packets().map_err(io::Error::other)?;
            // The handshake's next flight, or a key update.
            push_some(tcp, conn)?;
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let (tcp, conn) = match self {
            Stream::Plain(tcp) => return tcp.write_vectored(bufs),
            Stream::Tls(tls) => {
                let (tcp, conn) = &mut **tls;
                (tcp, conn)
            }
        };
        // What rustls holds goes first: while the socket is full, nothing
        // more is taken.
        push_tls(tcp, conn)?;
        let n = conn.writer().write_vectored(bufs)?;
        push_some(tcp, conn)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(tls) => push_some(&mut tls.0, &mut tls.1),
        }
    }
}

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// RSV1 in `FrameHeader::rsv`'s encoding: a compressed message.
pub const RSV1: u8 = 0b100;

/// A prepared upgrade request and the `Sec-WebSocket-Accept` it must get.
#[derive(Clone)]
pub struct Upgrade {
    pub request: Rc<[u8]>,
    pub accept: Rc<str>,
    /// Whether the request offers permessage-deflate.
    pub deflate: bool,
}

impl Upgrade {
    /// A request for `target` on `host` with a key drawn from `rng`.
    pub fn new(host: &str, target: &str, rng: &mut fastrand::Rng) -> Upgrade {
        Upgrade::with_extensions(host, target, rng, None)
    }

    /// The same, offering the `Sec-WebSocket-Extensions` value `offer`
    /// (a permessage-deflate offer).
    pub fn with_extensions(
        host: &str,
        target: &str,
        rng: &mut fastrand::Rng,
        offer: Option<&str>,
    ) -> Upgrade {
        let mut raw = [0u8; 16];
        rng.fill(&mut raw);
        let key = base64::engine::general_purpose::STANDARD.encode(raw);
        let extensions = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\n{extensions}\r\n"
        );
        Upgrade {
            request: request.into_bytes().into(),
            accept: accept_key(key.as_bytes()).into(),
            deflate: offer.is_some(),
        }
    }
}

/// Checks the server's `Sec-WebSocket-Extensions` answer to a
/// permessage-deflate offer (RFC 7692 §7.1): exactly that extension, each
/// parameter at most once and one the server may answer with. The client
/// compresses with a 9-bit window, so any `client_max_window_bits` from 9
/// up is honoured (8, which zlib cannot compress with, is refused); the
/// server's window and context takeover need nothing (the decompressor has
/// a 32 KiB window and keeps context either way).
pub fn check_deflate_answer(values: &[&[u8]]) -> Result<(), String> {
    let answer = values
        .iter()
        .map(|v| std::str::from_utf8(v).map_err(|_| "a non-UTF-8 extensions answer".to_owned()))
        .collect::<Result<Vec<_>, _>>()?
        .join(",");
    let extensions: Vec<&str> = answer
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let [extension] = extensions[..] else {
        return Err(if extensions.is_empty() {
            "the server did not agree to permessage-deflate".into()
        } else {
            format!("extensions answer {answer:?}: one extension expected")
        });
    };
    let mut parts = extension.split(';').map(str::trim);
    if parts.next() != Some("permessage-deflate") {
        return Err(format!(
            "extensions answer {answer:?}: not permessage-deflate"
        ));
    }
    let mut seen = Vec::new();
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        if seen.contains(&name) {
            return Err(format!("extensions answer {answer:?}: {name} twice"));
        }
        seen.push(name);
        let bits = value.and_then(|v| v.parse::<u8>().ok());
        let ok = match name {
            "server_no_context_takeover" | "client_no_context_takeover" => value.is_none(),
            "server_max_window_bits" => bits.is_some_and(|b| (8..=15).contains(&b)),
            // The frames are compressed with a 9-bit window (see
            // `compressed_frame`): any window from 9 bits up is honoured.
            "client_max_window_bits" => bits.is_some_and(|b| (9..=15).contains(&b)),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "extensions answer {answer:?}: parameter {param:?} not acceptable"
            ));
        }
    }
    Ok(())
}

/// Bytes waiting for the socket.
#[derive(Default)]
pub struct Out {
    /// Pre-built data frames still to write, taken in turn from the ring.
    pub frames: usize,
    /// The ring's frame to write next.
    next: usize,
    /// Bytes of that frame already written.
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
    fn flush(&mut self, stream: &mut Stream, ring: &[Vec<u8>]) -> io::Result<()> {
        // TLS: what rustls holds (the handshake's flights too) goes first.
        match stream.push() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            other => other?,
        }
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
            let mut slices = [IoSlice::new(&[]); 64];
            let k = self.frames.min(slices.len());
            for (i, slice) in slices[..k].iter_mut().enumerate() {
                *slice = IoSlice::new(&ring[(self.next + i) % ring.len()]);
            }
            slices[0] = IoSlice::new(&ring[self.next][self.head..]);
            match stream.write_vectored(&slices[..k]) {
                Ok(mut n) => {
                    while n > 0 {
                        let left = ring[self.next].len() - self.head;
                        if n < left {
                            self.head += n;
                            break;
                        }
                        n -= left;
                        self.head = 0;
                        self.next = (self.next + 1) % ring.len();
                        self.frames -= 1;
                    }
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
    pub stream: Stream,
    pub state: State,
    pub conn: Connection,
    pub out: Out,
    upgrade: Upgrade,
    head: Vec<u8>,
    /// When the connect started.
    pub started: Instant,
    /// Whether we started the closing handshake.
    pub closing: bool,
    /// permessage-deflate, once the server agreed.
    inbound: Option<Box<Inbound>>,
    max_message: usize,
    /// Data messages received so far (the ring's frame they answer).
    pub received: usize,
}

/// The server's frames, read by hand when permessage-deflate is on.
struct Inbound {
    /// The server may keep context between messages: one decompressor for
    /// the whole connection.
    inflater: Inflater,
    /// A frame cut off at the end of the last read.
    partial: Vec<u8>,
    /// The data message in progress: (text, compressed).
    message: Option<(bool, bool)>,
    body: Vec<u8>,
    max_message: usize,
}

impl Client {
    pub fn new(stream: Stream, upgrade: Upgrade, config: &Config, now: Instant) -> Client {
        Client {
            stream,
            state: State::Connecting,
            conn: Connection::new(Role::Client, config),
            out: Out::default(),
            upgrade,
            head: Vec::new(),
            started: now,
            closing: false,
            inbound: None,
            max_message: config.max_message_size,
            received: 0,
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
    pub fn send_now(&mut self, msg: wsloop::Message<'_>, ring: &[Vec<u8>]) -> Result<(), String> {
        self.conn
            .send(msg)
            .map_err(|e| format!("cannot send: {e}"))?;
        self.flush(ring)
    }

    pub fn flush(&mut self, ring: &[Vec<u8>]) -> Result<(), String> {
        self.pump();
        self.out
            .flush(&mut self.stream, ring)
            .map_err(|e| format!("write: {}", io_kind(&e)))
    }
}

/// What the load generator does with a client's events.
pub trait Handler {
    fn on_open(&mut self, idx: usize, c: &mut Client, now: Instant);
    fn on_message(&mut self, idx: usize, c: &mut Client, text: bool, data: &[u8], now: Instant);
    fn on_ping(&mut self, idx: usize);
    /// `n` bytes came from the server (after the upgrade or not).
    fn on_read(&mut self, n: usize);
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
/// buffer, `ring` the shared pre-built data frames.
pub fn drive<H: Handler>(
    c: &mut Client,
    idx: usize,
    readable: Readable,
    buf: &mut [u8],
    ring: &[Vec<u8>],
    h: &mut H,
) {
    if c.state == State::Done {
        return;
    }
    if let Err(e) = drive_inner(c, idx, readable, buf, ring, h) {
        h.on_failed(idx, c, e); // sees the state the client failed in
        c.state = State::Done;
    }
}

fn drive_inner<H: Handler>(
    c: &mut Client,
    idx: usize,
    readable: Readable,
    buf: &mut [u8],
    ring: &[Vec<u8>],
    h: &mut H,
) -> Result<(), String> {
    if c.state == State::Connecting {
        if let Ok(Some(e)) | Err(e) = c.stream.tcp().take_error() {
            return Err(format!("connect: {}", io_kind(&e)));
        }
        match c.stream.tcp().peer_addr() {
            Ok(_) => {
                let _ = c.stream.tcp().set_nodelay(true);
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
                    h.on_read(n);
                    receive(c, idx, &mut buf[..n], h)?;
                    if c.state == State::Done {
                        return Ok(());
                    }
                    if n < buf.len() && readable == Readable::Data && !c.stream.reads_in_records() {
                        break; // drained: epoll signals the next arrival
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {}", io_kind(&e))),
            }
        }
    }
    c.flush(ring)
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
        let extensions: Vec<&[u8]> = response
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|h| h.value)
            .collect();
        if c.upgrade.deflate {
            check_deflate_answer(&extensions)?;
            c.inbound = Some(Box::new(Inbound {
                inflater: Inflater::new(false),
                partial: Vec::new(),
                message: None,
                body: Vec::new(),
                max_message: c.max_message,
            }));
        } else if !extensions.is_empty() {
            return Err("an extension answered that was not offered".into());
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
    if let Some(mut inbound) = c.inbound.take() {
        let result = inbound_frames(&mut inbound, c, idx, data, h);
        c.inbound = Some(inbound);
        return result;
    }
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
                c.received += 1;
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

/// `frames` with permessage-deflate: whole frames are taken from `data`
/// (after what an earlier read left), a cut-off one is kept for the next
/// read. Data frames are checked and their messages assembled (inflated
/// when the first frame has RSV1); control frames go to the `Connection`,
/// which answers pings and closes. As in the `Connection`, data that
/// arrives after our close frame is dropped.
fn inbound_frames<H: Handler>(
    inb: &mut Inbound,
    c: &mut Client,
    idx: usize,
    data: &mut [u8],
    h: &mut H,
) -> Result<(), String> {
    let now = Instant::now();
    let mut kept = std::mem::take(&mut inb.partial);
    let buf: &mut [u8] = if kept.is_empty() {
        data
    } else {
        kept.extend_from_slice(data);
        &mut kept
    };
    let error = |e: &dyn std::fmt::Display| format!("protocol error from the server: {e}");
    let mut pos = 0;
    while pos < buf.len() && c.state != State::Done {
        let (header, n) = match decode_header(&buf[pos..]).map_err(|e| error(&e))? {
            Decoded::Complete(header, n) => (header, n),
            Decoded::Partial => break,
        };
        if header.len > inb.max_message as u64 {
            return Err(error(&format!("a frame of {} bytes", header.len)));
        }
        let end = pos + n + header.len as usize;
        if end > buf.len() {
            break;
        }
        let op = header.check(Role::Client, RSV1).map_err(|e| error(&e))?;
        if op.is_control() {
            if header.rsv != 0 {
                return Err(error(&"a control frame with RSV1"));
            }
            let frame = &mut buf[pos..end];
            let mut at = 0;
            while at < frame.len() {
                let (used, event) = c.conn.read(&mut frame[at..]).map_err(|e| error(&e))?;
                at += used;
                match event {
                    Some(Event::Ping(_)) => h.on_ping(idx),
                    Some(Event::Close(close)) => h.on_close_frame(idx, c, close.code),
                    _ => {}
                }
            }
            pos = end;
            continue;
        }
        let payload = &buf[pos + n..end];
        pos = end;
        if c.conn.close_sent() {
            continue; // after our close: not processed (RFC 6455 §5.5.1)
        }
        let compressed = header.rsv & RSV1 != 0;
        let (text, inflating) = match (op, inb.message) {
            (OpCode::Continuation, Some(m)) if !compressed => m,
            (OpCode::Continuation, Some(_)) => return Err(error(&"RSV1 on a continuation")),
            (OpCode::Continuation, None) => return Err(error(&"a continuation of nothing")),
            (_, Some(_)) => return Err(error(&"a new message inside a fragmented one")),
            (op, None) => (op == OpCode::Text, compressed),
        };
        inb.message = Some((text, inflating));
        let limit = inb.max_message;
        if inflating {
            inb.inflater
                .feed(payload, &mut inb.body, limit)
                .map_err(|e| error(&e))?;
        } else if inb.body.len() + payload.len() > limit {
            return Err(error(&"a message over the limit"));
        } else {
            inb.body.extend_from_slice(payload);
        }
        if !header.fin {
            continue;
        }
        if inflating {
            inb.inflater
                .finish(&mut inb.body, limit)
                .map_err(|e| error(&e))?;
        }
        inb.message = None;
        if text && std::str::from_utf8(&inb.body).is_err() {
            return Err(error(&"text that is not UTF-8"));
        }
        c.received += 1;
        h.on_message(idx, c, text, &inb.body, now);
        inb.body.clear();
    }
    // What is left (a cut-off frame) waits in `partial`, whose buffer is
    // kept for the next one.
    let rest = buf.len() - pos.min(buf.len());
    if kept.is_empty() {
        kept.extend_from_slice(&data[data.len() - rest..]);
    } else {
        kept.drain(..kept.len() - rest);
    }
    inb.partial = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn deflate_answers() {
        use super::check_deflate_answer as check;
        assert!(check(&[b"permessage-deflate"]).is_ok());
        assert!(check(&[
            b"permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        ])
        .is_ok());
        assert!(check(&[b"permessage-deflate; server_max_window_bits=10", b""]).is_ok());
        assert!(check(&[b"permessage-deflate;client_max_window_bits=\"15\""]).is_ok());
        assert!(check(&[]).is_err());
        assert!(check(&[b"permessage-deflate; client_max_window_bits=10"]).is_ok());
        assert!(check(&[b"permessage-deflate; client_max_window_bits=8"]).is_err());
        assert!(check(&[b"permessage-deflate; server_max_window_bits"]).is_err());
        assert!(check(&[
            b"permessage-deflate; server_no_context_takeover; server_no_context_takeover"
        ])
        .is_err());
        assert!(check(&[b"permessage-deflate; x=1"]).is_err());
        assert!(check(&[b"permessage-deflate", b"x-other"]).is_err());
        assert!(check(&[b"x-webkit-deflate-frame"]).is_err());
    }
}
