//! The one way bytes leave a session or a connection: [`Transmit`], a sink
//! that takes a prefix of some slices (a socket, a TLS connection's
//! plaintext side, a test's `Vec<u8>`), and the drain loop over a send queue.

use std::io::{self, IoSlice};
use std::sync::Arc;

use crate::buf::SendQueue;

/// Slices per vectored write.
const MAX_IOVECS: usize = 16;

/// Where a session's (or a connection's) bytes go.
///
/// Every [`std::io::Write`] is one (`write_vectored`, `last` ignored), so a
/// `Vec<u8>`, a `TcpStream` or a TLS stream can be passed as is. The server
/// implements it for its sockets to send a connection's last bytes with its
/// FIN in one segment.
pub trait Transmit {
    /// Writes a prefix of `bufs`, in order, and returns how many bytes it
    /// took. `Ok(0)` for non-empty input means the peer can take no more
    /// (the connection is gone); `WouldBlock` means "not now". `last` says
    /// that these are the last bytes the connection will ever send.
    fn transmit(&mut self, bufs: &[IoSlice<'_>], last: bool) -> io::Result<usize>;
}

impl<W: io::Write + ?Sized> Transmit for W {
    fn transmit(&mut self, bufs: &[IoSlice<'_>], _last: bool) -> io::Result<usize> {
        self.write_vectored(bufs)
    }
}

/// Writes what `queue` holds to `out` until it is empty or `out` would
/// block. `Ok(true)`: the queue is empty. A peer that takes nothing
/// (`Ok(0)`) is an error: `WriteZero`.
#[inline]
pub(crate) fn drain(
    queue: &mut SendQueue,
    out: &mut (impl Transmit + ?Sized),
    last: bool,
) -> io::Result<bool> {
    while !queue.is_empty() {
        let result = if queue.is_contiguous() {
            // The common case (one coalesced chunk): no iovec array.
            out.transmit(&[IoSlice::new(queue.front())], last)
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = queue.io_slices(&mut slices);
            out.transmit(&slices[..n], false)
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => queue.consume(written),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Writes `head` and `payload` to `out` in one call where it takes them,
/// and queues what it did not take. A write error is not reported here:
/// the bytes stay queued and the next [`drain`] finds the error, so it is
/// handled in one place.
pub(crate) fn write_through(
    queue: &mut SendQueue,
    out: &mut (impl Transmit + ?Sized),
    head: &[u8],
    payload: &[u8],
) {
    let written = write_once(out, &[IoSlice::new(head), IoSlice::new(payload)]);
    if written < head.len() {
        queue.push(&head[written..]);
        queue.push(payload);
    } else {
        queue.push(&payload[written - head.len()..]);
    }
}

/// [`write_through`] for frames shared with other queues, into an empty
/// `queue`: what the socket does not take is queued as the shared chunk
/// itself, past what was written, so a batch that a thousand slow members
/// leave unwritten is held once, not copied per member.
pub(crate) fn write_shared_through(
    queue: &mut SendQueue,
    out: &mut (impl Transmit + ?Sized),
    frames: &Arc<[u8]>,
) {
    debug_assert!(queue.is_empty(), "written through ahead of queued bytes");
    let written = write_once(out, &[IoSlice::new(frames)]);
    if written < frames.len() {
        queue.push_shared(frames);
        queue.consume(written);
    }
}

/// One write of `bufs`, retried when interrupted; 0 on an error (the
/// caller queues what was not taken, and the next [`drain`] finds it).
fn write_once(out: &mut (impl Transmit + ?Sized), bufs: &[IoSlice<'_>]) -> usize {
    loop {
        match out.transmit(bufs, false) {
            Ok(n) => return n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer whose socket takes `room` more bytes, then would block (or
    /// fails, when `broken`).
    struct Peer {
        took: Vec<u8>,
        room: usize,
        broken: bool,
    }

    impl io::Write for Peer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.broken {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let before = self.took.len();
            for b in bufs {
                let n = b.len().min(self.room - (self.took.len() - before));
                self.took.extend_from_slice(&b[..n]);
            }
            let n = self.took.len() - before;
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn peer(room: usize) -> Peer {
        Peer {
            took: Vec::new(),
            room,
            broken: false,
        }
    }

    /// Drains what `queue` holds to a peer with room for all of it.
    fn rest(queue: &mut SendQueue) -> Vec<u8> {
        let mut all = peer(usize::MAX);
        assert!(drain(queue, &mut all, false).unwrap());
        all.took
    }

    fn frames(len: usize) -> Arc<[u8]> {
        (0..len).map(|i| i as u8).collect::<Vec<u8>>().into()
    }

    #[test]
    fn shared_frames_the_socket_partly_takes_stay_shared_not_copied() {
        let f = frames(10_000);
        let mut queue = SendQueue::new();
        let mut out = peer(4_000);
        write_shared_through(&mut queue, &mut out, &f);
        assert_eq!(queue.len(), 6_000);
        // The queue holds the chunk itself: one more owner, no copy.
        assert_eq!(Arc::strong_count(&f), 2);
        out.took.extend(rest(&mut queue));
        assert_eq!(out.took, &f[..], "in order, each byte once");
        assert_eq!(Arc::strong_count(&f), 1);
    }

    #[test]
    fn shared_frames_taken_whole_leave_nothing_queued() {
        let f = frames(10_000);
        let mut queue = SendQueue::new();
        let mut out = peer(20_000);
        write_shared_through(&mut queue, &mut out, &f);
        assert!(queue.is_empty());
        assert_eq!((out.took.as_slice(), Arc::strong_count(&f)), (&f[..], 1));
    }

    #[test]
    fn shared_frames_a_failed_write_queues_whole_for_the_drain_to_report() {
        for (room, broken) in [(0, false), (0, true)] {
            let f = frames(300);
            let mut queue = SendQueue::new();
            let mut out = Peer {
                took: Vec::new(),
                room,
                broken,
            };
            write_shared_through(&mut queue, &mut out, &f);
            assert_eq!(queue.len(), 300);
            if broken {
                assert_eq!(
                    drain(&mut queue, &mut out, false).unwrap_err().kind(),
                    io::ErrorKind::BrokenPipe
                );
            } else {
                assert_eq!(rest(&mut queue), &f[..]);
            }
        }
    }

    #[test]
    fn small_shared_frames_partly_taken_keep_their_order() {
        // At or under COPY_SHARED_UP_TO the rest is copied: no owner kept.
        let f = frames(200);
        let mut queue = SendQueue::new();
        let mut out = peer(50);
        write_shared_through(&mut queue, &mut out, &f);
        assert_eq!(Arc::strong_count(&f), 1);
        out.took.extend(rest(&mut queue));
        assert_eq!(out.took, &f[..]);
    }

    #[test]
    fn write_through_queues_what_the_head_and_payload_left() {
        for room in [0, 3, 10, 25] {
            let mut queue = SendQueue::new();
            let mut out = peer(room);
            write_through(&mut queue, &mut out, b"0123456789", b"abcdefghij");
            assert_eq!(out.took.len() + queue.len(), 20, "room {room}");
            out.took.extend(rest(&mut queue));
            assert_eq!(out.took, b"0123456789abcdefghij", "room {room}");
        }
    }
}
