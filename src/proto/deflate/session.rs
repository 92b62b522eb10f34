//! One connection's permessage-deflate context, and the per-thread codecs
//! that every connection of the loop shares.
//!
//! ```text
//! send:    payload ─► spare Deflater(bits, level) ─ primed with `sent` ─► RSV1 body ─► `sent` += payload
//! receive: RSV1 pieces ─► spare Inflater ─ primed with `received` ─► message ─► `received` += message
//! ```
//!
//! A zlib-rs compressor holds about 190 to 320 KiB of touched memory and a
//! decompressor about 20 KiB (measured as RSS, BENCHMARKS.md), whatever
//! window was agreed. Context takeover does not need them between
//! messages: it needs the window, the last 2^bits bytes of what went
//! through. So a [`Context`] keeps only those bytes (none without context
//! takeover), and each message borrows a codec from this thread's spares,
//! primes it with the window (`deflateSetDictionary`,
//! `inflateSetDictionary`; RFC 7692 §7.2.3.3's "sliding window"), and
//! gives it back reset. One codec of each kind then serves every
//! connection of the loop, and a browser that agreed to 12-bit windows
//! costs at most 4 KiB each way.

use std::cell::RefCell;

use super::{Agreed, Deflater, InflateError, Inflater};

/// Codecs of each kind kept per thread for reuse (about 1.6 MiB at most).
const MAX_SPARES: usize = 4;

#[derive(Default)]
struct Spares {
    deflaters: Vec<Deflater>,
    inflaters: Vec<Inflater>,
}

thread_local! {
    static SPARES: RefCell<Spares> = RefCell::new(Spares::default());
    /// Bytes compression took off messages sent from this thread.
    static SAVED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Bytes permessage-deflate took off the messages sent from this thread
/// so far: payload minus compressed size, per recipient (a shared frame
/// sent to 100 clients counts 100 times). A server's loop runs on one
/// thread, so this is its figure (two servers stepped on one thread share
/// it).
pub fn bytes_saved() -> u64 {
    SAVED.with(|s| s.get())
}

/// Counts `n` more bytes saved on this thread.
pub(crate) fn count_saved(n: usize) {
    SAVED.with(|s| s.set(s.get() + n as u64));
}

fn take_deflater(window_bits: u8, level: u32) -> Deflater {
    let spare = SPARES.with(|s| {
        let mut s = s.borrow_mut();
        let i = s
            .deflaters
            .iter()
            .position(|d| d.window_bits() == window_bits && d.level() == level)?;
        Some(s.deflaters.swap_remove(i))
    });
    spare.unwrap_or_else(|| Deflater::new(window_bits, level, true))
}

fn take_inflater() -> Inflater {
    SPARES
        .with(|s| s.borrow_mut().inflaters.pop())
        .unwrap_or_else(|| Inflater::new(true))
}

fn give_deflater(mut d: Deflater) {
    d.reset();
    SPARES.with(|s| {
        let mut s = s.borrow_mut();
        if s.deflaters.len() < MAX_SPARES {
            s.deflaters.push(d);
        }
    });
}

fn give_inflater(mut i: Inflater) {
    i.reset();
    SPARES.with(|s| {
        let mut s = s.borrow_mut();
        if s.inflaters.len() < MAX_SPARES {
            s.inflaters.push(i);
        }
    });
}

/// Compresses `payload` with a spare (or new) compressor of `window_bits`
/// and `level` and no context: the body of a frame any number of
/// connections with that agreement can share (broadcast). Returns false,
/// with nothing appended, when compressing does not make it smaller.
pub fn compress_shared(payload: &[u8], window_bits: u8, level: u32, out: &mut Vec<u8>) -> bool {
    let mut d = take_deflater(window_bits, level);
    let smaller = shrink(&mut d, payload, out);
    give_deflater(d);
    smaller
}

/// Compresses `payload` into `out` if that makes it smaller; otherwise
/// takes it back out and resets the compressor, whose window now holds
/// bytes the peer will receive uncompressed. (Resetting is always allowed:
/// the peer's window may hold more than the compressor refers to.)
fn shrink(d: &mut Deflater, payload: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    d.compress(payload, out);
    if out.len() - start < payload.len() {
        return true;
    }
    out.truncate(start);
    d.reset();
    false
}

/// The last `cap` bytes of a stream: a context-takeover window.
#[derive(Debug, Default)]
struct Window {
    bytes: Vec<u8>,
    cap: usize,
}

impl Window {
    /// A window of 2^bits bytes, or none at all (`cap` 0) without context
    /// takeover.
    fn new(bits: u8, takeover: bool) -> Window {
        Window {
            bytes: Vec::new(),
            cap: if takeover { 1 << bits } else { 0 },
        }
    }

    /// Appends `data`, keeping the last `cap` bytes. The buffer grows to
    /// `cap` at most (exactly, not by doubling): a short chat holds only
    /// what it sent.
    fn push(&mut self, data: &[u8]) {
        if self.cap == 0 {
            return;
        }
        if data.len() >= self.cap {
            self.bytes.clear();
            self.bytes.reserve_exact(self.cap);
            self.bytes.extend_from_slice(&data[data.len() - self.cap..]);
            return;
        }
        let excess = (self.bytes.len() + data.len()).saturating_sub(self.cap);
        self.bytes.drain(..excess);
        let need = self.bytes.len() + data.len();
        if need > self.bytes.capacity() {
            self.bytes
                .reserve_exact(need.next_power_of_two().min(self.cap) - self.bytes.len());
        }
        self.bytes.extend_from_slice(data);
    }

    fn clear(&mut self) {
        self.bytes = Vec::new();
    }

    /// Bytes of memory the window can come to hold.
    fn cap(&self) -> usize {
        self.cap
    }
}

/// One connection's side of a permessage-deflate agreement: the windows
/// that context takeover needs, and nothing else between messages.
///
/// ```
/// use wsloop::proto::deflate::{negotiate, Context, DeflateConfig};
/// use wsloop::proto::handshake::ExtensionOffer;
///
/// let offer = ExtensionOffer { name: "permessage-deflate", params: vec![] };
/// let agreed = negotiate(&[offer], &DeflateConfig::default()).unwrap();
/// let mut cx = Context::new(agreed);
/// let text = "a message long enough to be worth compressing, ".repeat(4);
///
/// let mut body = Vec::new();
/// assert!(cx.compress(text.as_bytes(), &mut body)); // RSV1 frame body
/// assert!(!cx.compress(b"short", &mut body)); // below the threshold: sent as is
/// ```
#[derive(Debug)]
pub struct Context {
    agreed: Agreed,
    /// What the server sent compressed, with server context takeover.
    sent: Window,
    /// What the client sent compressed, with client context takeover.
    received: Window,
    /// A decompressor borrowed for the compressed message in progress.
    inflater: Option<Inflater>,
    /// Compressed bytes of the message in progress (its limit on the wire).
    wire: u64,
}

impl Context {
    /// The context of `agreed`; nothing is allocated yet.
    pub fn new(agreed: Agreed) -> Self {
        Context {
            sent: Window::new(
                agreed.server_max_window_bits(),
                !agreed.server_no_context_takeover(),
            ),
            received: Window::new(
                agreed.client_max_window_bits(),
                !agreed.client_no_context_takeover(),
            ),
            agreed,
            inflater: None,
            wire: 0,
        }
    }

    /// The agreement.
    pub fn agreed(&self) -> &Agreed {
        &self.agreed
    }

    /// The most memory this connection's compression can hold between
    /// messages: its two windows (a codec borrowed for a message is the
    /// thread's, not the connection's).
    pub fn memory(&self) -> usize {
        self.sent.cap() + self.received.cap()
    }

    /// Whether a message of `len` bytes is sent compressed.
    pub fn compresses(&self, len: usize) -> bool {
        len >= self.agreed.compress_threshold()
    }

    /// The (window bits, level) of a compressed frame this connection can
    /// be sent from a broadcast: `Some` when the server keeps no context,
    /// so a body compressed once fits every connection with the same pair.
    pub fn shared_key(&self) -> Option<(u8, u32)> {
        self.agreed
            .server_no_context_takeover()
            .then(|| (self.agreed.server_max_window_bits(), self.agreed.level()))
    }

    /// Appends the compressed body of the message `payload` to `out` and
    /// returns true, or returns false (and appends nothing) when the
    /// message is to go out as is: below the compression threshold, or not
    /// made smaller by deflate (already compressed or random data). A
    /// message that goes out as is does not enter the window: the client's
    /// decompressor never sees it.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if !self.compresses(payload.len()) {
            return false;
        }
        let a = &self.agreed;
        let mut d = take_deflater(a.server_max_window_bits(), a.level());
        if !self.sent.bytes.is_empty() {
            d.prime(&self.sent.bytes);
        }
        let start = out.len();
        let smaller = shrink(&mut d, payload, out);
        give_deflater(d);
        if smaller {
            self.sent.push(payload);
            count_saved(payload.len() - (out.len() - start));
        }
        smaller
    }

    /// Compressed bytes of the message in progress received so far.
    pub fn wire(&self) -> u64 {
        self.wire
    }

    /// Inflates the next piece of a compressed message into `out` (see
    /// [`Inflater::feed`]; `max_out` is the message limit). `out` holds
    /// the message from its first byte: [`Context::finish`] takes its end
    /// into the window.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<(), InflateError> {
        if input.is_empty() {
            return Ok(());
        }
        self.wire += input.len() as u64;
        let received = &self.received.bytes;
        let inflater = self.inflater.get_or_insert_with(|| {
            let mut i = take_inflater();
            if !received.is_empty() {
                i.prime(received);
            }
            i
        });
        let result = inflater.feed(input, out, max_out);
        if result.is_err() {
            // The connection fails; the decompressor goes back clean.
            if let Some(i) = self.inflater.take() {
                give_inflater(i);
            }
        }
        result
    }

    /// Ends a compressed message (see [`Inflater::finish`]): the message,
    /// all of `out`, enters the window and the decompressor goes back to
    /// the spares.
    pub fn finish(&mut self, out: &mut Vec<u8>, max_out: usize) -> Result<(), InflateError> {
        self.wire = 0;
        let Some(mut inflater) = self.inflater.take() else {
            return Ok(()); // no payload byte: an empty message
        };
        let result = inflater.finish(out, max_out);
        if result.is_ok() {
            if inflater.last_ended() {
                // §7.2.3.4 (BFINAL): the client's next message starts a new
                // stream, with an empty window.
                self.received.clear();
            } else {
                self.received.push(out);
            }
        }
        give_inflater(inflater);
        result
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(i) = self.inflater.take() {
            give_inflater(i);
        }
    }
}
