//! Frame headers, opcodes and close codes (RFC 6455 §5.2, §7.4). No I/O.
//!
//! ```text
//!  0               1               2               3
//!  F R R R opcode  M payload len   extended length (0, 2 or 8 bytes,
//!  I S S S (4)     A (7)           network byte order) then masking key
//!  N V V V         S               (0 or 4 bytes), then the payload
//!    1 2 3         K
//! ```
//!
//! [`decode_header`] is a push parser in the httparse style: it answers
//! [`Decoded::Partial`] until the whole header is present and never reads the
//! payload. [`FrameHeader::check`] applies the per-frame rules of §5 that do
//! not depend on earlier frames; fragmentation rules live in `connection`.

use thiserror::Error;

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes (RFC 6455 §5.2). Reserved opcodes 3-7 and 11-15 have no
/// variant: [`OpCode::from_u8`] refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a UTF-8 text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for a reserved one.
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong (opcodes with the high bit set).
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// Which end of the connection we are: it decides who masks (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, sends masked ones (tests, load generators).
    Client,
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: last frame of a message.
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The raw 4-bit opcode (kept raw so a reserved one can be reported).
    pub opcode: u8,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub len: u64,
}

/// Result of [`decode_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// The header and how many bytes it took.
    Complete(FrameHeader, usize),
    /// More bytes are needed; not an error.
    Partial,
}

/// A frame that breaks RFC 6455 §5. Every such error closes with 1002.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// §5.2: the most significant bit of a 64-bit length must be 0.
    #[error("64-bit payload length has its most significant bit set")]
    LengthTopBit,
    /// §5.1: a client must mask every frame it sends.
    #[error("client frame is not masked")]
    Unmasked,
    /// §5.1: a server must not mask frames.
    #[error("server frame is masked")]
    Masked,
    /// §5.2: RSV bits without a negotiated extension.
    #[error("reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// §5.2: opcodes 3-7 and 11-15 are reserved.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// §5.5: control frame payloads are at most 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    /// §5.5: control frames must not be fragmented.
    #[error("fragmented control frame")]
    FragmentedControl,
}

impl FrameHeader {
    /// The opcode, or `None` if it is reserved.
    pub fn opcode(&self) -> Option<OpCode> {
        OpCode::from_u8(self.opcode)
    }

    /// Applies the rules of RFC 6455 §5 that a single header can break, for
    /// a frame received by `role`, with `allowed_rsv` the RSV bits that a
    /// negotiated extension gave meaning to (0 without extensions).
    pub fn check(&self, role: Role, allowed_rsv: u8) -> Result<OpCode, FrameError> {
        // §5.1: "The server MUST close the connection upon receiving a frame
        // that is not masked." and the client "MUST close ... if it detects a
        // masked frame".
        match (role, self.mask.is_some()) {
            (Role::Server, false) => return Err(FrameError::Unmasked),
            (Role::Client, true) => return Err(FrameError::Masked),
            _ => {}
        }
        // §5.2: "MUST be 0 unless an extension is negotiated that defines
        // meanings for non-zero values."
        if self.rsv & !allowed_rsv != 0 {
            return Err(FrameError::ReservedBits(self.rsv));
        }
        let op = self
            .opcode()
            .ok_or(FrameError::ReservedOpcode(self.opcode))?;
        if op.is_control() {
            // §5.5: "All control frames MUST have a payload length of 125
            // bytes or less and MUST NOT be fragmented."
            if self.len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(FrameError::ControlTooLong(self.len));
            }
            if !self.fin {
                return Err(FrameError::FragmentedControl);
            }
        }
        Ok(op)
    }

    /// Encodes this header into `out` in the shortest length form (§5.2:
    /// "the minimal number of bytes MUST be used"); returns its length.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | (self.opcode & 0x0f);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = if self.len < 126 {
            out[1] = mask_bit | self.len as u8;
            2
        } else if self.len <= u64::from(u16::MAX) {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(self.len as u16).to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.len.to_be_bytes());
            10
        };
        if let Some(mask) = self.mask {
            out[n..n + 4].copy_from_slice(&mask);
            n += 4;
        }
        n
    }
}

/// Decodes a frame header from the start of `buf`.
///
/// ```
/// use wsloop::proto::frame::{decode_header, Decoded};
/// // A masked "Hello" from RFC 6455 §5.7, header only.
/// let bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d];
/// match decode_header(&bytes).unwrap() {
///     Decoded::Complete(h, n) => assert_eq!((h.len, n), (5, 6)),
///     Decoded::Partial => unreachable!(),
/// }
/// assert_eq!(decode_header(&bytes[..5]).unwrap(), Decoded::Partial);
/// ```
pub fn decode_header(buf: &[u8]) -> Result<Decoded, FrameError> {
    if buf.len() < 2 {
        return Ok(Decoded::Partial);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let masked = b1 & 0x80 != 0;
    let (len, mut n) = match b1 & 0x7f {
        126 => {
            let Some(ext) = buf.get(2..4) else {
                return Ok(Decoded::Partial);
            };
            (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
        }
        127 => {
            let Some(ext) = buf.get(2..10) else {
                return Ok(Decoded::Partial);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(ext);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(FrameError::LengthTopBit);
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    let mask = if masked {
        let Some(key) = buf.get(n..n + 4) else {
            return Ok(Decoded::Partial);
        };
        n += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    let header = FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0b111,
        opcode: b0 & 0x0f,
        mask,
        len,
    };
    Ok(Decoded::Complete(header, n))
}

/// Close status codes (RFC 6455 §7.4).
pub mod close_code {
    /// 1000: normal closure.
    pub const NORMAL: u16 = 1000;
    /// 1001: the endpoint is going away (server shutdown, page left).
    pub const GOING_AWAY: u16 = 1001;
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// 1006: closed without a close frame (never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// 1007: message data inconsistent with its type (invalid UTF-8).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1008: policy violation (also: the send queue limit was passed).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// 1009: message too big.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: u16 = 1010;
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;

    /// Whether `code` may appear in a close frame on the wire (§7.4.1,
    /// §7.4.2 and the IANA registry): 1000-1003, 1007-1014 and 3000-4999.
    /// 1004 is reserved, 1005, 1006 and 1015 must never be sent, 1016-2999
    /// are reserved for future RFCs, and anything below 1000 or from 5000 up
    /// is outside every range. A close frame carrying any other code is a
    /// protocol error (1002).
    pub fn is_valid(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// RSV1, the bit permessage-deflate gives meaning to (RFC 7692 §6), in
/// [`FrameHeader::rsv`]'s encoding.
pub(crate) const RSV1: u8 = 0b100;

/// The header of an unfragmented frame (FIN set) with `rsv` bits, and its
/// length.
pub(crate) fn unfragmented_header(
    op: OpCode,
    rsv: u8,
    len: usize,
    mask: Option<[u8; 4]>,
) -> ([u8; MAX_HEADER_LEN], usize) {
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode: op.as_u8(),
        mask,
        len: len as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    (head, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode: 0x2,
            mask,
            len,
        }
    }

    fn encoded(h: FrameHeader) -> Vec<u8> {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut out);
        out[..n].to_vec()
    }

    /// The PHP servers packed 16-bit lengths in host order and 64-bit ones in
    /// 4 bytes; these are the right bytes.
    #[test]
    fn length_forms_are_network_order_and_minimal() {
        assert_eq!(encoded(header(0, None)), [0x82, 0]);
        assert_eq!(encoded(header(125, None)), [0x82, 125]);
        assert_eq!(encoded(header(126, None)), [0x82, 126, 0x00, 0x7e]);
        assert_eq!(encoded(header(65535, None)), [0x82, 126, 0xff, 0xff]);
        assert_eq!(
            encoded(header(65536, None)),
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        assert_eq!(
            encoded(header(1 << 40, Some([1, 2, 3, 4]))),
            [0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn decode_inverts_encode_for_boundary_lengths() {
        for len in [0, 1, 125, 126, 127, 128, 65535, 65536, 65537, u64::MAX >> 1] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = header(len, mask);
                let bytes = encoded(h);
                assert_eq!(decode_header(&bytes), Ok(Decoded::Complete(h, bytes.len())));
                for cut in 0..bytes.len() {
                    assert_eq!(decode_header(&bytes[..cut]), Ok(Decoded::Partial));
                }
            }
        }
    }

    #[test]
    fn non_minimal_lengths_are_read() {
        // The minimal-length rule binds the sender; a receiver still reads them.
        assert_eq!(
            decode_header(&[0x82, 126, 0, 5]),
            Ok(Decoded::Complete(header(5, None), 4))
        );
    }

    #[test]
    fn top_bit_of_64_bit_length_is_an_error() {
        let bytes = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode_header(&bytes), Err(FrameError::LengthTopBit));
    }

    #[test]
    fn check_rules() {
        let m = Some([0, 0, 0, 0]);
        let ok = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: 1,
            mask: m,
            len: 3,
        };
        assert_eq!(ok.check(Role::Server, 0), Ok(OpCode::Text));
        assert_eq!(
            FrameHeader { mask: None, ..ok }.check(Role::Server, 0),
            Err(FrameError::Unmasked)
        );
        assert_eq!(ok.check(Role::Client, 0), Err(FrameError::Masked));
        for rsv in 1..8 {
            assert_eq!(
                FrameHeader { rsv, ..ok }.check(Role::Server, 0),
                Err(FrameError::ReservedBits(rsv))
            );
        }
        assert_eq!(
            FrameHeader { rsv: 4, ..ok }.check(Role::Server, 4),
            Ok(OpCode::Text)
        );
        for op in (3..=7).chain(11..=15) {
            assert_eq!(
                FrameHeader { opcode: op, ..ok }.check(Role::Server, 0),
                Err(FrameError::ReservedOpcode(op))
            );
        }
        let ping = FrameHeader { opcode: 9, ..ok };
        assert_eq!(ping.check(Role::Server, 0), Ok(OpCode::Ping));
        assert_eq!(
            FrameHeader { len: 125, ..ping }.check(Role::Server, 0),
            Ok(OpCode::Ping)
        );
        assert_eq!(
            FrameHeader { len: 126, ..ping }.check(Role::Server, 0),
            Err(FrameError::ControlTooLong(126))
        );
        assert_eq!(
            FrameHeader { fin: false, ..ping }.check(Role::Server, 0),
            Err(FrameError::FragmentedControl)
        );
    }

    /// RFC 6455 §7.4, code by code over the whole u16 range.
    #[test]
    fn close_code_table() {
        for code in 0..=u16::MAX {
            let expected = match code {
                0..=999 => false,
                1000..=1003 => true,
                1004..=1006 => false, // reserved, no status, abnormal
                1007..=1014 => true,  // 1012-1014 are IANA-registered
                1015 => false,        // TLS handshake failure
                1016..=2999 => false, // reserved for RFCs
                3000..=4999 => true,  // libraries, then private use
                _ => false,
            };
            assert_eq!(close_code::is_valid(code), expected, "code {code}");
        }
    }
}
