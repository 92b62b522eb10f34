//! The per-message codec (RFC 7692 §7.2): a compressor for what the server
//! sends and a bounded, incremental decompressor for what it receives.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use thiserror::Error;

use crate::proto::frame::close_code;

/// The empty stored block a sync flush ends with: `00 00 ff ff`. The sender
/// removes it from every message (§7.2.1), the receiver appends it back
/// (§7.2.2).
pub const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The most output the [`Inflater`] produces per decompressor call, so a
/// message's limit is checked at least every this many bytes.
pub const INFLATE_STEP: usize = 16 * 1024;

/// A compressed message the [`Inflater`] refused. The connection is failed
/// with [`InflateError::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum InflateError {
    /// The message inflates to more than the limit; inflating stopped at
    /// the limit.
    #[error("decompressed message exceeds the limit of {limit} bytes")]
    TooBig {
        /// The limit (`max_out`).
        limit: usize,
    },
    /// The payload is not valid deflate data.
    #[error("invalid compressed data")]
    Invalid,
}

impl InflateError {
    /// The close code this error fails the connection with.
    ///
    /// `TooBig` is 1009, as for any message over the limit. For `Invalid`,
    /// RFC 7692 only says the endpoint must _Fail the WebSocket Connection_
    /// and names no code; the frames themselves were well formed (that is
    /// 1002's domain), it is the message's data that is inconsistent with
    /// its type, which is 1007's meaning (RFC 6455 §7.4.1), the same as for
    /// invalid UTF-8. Node's `ws` answers 1007 too.
    pub fn close_code(&self) -> u16 {
        match self {
            InflateError::TooBig { .. } => close_code::MESSAGE_TOO_BIG,
            InflateError::Invalid => close_code::INVALID_PAYLOAD,
        }
    }
}

/// The server's compressor: turns one whole message into the payload of an
/// RSV1 frame (§7.2.1).
///
/// With context takeover the LZ77 window carries over from message to
/// message, so a message like an earlier one compresses to a few bytes;
/// without it the compressor is reset after every message.
pub struct Deflater {
    compress: Compress,
    window_bits: u8,
    level: u32,
    no_context_takeover: bool,
    /// Something was compressed since the last reset. A reset clears the
    /// hash tables (microseconds, several times a 1 KiB message's
    /// compression), so a clean compressor is never reset again.
    dirty: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// A compressor with a `window_bits` LZ77 window (9 to 15; other values
    /// are clamped into that range: 8 becomes 9, which is why
    /// [`negotiate`](super::negotiate) never agrees to 8), at deflate level
    /// `level` (0 to 9, clamped), reset after every message if
    /// `no_context_takeover`.
    pub fn new(window_bits: u8, level: u32, no_context_takeover: bool) -> Self {
        let window_bits = window_bits.clamp(9, 15);
        let level = level.min(9);
        Deflater {
            compress: Compress::new_with_window_bits(
                Compression::new(level),
                false, // raw deflate: no zlib header
                window_bits,
            ),
            window_bits,
            level,
            no_context_takeover,
            dirty: false,
        }
    }

    /// The window the compressor uses.
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// The compression level.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Whether the compressor is reset after every message.
    pub fn no_context_takeover(&self) -> bool {
        self.no_context_takeover
    }

    /// Primes a clean compressor with `dictionary`, the last bytes sent
    /// through it on this connection (at most its window's worth is used):
    /// context takeover without keeping the compressor between messages.
    pub fn prime(&mut self, dictionary: &[u8]) {
        self.reset();
        let keep = dictionary.len().min(1 << self.window_bits);
        // Invariant: a raw deflate stream that was just reset takes a
        // dictionary; zlib refuses one only mid-stream or for a zlib/gzip
        // wrapper.
        self.compress
            .set_dictionary(&dictionary[dictionary.len() - keep..])
            .expect("a reset raw deflate stream takes a dictionary");
        self.dirty = true;
    }

    /// Forgets the window (a no-op on a clean compressor).
    pub(crate) fn reset(&mut self) {
        if self.dirty {
            self.compress.reset();
            self.dirty = false;
        }
    }

    /// Appends the compressed form of the whole message `payload` to `out`:
    /// deflate ending in a sync flush, without the trailing `00 00 ff ff`
    /// (§7.2.1). The result goes out in frames with RSV1 set on the first.
    ///
    /// An empty message compresses to the single byte `00`, the header of an
    /// empty stored block that the receiver's appended trailer completes
    /// (§7.2.3.6). zlib would give nothing at all after an earlier sync
    /// flush, and an empty payload plus the trailer is not a whole block.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        if payload.is_empty() {
            // The window is unchanged and the compressor's bit buffer is
            // empty after the previous sync flush: nothing to reset.
            out.push(0x00);
            return;
        }
        let start = out.len();
        let base = self.compress.total_in();
        loop {
            let used = (self.compress.total_in() - base) as usize;
            let rest = &payload[used..];
            // Room for the rest as it comes (incompressible data grows by a
            // few bytes per block), within a bound: a large message that
            // compresses well should not reserve its own size.
            out.reserve(rest.len().min(64 * 1024) + 64);
            // Invariant: a raw stream with output room, driven in order,
            // cannot fail; zlib's stream errors are misuse only.
            self.compress
                .compress_vec(rest, out, FlushCompress::Sync)
                .expect("deflate with output room cannot fail");
            let done = self.compress.total_in() - base == payload.len() as u64;
            // zlib: the flush is complete once a call returns with output
            // room left over (avail_out != 0).
            if done && out.len() < out.capacity() {
                break;
            }
        }
        if out[start..].ends_with(&TRAILER) {
            out.truncate(out.len() - TRAILER.len());
        }
        self.dirty = true;
        if self.no_context_takeover {
            self.reset();
        }
    }
}

/// The server's decompressor: takes an RSV1 message's payload in pieces, as
/// frames and reads deliver it, and appends the message to a buffer without
/// ever producing more than the message's limit (§7.2.2).
///
/// ```text
/// feed(piece) ─► inflate ≤ INFLATE_STEP at a time ─► produced + step > max_out? ─► TooBig
/// finish()    ─► feed(00 00 ff ff) ─► reset when no context takeover
/// ```
pub struct Inflater {
    decompress: Decompress,
    no_context_takeover: bool,
    /// Bytes produced for the message in progress.
    produced: usize,
    /// The message's data ended with a final (BFINAL) block; what follows
    /// in the message is ignored and the stream restarts with the next one.
    ended: bool,
    /// The message in progress had a byte of payload.
    started: bool,
    /// Input was inflated since the last reset (see `Deflater::dirty`).
    dirty: bool,
    /// The message [`Inflater::finish`] last ended closed its deflate
    /// stream (a BFINAL block): the next one starts with an empty window.
    last_ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("produced", &self.produced)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// A decompressor, reset after every message if `no_context_takeover`.
    ///
    /// It always has a 15-bit (32 KiB) window, whatever
    /// `client_max_window_bits` was agreed: a larger window reads a smaller
    /// one's data (an 8-bit peer included, which zlib could not be given),
    /// zlib-rs allocates the whole 32 KiB window for any size anyway, and
    /// flate2 rebuilds (reallocates) a decompressor of any other size on
    /// every reset, which would cost an allocation per message without
    /// context takeover.
    pub fn new(no_context_takeover: bool) -> Self {
        Inflater {
            decompress: Decompress::new(false), // raw deflate, 15 bits
            no_context_takeover,
            produced: 0,
            ended: false,
            started: false,
            dirty: false,
            last_ended: false,
        }
    }

    /// Primes a clean decompressor with `dictionary`, the last bytes the
    /// peer compressed on this connection (its window): context takeover
    /// without keeping the decompressor between messages.
    pub fn prime(&mut self, dictionary: &[u8]) {
        self.reset();
        let keep = dictionary.len().min(1 << 15);
        // Invariant: a raw inflate stream that was just reset takes a
        // dictionary at any time; zlib refuses one only for a zlib wrapper
        // whose header asked for another.
        self.decompress
            .set_dictionary(&dictionary[dictionary.len() - keep..])
            .expect("a reset raw inflate stream takes a dictionary");
        self.dirty = true;
    }

    /// Whether the message [`Inflater::finish`] last ended closed its
    /// deflate stream with a final block.
    pub fn last_ended(&self) -> bool {
        self.last_ended
    }

    /// Whether the decompressor is reset after every message.
    pub fn no_context_takeover(&self) -> bool {
        self.no_context_takeover
    }

    /// Bytes produced so far for the message in progress.
    pub fn produced(&self) -> usize {
        self.produced
    }

    /// Inflates the next piece of a compressed message and appends what it
    /// yields to `out`. `max_out` is the message's limit: the output of
    /// every `feed` and the `finish` of one message adds up to at most
    /// `max_out` bytes, and the call that would pass it stops at the limit
    /// with [`InflateError::TooBig`], the rest left uninflated. `out` grows
    /// in steps of at most [`INFLATE_STEP`] bytes and never past the limit.
    ///
    /// After an error the connection is to be failed; the decompressor is
    /// reset (the message and the window are gone).
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<(), InflateError> {
        self.started |= !input.is_empty();
        self.dirty |= !input.is_empty();
        let result = self.inflate(input, out, max_out);
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// Ends the message: inflates the `00 00 ff ff` the sender removed
    /// (§7.2.2), with the same limit, then resets the decompressor if there
    /// is no context takeover (or the message ended the deflate stream).
    ///
    /// A message with no payload bytes at all is taken as empty and the
    /// trailer is not inflated: on its own it is no whole block (a proper
    /// empty message is `00`), and some zlib-based senders produce exactly
    /// that for an empty message, so the stream stays in step with them.
    pub fn finish(&mut self, out: &mut Vec<u8>, max_out: usize) -> Result<(), InflateError> {
        if self.started {
            self.feed(&TRAILER, out, max_out)?;
        }
        self.last_ended = self.ended;
        if self.no_context_takeover || self.ended {
            self.reset();
        } else {
            self.produced = 0;
            self.started = false;
        }
        Ok(())
    }

    /// Forgets the window and any message in progress (the memory is
    /// kept): the decompressor as new, for another connection.
    pub(crate) fn reset(&mut self) {
        if self.dirty {
            self.decompress.reset(false);
            self.dirty = false;
        }
        self.produced = 0;
        self.ended = false;
        self.started = false;
    }

    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<(), InflateError> {
        // The first step is sized from the input (deflate rarely expands
        // more than 4x on real traffic), so a short message neither zeroes
        // nor reserves a whole step; full steps double it.
        if input.is_empty() {
            // Every call returns with the decompressor's output drained (it
            // stops early only on a full step, and then goes round again),
            // so without input there is nothing to do.
            return Ok(());
        }
        let mut chunk = input.len().saturating_mul(4).clamp(256, INFLATE_STEP);
        loop {
            if self.ended {
                // §7.2.3.4: data after a final block (the padding byte and
                // the trailer) belongs to no stream.
                return Ok(());
            }
            let room = max_out.saturating_sub(self.produced);
            if room == 0 {
                // At the limit: one more byte of output means too big.
                let mut probe = [0u8; 1];
                let (used, written, status) = self.step(input, &mut probe)?;
                if written > 0 {
                    return Err(InflateError::TooBig { limit: max_out });
                }
                input = &input[used..];
                self.ended = status == Status::StreamEnd;
                if input.is_empty() || self.ended {
                    return Ok(()); // all input in, nothing more to give
                }
                if used == 0 {
                    // No progress with input and room: a stuck stream.
                    return Err(InflateError::Invalid);
                }
                continue;
            }
            let step = chunk.min(room);
            let len = out.len();
            if out.capacity() - len < step {
                // Grow as Vec would (doubling), but never past the limit.
                let target = (out.capacity() * 2).max(len + step).min(len + room);
                out.reserve_exact(target - len);
            }
            out.resize(len + step, 0);
            let result = self.step(input, &mut out[len..]);
            let (used, written, status) = match result {
                Ok(r) => r,
                Err(e) => {
                    out.truncate(len);
                    return Err(e);
                }
            };
            out.truncate(len + written);
            self.produced += written;
            input = &input[used..];
            if status == Status::StreamEnd {
                self.ended = true;
                return Ok(());
            }
            if written == step {
                // A full step: more may be pending even without input.
                chunk = (chunk * 2).min(INFLATE_STEP);
            } else if input.is_empty() {
                // zlib: all input used with output room left over means
                // nothing is pending.
                return Ok(());
            } else if used == 0 && written == 0 {
                // No progress with input and room: a stuck stream (zlib
                // always moves on or fails); never spin on it.
                return Err(InflateError::Invalid);
            }
        }
    }

    /// One decompressor call: (input used, bytes written, status).
    fn step(
        &mut self,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(usize, usize, Status), InflateError> {
        let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
        let status = self
            .decompress
            .decompress(input, output, FlushDecompress::None)
            .map_err(|_| InflateError::Invalid)?;
        let used = (self.decompress.total_in() - in_before) as usize;
        let written = (self.decompress.total_out() - out_before) as usize;
        Ok((used, written, status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(inflater: &mut Inflater, body: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        inflater.feed(body, &mut out, usize::MAX)?;
        inflater.finish(&mut out, usize::MAX)?;
        Ok(out)
    }

    #[test]
    fn close_codes() {
        assert_eq!(InflateError::TooBig { limit: 1 }.close_code(), 1009);
        assert_eq!(InflateError::Invalid.close_code(), 1007);
    }

    #[test]
    fn deflater_windows_are_clamped() {
        assert_eq!(Deflater::new(8, 1, false).window_bits(), 9);
        assert_eq!(Deflater::new(20, 1, false).window_bits(), 15);
    }

    #[test]
    fn hello_round_trip() {
        let mut d = Deflater::new(15, 1, false);
        let mut i = Inflater::new(false);
        let mut body = Vec::new();
        d.compress(b"Hello", &mut body);
        assert_eq!(body, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(inflate_all(&mut i, &body).unwrap(), b"Hello");
    }

    #[test]
    fn limit_exactly_met_is_fine_one_less_is_not() {
        let payload = vec![b'a'; 1000];
        let mut body = Vec::new();
        Deflater::new(15, 1, true).compress(&payload, &mut body);

        let mut i = Inflater::new(true);
        let mut out = Vec::new();
        i.feed(&body, &mut out, 1000).unwrap();
        i.finish(&mut out, 1000).unwrap();
        assert_eq!(out, payload);

        let mut out = Vec::new();
        assert_eq!(
            i.feed(&body, &mut out, 999)
                .and_then(|()| i.finish(&mut out, 999)),
            Err(InflateError::TooBig { limit: 999 })
        );
        assert!(out.len() <= 999);
        // The inflater was reset: the next message inflates from scratch.
        assert_eq!(inflate_all(&mut i, &body).unwrap(), payload);
    }

    #[test]
    fn invalid_data_resets() {
        let mut i = Inflater::new(false);
        // BTYPE 11 is reserved: invalid at the first byte.
        assert_eq!(inflate_all(&mut i, &[0xff]), Err(InflateError::Invalid));
        assert_eq!(i.produced(), 0);
        assert_eq!(
            inflate_all(&mut i, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]).unwrap(),
            b"Hello"
        );
    }
}
