//! Handles to a running loop from other threads: [`ShutdownHandle`] (a
//! flag and a wake-up, safe in a signal handler) and [`LoopHandle`] (sends,
//! publishes, closes and shutdown as commands).
//!
//! ```text
//! any thread ──LoopHandle::send / publish / close──► bounded channel ──► Waker
//!                                                         │
//! the loop: waker token ──► Server::run_commands ──► Core (as a handler's Ctx would)
//! ```
//!
//! The channel is bounded, so a loop that falls behind makes senders fail
//! at once with [`HandleError::Full`] instead of growing without bound or
//! blocking a thread that may be the loop's own. The loop is woken once per
//! batch: a flag says a wake-up is already on its way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

use mio::Waker;

use crate::id::ConnId;
use crate::proto::message::{EncodedMessage, Message};

/// Requests a running server to shut down, from any thread (or a signal
/// handler: it only stores a flag and writes to an eventfd).
///
/// ```
/// use wsloop::{Config, ConnId, Ctx, Handler, Message, Server};
/// struct Echo;
/// impl Handler for Echo {
///     type Data = ();
///     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, msg: Message<'_>) {
///         ctx.send(id, msg);
///     }
/// }
/// let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), Config::default(), Echo)?;
/// let stop = server.shutdown_handle();
/// let t = std::thread::spawn(move || stop.shutdown());
/// server.run()?; // returns once every client is gone
/// t.join().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    pub(super) fn new(waker: Waker) -> Self {
        ShutdownHandle {
            flag: Arc::new(AtomicBool::new(false)),
            waker: Arc::new(waker),
        }
    }

    /// Asks the loop to stop accepting, close every client with 1001 and
    /// return from [`Server::run`](crate::Server::run) once they are gone or
    /// the close timeout has passed.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    /// Whether a shutdown was asked for.
    pub(super) fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.requested())
            .finish()
    }
}

/// Commands a loop takes from its handles.
pub(crate) enum Command {
    Send(ConnId, EncodedMessage),
    /// A publish from a handle; `true` on the one loop that also sends
    /// it to the other processes (the Redis backplane).
    Publish(Box<str>, EncodedMessage, bool),
    /// Another loop's publishes to one topic in one turn, in order.
    PublishMany(Box<str>, Vec<EncodedMessage>),
    Close(ConnId, u16, Box<str>),
    /// A connection another loop accepted, handed to this one
    /// ([`Loops`](crate::Loops) without `SO_REUSEPORT`).
    Adopt(mio::net::TcpStream, std::net::SocketAddr),
    /// The Redis backplane's host, looked up on a thread of its own.
    #[cfg(feature = "redis")]
    RedisResolved(Result<Vec<std::net::SocketAddr>, String>),
    #[cfg(feature = "tls")]
    Tls(Arc<rustls::ServerConfig>),
}

/// Why a [`LoopHandle`] command was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// The loop's command queue is full (it is busy, or stopped polling):
    /// nothing was queued. Retry later, or drop the message.
    Full,
    /// The loop is gone: it shut down, or its [`Server`](crate::Server)
    /// was dropped.
    Closed,
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HandleError::Full => "the loop's command queue is full",
            HandleError::Closed => "the loop is gone",
        })
    }
}

impl std::error::Error for HandleError {}

/// Acts on a loop from any thread: send to a client, publish to a topic,
/// close a client, shut down. `Send + Sync + Clone`; from
/// [`Server::handle`](crate::Server::handle).
///
/// Each call queues a command in a bounded channel and wakes the loop,
/// which carries it out as a handler's [`Ctx`](crate::Ctx) would, in the
/// order the calls were made from one thread. A call never blocks: a full
/// queue is [`HandleError::Full`] at once, a loop that is gone
/// [`HandleError::Closed`]. That a command was queued does not mean it was
/// delivered: a client may close meanwhile, as with any send.
///
/// ```
/// use wsloop::{Config, ConnId, Ctx, Decision, Handler, Message, Request, Server};
/// struct News;
/// impl Handler for News {
///     type Data = ();
///     fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, _: &Request) -> Decision {
///         ctx.subscribe(id, "news");
///         Decision::accept()
///     }
///     fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: Message<'_>) {}
/// }
/// let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), Config::default(), News)?;
/// let handle = server.handle();
/// let feed = std::thread::spawn(move || {
///     // From a database listener, a job queue...: encoded once, here.
///     handle.publish("news", Message::Text("the loop took this from another thread"))?;
///     handle.shutdown();
///     Ok::<(), wsloop::HandleError>(())
/// });
/// server.run()?;
/// feed.join().unwrap().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    /// This loop's own queue.
    inbox: Inbox,
    /// Set when the loop is linked with others ([`Loops`](crate::Loops)):
    /// then sends go to the loop that owns the id, publishes to every loop.
    hub: Arc<OnceLock<Arc<Hub>>>,
}

/// One loop's command queue, as its handles and the other loops see it.
#[derive(Clone)]
pub(crate) struct Inbox {
    tx: SyncSender<Command>,
    /// A wake-up is on its way: later commands ride on it.
    woken: Arc<AtomicBool>,
    /// The loop finished its shutdown: it polls no more.
    finished: Arc<AtomicBool>,
    stop: ShutdownHandle,
}

/// The loops of one process, linked: every loop's inbox, by loop index,
/// and every loop's client count (for a limit on the whole process).
pub(crate) struct Hub {
    pub(crate) inboxes: Vec<Inbox>,
    pub(crate) clients: Vec<AtomicUsize>,
    /// Some loops have no listener: those that listen hand what they
    /// accept round-robin to every loop.
    pub(crate) hand_off: bool,
}

impl Hub {
    /// Clients connected to every loop, as each last counted them.
    pub(crate) fn clients(&self) -> usize {
        self.clients.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The loop's side of its handles' channel.
pub(super) struct Commands {
    rx: Receiver<Command>,
    /// The handle the loop gives out (clones of it).
    handle: LoopHandle,
    capacity: usize,
}

impl Commands {
    pub(super) fn new(capacity: usize, stop: ShutdownHandle) -> Self {
        let (tx, rx) = mpsc::sync_channel(capacity);
        Commands {
            rx,
            handle: LoopHandle {
                inbox: Inbox {
                    tx,
                    woken: Arc::new(AtomicBool::new(false)),
                    finished: Arc::new(AtomicBool::new(false)),
                    stop,
                },
                hub: Arc::new(OnceLock::new()),
            },
            capacity,
        }
    }

    pub(super) fn handle(&self) -> LoopHandle {
        self.handle.clone()
    }

    pub(super) fn inbox(&self) -> Inbox {
        self.handle.inbox.clone()
    }

    /// Links this loop to `hub` (once).
    pub(super) fn link(&self, hub: Arc<Hub>) -> bool {
        self.handle.hub.set(hub).is_ok()
    }

    pub(super) fn hub(&self) -> Option<&Arc<Hub>> {
        self.handle.hub.get()
    }

    /// The loop has shut down: its handles' commands fail from now on
    /// (as they do once the server is dropped), and what was still queued
    /// is dropped now (a connection handed over is closed with it).
    pub(super) fn finish(&self) {
        self.handle.inbox.finished.store(true, Ordering::SeqCst);
        while self.rx.try_recv().is_ok() {}
    }

    /// The commands waiting now, at most one queue's worth (so that
    /// handles sending without pause cannot keep the loop from its
    /// sockets); `more` is set when some were left for the next turn.
    pub(super) fn take(&self, more: &mut bool) -> Vec<Command> {
        // Cleared before reading: a command queued after this point wakes
        // the loop again; one queued before is read below.
        self.handle.inbox.woken.store(false, Ordering::SeqCst);
        let mut out = Vec::new();
        while out.len() < self.capacity {
            match self.rx.try_recv() {
                Ok(c) => out.push(c),
                Err(_) => return out,
            }
        }
        *more = true;
        out
    }
}

impl Inbox {
    /// The loop is shutting down or gone: nothing new should go to it.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.requested() || self.finished.load(Ordering::Relaxed)
    }

    pub(crate) fn push(&self, command: Command) -> Result<(), HandleError> {
        self.try_push(command).map_err(|back| match back {
            Some(_) => HandleError::Full,
            None => HandleError::Closed,
        })
    }

    /// Queues `command`; when the queue is full it comes back (`None`: the
    /// loop is gone).
    pub(crate) fn try_push(&self, command: Command) -> Result<(), Option<Command>> {
        self.offer(command).map_err(|(why, c)| match why {
            HandleError::Full => Some(c),
            HandleError::Closed => None,
        })
    }

    /// Queues `command`, or gives it back with the reason it was not taken.
    pub(crate) fn offer(&self, command: Command) -> Result<(), (HandleError, Command)> {
        if self.finished.load(Ordering::Relaxed) {
            return Err((HandleError::Closed, command));
        }
        match self.tx.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(c)) => return Err((HandleError::Full, c)),
            Err(TrySendError::Disconnected(c)) => return Err((HandleError::Closed, c)),
        }
        if !self.woken.swap(true, Ordering::SeqCst) {
            // The eventfd outlives the loop (the handle holds it): a wake
            // after the loop is gone changes nothing.
            let _ = self.stop.waker.wake();
        }
        Ok(())
    }
}

impl LoopHandle {
    /// The inbox of the loop that owns `id`.
    fn owner(&self, id: ConnId) -> Result<&Inbox, HandleError> {
        match self.hub.get() {
            Some(hub) => hub.inboxes.get(id.loop_index()).ok_or(HandleError::Closed),
            None => Ok(&self.inbox),
        }
    }

    /// Sends `msg` to client `id` (on whichever loop owns it): encoded
    /// here, on the caller's thread.
    pub fn send(&self, id: ConnId, msg: Message<'_>) -> Result<(), HandleError> {
        self.send_encoded(id, EncodedMessage::new(msg))
    }

    /// Sends a message already encoded (one encoding for many sends).
    pub fn send_encoded(&self, id: ConnId, msg: EncodedMessage) -> Result<(), HandleError> {
        self.owner(id)?.push(Command::Send(id, msg))
    }

    /// Publishes `msg` to `topic` on every loop (see
    /// [`Ctx::publish`](crate::Ctx::publish)).
    pub fn publish(&self, topic: &str, msg: Message<'_>) -> Result<(), HandleError> {
        self.publish_encoded(topic, EncodedMessage::new(msg))
    }

    /// Publishes a message already encoded: the same bytes go to every
    /// loop. With linked loops, an error from any loop is returned after
    /// every loop was tried (the others have it).
    pub fn publish_encoded(&self, topic: &str, msg: EncodedMessage) -> Result<(), HandleError> {
        let topic: Box<str> = topic.into();
        match self.hub.get() {
            None => self.inbox.push(Command::Publish(topic, msg, true)),
            Some(hub) => {
                let mut result = Ok(());
                let mut relay = true; // by the first loop that takes it
                for inbox in &hub.inboxes {
                    match inbox.push(Command::Publish(topic.clone(), msg.clone(), relay)) {
                        Ok(()) => relay = false,
                        Err(e) => result = Err(e),
                    }
                }
                result
            }
        }
    }

    /// Starts the closing handshake with client `id` (see
    /// [`Ctx::close`](crate::Ctx::close)).
    pub fn close(&self, id: ConnId, code: u16, reason: &str) -> Result<(), HandleError> {
        self.owner(id)?
            .push(Command::Close(id, code, reason.into()))
    }

    /// Asks the loop (every linked loop) to shut down (see
    /// [`ShutdownHandle::shutdown`]); never fails, and does nothing to a
    /// loop that is gone.
    pub fn shutdown(&self) {
        match self.hub.get() {
            Some(hub) => hub.inboxes.iter().for_each(|i| i.stop.shutdown()),
            None => self.inbox.stop.shutdown(),
        }
    }

    /// Serves new connections with `config` from now on, on every linked
    /// loop (see [`Server::set_tls`](crate::Server::set_tls)): how a
    /// certificate is reloaded from another thread.
    #[cfg(feature = "tls")]
    pub fn set_tls(&self, config: Arc<rustls::ServerConfig>) -> Result<(), HandleError> {
        match self.hub.get() {
            None => self.inbox.push(Command::Tls(config)),
            Some(hub) => {
                let mut result = Ok(());
                for inbox in &hub.inboxes {
                    if let Err(e) = inbox.push(Command::Tls(config.clone())) {
                        result = Err(e);
                    }
                }
                result
            }
        }
    }
}

impl std::fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopHandle").finish_non_exhaustive()
    }
}
