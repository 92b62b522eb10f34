//! Spare byte buffers, one pool per thread.
//!
//! ```text
//! send queue drained ──┐                       ┌──► next send queue tail
//! message delivered ───┴─► give ──► [pool] ──► take ──► next message assembly
//! ```
//!
//! A connection holds a buffer only while bytes wait in it, so an idle
//! connection holds none; the pool is what makes that free: the echo path
//! takes a buffer that an earlier flush gave back instead of calling the
//! allocator for every message. The loop runs on one thread, so one pool per
//! thread is one pool per loop. It keeps at most [`MAX_BUFFERS`] buffers of
//! at most [`MAX_CAPACITY`] bytes each and [`MAX_POOLED_BYTES`] in all, so
//! what it holds is bounded, yet enough for every client of a busy
//! iteration to find a buffer.

use std::cell::RefCell;

/// Buffers kept at most.
pub const MAX_BUFFERS: usize = 1024;
/// Bytes of capacity kept at most, over all pooled buffers: a fixed cost
/// per loop, a few hundred bytes per connection at most at 10,000 of them.
pub const MAX_POOLED_BYTES: usize = 1024 * 1024;
/// Buffers handed out have at least this capacity, and smaller ones (an
/// exact-size handshake response, say) are not kept: a pooled buffer must
/// be worth its slot.
pub const MIN_CAPACITY: usize = 512;
/// Larger buffers are freed rather than kept (one huge message must not pin
/// memory).
pub const MAX_CAPACITY: usize = 64 * 1024;

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bufs: Vec::new(), bytes: 0 }) };
}

struct Pool {
    bufs: Vec<Vec<u8>>,
    /// Capacity of `bufs`, summed.
    bytes: usize,
}

/// An empty buffer with room for at least `capacity` bytes, from the pool
/// when it has one.
pub fn take(capacity: usize) -> Vec<u8> {
    let mut buf = POOL
        .with(|pool| {
            let mut pool = pool.borrow_mut();
            let buf = pool.bufs.pop()?;
            pool.bytes -= buf.capacity();
            Some(buf)
        })
        .unwrap_or_default();
    buf.reserve(capacity.max(MIN_CAPACITY));
    buf
}

/// Gives a buffer back for reuse (dropped if the pool is full or the buffer
/// is too large to keep).
pub fn give(mut buf: Vec<u8>) {
    if buf.capacity() < MIN_CAPACITY || buf.capacity() > MAX_CAPACITY {
        return;
    }
    buf.clear();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.bufs.len() < MAX_BUFFERS && pool.bytes + buf.capacity() <= MAX_POOLED_BYTES {
            if pool.bufs.capacity() == 0 {
                // The list at its full size once (24 KiB per loop), so that
                // giving a buffer back never allocates, however many a busy
                // iteration returns.
                pool.bufs.reserve_exact(MAX_BUFFERS);
            }
            pool.bytes += buf.capacity();
            pool.bufs.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_and_bounds_what_it_keeps() {
        let buf = take(100);
        let ptr = buf.as_ptr();
        give(buf);
        let again = take(10);
        assert_eq!(again.as_ptr(), ptr, "the buffer came back from the pool");
        assert!(again.is_empty());
        give(Vec::with_capacity(MAX_CAPACITY + 1)); // too large: dropped
        give(Vec::with_capacity(MIN_CAPACITY - 1)); // too small: dropped
        assert_eq!(POOL.with(|p| p.borrow().bufs.len()), 0);
        for _ in 0..MAX_BUFFERS + 10 {
            give(Vec::with_capacity(MIN_CAPACITY));
        }
        assert_eq!(POOL.with(|p| p.borrow().bufs.len()), MAX_BUFFERS);
        for _ in 0..MAX_BUFFERS {
            drop(take(0));
        }
        for _ in 0..MAX_POOLED_BYTES / MAX_CAPACITY + 10 {
            give(Vec::with_capacity(MAX_CAPACITY));
        }
        POOL.with(|p| {
            let p = p.borrow();
            assert!(p.bytes <= MAX_POOLED_BYTES);
            assert_eq!(p.bytes, p.bufs.iter().map(Vec::capacity).sum::<usize>());
        });
    }
}
