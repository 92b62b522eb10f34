//! Incremental UTF-8 validation for text messages (RFC 6455 §5.6, §8.1).
//!
//! ```text
//! fragment bytes ──► [pending ≤3 bytes of a cut sequence] ──► simdutf8 ──► Ok / Invalid
//!                                                                │
//!                               incomplete tail kept as pending ◄┘
//! ```
//!
//! A text message may arrive in many frames and each frame in many reads, so
//! a multi-byte sequence can be cut anywhere. The validator fails fast: the
//! first byte that can never start or continue valid UTF-8 is an error at
//! once (Autobahn 6.4.x), while a sequence that is merely cut short is only an
//! error when the message ends ([`Utf8Validator::finish`]).
//!
//! The fast paths are an ASCII check (word at a time: short ASCII text, the
//! common case, is done before SIMD validation would have set up) and
//! `simdutf8::basic`, which only says yes or no; on a no,
//! `simdutf8::compat` says where and whether the input just ended early.
//! This module also holds the crate's one `unsafe` block: turning bytes that
//! were already validated into `&str` without validating them twice.

/// Text that is not valid UTF-8: the connection must close with 1007.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates one message's bytes as they arrive, across any cuts.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next bytes of the message. Returns `Err` as soon as an
    /// invalid sequence is seen; an incomplete sequence at the end of `bytes`
    /// is remembered and completed by the next call.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            bytes = self.complete_pending(bytes)?;
            if self.pending_len > 0 {
                return Ok(()); // still cut short; `bytes` was all used
            }
        }
        if bytes.is_ascii() || simdutf8::basic::from_utf8(bytes).is_ok() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                // The input ended inside a sequence that is valid so far.
                let tail = &bytes[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the message: a sequence still cut short is invalid.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let cut = self.pending_len > 0;
        self.pending_len = 0;
        if cut {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Whether a multi-byte sequence is waiting for its remaining bytes.
    pub fn is_incomplete(&self) -> bool {
        self.pending_len > 0
    }

    /// Feeds bytes to the pending partial sequence until it completes, fails,
    /// or `bytes` runs out; returns the unused rest of `bytes`.
    fn complete_pending<'b>(&mut self, bytes: &'b [u8]) -> Result<&'b [u8], InvalidUtf8> {
        let have = self.pending_len as usize;
        let take = (4 - have).min(bytes.len());
        let mut tmp = self.pending;
        tmp[have..have + take].copy_from_slice(&bytes[..take]);
        match std::str::from_utf8(&tmp[..have + take]) {
            Ok(_) => {
                self.pending_len = 0;
                Ok(&bytes[take..])
            }
            Err(e) if e.valid_up_to() > 0 => {
                // The pending sequence completed; re-check from its end.
                self.pending_len = 0;
                Ok(&bytes[e.valid_up_to() - have..])
            }
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(_) => {
                self.pending = tmp;
                self.pending_len = (have + take) as u8;
                Ok(&bytes[take..])
            }
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary (close reasons must fit in a control frame).
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Views bytes that the protocol already validated as UTF-8 as `&str`.
///
/// Callers must only pass bytes that passed a [`Utf8Validator`] (fed and
/// finished) or `simdutf8`/`std` validation, or bytes copied from a `&str`;
/// in debug builds this is checked.
pub(crate) fn assume_valid(bytes: &[u8]) -> &str {
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: every caller passes the payload of a text message that the
    // protocol validated in full (Utf8Validator::feed + finish, or a whole
    // frame through simdutf8) before constructing the event that reaches here,
    // or the payload an `EncodedMessage` copied from a `Message::Text(&str)`;
    // the bytes are not modified in between.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked_ok(bytes: &[u8], size: usize) -> bool {
        let mut v = Utf8Validator::new();
        for c in bytes.chunks(size.max(1)) {
            if v.feed(c).is_err() {
                return false;
            }
        }
        v.finish().is_ok()
    }

    #[test]
    fn matches_std_for_every_chunk_size() {
        let samples: &[&[u8]] = &[
            b"",
            b"hello",
            "κόσμε".as_bytes(),
            "𝄞 music €".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xf8\x88\x80\x80\x80",
            b"\xfc\x84\x80\x80\x80\x80",
            b"\xed\xa0\x80",
            b"\xed\xbf\xbf",
            b"\xef\xbf\xbf",
            b"\xf0\x9f\x98",
            b"abc\xe2\x82",
            b"\x80",
            b"\xff",
        ];
        for s in samples {
            let expected = std::str::from_utf8(s).is_ok();
            for size in 1..=s.len().max(1) {
                assert_eq!(chunked_ok(s, size), expected, "{s:x?} in chunks of {size}");
            }
        }
    }

    #[test]
    fn fails_fast_on_first_bad_byte() {
        // U+D800 is a surrogate: ED A0 is already impossible, before the 3rd byte.
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"ok \xed").is_ok());
        assert_eq!(v.feed(b"\xa0"), Err(InvalidUtf8));
        // Code points above U+10FFFF: F4 90 fails at the second byte.
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xf4").is_ok());
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
        // A 5-byte form's lead byte can never be valid.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xf8"), Err(InvalidUtf8));
    }

    #[test]
    fn cut_sequence_is_an_error_only_at_the_end() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xf0\x9f").is_ok());
        assert!(v.is_incomplete());
        assert_eq!(v.finish(), Err(InvalidUtf8));
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xf0\x9f").is_ok());
        assert!(v.feed(b"\x98").is_ok());
        assert!(v.feed(b"\x80 done").is_ok());
        assert_eq!(v.finish(), Ok(()));
    }
}
