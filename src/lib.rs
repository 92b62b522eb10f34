//! wsloop: an RFC 6455 WebSocket server built around one single-threaded
//! mio readiness loop.
//!
//! An application implements [`Handler`] and hands it to a [`Server`]:
//!
//! ```no_run
//! use wsloop::{Config, ConnId, Ctx, Handler, Message, Server};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type Data = ();
//!     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
//!         ctx.send(id, msg);
//!     }
//! }
//! let addr = "127.0.0.1:9001".parse().unwrap();
//! Server::bind(addr, Config::default(), Echo)?.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! | what | for |
//! | --- | --- |
//! | [`Server`] | the loop: [`run`](Server::run) it, step it with [`poll_once`](Server::poll_once), or [`embed`](Server::embed) it in a host's mio loop |
//! | [`Handler`] | the application: [`on_open`](Handler::on_open) answers with a [`Decision`], [`on_message`](Handler::on_message) gets a borrowed [`Message`], [`on_close`](Handler::on_close), [`on_timer`](Handler::on_timer), [`on_http`](Handler::on_http) (an [`HttpResponse`] for a plain GET) |
//! | [`Ctx`] | what a handler may do: send ([`SendStatus`]), broadcast, close, timers ([`TimerId`]), per-client data |
//! | [`ConnId`] | a client, for its whole life (a kept id never reaches the slot's next client) |
//! | [`Request`] | the upgrade request: path, query, headers, offered subprotocols |
//! | [`Config`] | every limit and timeout, with a justified default each |
//! | [`ShutdownHandle`] | stops a running server from any thread or a signal handler |
//! | [`Loops`] | N loops on N threads serving one port (`SO_REUSEPORT`, or one listener handing connections round-robin: [`Balance`]), linked: a publish reaches every loop, a [`ConnId`] names its loop |
//! | [`LoopHandle`] | sends, publishes to topics ([`Ctx::subscribe`], [`Ctx::publish`]), closes and shuts down from any thread ([`HandleError`] when its bounded queue is full or the loop is gone) |
//! | [`proto`] | the sans-I/O layers, for people who bring their own I/O: [`proto::Session`] (one client's whole life), [`proto::Connection`] (the frame layer), handshake, frames, permessage-deflate |
//! | [`clock`] | the loop's replaceable time source ([`clock::ManualClock`] for tests) |
//! | [`SourceId`], [`Stats`] | other event sources in the loop's `Poll` ([`Ctx::register`], [`Handler::on_source`]); the server's counters ([`StatsHandle`]: the latest, from any thread) |
//! | `tls` | wss:// with rustls: `Server::set_tls`, certificates from PEM files (feature `tls`) |
//! | `backplane` | topics across processes through Redis pub/sub: `Server::set_redis` (feature `redis`; `rediss://` over TLS with feature `rediss`) |
//! | `programs` | any program as the handler: websocketd's model (a process per connection) and Resin's (one shared program per route, JSON lines) (feature `programs`, Linux) |
//!
//! Data flows one way:
//!
//! ```text
//! socket ──bytes──► server (the only I/O) ──bytes──► proto::Session: handshake | Connection ──events──► Handler
//! Handler ──Ctx──► Session: encoder ──Session::transmit──► server ──bytes──► socket
//! ```
//!
//! The sans-I/O layers can be driven by hand, byte for byte:
//!
//! ```
//! use wsloop::proto::handshake::{parse_request, accept_response, Parsed};
//! use wsloop::proto::{Connection, Event, Message, Role};
//! use wsloop::Config;
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
//! let mut out = Vec::new();
//! conn.transmit(&mut out).unwrap();
//! assert_eq!(out, b"\x81\x05Hello");
//! ```

#![warn(missing_docs)]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "redis")]
pub mod backplane;
#[doc(hidden)]
pub mod buf;
mod config;
mod id;
#[cfg(all(feature = "programs", target_os = "linux"))]
pub mod programs;
pub mod proto;
mod server;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "deflate")]
pub use config::DeflateConfig;
pub use config::{Config, ConfigError};
pub use id::{ConnId, SendStatus, TimerId};
pub use proto::frame::close_code;
pub use proto::handshake::{HttpResponse, Request};
pub use proto::message::Message;
pub use server::clock;
pub use server::StatsHandle;
pub use server::{reuse_port_listeners, Balance, LoopThreads, Loops, MAX_LOOPS};
pub use server::{Ctx, HandleError, LoopHandle, Server, ShutdownHandle, SourceId, Stats};
pub use server::{Decision, Handler};
