//! The listener: accepting, admission (the client limit and its `503`),
//! and pausing after accept errors such as `EMFILE` instead of spinning.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use log::{debug, warn};
use mio::net::TcpStream;
use mio::Interest;

use super::handle::Command;
use super::timers::Due;
use super::Handler;
use super::Server;
use crate::proto::session::Session;
use crate::proto::time;

/// How long accepting pauses after an accept error such as `EMFILE`.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Over-capacity and refused connections being answered at once; past
/// this, new ones are dropped without an answer.
const MAX_ANSWERING: usize = 1024;

impl<H: Handler> Server<H> {
    pub(super) fn accept(&mut self) {
        while !self.accept_paused {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.place(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: the pending connection stays
                    // in the backlog; retry later instead of spinning on it.
                    warn!("accept failed: {e}; pausing accepts for {ACCEPT_PAUSE:?}");
                    self.accept_paused = true;
                    self.core
                        .timers
                        .push(time::after(self.core.stamp(), ACCEPT_PAUSE), Due::Accept);
                }
            }
        }
    }

    /// Accepting resumes after a pause.
    pub(super) fn resume_accept(&mut self) {
        self.accept_paused = false;
        self.accept();
    }

    /// Admits a new connection here, or, when linked loops share one
    /// listener ([`Server::without_listener`]), hands it to the next loop
    /// in turn (this one included).
    fn place(&mut self, stream: TcpStream, peer: SocketAddr) {
        let Some(hub) = self.core.commands.hub().filter(|h| h.hand_off) else {
            return self.admit(stream, peer);
        };
        let to = self.next_loop % hub.inboxes.len();
        self.next_loop = to + 1;
        // A loop shutting down takes no one new (this one is not, or it
        // would have no listener).
        if to == self.core.index as usize || hub.inboxes[to].stopping() {
            return self.admit(stream, peer);
        }
        // Not registered yet: the loop that takes it registers it in its
        // own Poll. One that is full or gone leaves it here.
        if let Err((why, back)) = hub.inboxes[to].offer(Command::Adopt(stream, peer)) {
            debug!("{peer}: kept, loop {to} did not take it ({why})");
            if let Command::Adopt(stream, peer) = back {
                self.admit(stream, peer);
            }
        }
    }

    /// A connection another loop accepted and handed here.
    pub(super) fn adopt(&mut self, stream: TcpStream, peer: SocketAddr) {
        // Shutting down (the other loop could not know yet): answered with
        // 503 and Retry-After, as over the client limit, not dropped.
        let refuse = self.shutdown_deadline.is_some();
        self.admit_as(stream, peer, refuse);
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        self.admit_as(stream, peer, false);
    }

    fn admit_as(&mut self, mut stream: TcpStream, peer: SocketAddr, refuse: bool) {
        // Linked loops share the limit: the others' counts are as of
        // their last turn.
        let clients = match self.core.commands.hub() {
            Some(hub) => {
                let others = hub.clients() - hub.clients[self.core.index as usize].load(Relaxed);
                others + self.core.client_count()
            }
            None => self.core.client_count(),
        };
        let over = refuse || clients >= self.core.config.max_clients;
        if over && self.core.answering >= MAX_ANSWERING {
            debug!("{peer}: dropped, over capacity");
            return;
        }
        let key = self.core.clients.vacant_key();
        if key >= self.core.tokens.clients() {
            warn!("{peer}: dropped, no token left in the server's range");
            return;
        }
        // Inherited from the listener on Linux (see `Server::build`).
        #[cfg(not(target_os = "linux"))]
        let _ = stream.set_nodelay(true);
        if let Err(e) = self.core.registry.register(
            &mut stream,
            self.core.tokens.client(key),
            Interest::READABLE,
        ) {
            warn!("{peer}: register failed: {e}");
            return;
        }
        let now = self.core.time();
        let session = if over {
            debug!("{peer}: refused with 503, at max_clients");
            super::stats::Counters::bump(&mut self.core.counters.handshakes_refused, 503);
            Session::refuse_busy(now)
        } else {
            Session::new(now)
        };
        let key = self.core.insert(stream, session, H::Data::default());
        #[cfg(feature = "tls")]
        if let Some(config) = self.core.tls_config.clone() {
            self.start_tls(key, config, peer);
        }
        #[cfg(not(feature = "tls"))]
        let _ = key;
    }

    /// Puts rustls between `key`'s socket and its session.
    #[cfg(feature = "tls")]
    fn start_tls(
        &mut self,
        key: usize,
        config: std::sync::Arc<rustls::ServerConfig>,
        peer: SocketAddr,
    ) {
        match super::tls::Tls::new(config) {
            Ok(tls) => {
                let core = &mut self.core;
                if core.tls.len() <= key {
                    core.tls.resize_with(key + 1, || None);
                }
                core.tls[key] = Some(Box::new(tls));
                core.clients[key].set(super::core::TLS, true);
            }
            Err(e) => {
                warn!("{peer}: TLS cannot start: {e}");
                self.remove(key);
            }
        }
    }
}
