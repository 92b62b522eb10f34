//! Helpers of the sans-I/O tests (`props.rs`, `protocol.rs`), included by
//! each with `#[path = "support/sansio.rs"] mod sansio;`: frames written out
//! by hand (independently of `wsloop::proto::frame`) and events copied out of the
//! input they borrow.

use wsloop::proto::{Event, Message};

/// The header of a frame with `b0` as its first byte, announcing `len`
/// payload bytes in the minimal length form, with `mask` if given.
pub fn header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
    out
}

/// A frame with `b0` as its first byte announcing `len` payload bytes
/// (normally `payload.len()`), then `payload`, masked with `mask` if given.
pub fn encode_frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = header(b0, len, mask);
    match mask {
        Some(m) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame with `b0` as its first byte that announces its true length.
pub fn raw_frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    encode_frame(b0, payload, mask, payload.len() as u64)
}

/// An event with its payload copied out of the input it borrows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
}

/// Copies `event` out, checking that a message's kind agrees with its
/// `is_text`.
pub fn own(event: &Event<'_>) -> Ev {
    match event {
        Event::Message(m) => match m.message() {
            Message::Text(s) => {
                assert!(m.is_text());
                Ev::Text(s.to_owned())
            }
            Message::Binary(b) => {
                assert!(!m.is_text());
                Ev::Binary(b.to_vec())
            }
        },
        Event::Ping(p) => Ev::Ping(p.as_bytes().to_vec()),
        Event::Pong(p) => Ev::Pong(p.as_bytes().to_vec()),
        Event::Close(c) => Ev::Close(c.code, c.reason().to_owned()),
    }
}
