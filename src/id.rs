//! The small types every layer names: [`ConnId`], [`TimerId`] and
//! [`SendStatus`].

/// Identifies one client for its whole life. It carries the slab slot, a
/// generation and the index of the loop that owns it (with
/// [`Loops`](crate::Loops); 0 for a lone server), so an id kept after its
/// client left never reaches the client that later gets the same slot:
/// `send` and `close` refuse it. The generation counts 2^24 clients per
/// loop before it comes round again.
///
/// ```
/// use wsloop::ConnId;
/// let id = ConnId::from_u64(7 | (3 << 32)); // slot 7, generation 3
/// assert_eq!(id.to_string(), "#7.3");
/// assert_eq!(ConnId::from_u64(id.to_u64()), id); // round-trips through timer tags and maps
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    key: u32,
    gen: u32,
}

impl ConnId {
    /// The id of the client in slab slot `key` with generation `gen`: the
    /// one place ids are made.
    pub(crate) fn new(key: usize, gen: u32) -> ConnId {
        ConnId {
            key: key as u32,
            gen,
        }
    }

    /// The index of the loop that owns the client (0 for a lone server).
    pub fn loop_index(self) -> usize {
        (self.gen >> LOOP_SHIFT) as usize
    }

    /// The slab slot.
    pub(crate) fn key(self) -> usize {
        self.key as usize
    }

    /// Whether this id names the client of generation `gen` (the one now
    /// in its slot): the one place the generation is checked.
    pub(crate) fn is(self, gen: u32) -> bool {
        self.gen == gen
    }

    /// The id as one number (for timer tags, maps, logs).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.key)
    }

    /// The id back from [`ConnId::to_u64`].
    pub fn from_u64(v: u64) -> ConnId {
        ConnId {
            key: v as u32,
            gen: (v >> 32) as u32,
        }
    }
}

/// Where a generation keeps its loop's index: the top 8 bits (256 loops).
pub(crate) const LOOP_SHIFT: u32 = 24;
/// The part of a generation that counts clients.
pub(crate) const GEN_MASK: u32 = (1 << LOOP_SHIFT) - 1;

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.loop_index() {
            0 => write!(f, "#{}.{}", self.key, self.gen),
            n => write!(f, "#{n}/{}.{}", self.key, self.gen & GEN_MASK),
        }
    }
}

/// Identifies a handler timer, for [`Ctx::cancel_timer`](crate::Ctx::cancel_timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

/// What became of a message given to [`Ctx::send`](crate::Ctx::send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued with the socket keeping up: it is written when this loop
    /// iteration ends, together with the client's other sends.
    Sent,
    /// Queued behind bytes the socket has not taken yet: the client is
    /// reading slower than the server writes.
    /// [`Ctx::buffered_amount`](crate::Ctx::buffered_amount) says how far
    /// behind it is; past `max_send_queue` it is closed with 1008.
    Queued,
    /// Not sent: the client is gone, closing, or was just closed with 1008
    /// because this message would have taken its queue past
    /// `max_send_queue`.
    Refused,
}
