//! The sans-I/O layers: everything wsloop knows about WebSocket, with no
//! socket, no poll and no clock inside (time comes in as `now`). For people
//! who bring their own I/O, and what the [`Server`](crate::Server) drives.
//!
//! ```text
//! bytes ──► Session ──► handshake (request, validation, 101 or error answer)
//!              │
//!              └──► Connection ──► frame ─► mask ─► utf8 ─► deflate ─► message ──► events
//! Handler's sends ──► Session ──► Connection: frame encoder ──► Session::transmit ──► bytes
//! ```
//!
//! | module | job |
//! | --- | --- |
//! | [`frame`] | frame headers, opcodes, close codes |
//! | [`mask`] | payload (un)masking, word-at-a-time |
//! | [`utf8`] | incremental, fail-fast UTF-8 validation |
//! | [`handshake`] | HTTP/1.1 upgrade request: push parse, validation, `Sec-WebSocket-Accept`, responses |
//! | [`connection`] | an open connection's RFC 6455 state machine: bytes in, events and frames out |
//! | [`message`] | messages in both directions, and broadcasts encoded once |
//! | [`session`] | one client's whole life: request, upgrade, connection, every deadline, the one transmit path |
//! | `deflate` | permessage-deflate (RFC 7692): negotiation, compressor, bounded decompressor (feature `deflate`) |

pub mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod session;
pub(crate) mod time;
mod transmit;
pub mod utf8;

pub use connection::{CloseFrame, Connection, ControlPayload, Event, ProtocolError, SendError};
pub use frame::{close_code, OpCode, Role};
pub use handshake::{HandshakeError, Request};
pub use message::{Broadcast, EncodedMessage, Incoming, Message};
pub use session::Session;
pub use time::Time;
pub use transmit::Transmit;
