//! The tests' one WebSocket frame builder: every header field under the
//! test's control, valid or not (any FIN, RSV bits and 4-bit opcode, masked
//! or not, a length form longer than the minimal one, a length that is not
//! the payload's). The header is the library's own
//! [`FrameHeader::encode`] and the masking its [`apply_mask`], so the tests
//! do not carry a second codec; only the non-minimal length forms, which
//! the library never writes, are spelled out here.
//!
//! Shared by the test crates that send frames and by the bench:
//! `support/mod.rs` has it as `support::frame`, the others include it by
//! path (`#[path = "support/frame.rs"] mod frame;`).

#![allow(dead_code)] // each test crate uses what it needs

use wsloop::proto::frame::{FrameHeader, MAX_HEADER_LEN};
use wsloop::proto::mask::apply_mask;

pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The masking key of RFC 6455 §5.7's examples, the default of [`Frame::new`].
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The wire form of the payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenForm {
    /// The shortest form (what RFC 6455 §5.2 requires of senders).
    Minimal,
    /// The 16-bit extended length, whatever the length.
    Ext16,
    /// The 64-bit extended length, whatever the length.
    Ext64,
}

/// A frame to send: a header with every bit under the test's control, its
/// length form, and the payload.
#[derive(Debug, Clone)]
pub struct Frame {
    /// FIN, RSV bits, the raw 4-bit opcode (reserved ones included), the
    /// mask, and the length the header announces: the payload's unless
    /// [`Frame::announce`] says otherwise (the payload is still what is sent).
    pub head: FrameHeader,
    pub len_form: LenForm,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A final frame masked with [`MASK`], no RSV bits, the minimal length
    /// form.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Frame {
        let payload = payload.into();
        Frame {
            head: FrameHeader {
                fin: true,
                rsv: 0,
                opcode,
                mask: Some(MASK),
                len: payload.len() as u64,
            },
            len_form: LenForm::Minimal,
            payload,
        }
    }

    /// A frame masked with [`MASK`] whose FIN, RSV bits and opcode are the
    /// bits of `b0`, the whole first byte.
    pub fn from_b0(b0: u8, payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(b0 & 0x0f, payload)
            .fin(b0 & 0x80 != 0)
            .rsv((b0 >> 4) & 0b111)
    }

    pub fn text(s: impl AsRef<[u8]>) -> Frame {
        Frame::new(TEXT, s.as_ref())
    }

    pub fn binary(b: impl AsRef<[u8]>) -> Frame {
        Frame::new(BINARY, b.as_ref())
    }

    pub fn cont(b: impl AsRef<[u8]>) -> Frame {
        Frame::new(CONT, b.as_ref())
    }

    pub fn ping(b: impl AsRef<[u8]>) -> Frame {
        Frame::new(PING, b.as_ref())
    }

    pub fn pong(b: impl AsRef<[u8]>) -> Frame {
        Frame::new(PONG, b.as_ref())
    }

    /// A close frame with a status code and a reason (raw bytes, so that
    /// invalid UTF-8 can be sent).
    pub fn close(code: u16, reason: impl AsRef<[u8]>) -> Frame {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_ref());
        Frame::new(CLOSE, p)
    }

    /// A close frame with no payload at all.
    pub fn close_empty() -> Frame {
        Frame::new(CLOSE, Vec::new())
    }

    pub fn fin(mut self, fin: bool) -> Frame {
        self.head.fin = fin;
        self
    }

    /// RSV1..RSV3 as the low three bits (RSV1 = 0b100).
    pub fn rsv(mut self, rsv: u8) -> Frame {
        self.head.rsv = rsv;
        self
    }

    /// The masking key, or `None` for an unmasked frame (as a server sends).
    pub fn mask(mut self, mask: Option<[u8; 4]>) -> Frame {
        self.head.mask = mask;
        self
    }

    pub fn len_form(mut self, form: LenForm) -> Frame {
        self.len_form = form;
        self
    }

    /// The length the header announces, whatever the payload's.
    pub fn announce(mut self, len: u64) -> Frame {
        self.head.len = len;
        self
    }

    /// The header alone (what precedes the payload on the wire).
    pub fn header(&self) -> Vec<u8> {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = self.head.encode(&mut buf);
        // A longer length form than the minimal one, which RFC 6455 §5.2
        // forbids and the library therefore never writes.
        let len = self.head.len;
        let (code, ext) = match self.len_form {
            LenForm::Minimal => return buf[..n].to_vec(),
            LenForm::Ext16 => {
                assert!(len <= 0xffff, "{len} does not fit a 16-bit length");
                (126, (len as u16).to_be_bytes().to_vec())
            }
            LenForm::Ext64 => (127, len.to_be_bytes().to_vec()),
        };
        let key = if self.head.mask.is_some() {
            n - 4..n
        } else {
            n..n
        };
        let mut out = vec![buf[0], (buf[1] & 0x80) | code];
        out.extend_from_slice(&ext);
        out.extend_from_slice(&buf[key]);
        out
    }

    /// The whole frame as sent: the header, then the payload masked.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header();
        let start = out.len();
        out.extend_from_slice(&self.payload);
        if let Some(key) = self.head.mask {
            apply_mask(&mut out[start..], key, 0);
        }
        out
    }
}

/// The frames of one message split into fragments of `size` payload bytes
/// (at least one frame, even for an empty payload).
pub fn fragments(opcode: u8, payload: &[u8], size: usize) -> Vec<Frame> {
    if payload.is_empty() {
        return vec![Frame::new(opcode, Vec::new())];
    }
    let n = payload.len().div_ceil(size);
    payload
        .chunks(size)
        .enumerate()
        .map(|(i, c)| Frame::new(if i == 0 { opcode } else { CONT }, c).fin(i + 1 == n))
        .collect()
}
