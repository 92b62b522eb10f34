//! The one way bytes leave a session or a connection: [`Transmit`], a sink
//! that takes a prefix of some slices (a socket, a TLS connection's
//! plaintext side, a test's `Vec<u8>`), and the drain loop over a send queue.

use std::io::{self, IoSlice};

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
    let both = [IoSlice::new(head), IoSlice::new(payload)];
    // One slice alone when there is no payload (shared frames written as
    // they are): a plain write, not a vectored or gathered one.
    let bufs = if payload.is_empty() {
        &both[..1]
    } else {
        &both[..]
    };
    let written = loop {
        match out.transmit(bufs, false) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break 0,
        }
    };
    if written < head.len() {
        queue.push(&head[written..]);
        queue.push(payload);
    } else {
        queue.push(&payload[written - head.len()..]);
    }
}
