//! The frame-header decoder on arbitrary bytes.
//!
//! Asserts:
//! - `decode_header` never panics; `Complete` uses 2, 4, 6, 8, 10 or 14
//!   bytes (as the length form and mask bit say), within the input, and
//!   every shorter prefix of those bytes is `Partial`;
//! - `LengthTopBit` only for a 64-bit length with its top bit set;
//! - `encode` of a decoded header decodes to the same header, and is the
//!   input's own bytes when the input used the minimal length form;
//! - `check` never panics for either role and any `allowed_rsv`, and
//!   accepts exactly the headers RFC 6455 §5 allows (re-derived here);
//! - `close_code::is_valid` matches the §7.4 table on the first two bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsloop::close_code;
use wsloop::proto::frame::{decode_header, Decoded, FrameError, FrameHeader, MAX_HEADER_LEN};
use wsloop::proto::{OpCode, Role};

fn check_rules(h: &FrameHeader, role: Role, allowed_rsv: u8) {
    let got = h.check(role, allowed_rsv);
    let masked_ok = match role {
        Role::Server => h.mask.is_some(),
        Role::Client => h.mask.is_none(),
    };
    let op = match h.opcode {
        0 => Some(OpCode::Continuation),
        1 => Some(OpCode::Text),
        2 => Some(OpCode::Binary),
        8 => Some(OpCode::Close),
        9 => Some(OpCode::Ping),
        10 => Some(OpCode::Pong),
        _ => None,
    };
    let control = h.opcode & 0x8 != 0;
    let valid = masked_ok
        && h.rsv & !allowed_rsv == 0
        && op.is_some()
        && (!control || (h.len <= 125 && h.fin));
    match got {
        Ok(o) => {
            assert!(valid, "check accepted {h:?} for {role:?}/{allowed_rsv}");
            assert_eq!(Some(o), op);
            assert_eq!(o.is_control(), control);
            assert_eq!(OpCode::from_u8(o.as_u8()), Some(o));
        }
        Err(e) => {
            assert!(
                !valid,
                "check refused {h:?} for {role:?}/{allowed_rsv}: {e}"
            );
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() >= 2 {
        let code = u16::from_be_bytes([data[0], data[1]]);
        let legal = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        assert_eq!(close_code::is_valid(code), legal, "close code {code}");
    }
    let (h, n) = match decode_header(data) {
        Ok(Decoded::Partial) => {
            // Partial only when the header's bytes are not all there.
            if data.len() >= 2 {
                let ext = match data[1] & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                let need = 2 + ext + if data[1] & 0x80 != 0 { 4 } else { 0 };
                assert!(
                    data.len() < need,
                    "Partial with {} of {need} bytes",
                    data.len()
                );
            }
            return;
        }
        Err(e) => {
            assert_eq!(e, FrameError::LengthTopBit);
            assert!(data.len() >= 10 && data[1] & 0x7f == 127 && data[2] & 0x80 != 0);
            return;
        }
        Ok(Decoded::Complete(h, n)) => (h, n),
    };
    let ext = match data[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let expected = 2 + ext + if h.mask.is_some() { 4 } else { 0 };
    assert_eq!(n, expected, "header length");
    assert!(n <= data.len() && n <= MAX_HEADER_LEN);
    assert_eq!(h.fin, data[0] & 0x80 != 0);
    assert_eq!(h.rsv, (data[0] >> 4) & 0x7);
    assert_eq!(h.opcode, data[0] & 0x0f);
    assert_eq!(h.mask.is_some(), data[1] & 0x80 != 0);
    assert!(h.len >> 63 == 0);
    for cut in 0..n {
        assert_eq!(
            decode_header(&data[..cut]),
            Ok(Decoded::Partial),
            "prefix {cut}"
        );
    }

    let mut out = [0u8; MAX_HEADER_LEN];
    let m = h.encode(&mut out);
    assert_eq!(
        decode_header(&out[..m]),
        Ok(Decoded::Complete(h, m)),
        "re-decode"
    );
    let minimal = match h.len {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    assert_eq!(
        m,
        2 + minimal + if h.mask.is_some() { 4 } else { 0 },
        "minimal form"
    );
    if ext == minimal {
        assert_eq!(&out[..m], &data[..n], "re-encoding changed the bytes");
    }

    for role in [Role::Server, Role::Client] {
        for allowed_rsv in [0, 0b100, 0b111] {
            check_rules(&h, role, allowed_rsv);
        }
    }
});
