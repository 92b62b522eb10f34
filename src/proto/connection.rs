//! One connection's WebSocket state machine, after the handshake. No I/O.
//!
//! ```text
//!             read(bytes)                                   send / ping / close
//!                 │                                                 │
//!   header ─► check (§5) ─► payload ─► unmask in place              ▼
//!                 │            │                             frame encoder
//!                 │   whole frame in input? ── yes ─► Event::Message(borrowed slice)
//!                 │            │ no                                 │
//!                 │   assembly buffer + UTF-8 validator             ▼
//!                 │            └──────────────► Event::Message(owned buffer)
//!                 └─ ping ─► pong queued ─────────────────────► SendQueue ─► bytes out
//!
//!   close state:  Open ──close sent──► Closing ──close received──► Done
//!                   └──close received (echo sent)───────────────► Done
//!                   └──protocol error (close sent)──────────────► Done
//! ```
//!
//! Call [`Connection::read`] with the bytes that came from the socket until
//! it has consumed them all; each call yields at most one [`Event`]. Replies
//! the protocol owes the peer (pongs, the close echo, the close after an
//! error) are queued by `read` itself. Write what [`Connection::outgoing`]
//! holds to the socket, and shut the TCP connection once
//! [`Connection::is_finished`] says so. The machine never reads a clock: the
//! event loop owns every timeout.

use std::sync::Arc;

use thiserror::Error;

use crate::buf::pool;
use crate::buf::send_queue::SendQueue;
use crate::config::Config;
use crate::proto::frame::{
    close_code, decode_header, unfragmented_header, Decoded, FrameError, FrameHeader, OpCode, Role,
    MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1,
};
use crate::proto::mask::apply_mask;
use crate::proto::message::{Broadcast, Data, Incoming, Message};
use crate::proto::transmit::Transmit;
use crate::proto::utf8::{assume_valid, truncate, Utf8Validator};

#[cfg(feature = "deflate")]
use crate::proto::deflate::{Agreed, Context, InflateError};
#[cfg(not(feature = "deflate"))]
use no_deflate::Context;

/// The payload of a control frame (at most 125 bytes): borrowed from the
/// input when the frame arrived whole, else the pieces gathered across
/// reads. (Not held inline: an [`Event`] stays small, and so cheap to
/// return for every data message.)
#[derive(Clone)]
pub struct ControlPayload<'a>(Control<'a>);

#[derive(Clone)]
enum Control<'a> {
    Borrowed(&'a [u8]),
    Gathered(Box<Gathered>),
}

impl ControlPayload<'_> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Control::Borrowed(b) => b,
            Control::Gathered(g) => g.as_bytes(),
        }
    }
}

impl PartialEq for ControlPayload<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ControlPayload<'_> {}

impl std::fmt::Debug for ControlPayload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ControlPayload")
            .field(&self.as_bytes())
            .finish()
    }
}

/// A control frame's payload split across reads, gathered.
#[derive(Clone, Debug)]
struct Gathered {
    buf: [u8; MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl Gathered {
    fn new() -> Self {
        Gathered {
            buf: [0; MAX_CONTROL_PAYLOAD],
            len: 0,
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        // Invariant: control frame lengths are checked against 125 at the
        // header, so the sum of a frame's pieces always fits.
        let start = self.len as usize;
        self.buf[start..start + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len() as u8;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// A received close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code, or 1005 (no status) when the frame carried none.
    pub code: u16,
    payload: ControlPayload<'a>,
}

impl CloseFrame<'_> {
    /// The reason text (validated UTF-8, possibly empty).
    pub fn reason(&self) -> &str {
        let bytes = self.payload.as_bytes();
        // Close reasons are validated before a CloseFrame is built.
        assume_valid(&bytes[2.min(bytes.len())..])
    }
}

/// What one [`Connection::read`] call produced.
#[derive(Debug)]
pub enum Event<'a> {
    /// A complete, valid data message.
    Message(Incoming<'a>),
    /// A ping; the pong is already queued.
    Ping(ControlPayload<'a>),
    /// A pong (solicited or not; nothing is owed).
    Pong(ControlPayload<'a>),
    /// The peer's close frame; if the server had not closed yet, the echo is
    /// already queued.
    Close(CloseFrame<'a>),
}

/// A violation of RFC 6455 by the peer. The connection is failed: a close
/// frame with [`ProtocolError::close_code`] is queued and input is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// A frame broke a rule of §5 on its own.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// §5.4: a continuation frame arrived with no message to continue.
    #[error("continuation frame with no message in progress")]
    UnexpectedContinuation,
    /// §5.4: a new text or binary frame arrived inside a fragmented message.
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    /// §8.1: a text message (or close reason) is not valid UTF-8.
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// A frame announced more payload than the configured limit.
    #[error("frame payload of {size} bytes exceeds the limit of {limit}")]
    FrameTooBig {
        /// Announced payload length.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// A message's fragments (or, compressed, what they inflate to) add up
    /// to more than the configured limit.
    #[error("message of at least {size} bytes exceeds the limit of {limit}")]
    MessageTooBig {
        /// Bytes received so far plus the announced frame.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// §5.5.1: a close payload is empty or at least 2 bytes.
    #[error("close frame with a 1-byte payload")]
    CloseOneByte,
    /// §7.4: the close code is not one that may be sent.
    #[error("close frame with invalid status code {0}")]
    InvalidCloseCode(u16),
    /// §5.5.1: the close reason is not valid UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// RFC 7692 §6.1: RSV1 (compressed) on a control frame.
    #[error("control frame with RSV1 set")]
    CompressedControl,
    /// RFC 7692 §6.1: RSV1 on a continuation frame; only a message's first
    /// frame says it is compressed.
    #[error("continuation frame with RSV1 set")]
    CompressedContinuation,
    /// RFC 7692 §6.2: a compressed message that is not valid deflate data.
    #[error("invalid compressed data")]
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code this error is failed with (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            // A message inconsistent with its type, as for invalid UTF-8
            // (see `InflateError::close_code`).
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidCompressedData => close_code::INVALID_PAYLOAD,
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. } => {
                close_code::MESSAGE_TOO_BIG
            }
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

/// Why something could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SendError {
    /// A close frame was already sent (§5.5.1: nothing may follow it).
    #[error("the connection is closing")]
    Closing,
    /// A ping payload or close reason longer than a control frame allows.
    #[error("control frame payload longer than 125 bytes")]
    ControlTooLong,
    /// A close code that must not be sent (§7.4).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// Shared frames are unmasked, so only a server may send them.
    #[error("a pre-encoded frame can only be sent by a server")]
    SharedNeedsServer,
}

/// The frame being received.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    op: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    mask_pos: u8,
    /// Payload is skipped: data arriving after our close frame.
    discard: bool,
    /// RSV1: the first frame of a compressed message.
    compressed: bool,
}

/// The data message being assembled.
#[derive(Debug)]
struct InMessage {
    text: bool,
    utf8: Utf8Validator,
    /// RSV1 on the first frame: the payload is deflate data, inflated into
    /// the assembly buffer (RFC 7692 §6.2); the deflate session counts
    /// its bytes on the wire.
    compressed: bool,
}

/// One WebSocket connection after the handshake, as a state machine.
///
/// ```
/// use wsloop::proto::{Connection, Event, Message};
/// use wsloop::{Config, proto::frame::Role};
///
/// let mut conn = Connection::new(Role::Server, &Config::default());
/// // A masked "Hello" from RFC 6455 §5.7.
/// let mut input = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let (used, event) = conn.read(&mut input).unwrap();
/// assert_eq!(used, 11);
/// match event {
///     Some(Event::Message(m)) => assert_eq!(m.message(), Message::Text("Hello")),
///     other => panic!("{other:?}"),
/// }
/// conn.send(Message::Text("Hi")).unwrap();
/// let mut out = Vec::new();
/// conn.transmit(&mut out).unwrap();
/// assert_eq!(out, b"\x81\x02Hi");
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    /// Limits as u32 (Config::validate caps them): a smaller connection.
    max_frame: u32,
    max_message: u32,
    /// RSV bits an extension gave meaning to (RSV1 with permessage-deflate).
    allowed_rsv: u8,
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    assembly: Vec<u8>,
    /// A control frame's payload split across reads (rare, so boxed: an
    /// idle connection does not carry 126 bytes for it).
    control: Option<Box<Gathered>>,
    close_sent: bool,
    /// The status code of the close frame we sent (None: sent empty or not yet).
    sent_code: Option<u16>,
    close_received: bool,
    failed: bool,
    out: SendQueue,
    /// permessage-deflate, when agreed (boxed: most connections have none).
    deflate: Option<Box<Context>>,
}

impl Connection {
    /// A connection in the open state, for `role`, with the frame and message
    /// limits of `config`.
    pub fn new(role: Role, config: &Config) -> Self {
        Connection {
            role,
            max_frame: u32::try_from(config.max_frame_size).unwrap_or(u32::MAX),
            max_message: u32::try_from(config.max_message_size).unwrap_or(u32::MAX),
            allowed_rsv: 0,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            assembly: Vec::new(),
            control: None,
            close_sent: false,
            sent_code: None,
            close_received: false,
            failed: false,
            out: SendQueue::new(),
            deflate: None,
        }
    }

    /// Turns on permessage-deflate as the server's side of `agreed`
    /// (RFC 7692): RSV1 frames from the peer are inflated, and messages of
    /// at least the agreed threshold are sent compressed. For
    /// [`Role::Server`] connections; a client-role connection is left as is
    /// and false returned.
    ///
    /// ```
    /// use wsloop::proto::deflate::{negotiate, DeflateConfig};
    /// use wsloop::proto::handshake::ExtensionOffer;
    /// use wsloop::proto::{Connection, Event, Message};
    /// use wsloop::{proto::frame::Role, Config};
    ///
    /// let offer = ExtensionOffer { name: "permessage-deflate", params: vec![] };
    /// let agreed = negotiate(&[offer], &DeflateConfig::default()).unwrap();
    /// let mut conn = Connection::new(Role::Server, &Config::default());
    /// assert!(conn.set_deflate(agreed));
    ///
    /// // RFC 7692 §7.2.3.1: "Hello" compressed, in a masked frame with RSV1.
    /// let mut input = [0xc1, 0x87, 0, 0, 0, 0, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    /// let (_, event) = conn.read(&mut input).unwrap();
    /// let Some(Event::Message(m)) = event else { panic!("a message") };
    /// assert_eq!(m.message(), Message::Text("Hello"));
    /// ```
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, agreed: Agreed) -> bool {
        if self.role != Role::Server {
            return false;
        }
        self.deflate = Some(Box::new(Context::new(agreed)));
        self.allowed_rsv |= RSV1;
        true
    }

    /// Turns permessage-deflate off again before anything was exchanged
    /// (the server declines the offer after all: its compression memory
    /// ceiling, say).
    #[cfg(feature = "deflate")]
    pub fn clear_deflate(&mut self) {
        self.deflate = None;
        self.allowed_rsv &= !RSV1;
    }

    /// The most memory permessage-deflate can hold for this connection
    /// between messages (its context-takeover windows), if agreed.
    #[cfg(feature = "deflate")]
    pub fn deflate_memory(&self) -> Option<usize> {
        self.deflate.as_deref().map(Context::memory)
    }

    /// The `Sec-WebSocket-Extensions` answer for the extensions in force
    /// (the 101 response carries it), or `None`.
    pub fn extensions(&self) -> Option<&str> {
        #[cfg(feature = "deflate")]
        return self.deflate().map(Agreed::response);
        #[cfg(not(feature = "deflate"))]
        None
    }

    /// The permessage-deflate agreement in force, if any.
    #[cfg(feature = "deflate")]
    pub fn deflate(&self) -> Option<&Agreed> {
        self.deflate.as_deref().map(Context::agreed)
    }

    /// Feeds bytes received from the peer. Returns how many were consumed
    /// and at most one event; call again with the rest until all are
    /// consumed (every call with non-empty input consumes at least one byte
    /// or yields an event). Payloads are unmasked in place, which is why
    /// `input` is mutable. A partial frame at the end is kept inside the
    /// connection (at most a header, plus message bytes that count against
    /// the message limit), so the caller never needs to keep leftovers.
    ///
    /// On `Err` the connection has failed: a close frame with the error's
    /// code is queued, and later input is ignored.
    pub fn read<'a>(
        &mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), ProtocolError> {
        if self.failed || self.close_received {
            // §5.5.1: after the close, data is not to be processed.
            return Ok((input.len(), None));
        }
        let result = self.read_inner(input);
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    fn read_inner<'a>(
        &mut self,
        mut input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), ProtocolError> {
        let total = input.len();
        let mut pos = 0;
        {
            if self.frame.is_none() {
                let Some((header, used)) = self.take_header(&input[pos..])? else {
                    return Ok((total, None));
                };
                pos += used;
                let frame = self.start_frame(header)?;
                // The zero-copy path: a whole unfragmented data message in
                // the input is unmasked in place and lent out.
                if !frame.op.is_control()
                    && frame.fin
                    && !frame.discard
                    && !frame.compressed
                    && self.message.is_none()
                    && frame.remaining <= (total - pos) as u64
                {
                    let end = pos + frame.remaining as usize;
                    let all: &'a mut [u8] = std::mem::take(&mut input);
                    let payload = &mut all[pos..end];
                    if let Some(mask) = frame.mask {
                        apply_mask(payload, mask, 0);
                    }
                    let text = frame.op == OpCode::Text;
                    // ASCII first: a word-at-a-time check that beats the
                    // SIMD validator's setup on the short messages that
                    // dominate chat-like traffic.
                    if text && !payload.is_ascii() && simdutf8::basic::from_utf8(payload).is_err() {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    let data = Data::Borrowed(payload);
                    return Ok((end, Some(Event::Message(Incoming { text, data }))));
                }
                if matches!(frame.op, OpCode::Text | OpCode::Binary) && !frame.discard {
                    let text = frame.op == OpCode::Text;
                    self.message = Some(InMessage {
                        text,
                        utf8: Utf8Validator::new(),
                        compressed: frame.compressed,
                    });
                    if self.assembly.capacity() == 0 {
                        let expect = frame.remaining.min(pool::MAX_CAPACITY as u64);
                        self.assembly = pool::take(expect as usize);
                    }
                }
                if frame.op.is_control() {
                    if frame.remaining <= (total - pos) as u64 {
                        // Whole in the input: unmask it there.
                        let end = pos + frame.remaining as usize;
                        let all: &'a mut [u8] = std::mem::take(&mut input);
                        let payload = &mut all[pos..end];
                        if let Some(mask) = frame.mask {
                            apply_mask(payload, mask, 0);
                        }
                        let control = ControlPayload(Control::Borrowed(payload));
                        let event = self.finish_control(frame.op, control)?;
                        return Ok((end, Some(event)));
                    }
                    self.control = Some(Box::new(Gathered::new()));
                }
                self.frame = Some(frame);
            }

            // Invariant: set just above or left from an earlier call.
            let frame = self.frame.as_mut().expect("frame in progress");
            let take = frame.remaining.min((total - pos) as u64) as usize;
            let chunk = &mut input[pos..pos + take];
            pos += take;
            frame.remaining -= take as u64;
            if let Some(mask) = frame.mask {
                frame.mask_pos = apply_mask(chunk, mask, usize::from(frame.mask_pos)) as u8;
            }
            let frame = *frame;
            if frame.op.is_control() {
                // Invariant: boxed above when the frame started split.
                self.control
                    .as_mut()
                    .expect("split control frame")
                    .extend(chunk);
            } else if !frame.discard {
                // Invariant: a data frame that is not discarded has a message
                // (started above for text/binary, required for continuation).
                let msg = self.message.as_mut().expect("message in progress");
                let start = self.assembly.len();
                if msg.compressed {
                    self.inflate(chunk)?;
                } else {
                    self.assembly.extend_from_slice(chunk);
                }
                let msg = self.message.as_mut().expect("message in progress");
                if msg.text {
                    // §8.1 fail fast: reject at the first impossible byte.
                    msg.utf8
                        .feed(&self.assembly[start..])
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
            }
            if frame.remaining > 0 {
                return Ok((total, None));
            }
            self.frame = None;
            if frame.op.is_control() {
                // Invariant: boxed when the frame started split.
                let gathered = self.control.take().expect("split control frame");
                let control = ControlPayload(Control::Gathered(gathered));
                let event = self.finish_control(frame.op, control)?;
                return Ok((pos, Some(event)));
            }
            if frame.fin && !frame.discard {
                // Invariant: as above, a non-discarded data frame has a message.
                let mut msg = self.message.take().expect("message in progress");
                if msg.compressed {
                    let start = self.assembly.len();
                    self.finish_inflate()?;
                    if msg.text {
                        msg.utf8
                            .feed(&self.assembly[start..])
                            .map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                }
                if msg.text {
                    msg.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                let data = Data::Owned(std::mem::take(&mut self.assembly));
                let event = Event::Message(Incoming {
                    text: msg.text,
                    data,
                });
                return Ok((pos, Some(event)));
            }
            // A fragment ended: back to the caller at the frame boundary,
            // so that it sees the next frame's start (a close, say) before
            // this connection reads it.
            Ok((pos, None))
        }
    }

    /// Completes a header from the bytes kept from earlier reads and `input`.
    /// Returns the header and how many bytes of `input` it used, or `None`
    /// when `input` was all used and the header is still incomplete.
    fn take_header(&mut self, input: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let have = self.header_len as usize;
        if have == 0 {
            if let Decoded::Complete(h, n) = decode_header(input)? {
                return Ok(Some((h, n)));
            }
            self.header[..input.len()].copy_from_slice(input);
            self.header_len = input.len() as u8;
            return Ok(None);
        }
        let take = (MAX_HEADER_LEN - have).min(input.len());
        self.header[have..have + take].copy_from_slice(&input[..take]);
        match decode_header(&self.header[..have + take])? {
            Decoded::Complete(h, n) => {
                self.header_len = 0;
                Ok(Some((h, n - have)))
            }
            Decoded::Partial => {
                self.header_len = (have + take) as u8;
                Ok(None)
            }
        }
    }

    /// Applies the header rules that need the connection's state.
    fn start_frame(&mut self, h: FrameHeader) -> Result<InFrame, ProtocolError> {
        let op = h.check(self.role, self.allowed_rsv)?;
        let compressed = h.rsv & RSV1 != 0;
        if compressed {
            // RSV1 was allowed, so permessage-deflate is on: it marks the
            // first frame of a data message only (RFC 7692 §6.1).
            match op {
                OpCode::Continuation => return Err(ProtocolError::CompressedContinuation),
                _ if op.is_control() => return Err(ProtocolError::CompressedControl),
                _ => {}
            }
        }
        let discard = self.close_sent && !op.is_control();
        // A compressed message's size limit applies to what it inflates
        // to, checked as it inflates. Its deflate data may run a little
        // longer than the data itself (stored blocks, fixed codes: at most
        // 1/8 more), so the frame and message limits on the wire get that
        // slack, but no more: empty blocks inflate to nothing, forever.
        let over = |size: u64, limit: u32| -> Option<u64> {
            let limit = u64::from(limit);
            if size <= limit {
                return None; // the common case, decided without the message
            }
            let inflating = self.message.as_ref().map_or(compressed, |m| m.compressed);
            let limit = if inflating {
                limit + limit / 8 + 1024
            } else {
                limit
            };
            (size > limit).then_some(limit)
        };
        if !op.is_control() {
            if let Some(limit) = over(h.len, self.max_frame) {
                return Err(ProtocolError::FrameTooBig {
                    size: h.len,
                    limit: limit as usize,
                });
            }
        }
        if !discard {
            match (op, &self.message) {
                // §5.4: fragments of one message are not interleaved.
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Text | OpCode::Binary, Some(_)) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                _ => {}
            }
            if !op.is_control() {
                let received = match (&self.message, self.deflate.as_deref()) {
                    (Some(m), Some(session)) if m.compressed => session.wire(),
                    _ => self.assembly.len() as u64,
                };
                let size = received + h.len;
                if let Some(limit) = over(size, self.max_message) {
                    return Err(ProtocolError::MessageTooBig {
                        size,
                        limit: limit as usize,
                    });
                }
            }
        }
        Ok(InFrame {
            op,
            fin: h.fin,
            mask: h.mask,
            remaining: h.len,
            mask_pos: 0,
            discard,
            compressed,
        })
    }

    /// Inflates a piece of the compressed message in progress into the
    /// assembly buffer, within the message limit.
    fn inflate(&mut self, chunk: &[u8]) -> Result<(), ProtocolError> {
        let max = self.max_message as usize;
        match self.deflate.as_deref_mut() {
            Some(session) => session
                .inflate(chunk, &mut self.assembly, max)
                .map_err(inflate_error),
            // Invariant: RSV1 is only allowed (so a message only
            // compressed) once a session is set.
            None => unreachable!("compressed message without permessage-deflate"),
        }
    }

    /// Ends the compressed message in progress (the §7.2.2 trailer).
    fn finish_inflate(&mut self) -> Result<(), ProtocolError> {
        let max = self.max_message as usize;
        match self.deflate.as_deref_mut() {
            Some(session) => session
                .finish(&mut self.assembly, max)
                .map_err(inflate_error),
            // Invariant: as in `inflate`.
            None => unreachable!("compressed message without permessage-deflate"),
        }
    }

    fn finish_control<'a>(
        &mut self,
        op: OpCode,
        payload: ControlPayload<'a>,
    ) -> Result<Event<'a>, ProtocolError> {
        match op {
            OpCode::Ping => {
                // §5.5.2: answer with a pong carrying the same payload.
                if !self.close_sent {
                    self.write_frame(OpCode::Pong, payload.as_bytes());
                }
                Ok(Event::Ping(payload))
            }
            OpCode::Pong => Ok(Event::Pong(payload)),
            _ => {
                let close = parse_close(payload)?;
                self.close_received = true;
                if !self.close_sent {
                    // §5.5.1: echo the status code received.
                    self.close_sent = true;
                    self.sent_code = Some(close.code);
                    if close.code == close_code::NO_STATUS {
                        self.write_frame(OpCode::Close, &[]);
                    } else {
                        self.write_frame(OpCode::Close, &close.code.to_be_bytes());
                    }
                }
                Ok(Event::Close(close))
            }
        }
    }

    fn fail(&mut self, e: &ProtocolError) {
        self.failed = true;
        self.frame = None;
        self.message = None;
        pool::give(std::mem::take(&mut self.assembly));
        if !self.close_sent {
            let reason = e.to_string();
            let _ = self.close(e.close_code(), truncate(&reason, MAX_CONTROL_PAYLOAD - 2));
        }
    }

    /// Queues a data message. Refused once a close frame was sent.
    /// With permessage-deflate, a message of at least the agreed threshold
    /// goes out compressed (RSV1).
    pub fn send(&mut self, msg: Message<'_>) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closing);
        }
        let payload = msg.as_bytes();
        match self.deflate.as_deref_mut() {
            // Below the threshold no buffer is taken at all.
            Some(session) if session.compresses(payload.len()) => {
                let mut body = pool::take(payload.len().min(pool::MAX_CAPACITY) / 2);
                if session.compress(payload, &mut body) {
                    self.write_frame_rsv(msg.opcode(), RSV1, &body);
                } else {
                    self.write_frame(msg.opcode(), payload); // deflate did not shrink it
                }
                pool::give(body);
            }
            _ => self.write_frame(msg.opcode(), payload),
        }
        Ok(())
    }

    /// The header of the frame [`Connection::send`] would queue for `msg`,
    /// for a caller that writes the payload from its own buffer (large
    /// messages, to save a copy) and queues with [`SendQueue::push`] only
    /// what the socket does not take. `None` for the client role (its
    /// payload must be masked, which takes a copy anyway) or once closing.
    /// `None` too for a message that goes out compressed.
    #[doc(hidden)]
    pub fn header_for(&self, msg: &Message<'_>) -> Option<([u8; MAX_HEADER_LEN], usize)> {
        if self.role != Role::Server || self.close_sent {
            return None;
        }
        if let Some(session) = self.deflate.as_deref() {
            if session.compresses(msg.as_bytes().len()) {
                return None;
            }
        }
        Some(unfragmented_header(
            msg.opcode(),
            0,
            msg.as_bytes().len(),
            None,
        ))
    }

    /// Queues a frame encoded once by [`encode_shared`] and shared with other
    /// connections' queues (broadcast). Server role only.
    #[doc(hidden)]
    pub fn send_shared(&mut self, frame: &Arc<[u8]>) -> Result<(), SendError> {
        if self.role != Role::Server {
            return Err(SendError::SharedNeedsServer);
        }
        if self.close_sent {
            return Err(SendError::Closing);
        }
        self.out.push_shared(frame);
        Ok(())
    }

    /// Queues a message that goes to many connections (see [`Broadcast`]):
    /// the frame shared by every plain connection; with permessage-deflate
    /// and a message of at least the threshold, the compressed frame shared
    /// by every connection whose server keeps no context with the same
    /// window and level, or else (context takeover) compressed for this
    /// connection alone. Server role only.
    pub fn send_broadcast(&mut self, b: &mut Broadcast<'_>) -> Result<(), SendError> {
        if self.role != Role::Server {
            return Err(SendError::SharedNeedsServer);
        }
        if self.close_sent {
            return Err(SendError::Closing);
        }
        if let Some(session) = self.deflate.as_deref() {
            if session.compresses(b.msg.as_bytes().len()) {
                match session.shared_key() {
                    Some(key) => {
                        let len = b.msg.as_bytes().len();
                        let frame = b.compressed(key);
                        // About: the frame's few header bytes count as
                        // compressed.
                        #[cfg(feature = "deflate")]
                        crate::proto::deflate::count_saved(len.saturating_sub(frame.len()));
                        #[cfg(not(feature = "deflate"))]
                        let _ = len;
                        self.out.push_shared(frame);
                    }
                    None => return self.send(b.msg),
                }
                return Ok(());
            }
        }
        self.out.push_shared(b.plain());
        Ok(())
    }

    /// Queues a ping (payload at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closing);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong);
        }
        self.write_frame(OpCode::Ping, payload);
        Ok(())
    }

    /// Starts the closing handshake: queues a close frame with `code` and
    /// `reason` (at most 123 bytes). Nothing can be sent after it; data that
    /// still arrives is discarded until the peer's close frame.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closing);
        }
        if !close_code::is_valid(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        if reason.len() > MAX_CONTROL_PAYLOAD - 2 {
            return Err(SendError::ControlTooLong);
        }
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        self.write_frame(OpCode::Close, &payload[..2 + reason.len()]);
        self.close_sent = true;
        self.sent_code = Some(code);
        Ok(())
    }

    fn write_frame(&mut self, op: OpCode, payload: &[u8]) {
        self.write_frame_rsv(op, 0, payload);
    }

    fn write_frame_rsv(&mut self, op: OpCode, rsv: u8, payload: &[u8]) {
        let mask = match self.role {
            Role::Server => None,
            Role::Client => Some(self.next_mask()),
        };
        let (head, n) = unfragmented_header(op, rsv, payload.len(), mask);
        let buf = self.out.tail(n + payload.len());
        buf.extend_from_slice(&head[..n]);
        let start = buf.len();
        buf.extend_from_slice(payload);
        if let Some(mask) = mask {
            apply_mask(&mut buf[start..], mask, 0);
        }
        self.out.commit(n + payload.len());
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // §10.3: a client's masking keys must be unpredictable to the
        // application whose bytes it sends; a CSPRNG per thread.
        rand::RngCore::next_u32(&mut rand::rng()).to_ne_bytes()
    }

    /// Writes what is queued (frames, pongs, the close) to `out` until it
    /// is empty or `out` would block: the one way a connection's bytes
    /// leave. `Ok(true)`: nothing is left queued. Shut the TCP connection
    /// once [`Connection::is_finished`] says so.
    pub fn transmit(&mut self, out: &mut (impl Transmit + ?Sized)) -> std::io::Result<bool> {
        let last = self.sends_nothing_more();
        crate::proto::transmit::drain(&mut self.out, out, last)
    }

    /// The send queue itself, for the session's write-through and for
    /// tests; [`Connection::transmit`] is the way out.
    #[doc(hidden)]
    pub fn outgoing(&mut self) -> &mut SendQueue {
        &mut self.out
    }

    /// Bytes queued and not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.out.len()
    }

    /// Gives back a buffer from [`Incoming::into_buffer`] to this thread's
    /// buffer pool (see [`crate::buf::pool`]), for the next message that needs one.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        pool::give(buf);
    }

    /// Whether reading `input` next may answer a close frame: the frame
    /// being read is a close, or the next header (partly held from an
    /// earlier read, or starting `input`) says so. A false "may" only
    /// costs the caller an early flush of what it was holding back.
    pub fn may_read_close(&self, input: &[u8]) -> bool {
        let first = match (&self.frame, self.header_len) {
            (Some(frame), _) => return frame.op == OpCode::Close,
            (None, 0) => input.first(),
            (None, _) => self.header.first(),
        };
        first.is_some_and(|b| b & 0x0f == 0x8) // the close opcode
    }

    /// Whether data messages can still be sent (no close frame sent yet).
    pub fn is_open(&self) -> bool {
        !self.close_sent
    }

    /// Whether a close frame was sent (by `close`, an echo, or an error).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// The status code of the close frame sent, if one was sent (an echo of
    /// an empty close counts as 1005).
    pub fn close_code_sent(&self) -> Option<u16> {
        self.sent_code
    }

    /// Whether the peer's close frame was received.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Whether the connection failed on a protocol error.
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Whether the TCP connection may be shut now: the close handshake is
    /// complete (or the connection failed) and every queued byte, the close
    /// frame included, was written. RFC 6455 §7.1.1: the server closes the
    /// TCP connection first.
    pub fn is_finished(&self) -> bool {
        self.sends_nothing_more() && self.out.is_empty()
    }

    /// Whether what is queued is all the connection will ever send: the
    /// close handshake is complete, or the connection failed after its close
    /// frame. The TCP connection is shut once it is written.
    pub fn sends_nothing_more(&self) -> bool {
        self.close_sent && (self.close_received || self.failed)
    }
}

/// §5.5.1 and §7.4: a close payload is empty, or a valid code plus UTF-8.
fn parse_close(payload: ControlPayload<'_>) -> Result<CloseFrame<'_>, ProtocolError> {
    let bytes = payload.as_bytes();
    let code = match bytes.len() {
        0 => close_code::NO_STATUS,
        1 => return Err(ProtocolError::CloseOneByte),
        _ => {
            let code = u16::from_be_bytes([bytes[0], bytes[1]]);
            if !close_code::is_valid(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            if std::str::from_utf8(&bytes[2..]).is_err() {
                return Err(ProtocolError::InvalidCloseReason);
            }
            code
        }
    };
    Ok(CloseFrame { code, payload })
}

#[cfg(feature = "deflate")]
fn inflate_error(e: InflateError) -> ProtocolError {
    match e {
        InflateError::TooBig { limit } => ProtocolError::MessageTooBig {
            size: limit as u64 + 1,
            limit,
        },
        InflateError::Invalid => ProtocolError::InvalidCompressedData,
    }
}

/// Without the `deflate` feature no session can exist: the type has no
/// values, and the code that would use one compiles to nothing.
#[cfg(not(feature = "deflate"))]
mod no_deflate {
    #[derive(Debug)]
    pub(crate) enum Context {}

    #[derive(Debug)]
    pub(crate) enum Never {}

    impl Context {
        pub(crate) fn wire(&self) -> u64 {
            match *self {}
        }
        pub(crate) fn shared_key(&self) -> Option<(u8, u32)> {
            match *self {}
        }
        pub(crate) fn compresses(&self, _: usize) -> bool {
            match *self {}
        }
        pub(crate) fn compress(&mut self, _: &[u8], _: &mut Vec<u8>) -> bool {
            match *self {}
        }
        pub(crate) fn inflate(&mut self, _: &[u8], _: &mut Vec<u8>, _: usize) -> Result<(), Never> {
            match *self {}
        }
        pub(crate) fn finish(&mut self, _: &mut Vec<u8>, _: usize) -> Result<(), Never> {
            match *self {}
        }
    }
}

#[cfg(not(feature = "deflate"))]
fn inflate_error(e: no_deflate::Never) -> ProtocolError {
    match e {}
}
