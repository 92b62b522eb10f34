//! Other event sources in the loop's `Poll`: a child process's pipes, a
//! connection to another service, anything with a descriptor. A handler
//! registers one through [`Ctx::register`](super::Ctx::register) and its
//! readiness comes back as [`Handler::on_source`](super::Handler::on_source),
//! on the loop's thread, between the clients' events: one loop, no thread
//! per source.

/// Identifies an event source registered in the loop. Like a [`ConnId`](crate::ConnId)
/// it carries a generation, so an id kept after its source was deregistered
/// never names the source that later gets the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId {
    pub(super) key: u32,
    pub(super) gen: u32,
}

impl SourceId {
    /// The id as one number (for maps and logs).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.key)
    }
}

impl std::fmt::Display for SourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "source #{}.{}", self.key, self.gen)
    }
}
