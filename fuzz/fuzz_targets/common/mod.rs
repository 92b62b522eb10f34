//! Checks shared by the fuzz targets, written independently of wsloop: a
//! minimal HTTP/1.1 request-head reader, the RFC 6455 §4.2.1 rules for an
//! acceptable upgrade request, and a walker over the frames a server sent.
//! Each target includes this file with `mod common;`, so some items are
//! unused in some targets.
#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use wsloop::proto::deflate::Agreed;
use wsloop::proto::frame::{decode_header, Decoded};
use wsloop::proto::Role;
use wsloop::proto::{Connection, Event, Message};
use wsloop::{close_code, Config, ConnId, Ctx, Handler};

/// An HTTP request head as read by [`read_head`].
#[derive(Debug)]
pub struct Head<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub version: &'a [u8],
    /// (name, value with optional whitespace trimmed), in order.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    /// Bytes up to and including the blank line.
    pub len: usize,
}

/// Optional whitespace (RFC 9110 §5.6.3): SP and HTAB only.
fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Reads a request head the simple way RFC 9112 describes it: empty lines
/// before the request line are skipped (§2.2), a line ends at LF with an
/// optional CR before it, the request line is `method SP target SP version`,
/// a header line is `name ":" OWS value OWS`, and a blank line ends the
/// head. `None` when there is no blank line or a line does not have that
/// shape. This is deliberately not httparse.
pub fn read_head(buf: &[u8]) -> Option<Head<'_>> {
    let mut pos = 0;
    let next_line = |pos: &mut usize| -> Option<&[u8]> {
        let rest = &buf[*pos..];
        let lf = rest.iter().position(|&b| b == b'\n')?;
        *pos += lf + 1;
        let line = &rest[..lf];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    };
    let request_line = loop {
        let line = next_line(&mut pos)?;
        if !line.is_empty() {
            break line;
        }
    };
    let sp1 = request_line.iter().position(|&b| b == b' ')?;
    let sp2 = request_line.iter().rposition(|&b| b == b' ')?;
    if sp1 == sp2 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let line = next_line(&mut pos)?;
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        headers.push((&line[..colon], trim_ows(&line[colon + 1..])));
    }
    Some(Head {
        method: &request_line[..sp1],
        target: &request_line[sp1 + 1..sp2],
        version: &request_line[sp2 + 1..],
        headers,
        len: pos,
    })
}

impl<'a> Head<'a> {
    /// For a response head: the status code (the status line
    /// `HTTP/1.1 SP code SP reason` was split at its first and last SP).
    pub fn status(&self) -> &'a [u8] {
        self.target.split(|&b| b == b' ').next().unwrap_or(b"")
    }

    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
    }

    /// Whether a comma-separated header called `name` has the element
    /// `token` (case-insensitive, elements trimmed of OWS only).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
        })
    }
}

/// Whether `v` is the canonical base64 (RFC 4648 §4, padded) of 16 bytes:
/// 22 alphabet characters, the last of which carries 2 data bits, then `==`.
pub fn is_base64_of_16(v: &[u8]) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c);
    v.len() == 24
        && v[22..] == *b"=="
        && v[..21].iter().all(|&c| value(c).is_some())
        && value(v[21]).is_some_and(|x| x & 0x0f == 0)
}

/// RFC 6455 §4.2.1 on an independently read head: what a server may accept.
/// Returns the key (OWS-trimmed) on success, else which rule failed.
pub fn rfc6455_acceptable<'a>(head: &Head<'a>) -> Result<&'a [u8], &'static str> {
    if head.method != b"GET" {
        return Err("method is not GET");
    }
    // httparse only knows HTTP/1.0 and HTTP/1.1; 1.1 or higher is required.
    if head.version != b"HTTP/1.1" {
        return Err("version is not HTTP/1.1");
    }
    // RFC 9112 §3.2: exactly one Host.
    if head.values("host").count() != 1 {
        return Err("no Host, or more than one");
    }
    if !head.has_token("upgrade", "websocket") {
        return Err("Upgrade has no websocket token");
    }
    if !head.has_token("connection", "upgrade") {
        return Err("Connection has no upgrade token");
    }
    if head.values("sec-websocket-version").next() != Some(b"13".as_slice()) {
        return Err("Sec-WebSocket-Version is not 13");
    }
    let mut keys = head.values("sec-websocket-key");
    let key = keys.next().ok_or("no Sec-WebSocket-Key")?;
    if keys.next().is_some() {
        return Err("Sec-WebSocket-Key twice");
    }
    if !is_base64_of_16(key) {
        return Err("Sec-WebSocket-Key is not base64 of 16 bytes");
    }
    Ok(key)
}

/// base64(SHA-1(key + GUID)), RFC 6455 §4.2.2 item 5.4.
pub fn expected_accept(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    BASE64.encode(sha.finalize())
}

/// Checks a 101 response head: status line, the upgrade headers and the
/// accept value for `key`.
pub fn check_accept_response(response: &[u8], key: &[u8]) {
    let head = read_head(response).expect("101 response has a well-formed head");
    assert_eq!(head.len, response.len(), "nothing after the 101 head");
    assert_eq!(head.method, b"HTTP/1.1", "response status line");
    assert_eq!(head.status(), b"101", "response status");
    assert!(
        head.has_token("upgrade", "websocket"),
        "101 without Upgrade"
    );
    assert!(
        head.has_token("connection", "upgrade"),
        "101 without Connection"
    );
    let accept: Vec<_> = head.values("sec-websocket-accept").collect();
    assert_eq!(
        accept,
        [expected_accept(key).as_bytes()],
        "Sec-WebSocket-Accept"
    );
}

/// What a server sent after the handshake, checked frame by frame.
#[derive(Debug, Default)]
pub struct ServerOutput {
    /// Data messages the client saw, in order (text flag, payload; a
    /// compressed message inflated).
    pub messages: Vec<(bool, Vec<u8>)>,
    /// Per message: the payload's size on the wire when it came compressed
    /// (RSV1), `None` when it came as is.
    pub compressed: Vec<Option<usize>>,
    pub pongs: Vec<Vec<u8>>,
    /// The close code of the server's close frame (1005: empty).
    pub close: Option<u16>,
    /// Bytes after the last whole frame (a frame cut off at the end).
    pub partial_tail: usize,
}

/// permessage-deflate as agreed, from the client's side: how to read the
/// server's RSV1 frames.
#[derive(Debug, Clone, Copy)]
pub struct ClientDeflate {
    /// The server resets its compressor after every message: the client's
    /// decompressor then starts every message afresh, so a reference back
    /// into an earlier message fails.
    pub server_no_context_takeover: bool,
    /// The server's window (9 to 15).
    pub server_max_window_bits: u8,
}

/// `check_server_frames_deflate` without permessage-deflate: no RSV bit
/// may be set.
pub fn check_server_frames(bytes: &[u8]) -> ServerOutput {
    check_server_frames_deflate(bytes, None)
}

/// Inflates one RSV1 message's payload as a client does (RFC 7692 §7.2.2:
/// the payload plus `00 00 ff ff`), with flate2 driven directly.
fn client_inflate(d: &mut flate2::Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let mut out = Vec::new();
    let start = d.total_in();
    loop {
        let used = (d.total_in() - start) as usize;
        out.reserve(64 * 1024);
        let status = d
            .decompress_vec(&input[used..], &mut out, flate2::FlushDecompress::None)
            .unwrap_or_else(|e| panic!("the server sent invalid deflate data: {e}"));
        let used = (d.total_in() - start) as usize;
        assert!(
            status != flate2::Status::StreamEnd,
            "the server ended the deflate stream (BFINAL)"
        );
        if used == input.len() && out.len() < out.capacity() {
            return out;
        }
        assert!(
            out.len() <= 1 << 24,
            "a server message inflates past 16 MiB"
        );
    }
}

/// Walks the frames in `bytes` as a client would receive them and asserts
/// what every server frame must satisfy: no mask, no RSV bits (but RSV1 on
/// a data frame when permessage-deflate was agreed: then its payload must
/// inflate, with or without the window of the messages before it as
/// agreed), a known opcode, no fragmentation (wsloop never fragments),
/// control payloads of at most 125 bytes, close payloads empty or a legal
/// code plus UTF-8, and nothing after the close frame. Without compressed
/// frames, the same bytes are then fed to a client-role `Connection`, which
/// must accept them all.
pub fn check_server_frames_deflate(bytes: &[u8], deflate: Option<ClientDeflate>) -> ServerOutput {
    let mut out = ServerOutput::default();
    let mut inflater =
        deflate.map(|d| flate2::Decompress::new_with_window_bits(false, d.server_max_window_bits));
    let mut pos = 0;
    while pos < bytes.len() {
        assert!(
            out.close.is_none(),
            "server sent bytes after its close frame"
        );
        let (h, n) = match decode_header(&bytes[pos..]) {
            Ok(Decoded::Complete(h, n)) => (h, n),
            Ok(Decoded::Partial) => break,
            Err(e) => panic!("server sent an undecodable header: {e}"),
        };
        if ((bytes.len() - pos - n) as u64) < h.len {
            break; // payload cut off at the end
        }
        let wire = &bytes[pos + n..pos + n + h.len as usize];
        assert!(h.mask.is_none(), "server frame is masked");
        assert!(h.fin, "server fragmented a frame");
        let compressed = h.rsv == 0b100 && matches!(h.opcode, 0x1 | 0x2);
        assert!(
            h.rsv == 0 || (compressed && inflater.is_some()),
            "server frame has RSV bits {:#05b}",
            h.rsv
        );
        let inflated;
        let payload = match inflater.as_mut() {
            Some(d) if compressed => {
                inflated = client_inflate(d, wire);
                if deflate.is_some_and(|d| d.server_no_context_takeover) {
                    d.reset(false);
                }
                &inflated[..]
            }
            _ => wire,
        };
        match h.opcode {
            0x1 | 0x2 => {
                let text = h.opcode == 0x1;
                if text {
                    assert!(std::str::from_utf8(payload).is_ok(), "text is not UTF-8");
                }
                out.messages.push((text, payload.to_vec()));
                out.compressed.push(compressed.then_some(wire.len()));
            }
            0x8 => {
                assert!(payload.len() <= 125, "close payload too long");
                let code = match payload.len() {
                    0 => close_code::NO_STATUS,
                    1 => panic!("close frame with a 1-byte payload"),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        assert!(
                            close_code::is_valid(code),
                            "server sent illegal close code {code}"
                        );
                        assert!(
                            std::str::from_utf8(&payload[2..]).is_ok(),
                            "close reason is not UTF-8"
                        );
                        code
                    }
                };
                out.close = Some(code);
            }
            0x9 => assert!(payload.len() <= 125, "ping payload too long"),
            0xA => {
                assert!(payload.len() <= 125, "pong payload too long");
                out.pongs.push(payload.to_vec());
            }
            op => panic!("server sent opcode {op:#x}"),
        }
        pos += n + h.len as usize;
    }
    out.partial_tail = bytes.len() - pos;
    if out.compressed.iter().any(Option::is_some) {
        // wsloop's client role has no permessage-deflate.
        return out;
    }

    // The same bytes through wsloop's own client role: it must not fail.
    let mut client = Connection::new(Role::Client, &Config::default());
    let mut buf = bytes[..pos].to_vec();
    let mut at = 0;
    let mut seen = Vec::new();
    let mut close = None;
    while at < buf.len() {
        let (used, event) = client
            .read(&mut buf[at..])
            .unwrap_or_else(|e| panic!("client role rejected the server's bytes: {e}"));
        assert!(used > 0 || event.is_some(), "client read made no progress");
        at += used;
        match event {
            Some(Event::Message(m)) => seen.push(match m.message() {
                Message::Text(t) => (true, t.as_bytes().to_vec()),
                Message::Binary(b) => (false, b.to_vec()),
            }),
            Some(Event::Close(c)) => close = Some(c.code),
            _ => {}
        }
    }
    assert_eq!(seen, out.messages, "client role saw other messages");
    assert_eq!(close, out.close, "client role saw another close");
    out
}

/// What an echo server owes a client that sent `bytes` after its handshake,
/// computed with one server-role `Connection` fed everything at once:
/// every message echoed while open, a pong per ping while open, and the
/// close frame it sent (if any). Chunking must not change any of it.
pub fn expected_echo(bytes: &[u8], config: &Config) -> ServerOutput {
    expected_echo_deflate(bytes, config, None)
}

/// `expected_echo` with permessage-deflate as `agreed` (messages compared
/// as they inflate).
pub fn expected_echo_deflate(
    bytes: &[u8],
    config: &Config,
    agreed: Option<wsloop::proto::deflate::Agreed>,
) -> ServerOutput {
    let mut conn = Connection::new(Role::Server, config);
    if let Some(agreed) = agreed {
        assert!(conn.set_deflate(agreed));
    }
    let mut buf = bytes.to_vec();
    let mut pos = 0;
    let mut out = ServerOutput::default();
    while pos < buf.len() && !conn.close_received() {
        let open = conn.is_open();
        let Ok((used, event)) = conn.read(&mut buf[pos..]) else {
            break;
        };
        pos += used;
        match event {
            Some(Event::Message(m)) if open => out.messages.push(match m.message() {
                Message::Text(t) => (true, t.as_bytes().to_vec()),
                Message::Binary(b) => (false, b.to_vec()),
            }),
            Some(Event::Ping(p)) if open => out.pongs.push(p.as_bytes().to_vec()),
            _ => {}
        }
    }
    out.close = conn.close_code_sent();
    out
}

/// The server targets' handler: every message back.
pub struct Echo;

impl Handler for Echo {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
        ctx.send(id, msg);
    }
}

/// A Rust `main` ignores SIGPIPE; libFuzzer's `main` does not, and a
/// server's writes to a closed peer would kill the process.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_IGN, before any thread
    // of ours could be writing.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// The answer of an echo server to a client that sent `stream`:
/// nothing, a `101` for a request that passes the §4.2.1 checks (with the
/// right accept value and the extensions answer `agreed` calls for) and
/// then exactly the echoes, pongs and close a lone `Connection` owes
/// (inflated as agreed), or a well-formed 4xx/5xx. `complete`: everything
/// the server sent arrived.
pub fn check_echo_response(
    stream: &[u8],
    received: &[u8],
    complete: bool,
    config: &Config,
    agreed: Option<Agreed>,
) {
    if received.is_empty() {
        return; // no complete head before the FIN: closed without an answer
    }
    let Some(head) = read_head(received) else {
        assert!(!complete, "response without a complete head: {received:?}");
        return;
    };
    assert_eq!(head.method, b"HTTP/1.1", "status line");
    if head.status() == b"101" {
        let request = read_head(stream).expect("101 for bytes without a request head");
        let key = match rfc6455_acceptable(&request) {
            Ok(key) => key,
            Err(why) => panic!("101 for a request that breaks RFC 6455: {why}"),
        };
        check_accept_response(&received[..head.len], key);
        let answer: Vec<&[u8]> = head.values("sec-websocket-extensions").collect();
        match &agreed {
            Some(a) => assert_eq!(answer, [a.response().as_bytes()], "extensions answer"),
            None => assert!(
                answer.is_empty(),
                "extensions answered without an agreement"
            ),
        }
        let client_deflate = agreed.as_ref().map(|a| ClientDeflate {
            server_no_context_takeover: a.server_no_context_takeover(),
            server_max_window_bits: a.server_max_window_bits(),
        });
        let sent = check_server_frames_deflate(&received[head.len..], client_deflate);
        if complete {
            // Everything arrived: it is exactly what an echo server owes.
            let owed = expected_echo_deflate(&stream[request.len..], config, agreed);
            assert_eq!(sent.partial_tail, 0, "a frame cut off at the end");
            assert_eq!(sent.messages, owed.messages, "echoed messages");
            assert_eq!(sent.pongs, owed.pongs, "pongs");
            assert_eq!(sent.close, owed.close, "close frame");
        }
        return;
    }
    let status = std::str::from_utf8(head.status()).expect("status");
    assert!(
        ["400", "403", "404", "405", "426", "431", "503", "505"].contains(&status),
        "unexpected status {status}"
    );
    if complete {
        let length: usize = head
            .values("content-length")
            .next()
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .expect("Content-Length");
        assert_eq!(head.len + length, received.len(), "error response length");
    }
}
