//! One connection's permessage-deflate state, and the per-thread spare
//! codecs that keep it cheap.
//!
//! A compressor and decompressor hold about 330 KiB between them (measured
//! as server memory per client, BENCHMARKS.md), so a
//! [`Session`] creates neither until a message needs it, and only keeps one
//! between messages when the agreement makes it carry context (the LZ77
//! window) from one message to the next. Without context takeover a codec
//! is borrowed from this thread's spares for one message and given back
//! reset: one codec then serves every such connection of the loop. A
//! connection that leaves gives its codecs back too, so a new client does
//! not pay for a fresh allocation.

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
}

fn take_deflater(window_bits: u8, level: u32, no_context_takeover: bool) -> Deflater {
    let spare = SPARES.with(|s| {
        let mut s = s.borrow_mut();
        let i = s
            .deflaters
            .iter()
            .position(|d| d.window_bits() == window_bits && d.level() == level)?;
        Some(s.deflaters.swap_remove(i))
    });
    match spare {
        Some(mut d) => {
            d.recycle(no_context_takeover);
            d
        }
        None => Deflater::new(window_bits, level, no_context_takeover),
    }
}

fn take_inflater(no_context_takeover: bool) -> Inflater {
    match SPARES.with(|s| s.borrow_mut().inflaters.pop()) {
        Some(mut i) => {
            i.recycle(no_context_takeover);
            i
        }
        None => Inflater::new(no_context_takeover),
    }
}

fn give_deflater(mut d: Deflater) {
    d.recycle(true);
    SPARES.with(|s| {
        let mut s = s.borrow_mut();
        if s.deflaters.len() < MAX_SPARES {
            s.deflaters.push(d);
        }
    });
}

fn give_inflater(mut i: Inflater) {
    i.recycle(true);
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
    let mut d = take_deflater(window_bits, level, true);
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

/// The server's side of one connection's permessage-deflate agreement.
///
/// ```
/// use wsloop::proto::deflate::{negotiate, DeflateConfig, Session};
/// use wsloop::proto::handshake::ExtensionOffer;
///
/// let offer = ExtensionOffer { name: "permessage-deflate", params: vec![] };
/// let agreed = negotiate(&[offer], &DeflateConfig::default()).unwrap();
/// let mut session = Session::new(agreed);
/// let text = "a message long enough to be worth compressing, ".repeat(4);
///
/// let mut body = Vec::new();
/// assert!(session.compress(text.as_bytes(), &mut body)); // RSV1 frame body
/// assert!(!session.compress(b"short", &mut body)); // below the threshold: sent as is
/// ```
#[derive(Debug)]
pub struct Session {
    agreed: Agreed,
    /// Kept between messages only with context takeover.
    deflater: Option<Deflater>,
    /// Kept between messages with context takeover, and during a message.
    inflater: Option<Inflater>,
    /// Compressed bytes of the message in progress (its limit on the wire).
    wire: u64,
}

impl Session {
    /// A session for `agreed`; no codec is created yet.
    pub fn new(agreed: Agreed) -> Self {
        Session {
            agreed,
            deflater: None,
            inflater: None,
            wire: 0,
        }
    }

    /// The agreement.
    pub fn agreed(&self) -> &Agreed {
        &self.agreed
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
    /// made smaller by deflate (already compressed or random data).
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if !self.compresses(payload.len()) {
            return false;
        }
        let a = &self.agreed;
        let nct = a.server_no_context_takeover();
        let mut d = self
            .deflater
            .take()
            .unwrap_or_else(|| take_deflater(a.server_max_window_bits(), a.level(), nct));
        let smaller = shrink(&mut d, payload, out);
        if nct {
            give_deflater(d);
        } else {
            self.deflater = Some(d);
        }
        smaller
    }

    /// Compressed bytes of the message in progress received so far.
    pub fn wire(&self) -> u64 {
        self.wire
    }

    /// Inflates the next piece of a compressed message into `out` (see
    /// [`Inflater::feed`]; `max_out` is the message limit).
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
        let nct = self.agreed.client_no_context_takeover();
        self.inflater
            .get_or_insert_with(|| take_inflater(nct))
            .feed(input, out, max_out)
    }

    /// Ends a compressed message (see [`Inflater::finish`]); without
    /// context takeover the decompressor goes back to the spares.
    pub fn finish(&mut self, out: &mut Vec<u8>, max_out: usize) -> Result<(), InflateError> {
        self.wire = 0;
        let Some(inflater) = self.inflater.as_mut() else {
            return Ok(()); // no payload byte: an empty message
        };
        let result = inflater.finish(out, max_out);
        if self.agreed.client_no_context_takeover() {
            if let Some(i) = self.inflater.take() {
                give_inflater(i);
            }
        }
        result
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(d) = self.deflater.take() {
            give_deflater(d);
        }
        if let Some(i) = self.inflater.take() {
            give_inflater(i);
        }
    }
}
