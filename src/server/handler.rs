//! What an application implements ([`Handler`]) and how it acts on the
//! server ([`Ctx`]).
//!
//! ```text
//! loop ──on_open / on_message / on_close / on_timer──► Handler
//! Handler ──ctx.send / broadcast / close / set_timer──► queues, flushed once per iteration
//! ```
//!
//! The handler runs on the loop's thread and is never re-entered: every
//! callback returns before the next one starts (Resin's model). Sends made
//! during one loop iteration are coalesced per client and written once when
//! the iteration ends.

use super::source::SourceId;
use super::Ctx;
use crate::id::{ConnId, TimerId};
use crate::proto::handshake::{HttpResponse, Request};
// (HttpResponse is also what `Decision::Respond` carries.)
use crate::proto::message::Message;

/// The answer of [`Handler::on_open`].
///
/// ```
/// use wsloop::{ConnId, Ctx, Decision, Handler, Message, Request};
/// struct Api;
/// impl Handler for Api {
///     type Data = ();
///     fn on_open(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, req: &Request) -> Decision {
///         match req.path() {
///             // Speak `v2.api` if the client offers it.
///             "/api" if req.protocols().any(|p| p == "v2.api") => Decision::accept_protocol("v2.api"),
///             "/api" => Decision::accept(),
///             _ => Decision::reject(404, "no such endpoint"),
///         }
///     }
///     fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: Message<'_>) {}
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Upgrade, optionally with one of the subprotocols the client offered.
    Accept {
        /// The chosen subprotocol (must be one of `Request::protocols`).
        protocol: Option<String>,
    },
    /// Refuse with an HTTP status and a one-line reason.
    Reject {
        /// HTTP status, e.g. 403 or 404.
        status: u16,
        /// The response body.
        reason: String,
    },
    /// Refuse with a whole HTTP response of the handler's own, headers
    /// included (`Retry-After` on a 503, `WWW-Authenticate` on a 401).
    Respond(HttpResponse),
}

impl Decision {
    /// Accept without a subprotocol.
    pub fn accept() -> Decision {
        Decision::Accept { protocol: None }
    }

    /// Accept with a subprotocol the client offered.
    pub fn accept_protocol(protocol: impl Into<String>) -> Decision {
        Decision::Accept {
            protocol: Some(protocol.into()),
        }
    }

    /// Refuse with `status` and `reason`.
    pub fn reject(status: u16, reason: impl Into<String>) -> Decision {
        Decision::Reject {
            status,
            reason: reason.into(),
        }
    }
}

/// An application on the loop. Only `on_message` is required.
///
/// ```
/// use wsloop::{Ctx, ConnId, Handler, Message};
/// struct Echo;
/// impl Handler for Echo {
///     type Data = ();
///     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
///         ctx.send(id, msg);
///     }
/// }
/// ```
pub trait Handler {
    /// Per-connection state of the handler's own type, created with
    /// `Default` when a client connects; see [`Ctx::data`].
    type Data: Default;

    /// A valid upgrade request arrived. Sends made here are delivered right
    /// after the `101` response. Default: accept without a subprotocol.
    fn on_open(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId, req: &Request) -> Decision {
        let _ = (ctx, id, req);
        Decision::accept()
    }

    /// A complete text or binary message. It is borrowed from the loop's
    /// buffer: copy what must outlive the call.
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId, msg: Message<'_>);

    /// The client is gone; called exactly once for every accepted client.
    /// `code` is the peer's close code if it sent a close frame, else the
    /// code the server closed with, else 1006 (the TCP connection ended
    /// without a close frame).
    fn on_close(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId, code: u16, reason: &str) {
        let _ = (ctx, id, code, reason);
    }

    /// A timer set with [`Ctx::set_timer`] is due.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self::Data>, timer: TimerId, tag: u64) {
        let _ = (ctx, timer, tag);
    }

    /// A source registered with [`Ctx::register`] is ready (read
    /// `event.is_readable()` and the like). Sources are edge-triggered:
    /// read or write until `WouldBlock`.
    fn on_source(
        &mut self,
        ctx: &mut Ctx<'_, Self::Data>,
        source: SourceId,
        event: &mio::event::Event,
    ) {
        let _ = (ctx, source, event);
    }

    /// Every event of this turn of the loop has been handled, every due
    /// timer run and the clients' queues written (closing those that were
    /// done): a handler that batches work per turn does it now (one write
    /// to a pipe for many messages, one pipelined request to another
    /// server). What it sends here is written before the turn ends.
    /// Embedded, it runs in [`Server::tick`](crate::Server::tick).
    fn on_turn_end(&mut self, ctx: &mut Ctx<'_, Self::Data>) {
        let _ = ctx;
    }

    /// Client `id` read everything that had queued up behind it (its send
    /// status was [`SendStatus::Queued`](crate::SendStatus::Queued), or the
    /// handler asked with [`Ctx::notify_drained`]): a handler that held
    /// back for it may send again.
    fn on_drain(&mut self, ctx: &mut Ctx<'_, Self::Data>, id: ConnId) {
        let _ = (ctx, id);
    }

    /// A plain HTTP GET (no `Upgrade: websocket`). Return a response to
    /// serve it; `None` (the default) answers 426 Upgrade Required.
    fn on_http(&mut self, req: &Request) -> Option<HttpResponse> {
        let _ = req;
        None
    }
}
