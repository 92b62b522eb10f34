//! Messages in both directions: [`Message`] (what a handler sends and
//! receives, borrowed), [`Incoming`] (a received message, borrowed from the
//! input or handed over as its assembled buffer) and [`Broadcast`] (one
//! message on its way to many connections, each frame form encoded once and
//! its bytes shared).
//!
//! ```text
//! Connection::read ──► Incoming ──message()──► Message ──► Handler
//! Handler ──Message──► Connection::send ──► frame bytes
//! Handler ──Message──► Broadcast ──Arc<[u8]> per form──► every recipient's queue
//! ```

use std::sync::Arc;

#[cfg(feature = "deflate")]
use crate::buf::pool;
#[cfg(feature = "deflate")]
use crate::proto::frame::RSV1;
use crate::proto::frame::{unfragmented_header, OpCode};
use crate::proto::utf8::assume_valid;

/// A message, borrowed: what handlers receive and what they send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A UTF-8 text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl Message<'_> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    pub(crate) fn opcode(&self) -> OpCode {
        match self {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        }
    }
}

/// A received data message: borrowed from the input when it arrived as one
/// whole frame, else the assembled buffer, handed over without a copy.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub(crate) text: bool,
    pub(crate) data: Data<'a>,
}

#[derive(Debug)]
pub(crate) enum Data<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Incoming<'_> {
    /// The message as [`Message::Text`] or [`Message::Binary`].
    pub fn message(&self) -> Message<'_> {
        let bytes = self.bytes();
        if self.text {
            // Text events are only built after the payload was validated.
            Message::Text(assume_valid(bytes))
        } else {
            Message::Binary(bytes)
        }
    }

    /// The payload bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Borrowed(b) => b,
            Data::Owned(v) => v,
        }
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// Whether the payload is a slice of the caller's input (no copy made).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.data, Data::Borrowed(_))
    }

    /// The assembled buffer, if there is one, so that it can be given back
    /// with [`Connection::recycle`](crate::proto::Connection::recycle).
    pub fn into_buffer(self) -> Option<Vec<u8>> {
        match self.data {
            Data::Borrowed(_) => None,
            Data::Owned(v) => Some(v),
        }
    }
}

/// One message on its way to many server connections
/// ([`Connection::send_broadcast`](crate::proto::Connection::send_broadcast)): each form of its frame (plain; or
/// compressed, per window and level) is encoded once, when a recipient
/// first needs it, and its bytes are shared by every queue it goes to.
///
/// ```
/// use wsloop::proto::{Broadcast, Connection, Message};
/// use wsloop::{proto::frame::Role, Config};
///
/// let mut b = Broadcast::new(Message::Text("to all"));
/// let mut conns: Vec<Connection> =
///     (0..3).map(|_| Connection::new(Role::Server, &Config::default())).collect();
/// for c in &mut conns {
///     c.send_broadcast(&mut b).unwrap();
///     assert_eq!(c.outgoing().front(), b"\x81\x06to all");
/// }
/// ```
#[derive(Debug)]
pub struct Broadcast<'m> {
    pub(crate) msg: Message<'m>,
    plain: Option<Arc<[u8]>>,
    /// Compressed frames by (window bits, level), for connections whose
    /// server keeps no context.
    compressed: Vec<(CompressorKey, Arc<[u8]>)>,
}

/// A compressor's (window bits, level): compressed without context, a body
/// fits every connection that agreed to the same pair.
pub(crate) type CompressorKey = (u8, u32);

impl<'m> Broadcast<'m> {
    /// A broadcast of `msg`; nothing is encoded yet.
    pub fn new(msg: Message<'m>) -> Self {
        Broadcast {
            msg,
            plain: None,
            compressed: Vec::new(),
        }
    }

    /// The message.
    pub fn message(&self) -> Message<'m> {
        self.msg
    }

    pub(crate) fn plain(&mut self) -> &Arc<[u8]> {
        let msg = self.msg;
        self.plain.get_or_insert_with(|| encode_shared(msg))
    }

    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    pub(crate) fn compressed(&mut self, key: CompressorKey) -> &Arc<[u8]> {
        let i = match self.compressed.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.compressed
                    .push((key, encode_compressed(self.msg, key)));
                self.compressed.len() - 1
            }
        };
        &self.compressed[i].1
    }
}

/// A message encoded once as an unmasked server frame, to be sent to any
/// number of clients on any loop or thread (it is `Send + Sync`, and a
/// clone shares the bytes): what [`LoopHandle`](crate::LoopHandle) commands
/// and publishes carry, so that no loop encodes a message again.
/// Connections with permessage-deflate compress from its payload.
///
/// ```
/// use wsloop::proto::{EncodedMessage, Message};
/// let m = EncodedMessage::new(Message::Text("hi"));
/// assert_eq!(m.frame(), b"\x81\x02hi");
/// assert_eq!(m.message(), Message::Text("hi"));
/// ```
#[derive(Debug, Clone)]
pub struct EncodedMessage {
    frame: Arc<[u8]>,
    /// Length of the frame header: the payload follows it.
    head: u8,
    text: bool,
}

impl EncodedMessage {
    /// Encodes `msg` (one allocation, shared by every clone).
    pub fn new(msg: Message<'_>) -> Self {
        let frame = encode_shared(msg);
        EncodedMessage {
            head: (frame.len() - msg.as_bytes().len()) as u8, // at most 10
            frame,
            text: matches!(msg, Message::Text(_)),
        }
    }

    /// The message it carries.
    pub fn message(&self) -> Message<'_> {
        let payload = &self.frame[usize::from(self.head)..];
        if self.text {
            // Built from a `Message::Text`, whose payload is valid UTF-8.
            Message::Text(assume_valid(payload))
        } else {
            Message::Binary(payload)
        }
    }

    /// The whole frame, header and payload.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }
}

impl<'m> Broadcast<'m> {
    /// The plain frame as an [`EncodedMessage`], sharing its bytes (encoded
    /// now if no recipient needed it yet): what goes to other loops.
    pub fn to_encoded(&mut self) -> EncodedMessage {
        let text = matches!(self.msg, Message::Text(_));
        let len = self.msg.as_bytes().len();
        let frame = self.plain().clone();
        EncodedMessage {
            head: (frame.len() - len) as u8, // at most 10
            frame,
            text,
        }
    }

    /// A broadcast of a message already encoded: its plain frame is shared
    /// as it is.
    pub fn encoded(msg: &'m EncodedMessage) -> Self {
        Broadcast {
            msg: msg.message(),
            plain: Some(msg.frame.clone()),
            compressed: Vec::new(),
        }
    }
}

/// `msg` compressed without context by a compressor of `key` (window bits,
/// level), as an unmasked RSV1 frame.
#[cfg(feature = "deflate")]
fn encode_compressed(msg: Message<'_>, (window_bits, level): CompressorKey) -> Arc<[u8]> {
    let payload = msg.as_bytes();
    let mut body = pool::take(payload.len().min(pool::MAX_CAPACITY) / 2);
    if !crate::proto::deflate::compress_shared(payload, window_bits, level, &mut body) {
        pool::give(body);
        return encode_shared(msg); // deflate does not shrink it: sent as is
    }
    let (head, n) = unfragmented_header(msg.opcode(), RSV1, body.len(), None);
    let mut frame = Vec::with_capacity(n + body.len());
    frame.extend_from_slice(&head[..n]);
    frame.extend_from_slice(&body);
    pool::give(body);
    Arc::from(frame)
}

#[cfg(not(feature = "deflate"))]
fn encode_compressed(msg: Message<'_>, _: CompressorKey) -> Arc<[u8]> {
    encode_shared(msg)
}

/// Encodes `msg` once as an unmasked server frame whose bytes can be queued
/// on any number of server connections with [`Connection::send_shared`].
#[doc(hidden)]
pub fn encode_shared(msg: Message<'_>) -> Arc<[u8]> {
    let payload = msg.as_bytes();
    let (head, n) = unfragmented_header(msg.opcode(), 0, payload.len(), None);
    let mut frame = Vec::with_capacity(n + payload.len());
    frame.extend_from_slice(&head[..n]);
    frame.extend_from_slice(payload);
    Arc::from(frame)
}
