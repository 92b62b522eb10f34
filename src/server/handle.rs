//! Handles to a running loop from other threads. Today: shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::Waker;

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
