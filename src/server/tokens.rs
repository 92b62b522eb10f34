//! How the server's token range is laid out: the listener, the waker, then
//! clients and other event sources interleaved (a client on every even
//! slot, a source on every odd one), so neither needs a range of its own
//! and a host that embeds the server reserves one range for both.
//!
//! ```text
//! start+0 listener   start+1 waker   start+2 client 0   start+3 source 0   start+4 client 1 ...
//! ```

use std::ops::Range;

use mio::Token;

const LISTENER: usize = 0;
const WAKER: usize = 1;
const FIRST: usize = 2;

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Listener,
    Waker,
    Client(usize),
    Source(usize),
    /// Not the server's.
    Foreign,
}

/// The server's token range.
#[derive(Debug, Clone)]
pub(super) struct Tokens {
    range: Range<usize>,
}

impl Tokens {
    /// The least a range must hold: the listener, the waker, one client.
    pub(super) const MIN: usize = FIRST + 1;

    #[inline]
    pub(super) fn new(range: Range<usize>) -> Self {
        Tokens { range }
    }

    #[inline]
    pub(super) fn owns(&self, token: Token) -> bool {
        self.range.contains(&token.0)
    }

    #[inline]
    pub(super) fn listener(&self) -> Token {
        Token(self.range.start + LISTENER)
    }

    #[inline]
    pub(super) fn waker(&self) -> Token {
        Token(self.range.start + WAKER)
    }

    #[inline]
    pub(super) fn client(&self, key: usize) -> Token {
        Token(self.range.start + FIRST + 2 * key)
    }

    #[inline]
    pub(super) fn source(&self, key: usize) -> Token {
        Token(self.range.start + FIRST + 2 * key + 1)
    }

    /// How many client slots the range has.
    #[inline]
    pub(super) fn clients(&self) -> usize {
        (self.range.len().saturating_sub(FIRST)).div_ceil(2)
    }

    /// How many source slots the range has.
    #[inline]
    pub(super) fn sources(&self) -> usize {
        self.range.len().saturating_sub(FIRST) / 2
    }

    #[inline]
    pub(super) fn slot(&self, token: Token) -> Slot {
        if !self.owns(token) {
            return Slot::Foreign;
        }
        match token.0 - self.range.start {
            LISTENER => Slot::Listener,
            WAKER => Slot::Waker,
            n if (n - FIRST) % 2 == 0 => Slot::Client((n - FIRST) / 2),
            n => Slot::Source((n - FIRST) / 2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_and_sources_interleave_within_the_range() {
        let t = Tokens::new(100..107);
        assert_eq!((t.listener(), t.waker()), (Token(100), Token(101)));
        assert_eq!((t.clients(), t.sources()), (3, 2));
        for key in 0..3 {
            assert_eq!(t.slot(t.client(key)), Slot::Client(key));
        }
        for key in 0..2 {
            assert_eq!(t.slot(t.source(key)), Slot::Source(key));
        }
        assert_eq!(t.slot(Token(107)), Slot::Foreign);
        assert_eq!(t.slot(Token(99)), Slot::Foreign);
    }
}
