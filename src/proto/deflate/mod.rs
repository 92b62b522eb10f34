//! permessage-deflate (RFC 7692): the negotiation and the per-message codec.
//! No I/O.
//!
//! ```text
//! Sec-WebSocket-Extensions offers ──► negotiate(policy) ──► Agreed ──► response header value
//!                                                             │
//!                        ┌────────────────────────────────────┴──────────────┐
//!                        ▼                                                   ▼
//!   outgoing message ─► Deflater ─► RSV1 body          RSV1 frames' payloads ─► Inflater ─► message
//!       deflate, sync flush, strip 00 00 ff ff           feed piece by piece (≤ max_out), finish:
//!       (reset after it: no context takeover)            append 00 00 ff ff (reset: no takeover)
//! ```
//!
//! [`negotiate`] walks the client's offers in order and accepts the first
//! `permessage-deflate` offer the server can honour (RFC 7692 §5, §7.1);
//! malformed offers are declined, never an error. [`Agreed`] holds the
//! parameters, the exact `Sec-WebSocket-Extensions` answer, and builds the
//! server's [`Deflater`] (compresses what the server sends, with the
//! server's window) and [`Inflater`] (decompresses what the client sends,
//! with a 32 KiB window that reads any client's).
//!
//! The Inflater is the untrusted side: it inflates in bounded steps and
//! stops with [`InflateError::TooBig`] (close code 1009) as soon as a
//! message would pass its limit, so a small "deflate bomb" never turns into
//! a large buffer.
//!
//! The backend is flate2 on zlib-rs (pure Rust): the one flate2 backend
//! that takes raw-deflate window sizes (`new_with_window_bits`), which the
//! `*_max_window_bits` parameters need. zlib cannot compress raw deflate
//! with an 8-bit window, so the server never agrees to
//! `server_max_window_bits=8` (see [`negotiate`]).
//!
//! ```
//! use wsloop::proto::deflate::{negotiate, DeflateConfig};
//! use wsloop::proto::handshake::ExtensionOffer;
//!
//! let mut policy = DeflateConfig::default();
//! policy.enabled = true;
//! let offer = ExtensionOffer {
//!     name: "permessage-deflate",
//!     params: vec![("client_max_window_bits", None)],
//! };
//! let agreed = negotiate(&[offer], &policy).expect("accepted");
//! // A browser's offer: 4 KiB windows each way by default.
//! assert_eq!(
//!     agreed.response(),
//!     "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
//! );
//!
//! let (mut deflater, mut inflater) = (agreed.deflater(), agreed.inflater());
//! let mut body = Vec::new();
//! deflater.compress(b"Hello", &mut body); // the RSV1 frame's payload
//! assert_eq!(body, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]); // RFC 7692 §7.2.3.1
//!
//! let mut message = Vec::new();
//! inflater.feed(&body, &mut message, 1 << 20).unwrap();
//! inflater.finish(&mut message, 1 << 20).unwrap();
//! assert_eq!(message, b"Hello");
//! ```

mod codec;
mod negotiate;
mod session;

pub use codec::{Deflater, InflateError, Inflater, INFLATE_STEP, TRAILER};
pub use negotiate::{negotiate, Agreed, EXTENSION_NAME, MIN_SERVER_WINDOW_BITS};
pub(crate) use session::count_saved;
pub use session::{bytes_saved, compress_shared, Context};

pub use crate::config::DeflateConfig;
