//! Topics beyond one process: a Redis pub/sub backplane (feature `redis`).
//!
//! Processes that share a Redis (and a channel prefix) share their topics:
//! a publish reaches the topic's subscribers in this process as always,
//! and goes to Redis once (`PUBLISH prefix+topic`); each process is
//! subscribed to exactly the topics its clients hold, and hands what comes
//! from the others to its subscribers. The connection is a socket in the
//! loop's own `Poll` (one per loop with [`Loops`](crate::Loops)), its
//! commands written once per turn. With the `rediss` feature the
//! connection may be TLS (`rediss://`, `RedisTls`): rustls's client
//! between the socket and the protocol, in the same loop.
//!
//! ```text
//! Ctx::publish ──► subscribers here, other loops (hub) ──► RedisLink::publish ──► PUBLISH (once per turn's write)
//! Redis push ──► RedisLink::read ──► this loop's subscribers (this process's own publishes left out)
//! a topic's first subscriber here ──► SUBSCRIBE; its last gone ──► UNSUBSCRIBE (netted per turn)
//! ```
//!
//! **Delivery is at most once**, as Redis pub/sub is: a message published
//! while a process's link is down, or in flight when it breaks, does not
//! reach that process's clients, and nothing replays it. Clients on the
//! publishing process are never affected (they get it from the process
//! itself). While Redis is unreachable each process serves its own
//! clients and retries with backoff; once the link is back it subscribes
//! again to every topic it holds and delivery across processes resumes.
//!
//! ```no_run
//! use wsloop::backplane::RedisConfig;
//! use wsloop::{Config, ConnId, Ctx, Decision, Handler, Message, Request, Server};
//! struct Chat;
//! impl Handler for Chat {
//!     type Data = ();
//!     fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, _: &Request) -> Decision {
//!         ctx.subscribe(id, "room");
//!         Decision::accept()
//!     }
//!     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, _: ConnId, msg: Message<'_>) {
//!         ctx.publish("room", msg); // every process's "room"
//!     }
//! }
//! let mut server = Server::bind("127.0.0.1:9001".parse().unwrap(), Config::default(), Chat)?;
//! server.set_redis(RedisConfig::from_url("redis://127.0.0.1:6379").unwrap());
//! server.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod config;
mod link;
#[cfg(feature = "rediss")]
mod tls;

pub use config::{RedisConfig, UrlError};
pub use link::{LinkError, LinkEvent, LinkState, LinkStats, RedisLink};
#[cfg(feature = "rediss")]
pub use tls::RedisTls;

pub use crate::server::RedisStats;
