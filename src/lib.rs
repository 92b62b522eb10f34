//! wsloop: an RFC 6455 WebSocket server built around one single-threaded
//! mio readiness loop.
//!
//! Data flows one way, and each layer is a module with one job:
//!
//! ```text
//! socket --bytes--> handshake | frame decoder --frames--> message assembler --events--> Handler
//! Handler --commands--> message encoder --bytes--> send queue --> socket
//! ```
//!
//! | module | job | I/O |
//! | --- | --- | --- |
//! | [`handshake`] | HTTP/1.1 upgrade request parse, validation, `Sec-WebSocket-Accept`, responses | no |
//! | [`frame`] | frame headers, opcodes, close codes | no |
//! | [`mask`] | payload (un)masking, word-at-a-time | no |
//! | [`utf8`] | incremental, fail-fast UTF-8 validation | no |
//! | [`protocol`] | one connection's state machine: bytes in, events and bytes out | no |
//! | [`send_queue`] | outgoing bytes, coalesced and shared | no |
//! | [`pool`] | spare buffers reused across connections, one pool per thread | no |
//! | `deflate` | permessage-deflate (RFC 7692): negotiation, compressor, bounded decompressor (feature `deflate`) | no |
//!
//! The sans-I/O layers can be driven by hand, byte for byte:
//!
//! ```
//! use wsloop::handshake::{parse_request, accept_response, Parsed};
//! use wsloop::protocol::{Connection, Event, Message};
//! use wsloop::{frame::Role, Config};
//!
//! let config = Config::default();
//! let mut bytes = b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58".to_vec();
//! let Parsed::Complete { request, len } = parse_request(&bytes, &config).unwrap() else {
//!     unreachable!("the whole request is there")
//! };
//! assert_eq!(request.path(), "/echo");
//! let response = accept_response(&request, None, None);
//! assert!(response.starts_with(b"HTTP/1.1 101"));
//!
//! // The frame that came right behind the request is not lost.
//! let mut conn = Connection::new(Role::Server, &config);
//! let (_, event) = conn.read(&mut bytes[len..]).unwrap();
//! let Some(Event::Message(msg)) = event else { unreachable!("a whole frame") };
//! assert_eq!(msg.message(), Message::Text("Hello"));
//! conn.send(msg.message()).unwrap(); // echo it
//! assert_eq!(conn.outgoing().front(), b"\x81\x05Hello");
//! ```

#![warn(missing_docs)]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod clock;
pub mod config;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod frame;
pub mod handler;
pub mod handshake;
pub mod mask;
pub mod pool;
pub mod protocol;
pub mod send_queue;
pub mod server;
mod timers;
pub mod utf8;

pub use config::{Config, ConfigError};
pub use frame::{close_code, OpCode, Role};
pub use handler::{ConnId, Ctx, Decision, Handler, Response, SendStatus, TimerId};
pub use protocol::{Connection, Event, Message};
pub use server::{Server, ShutdownHandle};
