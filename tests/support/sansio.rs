//! Helpers of the sans-I/O tests (`props.rs`, `protocol.rs`), included by
//! each with `#[path = "support/sansio.rs"] mod sansio;`: events copied out
//! of the input they borrow. (Their frames come from `support/frame.rs`.)

use wsloop::proto::{Event, Message};

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
