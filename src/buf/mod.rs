//! Buffers the loop and the connections share: the send queue and the
//! per-thread buffer pool. Internal: public only so that tests, benches and
//! fuzz targets can reach them (`#[doc(hidden)]` at the crate root).

pub mod pool;
pub mod send_queue;

pub use send_queue::SendQueue;
