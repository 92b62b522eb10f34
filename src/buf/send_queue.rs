//! One connection's outgoing bytes, waiting for the socket.
//!
//! ```text
//! encoder ──► [tail Vec: small frames coalesced] ─┐
//! broadcast ─► [Arc<[u8]> shared by every queue] ─┴─► io_slices ──► writev ──► consume(n)
//! ```
//!
//! Small frames written in one loop iteration are appended to the same owned
//! chunk, so they leave in one write (the cork); a broadcast frame is encoded
//! once and only its `Arc` is queued per recipient. An empty queue holds no
//! allocation, so an idle connection costs nothing here.

// The deque of later chunks is boxed on purpose: an idle queue (nearly
// every one) pays 8 bytes for it instead of 32, and the boxes are pooled.
#![allow(clippy::box_collection, clippy::vec_box)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

use crate::buf::pool;

/// Owned chunks stop growing past this size so one huge message does not
/// make every later small frame re-allocate a huge buffer.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Shared frames up to this size are copied into the queue's tail rather
/// than queued as a chunk of their own: copying 100 bytes costs less than
/// a chunk does (a reference count up and down, a queue entry, a slice for
/// the write), and a queued notice takes fewer bytes than its chunk entry
/// would. Larger frames stay shared (copies would grow the tail buffer
/// again and again); the flush gathers them (`server/io.rs`).
pub const COPY_SHARED_UP_TO: usize = 256;

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

/// A FIFO of bytes to write, in owned and shared chunks. The first chunk
/// is held inline and later ones in a deque that exists only while there
/// are two or more: the common life of a queue (one chunk in, written, gone)
/// touches no deque at all.
#[derive(Debug, Default)]
pub struct SendQueue {
    /// The chunk being written.
    first: Option<Chunk>,
    /// The chunks behind it (a pooled deque, only while there are any).
    rest: Option<Box<VecDeque<Chunk>>>,
    /// Bytes of `first` already written.
    head_written: usize,
    /// Bytes queued and not yet written.
    len: usize,
}

impl SendQueue {
    /// An empty queue (no allocation).
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes queued and not yet written.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn back_mut(&mut self) -> Option<&mut Chunk> {
        match self.rest.as_deref_mut().and_then(VecDeque::back_mut) {
            Some(c) => Some(c),
            None => self.first.as_mut(),
        }
    }

    /// A buffer to append `additional` bytes to: the tail chunk when it is
    /// owned and small enough, else a new one. Bytes written into it must be
    /// counted with [`SendQueue::commit`].
    pub(crate) fn tail(&mut self, additional: usize) -> &mut Vec<u8> {
        // Appending to a partly written front chunk is fine: `head_written`
        // counts from its start.
        let reuse = matches!(self.back_mut(),
            Some(Chunk::Owned(v)) if v.len() + additional <= COALESCE_LIMIT);
        if !reuse {
            self.push_chunk(Chunk::Owned(pool::take(additional)));
        }
        match self.back_mut() {
            Some(Chunk::Owned(v)) => v,
            // Invariant: the branch above ensured the back chunk is owned.
            _ => unreachable!("tail chunk is owned"),
        }
    }

    /// Counts `n` bytes just appended through [`SendQueue::tail`].
    pub(crate) fn commit(&mut self, n: usize) {
        self.len += n;
    }

    /// Appends a copy of `bytes`.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            // An empty chunk at the front would make `front` return nothing
            // while bytes are queued behind it.
            return;
        }
        self.tail(bytes.len()).extend_from_slice(bytes);
        self.commit(bytes.len());
    }

    /// Puts `bytes` before everything queued. Only valid while nothing of
    /// the queue was written yet (e.g. a handshake response that is decided
    /// after the handler already queued its first frames).
    pub fn push_front(&mut self, bytes: Vec<u8>) {
        assert_eq!(self.head_written, 0, "push_front after a partial write");
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        if let Some(old) = self.first.replace(Chunk::Owned(bytes)) {
            self.rest.get_or_insert_with(take_deque).push_front(old);
        }
    }

    /// Appends bytes shared with other queues (a broadcast frame). A small
    /// frame is copied into the tail instead (see [`COPY_SHARED_UP_TO`]).
    pub fn push_shared(&mut self, bytes: &Arc<[u8]>) {
        if bytes.len() <= COPY_SHARED_UP_TO {
            return self.push(bytes);
        }
        self.len += bytes.len();
        self.push_chunk(Chunk::Shared(Arc::clone(bytes)));
    }

    /// Fills `out` with the queued bytes in order, for a vectored write;
    /// returns how many slices were filled.
    pub fn io_slices<'s>(&'s self, out: &mut [IoSlice<'s>]) -> usize {
        let mut n = 0;
        let front = self.front();
        if !front.is_empty() && n < out.len() {
            out[n] = IoSlice::new(front);
            n += 1;
        }
        for chunk in self.rest.iter().flat_map(|r| r.iter()) {
            if n == out.len() {
                break;
            }
            out[n] = IoSlice::new(chunk.bytes());
            n += 1;
        }
        n
    }

    /// Whether everything queued is one contiguous run ([`SendQueue::front`]).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.rest.as_ref().is_none_or(|r| r.is_empty())
    }

    /// The first contiguous run of queued bytes.
    #[inline]
    pub fn front(&self) -> &[u8] {
        match &self.first {
            Some(c) => &c.bytes()[self.head_written..],
            None => &[],
        }
    }

    /// Drops the first `n` queued bytes after the socket took them.
    pub fn consume(&mut self, mut n: usize) {
        assert!(n <= self.len, "consumed more than was queued");
        self.len -= n;
        while n > 0 {
            // Invariant: n <= len, so a chunk with unwritten bytes exists,
            // and it is `first` (chunks move up as the front one is done).
            let front = self.first.as_ref().expect("queued bytes remain");
            let left = front.bytes().len() - self.head_written;
            if n < left {
                self.head_written += n;
                return;
            }
            n -= left;
            self.head_written = 0;
            let next = self.rest.as_deref_mut().and_then(VecDeque::pop_front);
            if let Some(Chunk::Owned(buf)) = std::mem::replace(&mut self.first, next) {
                pool::give(buf);
            }
        }
        if self.len == 0 {
            // An idle connection keeps no buffer: its chunks went back to
            // the pool above, and the deque goes too.
            if let Some(rest) = self.rest.take() {
                give_deque(rest);
            }
        }
    }

    fn push_chunk(&mut self, chunk: Chunk) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest.get_or_insert_with(take_deque).push_back(chunk);
        }
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        if let Some(Chunk::Owned(buf)) = self.first.take() {
            pool::give(buf);
        }
        if let Some(mut rest) = self.rest.take() {
            for chunk in rest.drain(..) {
                if let Chunk::Owned(buf) = chunk {
                    pool::give(buf);
                }
            }
            give_deque(rest);
        }
        *self = Self::default();
    }

    /// Chunks queued (for tests).
    #[cfg(test)]
    fn chunks(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.as_ref().map_or(0, |r| r.len())
    }
}

thread_local! {
    /// Empty chunk deques for queues that hold two chunks or more: like the
    /// byte buffers in [`crate::buf::pool`], so that a queue going from one
    /// chunk to several and back allocates nothing.
    static DEQUES: RefCell<Vec<Box<VecDeque<Chunk>>>> = const { RefCell::new(Vec::new()) };
}

/// Deques kept at most (each holds an 8-chunk buffer, about 256 bytes):
/// enough for a broadcast burst to a thousand clients to find one each.
const MAX_POOLED_DEQUES: usize = 1024;

fn take_deque() -> Box<VecDeque<Chunk>> {
    DEQUES
        .with(|d| d.borrow_mut().pop())
        .unwrap_or_else(|| Box::new(VecDeque::with_capacity(8)))
}

fn give_deque(deque: Box<VecDeque<Chunk>>) {
    // Invariant: callers only give drained deques.
    debug_assert!(deque.is_empty());
    if deque.capacity() > 64 {
        return;
    }
    DEQUES.with(|d| {
        let mut d = d.borrow_mut();
        if d.len() < MAX_POOLED_DEQUES {
            d.push(deque);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut SendQueue, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !q.is_empty() {
            let mut slices = [IoSlice::new(&[]); 8];
            let n = q.io_slices(&mut slices);
            let mut taken = 0;
            for s in &slices[..n] {
                let room = step - taken;
                let k = s.len().min(room);
                out.extend_from_slice(&s[..k]);
                taken += k;
                if taken == step {
                    break;
                }
            }
            q.consume(taken);
        }
        out
    }

    #[test]
    fn coalesces_small_pushes_and_keeps_order_with_shared() {
        let big: Arc<[u8]> = vec![b'E'; COPY_SHARED_UP_TO + 1].into();
        let mut expected = b"abcd".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"gh");
        let mut q = SendQueue::new();
        q.push(b"ab");
        q.push(b"cd");
        q.push_shared(&big);
        q.push(b"gh");
        assert_eq!(q.len(), expected.len());
        assert_eq!(q.chunks(), 3, "first two pushes share a chunk");
        assert_eq!(
            Arc::strong_count(&big),
            2,
            "a large frame is shared, not copied"
        );
        for step in [1, 2, 3, 7, 1000, 2000] {
            let mut q2 = SendQueue::new();
            q2.push(b"ab");
            q2.push(b"cd");
            q2.push_shared(&big);
            q2.push(b"gh");
            assert_eq!(drain(&mut q2, step), expected);
            assert!(
                q2.first.is_none() && q2.rest.is_none(),
                "drained queue frees its memory"
            );
        }
    }

    #[test]
    fn small_shared_frames_are_copied_into_one_contiguous_run() {
        let small: Arc<[u8]> = Arc::from(&b"EF"[..]);
        let mut q = SendQueue::new();
        q.push(b"ab");
        for _ in 0..16 {
            q.push_shared(&small);
        }
        assert_eq!(Arc::strong_count(&small), 1, "copied, not shared");
        assert!(q.is_contiguous());
        assert_eq!(q.front().len(), 2 + 32);
        assert_eq!(drain(&mut q, 5), [&b"ab"[..], &b"EF".repeat(16)].concat());
    }

    #[test]
    fn large_pushes_do_not_coalesce_past_limit() {
        let mut q = SendQueue::new();
        q.push(&vec![1; COALESCE_LIMIT]);
        q.push(b"x");
        assert_eq!(q.chunks(), 2);
        assert_eq!(q.front().len(), COALESCE_LIMIT);
    }
}
