//! Section 10, auto-fragmentation: a 64 KiB text message sent in the
//! 1300-byte frames of an auto-fragmenting client (50 full frames and one of
//! 536 bytes) is echoed whole.

use crate::client::{fragments, Chop, TEXT};
use crate::open;

#[test]
fn case_10_1_1() {
    let payload = vec![b'*'; 65536];
    let frames = fragments(TEXT, &payload, 1300);
    assert_eq!(frames.len(), 51);
    assert_eq!(frames[50].payload.len(), 65536 % 1300);
    let mut c = open();
    c.send(&frames, Chop::Whole);
    c.expect_text(&payload);
    c.close_cleanly();
}
