//! A small, slow raw-deflate decoder (RFC 1951), written after the manner
//! of zlib's `contrib/puff`, that checks what the client's zlib-rs
//! decompressor does not: the window. zlib-rs keeps a 32 KiB window
//! whatever window size it is given, so a server that agreed to
//! `server_max_window_bits=9` and then referred 1000 bytes back would still
//! be decoded. Here every back reference must reach at most `2^bits` bytes
//! back (RFC 7692 §7.1.2.1), and only into the message itself and the
//! history the caller passes (the earlier messages, with context takeover;
//! nothing without it).

/// What one message decoded to.
#[derive(Debug)]
pub struct Decoded {
    /// The message's bytes.
    pub data: Vec<u8>,
    /// The longest back reference seen.
    pub max_distance: usize,
    /// Back references that reached before the message, into the history.
    pub into_history: usize,
    /// The data ended with a final (BFINAL) block.
    pub last: bool,
}

/// Decodes one message: `input` is the message's deflate data with the
/// `00 00 ff ff` trailer appended (RFC 7692 §7.2.2), `history` what the
/// decoder's window holds from earlier messages, `window_bits` the largest
/// window allowed. The data must end on a block boundary: after an empty
/// stored block (the sync flush), or with a final block.
pub fn inflate(history: &[u8], window_bits: u8, input: &[u8]) -> Result<Decoded, String> {
    let mut s = State {
        input,
        pos: 0,
        bitbuf: 0,
        bitcnt: 0,
        out: history.to_vec(),
        start: history.len(),
        window: 1 << window_bits,
        max_distance: 0,
        into_history: 0,
    };
    let mut last = false;
    // Blocks until a final one, or until the data ends on a byte boundary.
    while !(last || s.pos == input.len() && s.bitcnt == 0) {
        last = s.bits(1)? == 1;
        match s.bits(2)? {
            0 => s.stored()?,
            1 => s.codes(&FIXED.0, &FIXED.1)?,
            2 => s.dynamic()?,
            _ => return Err("reserved block type 3".into()),
        }
    }
    if !last && s.bitcnt != 0 {
        return Err("the data does not end on a block boundary".into());
    }
    Ok(Decoded {
        data: s.out.split_off(s.start),
        max_distance: s.max_distance,
        into_history: s.into_history,
        last,
    })
}

struct State<'a> {
    input: &'a [u8],
    pos: usize,
    bitbuf: u64,
    bitcnt: u32,
    /// History, then the message's output.
    out: Vec<u8>,
    start: usize,
    window: usize,
    max_distance: usize,
    into_history: usize,
}

/// A canonical Huffman code: codes per length, symbols in code order.
struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    /// The code for these code lengths (0: symbol unused). Over-subscribed
    /// codes are an error; incomplete ones are allowed, as zlib allows a
    /// single distance code.
    fn new(lengths: &[u8]) -> Result<Huffman, String> {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[l as usize] += 1;
        }
        let mut left: i32 = 1;
        for &c in &count[1..] {
            left = (left << 1) - i32::from(c);
            if left < 0 {
                return Err("over-subscribed Huffman code".into());
            }
        }
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[offs[l as usize] as usize] = sym as u16;
                offs[l as usize] += 1;
            }
        }
        Ok(Huffman { count, symbol })
    }
}

const LBASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEXT: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DBASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DEXT: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// The fixed literal/length and distance codes (RFC 1951 §3.2.6).
static FIXED: std::sync::LazyLock<(Huffman, Huffman)> = std::sync::LazyLock::new(|| {
    let mut lengths = [0u8; 288];
    for (i, l) in lengths.iter_mut().enumerate() {
        *l = match i {
            0..=143 => 8,
            144..=255 => 9,
            256..=279 => 7,
            _ => 8,
        };
    }
    let lit = Huffman::new(&lengths).expect("fixed literal code");
    let dist = Huffman::new(&[5u8; 30]).expect("fixed distance code");
    (lit, dist)
});

impl State<'_> {
    fn bits(&mut self, need: u32) -> Result<u32, String> {
        while self.bitcnt < need {
            let Some(&b) = self.input.get(self.pos) else {
                return Err("the data ends inside a block".into());
            };
            self.pos += 1;
            self.bitbuf |= u64::from(b) << self.bitcnt;
            self.bitcnt += 8;
        }
        let v = (self.bitbuf & ((1u64 << need) - 1)) as u32;
        self.bitbuf >>= need;
        self.bitcnt -= need;
        Ok(v)
    }

    fn stored(&mut self) -> Result<(), String> {
        // Skip to the byte boundary.
        self.bitbuf = 0;
        self.bitcnt = 0;
        let Some(head) = self.input.get(self.pos..self.pos + 4) else {
            return Err("the data ends inside a stored block's header".into());
        };
        let len = u16::from_le_bytes([head[0], head[1]]);
        let nlen = u16::from_le_bytes([head[2], head[3]]);
        if len != !nlen {
            return Err(format!("stored block LEN {len:#x} NLEN {nlen:#x}"));
        }
        self.pos += 4;
        let Some(data) = self.input.get(self.pos..self.pos + len as usize) else {
            return Err("the data ends inside a stored block".into());
        };
        self.out.extend_from_slice(data);
        self.pos += len as usize;
        Ok(())
    }

    fn decode(&mut self, h: &Huffman) -> Result<u16, String> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= self.bits(1)? as i32;
            let count = i32::from(h.count[len]);
            if code - count < first {
                return Ok(h.symbol[(index + (code - first)) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("no Huffman code matches".into())
    }

    fn codes(&mut self, lit: &Huffman, dist: &Huffman) -> Result<(), String> {
        loop {
            let sym = self.decode(lit)? as usize;
            match sym {
                0..=255 => self.out.push(sym as u8),
                256 => return Ok(()),
                _ => {
                    let i = sym - 257;
                    if i >= 29 {
                        return Err(format!("invalid length symbol {sym}"));
                    }
                    let len = LBASE[i] as usize + self.bits(u32::from(LEXT[i]))? as usize;
                    let d = self.decode(dist)? as usize;
                    if d >= 30 {
                        return Err(format!("invalid distance symbol {d}"));
                    }
                    let distance = DBASE[d] as usize + self.bits(u32::from(DEXT[d]))? as usize;
                    if distance > self.window {
                        return Err(format!(
                            "a back reference of {distance} bytes, beyond the {}-byte window",
                            self.window
                        ));
                    }
                    if distance > self.out.len() {
                        return Err(format!(
                            "a back reference of {distance} bytes, before the start of the data \
                             ({} bytes of history, {} of this message)",
                            self.start,
                            self.out.len() - self.start
                        ));
                    }
                    if distance > self.out.len() - self.start {
                        self.into_history += 1;
                    }
                    self.max_distance = self.max_distance.max(distance);
                    let from = self.out.len() - distance;
                    for k in 0..len {
                        let b = self.out[from + k];
                        self.out.push(b);
                    }
                }
            }
        }
    }

    fn dynamic(&mut self) -> Result<(), String> {
        const ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];
        let nlen = self.bits(5)? as usize + 257;
        let ndist = self.bits(5)? as usize + 1;
        let ncode = self.bits(4)? as usize + 4;
        if nlen > 286 || ndist > 30 {
            return Err("too many length or distance codes".into());
        }
        let mut lengths = [0u8; 320];
        for &o in &ORDER[..ncode] {
            lengths[o] = self.bits(3)? as u8;
        }
        let lencode = Huffman::new(&lengths[..19])?;
        let mut lengths = [0u8; 320];
        let mut i = 0;
        while i < nlen + ndist {
            let sym = self.decode(&lencode)?;
            let (value, repeat) = match sym {
                0..=15 => (sym as u8, 1),
                16 => {
                    if i == 0 {
                        return Err("a repeat with no length before it".into());
                    }
                    (lengths[i - 1], 3 + self.bits(2)? as usize)
                }
                17 => (0, 3 + self.bits(3)? as usize),
                _ => (0, 11 + self.bits(7)? as usize),
            };
            if i + repeat > nlen + ndist {
                return Err("too many code lengths".into());
            }
            lengths[i..i + repeat].fill(value);
            i += repeat;
        }
        if lengths[256] == 0 {
            return Err("no end-of-block code".into());
        }
        let lit = Huffman::new(&lengths[..nlen])?;
        let dist = Huffman::new(&lengths[nlen..nlen + ndist])?;
        self.codes(&lit, &dist)
    }
}

/// The checker itself: it reads what zlib writes, and refuses exactly the
/// references the window or the history does not allow.
#[test]
fn puff_checks_windows_and_history() {
    use flate2::{Compress, Compression, FlushCompress};

    fn deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() * 2 + 64);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out
    }
    let mut rng = fastrand::Rng::with_seed(7);
    let mut noise = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.u8(..)).collect() };
    // A 700-byte block again 1000 bytes later.
    let block = noise(700);
    let data = [block.clone(), noise(300), block, noise(50)].concat();

    let wide = deflate(
        &mut Compress::new_with_window_bits(Compression::new(6), false, 15),
        &data,
    );
    let ok = inflate(&[], 15, &wide).unwrap();
    assert!(ok.data == data && !ok.last);
    assert!(ok.max_distance >= 1000, "{}", ok.max_distance);
    let err = inflate(&[], 9, &wide).unwrap_err();
    assert!(err.contains("beyond the 512-byte window"), "{err}");

    let narrow = deflate(
        &mut Compress::new_with_window_bits(Compression::new(6), false, 9),
        &data,
    );
    let ok = inflate(&[], 9, &narrow).unwrap();
    assert!(ok.data == data && ok.max_distance <= 512);

    // The second message of a stream refers into the first.
    let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
    let first = deflate(&mut c, &data);
    let second = deflate(&mut c, &data);
    assert!(inflate(&[], 15, &first).unwrap().into_history == 0);
    let err = inflate(&[], 15, &second).unwrap_err();
    assert!(err.contains("before the start"), "{err}");
    let ok = inflate(&data, 15, &second).unwrap();
    assert!(ok.data == data && ok.into_history > 0);

    // Stored and final blocks; data cut short.
    assert_eq!(
        inflate(&[], 15, &[0x00, 0x00, 0x00, 0xff, 0xff])
            .unwrap()
            .data,
        b""
    );
    let hello = inflate(&[], 15, &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]).unwrap();
    assert!(hello.data == b"Hello" && hello.last);
    assert!(inflate(&[], 15, &first[..first.len() - 3]).is_err());
}
