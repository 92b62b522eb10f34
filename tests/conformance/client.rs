//! The conformance suite's raw client: it sends exact frames (any opcode,
//! RSV bits, mask, length form, fragmentation: [`Frame`]), written in the
//! chunks a case asks for (all at once, one write per frame, N bytes at a
//! time), and checks exactly what comes back and how the connection ends: who closed,
//! with which code, and whether the server then closed TCP, within what time.
//!
//! Every check panics with what was expected and what was seen, so a failed
//! case reads like an Autobahn report line.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use wsloop::proto::handshake::accept_key;

// The frames a case sends: the tests' one builder (`tests/support/frame.rs`).
pub use crate::frame::{fragments, Frame, LenForm, BINARY, CLOSE, CONT, PONG, TEXT};

/// How long one expected reply may take before the case fails.
pub const REPLY_WITHIN: Duration = Duration::from_secs(10);
/// How long the server may take to close TCP after the close handshake
/// (Autobahn waits 1 s; a loaded CI machine gets some slack).
pub const TCP_CLOSE_WITHIN: Duration = Duration::from_secs(3);
/// How long "nothing happens" is watched for (Autobahn's fail-fast waits
/// are 1 s; the server answers in microseconds, so this is plenty).
pub const QUIET_FOR: Duration = Duration::from_millis(150);

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// How the bytes of what a case sends are cut into writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chop {
    /// Everything in one write.
    Whole,
    /// One write per frame (Autobahn's `sync = True`).
    PerFrame,
    /// Writes of at most N bytes (Autobahn's `chopsize`).
    Bytes(usize),
}

/// A frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Received {
    /// The close code (1005 for a close frame without payload).
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {}", self.short());
        match self.payload.len() {
            0 => 1005,
            1 => panic!("the server sent a close frame with a 1-byte payload"),
            _ => u16::from_be_bytes([self.payload[0], self.payload[1]]),
        }
    }

    pub fn short(&self) -> String {
        let preview: Vec<u8> = self.payload.iter().copied().take(24).collect();
        format!(
            "frame {{ opcode: {:#x}, fin: {}, rsv: {}, len: {}, starts: {:02x?} }}",
            self.opcode,
            self.fin,
            self.rsv,
            self.payload.len(),
            preview
        )
    }
}

/// A data message the server sent, as [`Client::next_message`] assembled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub opcode: u8,
    /// RSV1 on the first frame: the payload is compressed.
    pub rsv1: bool,
    /// How many frames it came in.
    pub frames: usize,
    /// The frames' payloads, concatenated (still compressed if `rsv1`).
    pub payload: Vec<u8>,
}

/// How a read ended without a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed TCP (FIN).
    Eof,
    /// The connection was reset.
    Reset,
    /// Nothing came in time.
    Timeout,
}

/// A WebSocket client over a blocking `TcpStream`, upgraded by hand.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unparsed bytes in `buf`.
    start: usize,
    scratch: Box<[u8]>,
    ended: Option<End>,
    /// The client sent a close frame (it started the closing handshake).
    sent_close: bool,
    /// The head of the 101 response, status line to blank line.
    response_head: String,
}

impl Client {
    /// Connects to `addr`, upgrades on `path`, and checks the 101.
    pub fn connect(addr: SocketAddr, path: &str) -> Client {
        Client::connect_offering(addr, path, &[])
    }

    /// Connects to `addr` and upgrades on `path` with one
    /// `Sec-WebSocket-Extensions` header line per entry of `offers` (none
    /// for an empty slice), and checks the 101. The answer is in
    /// [`Client::extensions`].
    pub fn connect_offering(addr: SocketAddr, path: &str, offers: &[&str]) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream.set_nodelay(true).unwrap();
        stream.set_write_timeout(Some(REPLY_WITHIN)).unwrap();
        let mut c = Client {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            scratch: vec![0u8; 256 * 1024].into_boxed_slice(),
            ended: None,
            sent_close: false,
            response_head: String::new(),
        };
        let extensions: String = offers
            .iter()
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .collect();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n{extensions}\r\n"
        );
        c.write(request.as_bytes());
        let deadline = Instant::now() + REPLY_WITHIN;
        let end = loop {
            if let Some(p) = c.pending().windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if let Err(e) = c.fill(deadline) {
                panic!("no upgrade response: {e:?}");
            }
        };
        let head = String::from_utf8(c.pending()[..end].to_vec()).expect("ASCII response head");
        c.start += end;
        let status = head.split("\r\n").next().unwrap_or_default();
        assert!(
            status.starts_with("HTTP/1.1 101 "),
            "upgrade refused: {head}"
        );
        c.response_head = head;
        let accept = c.response_headers("Sec-WebSocket-Accept");
        assert_eq!(
            accept,
            [accept_key(KEY.as_bytes())],
            "wrong Sec-WebSocket-Accept in {}",
            c.response_head
        );
        c
    }

    /// The values of every header of the 101 response named `name`
    /// (case-insensitive), trimmed, in order.
    pub fn response_headers(&self, name: &str) -> Vec<String> {
        self.response_head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// The `Sec-WebSocket-Extensions` answer of the 101, which must come in
    /// one header line if at all (the server agrees to one extension).
    pub fn extensions(&self) -> Option<String> {
        let mut values = self.response_headers("Sec-WebSocket-Extensions");
        assert!(
            values.len() <= 1,
            "several Sec-WebSocket-Extensions headers in {}",
            self.response_head
        );
        values.pop()
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Writes all of `bytes` in one `write_all`.
    pub fn write(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!("write of {} bytes failed: {e}", bytes.len());
        }
    }

    /// Writes raw bytes in chunks of `chop` (`PerFrame` counts as `Whole`).
    pub fn send_raw(&mut self, bytes: &[u8], chop: Chop) {
        match chop {
            Chop::Whole | Chop::PerFrame => self.write(bytes),
            Chop::Bytes(n) => {
                for c in bytes.chunks(n.max(1)) {
                    self.write(c);
                }
            }
        }
    }

    /// Sends `frames`, cut into writes as `chop` says.
    pub fn send(&mut self, frames: &[Frame], chop: Chop) {
        // A close frame with RSV bits is a protocol error, not a close
        // (Autobahn 3.7 expects the server to fail the connection).
        self.sent_close |= frames
            .iter()
            .any(|f| f.head.opcode == CLOSE && f.head.rsv == 0);
        match chop {
            Chop::PerFrame => {
                for f in frames {
                    self.write(&f.encode());
                }
            }
            _ => {
                let all: Vec<u8> = frames.iter().flat_map(|f| f.encode()).collect();
                self.send_raw(&all, chop);
            }
        }
    }

    /// Reads more bytes into the buffer, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), End> {
        if let Some(end) = self.ended {
            return Err(end);
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > (1 << 20) && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(End::Timeout);
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.ended = Some(End::Eof);
                    return Err(End::Eof);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&self.scratch[..n]);
                    return Ok(());
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted => {}
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        return Err(End::Timeout)
                    }
                    _ => {
                        self.ended = Some(End::Reset);
                        return Err(End::Reset);
                    }
                },
            }
        }
    }

    /// The next frame from the server, or how the wait ended. Every frame
    /// is checked against what a server must send: unmasked, minimal
    /// length form.
    pub fn recv(&mut self, within: Duration) -> Result<Received, End> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((frame, used)) = parse_server_frame(self.pending()) {
                self.start += used;
                return Ok(frame);
            }
            self.fill(deadline)?;
        }
    }

    /// The next frame, which must come within [`REPLY_WITHIN`].
    pub fn next(&mut self, what: &str) -> Received {
        match self.recv(REPLY_WITHIN) {
            Ok(f) => f,
            Err(end) => panic!("expected {what}, got {end:?}"),
        }
    }

    /// Expects a data message: one frame, FIN set, no RSV bits.
    pub fn expect_message(&mut self, opcode: u8, payload: &[u8]) {
        let what = format!(
            "a {} message of {} bytes",
            if opcode == TEXT { "text" } else { "binary" },
            payload.len()
        );
        let f = self.next(&what);
        assert!(
            f.opcode == opcode && f.fin && f.rsv == 0,
            "expected {what}, got {}",
            f.short()
        );
        assert!(
            f.payload == payload,
            "expected {what}, got a payload that differs: {}",
            f.short()
        );
    }

    /// The next data message, reassembled from its frames: the first a
    /// text or binary frame, the others continuations, RSV2 and RSV3 never
    /// set and RSV1 (permessage-deflate's "compressed") only on the first
    /// (RFC 7692 §6.1). Control frames in between fail the case (the echo
    /// server sends none).
    pub fn next_message(&mut self, what: &str) -> ReceivedMessage {
        let first = self.next(what);
        assert!(
            matches!(first.opcode, TEXT | BINARY) && first.rsv & 0b011 == 0,
            "expected {what}, got {}",
            first.short()
        );
        let mut msg = ReceivedMessage {
            opcode: first.opcode,
            rsv1: first.rsv & 0b100 != 0,
            frames: 1,
            payload: first.payload,
        };
        let mut fin = first.fin;
        while !fin {
            let f = self.next(&format!("the continuation of {what}"));
            assert!(
                f.opcode == CONT && f.rsv == 0,
                "expected a continuation frame without RSV bits for {what}, got {}",
                f.short()
            );
            msg.payload.extend_from_slice(&f.payload);
            msg.frames += 1;
            fin = f.fin;
        }
        msg
    }

    pub fn expect_text(&mut self, payload: impl AsRef<[u8]>) {
        self.expect_message(TEXT, payload.as_ref());
    }

    pub fn expect_binary(&mut self, payload: impl AsRef<[u8]>) {
        self.expect_message(BINARY, payload.as_ref());
    }

    /// Expects a pong with exactly `payload`.
    pub fn expect_pong(&mut self, payload: impl AsRef<[u8]>) {
        let payload = payload.as_ref();
        let f = self.next("a pong");
        assert!(
            f.opcode == PONG && f.fin && f.rsv == 0 && f.payload == payload,
            "expected a pong with {payload:02x?}, got {}",
            f.short()
        );
    }

    /// Expects nothing at all for [`QUIET_FOR`]: no frame, no close.
    pub fn expect_quiet(&mut self) {
        match self.recv(QUIET_FOR) {
            Err(End::Timeout) => {}
            Ok(f) => panic!("expected nothing yet, got {}", f.short()),
            Err(end) => panic!("expected nothing yet, the connection ended: {end:?}"),
        }
    }

    /// Expects a close frame whose code is one of `codes` (1005 stands for
    /// a close frame without payload); returns its code.
    pub fn expect_close(&mut self, codes: &[u16]) -> u16 {
        let f = self.next(&format!("a close frame with a code in {codes:?}"));
        assert!(
            f.opcode == CLOSE,
            "expected a close frame with a code in {codes:?}, got {}",
            f.short()
        );
        let code = f.close_code();
        assert!(
            codes.contains(&code),
            "expected a close code in {codes:?}, got {code} (reason {:?})",
            String::from_utf8_lossy(&f.payload[2.min(f.payload.len())..])
        );
        assert!(
            std::str::from_utf8(&f.payload[2.min(f.payload.len())..]).is_ok(),
            "the server's close reason is not UTF-8"
        );
        code
    }

    /// After the close handshake: the server must close TCP (FIN) within
    /// [`TCP_CLOSE_WITHIN`] without sending anything more. Returns how long
    /// it took.
    pub fn expect_tcp_closed(&mut self) -> Duration {
        let t0 = Instant::now();
        match self.recv(TCP_CLOSE_WITHIN) {
            Err(End::Eof) => t0.elapsed(),
            Err(End::Timeout) => panic!(
                "the server did not close the TCP connection within {TCP_CLOSE_WITHIN:?} \
                 after the close handshake"
            ),
            Err(End::Reset) => {
                panic!("the TCP connection was reset instead of closed after the close handshake")
            }
            Ok(f) => panic!(
                "the server sent a frame after its close frame: {}",
                f.short()
            ),
        }
    }

    /// The clean close Autobahn starts when a case is done: the client
    /// sends close 1000, the server echoes 1000 and closes TCP first.
    pub fn close_cleanly(&mut self) {
        self.send(&[Frame::close(1000, "")], Chop::Whole);
        self.expect_close(&[1000]);
        self.expect_tcp_closed();
    }

    /// The client sent a close frame already: the server echoes a code in
    /// `codes` and closes TCP.
    pub fn expect_close_reply(&mut self, codes: &[u16]) -> u16 {
        assert!(self.sent_close, "the case never sent a close frame");
        let code = self.expect_close(codes);
        self.expect_tcp_closed();
        code
    }

    /// The server fails the connection: its next frame is a close with a
    /// code in `codes` (1002 for protocol errors, 1007 for bad UTF-8). The
    /// client answers it as Autobahn does, and the server must then close
    /// TCP. Returns the code.
    pub fn expect_failed(&mut self, codes: &[u16]) -> u16 {
        assert!(
            !self.sent_close,
            "the server must start the closing handshake, but the client sent a close"
        );
        let code = self.expect_close(codes);
        // Autobahn replies to the server's close; the reply may meet a
        // half-closed socket, which is fine.
        let _ = self.stream.write_all(&Frame::close(1000, "").encode());
        self.expect_tcp_closed();
        code
    }
}

/// Parses one server frame from the front of `buf`, checking the rules a
/// server's frames obey (§5.1 unmasked, §5.2 minimal length form).
fn parse_server_frame(buf: &[u8]) -> Option<(Received, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "the server sent a masked frame (§5.1)");
    let (len, pos) = match buf[1] & 0x7f {
        126 => {
            let ext = buf.get(2..4)?;
            let len = u16::from_be_bytes([ext[0], ext[1]]) as u64;
            assert!(
                len >= 126,
                "the server used a non-minimal 16-bit length for {len}"
            );
            (len, 4)
        }
        127 => {
            let ext = buf.get(2..10)?;
            let len = u64::from_be_bytes(ext.try_into().unwrap());
            assert!(
                len > 0xffff && len >> 63 == 0,
                "the server used a bad 64-bit length {len}"
            );
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let len = len as usize;
    if buf.len() < pos + len {
        return None;
    }
    let frame = Received {
        fin: buf[0] & 0x80 != 0,
        rsv: (buf[0] >> 4) & 7,
        opcode: buf[0] & 0x0f,
        payload: buf[pos..pos + len].to_vec(),
    };
    Some((frame, pos + len))
}

/// `pattern` repeated to exactly `len` bytes (Autobahn's `payload_len`).
pub fn repeated(pattern: &[u8], len: usize) -> Vec<u8> {
    pattern.iter().copied().cycle().take(len).collect()
}

/// The client's side of permessage-deflate (RFC 7692): the agreement read
/// from the server's answer, and a flate2 (zlib-rs) compressor and
/// decompressor that honour it, independent of wsloop's own codec.
#[cfg(feature = "deflate")]
pub mod pmd {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

    use crate::puff;

    /// The empty stored block a sync flush ends with (§7.2.1).
    pub const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

    /// The parameters of a `permessage-deflate` answer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Agreement {
        pub server_no_context_takeover: bool,
        pub client_no_context_takeover: bool,
        /// 15 when the answer does not limit it.
        pub server_max_window_bits: u8,
        /// 15 when the answer does not limit it.
        pub client_max_window_bits: u8,
    }

    impl Agreement {
        /// Reads a server's `Sec-WebSocket-Extensions` answer, failing the
        /// case unless it is one well-formed `permessage-deflate` response
        /// (§7: known parameters, each at most once, windows 8 to 15).
        pub fn parse(answer: &str) -> Agreement {
            let mut parts = answer.split(';').map(str::trim);
            assert_eq!(
                parts.next(),
                Some("permessage-deflate"),
                "answer {answer:?}"
            );
            let mut a = Agreement {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
            };
            let mut seen = Vec::new();
            for p in parts {
                let (name, value) = match p.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim())),
                    None => (p, None),
                };
                assert!(!seen.contains(&name), "{name} twice in {answer:?}");
                seen.push(name);
                let bits = |v: Option<&str>| -> u8 {
                    let v = v.unwrap_or_else(|| panic!("{name} without a value in {answer:?}"));
                    let b: u8 = v
                        .parse()
                        .unwrap_or_else(|_| panic!("{name}={v} in {answer:?}"));
                    assert!((8..=15).contains(&b), "{name}={v} in {answer:?}");
                    b
                };
                match name {
                    "server_no_context_takeover" if value.is_none() => {
                        a.server_no_context_takeover = true
                    }
                    "client_no_context_takeover" if value.is_none() => {
                        a.client_no_context_takeover = true
                    }
                    "server_max_window_bits" => a.server_max_window_bits = bits(value),
                    "client_max_window_bits" => a.client_max_window_bits = bits(value),
                    _ => panic!("unexpected parameter {p:?} in {answer:?}"),
                }
            }
            a
        }
    }

    /// A permessage-deflate client: compresses what it sends with its
    /// agreed window (reset after each message without client context
    /// takeover) and decompresses what the server sends, checking that the
    /// server kept to its side (its window, and no reference to an earlier
    /// message without server context takeover).
    pub struct PmdClient {
        pub agreed: Agreement,
        compress: Compress,
        decompress: Decompress,
        /// The server's messages so far (its last 32 KiB), with context takeover.
        history: Vec<u8>,
        /// Whether every reply is also decoded by [`puff`], which checks
        /// the window exactly (slow, so only where a window is limited).
        check_window: bool,
        /// Back references into earlier messages seen so far.
        pub references_into_history: usize,
    }

    impl PmdClient {
        /// A client for `agreed` compressing at deflate `level`.
        pub fn new(agreed: Agreement, level: u32) -> PmdClient {
            // zlib cannot compress with an 8-bit window; 9 is the nearest.
            let bits = agreed.client_max_window_bits.max(9);
            PmdClient {
                agreed,
                compress: Compress::new_with_window_bits(Compression::new(level), false, bits),
                decompress: Decompress::new_with_window_bits(false, agreed.server_max_window_bits),
                history: Vec::new(),
                check_window: agreed.server_max_window_bits < 15,
                references_into_history: 0,
            }
        }

        /// Decodes every reply with the window checker too (it is on by
        /// itself when the server's window is limited below 15 bits).
        pub fn check_window(mut self, on: bool) -> PmdClient {
            self.check_window = on;
            self
        }

        /// The compressed body of `payload` (§7.2.1): deflate ending in a
        /// sync flush, without the trailing `00 00 ff ff`.
        pub fn compress(&mut self, payload: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(payload.len() / 2 + 64);
            let base = self.compress.total_in();
            loop {
                let used = (self.compress.total_in() - base) as usize;
                out.reserve(payload.len() - used + 64);
                self.compress
                    .compress_vec(&payload[used..], &mut out, FlushCompress::Sync)
                    .expect("client deflate");
                let done = self.compress.total_in() - base == payload.len() as u64;
                if done && out.len() < out.capacity() {
                    break;
                }
            }
            if out.ends_with(&TRAILER) {
                out.truncate(out.len() - TRAILER.len());
            }
            if self.agreed.client_no_context_takeover {
                self.compress.reset();
            }
            out
        }

        /// The message a compressed reply carries. The case fails if it
        /// does not decode, or (with the window check) if a back reference
        /// reaches past the server's agreed window or, without server
        /// context takeover, into an earlier message.
        pub fn decompress(&mut self, body: &[u8]) -> Vec<u8> {
            let mut input = body.to_vec();
            input.extend_from_slice(&TRAILER);
            let bits = self.agreed.server_max_window_bits;
            if self.agreed.server_no_context_takeover {
                // Each message must decode alone.
                self.decompress = Decompress::new_with_window_bits(false, bits);
            }
            let data = inflate_all(&mut self.decompress, &input)
                .unwrap_or_else(|e| panic!("a compressed reply does not decompress: {e}"));
            if self.check_window {
                let history: &[u8] = if self.agreed.server_no_context_takeover {
                    &[]
                } else {
                    &self.history
                };
                let checked = puff::inflate(history, bits, &input).unwrap_or_else(|e| {
                    panic!("a compressed reply breaks the agreement ({bits}-bit window): {e}")
                });
                assert!(checked.data == data, "the two decoders disagree");
                assert!(!checked.last, "the server ended its deflate stream");
                self.references_into_history += checked.into_history;
            }
            if !self.agreed.server_no_context_takeover {
                self.history.extend_from_slice(&data);
                let keep = 1 << 15;
                if self.history.len() > 2 * keep {
                    self.history.drain(..self.history.len() - keep);
                }
            }
            data
        }
    }

    /// Inflates `input` whole with `d` (which keeps its window).
    pub fn inflate_all(d: &mut Decompress, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let base = d.total_in();
        loop {
            let used = (d.total_in() - base) as usize;
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.len().max(4096));
            }
            let before = d.total_out();
            let status = d
                .decompress_vec(&input[used..], &mut out, FlushDecompress::None)
                .map_err(|e| e.to_string())?;
            let used = (d.total_in() - base) as usize;
            if status == Status::StreamEnd {
                return Ok(out);
            }
            if used == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if d.total_out() == before && used < input.len() && out.len() < out.capacity() {
                return Err("no progress".into());
            }
        }
    }
}
