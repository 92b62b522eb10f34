//! What the loop counts about itself, for operators (and, later, the
//! Prometheus endpoint).

/// A snapshot of the server's counters ([`Server::stats`](crate::Server::stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Clients connected (handshaking, open or closing).
    pub clients: usize,
    /// Memory the open connections' permessage-deflate state may hold
    /// between messages, summed (see `DeflateConfig::max_memory`).
    pub deflate_memory: usize,
    /// Upgrades answered without permessage-deflate because their
    /// agreement would have passed `DeflateConfig::max_memory`.
    pub deflate_declined: u64,
    /// Topics with at least one subscriber on this loop.
    pub topics: usize,
    /// Publishes for other linked loops dropped because those loops took
    /// none for too long (see [`Loops`](crate::Loops)).
    pub hub_dropped: u64,
    /// The Redis backplane's link and counters, when there is one.
    #[cfg(feature = "redis")]
    pub redis: Option<super::RedisStats>,
}
