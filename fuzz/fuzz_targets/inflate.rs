//! permessage-deflate's decompressor (`wsloop::proto::deflate::Inflater`) fed
//! arbitrary bytes as one or more messages, each in pieces, with a small
//! output limit.
//!
//! Input layout (so that seeds stay readable):
//! - byte 0, flags: bits 0-2 = how many piece-size bytes follow (0: each
//!   message in one piece); bit 3 = no context takeover; bits 4-5 = the
//!   limit (`max_out`): 0, 64, 1000 or 40,000 bytes (past `INFLATE_STEP`);
//! - the piece-size bytes, used in turn: `(b & 0x3f) + 1` bytes, times 64
//!   when bit 6 is set; bit 7 = the message ends after this piece;
//! - the rest: the compressed bytes (the RSV1 frames' payloads, without
//!   the `00 00 ff ff` trailer), cut into messages and pieces as the sizes
//!   say; the last message ends with the input.
//!
//! Asserts: no panic; a message's output never passes `max_out` (and the
//! buffer it goes to is never given more capacity than that); the result
//! is what a plain decompressor of the same backend, given the message's
//! bytes and the trailer in one call, makes of it: `TooBig` exactly when
//! that yields more than `max_out` bytes (the output a prefix of it),
//! `Invalid` only when it fails (the output a prefix of what came before
//! the failure; a message that both fails and passes the limit may get
//! either error), else the same bytes; the reference keeps its window from
//! message to message exactly when the `Inflater` should (context
//! takeover, no error, no final block).
#![no_main]

use flate2::{Decompress, FlushDecompress, Status};
use libfuzzer_sys::fuzz_target;
use wsloop::proto::deflate::{InflateError, Inflater, TRAILER};

const LIMITS: [usize; 4] = [0, 64, 1000, 40_000];

/// What the reference decompressor made of one message.
struct Reference {
    out: Vec<u8>,
    /// The data was invalid (before `out` passed the limit).
    invalid: bool,
    /// A final block ended the deflate stream.
    ended: bool,
}

/// `message` plus the trailer through `d` in one call, with room for one
/// byte more than `max_out` (so "more than the limit" shows).
fn reference(d: &mut Decompress, message: &[u8], max_out: usize) -> Reference {
    let mut input = message.to_vec();
    input.extend_from_slice(&TRAILER);
    let mut out = Vec::with_capacity(max_out + 1);
    let result = d.decompress_vec(&input, &mut out, FlushDecompress::None);
    Reference {
        invalid: result.is_err(),
        ended: matches!(result, Ok(Status::StreamEnd)),
        out,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let n_sizes = usize::from(flags & 0x07).min(rest.len());
    let (sizes, stream) = rest.split_at(n_sizes);
    let no_context_takeover = flags & 0x08 != 0;
    let max_out = LIMITS[usize::from(flags >> 4) & 3];

    // Cut the stream into messages of pieces.
    let mut messages: Vec<Vec<&[u8]>> = vec![Vec::new()];
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let (len, ends) = match sizes.get(i % sizes.len().max(1)) {
            None => (stream.len(), false),
            Some(&b) => {
                let n = usize::from(b & 0x3f) + 1;
                (if b & 0x40 != 0 { n * 64 } else { n }, b & 0x80 != 0)
            }
        };
        i += 1;
        let piece = &stream[at..(at + len).min(stream.len())];
        at += piece.len();
        // Invariant: `messages` starts with one and only grows.
        messages.last_mut().expect("a message").push(piece);
        if ends && at < stream.len() {
            messages.push(Vec::new());
        }
    }

    let mut inflater = Inflater::new(no_context_takeover);
    assert_eq!(inflater.no_context_takeover(), no_context_takeover);
    let mut ideal = Decompress::new(false); // raw deflate, 32 KiB window
    for pieces in &messages {
        let whole: Vec<u8> = pieces.concat();
        let mut out = Vec::new();
        let mut result = Ok(());
        for piece in pieces {
            result = inflater.feed(piece, &mut out, max_out);
            assert!(out.len() <= max_out, "{} bytes out of {max_out}", out.len());
            assert!(out.capacity() <= max_out, "buffer grown past the limit");
            assert_eq!(
                inflater.produced(),
                if result.is_ok() { out.len() } else { 0 }
            );
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = inflater.finish(&mut out, max_out);
            assert!(out.len() <= max_out, "{} bytes out of {max_out}", out.len());
            assert!(out.capacity() <= max_out, "buffer grown past the limit");
        }
        assert_eq!(
            inflater.produced(),
            0,
            "produced not reset after the message"
        );

        if whole.is_empty() {
            // No payload byte: an empty message, the trailer not inflated.
            assert_eq!(result, Ok(()));
            assert!(out.is_empty());
            continue;
        }
        let r = reference(&mut ideal, &whole, max_out);
        let reset = match result {
            Err(InflateError::TooBig { limit }) => {
                assert_eq!(limit, max_out);
                assert!(
                    r.out.len() > max_out,
                    "TooBig, but the message inflates to {} bytes{}",
                    r.out.len(),
                    if r.invalid { " then fails" } else { "" }
                );
                assert!(r.out.starts_with(&out), "output differs before the limit");
                true
            }
            Err(InflateError::Invalid) => {
                // The reference may have passed the limit too: zlib can
                // write the byte over it and fail in the same call, and then
                // either error is right.
                assert!(
                    r.invalid,
                    "Invalid, but the reference inflates {} bytes fine",
                    r.out.len()
                );
                assert!(r.out.starts_with(&out), "output differs before the error");
                true
            }
            Ok(()) => {
                assert!(!r.invalid, "accepted data the reference rejects");
                assert!(r.out.len() <= max_out, "accepted a message over the limit");
                assert_eq!(out, r.out, "output differs from the reference");
                no_context_takeover || r.ended
            }
        };
        if reset {
            ideal.reset(false);
        }
    }
});
