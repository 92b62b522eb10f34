//! Payload masking (RFC 6455 §5.3).
//!
//! ```text
//! masked byte i  =  payload byte i  XOR  mask[(offset + i) % 4]
//! ```
//!
//! A frame's payload may arrive in several reads, so every call takes the
//! position within the mask at which `buf` starts and returns the position
//! after it. [`apply_mask`] works a 32- and 8-byte word at a time over the
//! buffer in place (the compiler turns the word loop into SIMD on x86_64 and
//! aarch64); [`apply_mask_plain`] is the byte-wise definition, kept as the
//! reference the fast path is tested against.

/// XORs `buf` in place with `mask`, starting at position `offset` (0..4) of
/// the mask. Returns the mask position for the byte after `buf`.
///
/// ```
/// let mut data = *b"Hello";
/// let mask = [0x37, 0xfa, 0x21, 0x3d];
/// let next = wsloop::proto::mask::apply_mask(&mut data, mask, 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// assert_eq!(next, 1);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) -> usize {
    let offset = offset & 3;
    // Rotate the mask so that it lines up with buf[0]; from then on every
    // word starts at mask position 0.
    let m = rotated(mask, offset);
    let m64 = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for word in chunk.chunks_exact_mut(8) {
            xor_word(word, m64);
        }
    }
    let rest = chunks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        xor_word(word, m64);
    }
    let tail = words.into_remainder();
    for (i, b) in tail.iter_mut().enumerate() {
        *b ^= m[i & 3];
    }
    (offset + buf.len()) & 3
}

#[inline(always)]
fn xor_word(word: &mut [u8], m64: u64) {
    // Invariant: callers pass chunks_exact_mut(8) items, so the conversion
    // to [u8; 8] cannot fail.
    let w: [u8; 8] = (*word).try_into().expect("8-byte chunk");
    word.copy_from_slice(&(u64::from_ne_bytes(w) ^ m64).to_ne_bytes());
}

fn rotated(mask: [u8; 4], offset: usize) -> [u8; 4] {
    [
        mask[offset & 3],
        mask[(offset + 1) & 3],
        mask[(offset + 2) & 3],
        mask[(offset + 3) & 3],
    ]
}

/// The byte-at-a-time definition of [`apply_mask`]: same inputs, same result.
pub fn apply_mask_plain(buf: &mut [u8], mask: [u8; 4], offset: usize) -> usize {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[(offset + i) & 3];
    }
    (offset + buf.len()) & 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example() {
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    /// Differential test: every length up to 300 (covering the 32-byte,
    /// 8-byte and tail paths), every mask offset, every start alignment.
    #[test]
    fn fast_matches_plain_across_lengths_offsets_alignments() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let source: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
        for align in 0..8 {
            for len in 0..300 {
                for offset in 0..4 {
                    let mut a = source[align..align + len].to_vec();
                    let mut b = a.clone();
                    let na = apply_mask(&mut a, mask, offset);
                    let nb = apply_mask_plain(&mut b, mask, offset);
                    assert_eq!(a, b, "len {len} offset {offset} align {align}");
                    assert_eq!(na, nb);
                }
            }
        }
    }

    #[test]
    fn split_application_equals_whole() {
        let mask = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        for cut in 0..data.len() {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            let next = apply_mask(a, mask, 0);
            apply_mask(b, mask, next);
            assert_eq!(parts, whole, "cut at {cut}");
        }
    }
}
