//! One connection to Redis as a state machine without I/O: commands out
//! as bytes ([`RedisLink::pending`]), replies and pushed messages in
//! ([`RedisLink::read`]). RESP3 (`HELLO 3`), so that one connection both
//! publishes and receives what it subscribed to; the frames are encoded
//! and decoded by the `redis-protocol` crate.
//!
//! ```text
//! connect ──► HELLO 3 [AUTH user pass] SETNAME wsloop, SUBSCRIBE every held topic
//! publish ──► PUBLISH prefix+topic envelope          (dropped past max_pending, or while down)
//! sync    ──► SUBSCRIBE / UNSUBSCRIBE, netted        (a topic's first subscriber came, or its last left)
//! read    ◄── map (HELLO: up), push "message" (a topic's message), number (a PUBLISH answered), error
//! ```
//!
//! A message's payload on Redis is an envelope, so that a process can tell
//! its own publishes (which its clients already have) from the others':
//! `WSL1`, the publishing process's 8-byte origin (big-endian), `t` (text)
//! or `b` (binary), then the message. A payload without the envelope (a
//! `PUBLISH` from another program) is delivered as text when it is UTF-8,
//! else as binary.

use std::collections::{HashSet, VecDeque};

use redis_protocol::resp3::decode::complete::decode_range;
use redis_protocol::resp3::encode::complete::encode_borrowed;
use redis_protocol::resp3::types::{BorrowedFrame, RangeFrame};

use super::RedisConfig;
use crate::proto::message::Message;

/// The envelope's first bytes.
const MAGIC: &[u8; 4] = b"WSL1";
/// Magic, origin and kind.
const ENVELOPE: usize = 4 + 8 + 1;
/// Channels per `SUBSCRIBE` when a whole set is subscribed again.
const CHANNELS_PER_COMMAND: usize = 512;
/// A command's framing around its arguments, at most (array and blob
/// headers of `PUBLISH`, its channel and its payload).
const PUBLISH_FRAMING: usize = 64;
/// Buffers larger than this are given back once empty (a burst does not
/// keep its memory).
const KEEP_CAPACITY: usize = 1 << 20;

/// Where the link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No connection: publishes are dropped (and counted), subscriptions
    /// wait for the next connection, which subscribes every held topic.
    Down,
    /// Connecting, `HELLO` not answered yet: commands queue behind it.
    Hello,
    /// `HELLO` answered: publishes and subscriptions flow.
    Up,
}

/// What the link counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// `PUBLISH`es queued for Redis.
    pub published: u64,
    /// Messages from Redis handed on (other processes' publishes).
    pub received: u64,
    /// Publishes dropped: the link was down, or `max_pending` bytes were
    /// already waiting.
    pub dropped: u64,
    /// Publishes written on a connection that ended before Redis answered
    /// them: maybe delivered, maybe not (Redis pub/sub is at most once).
    /// (A publish Redis answered with an error is counted here too if the
    /// connection then ends.)
    pub unconfirmed: u64,
    /// Errors: Redis's answers to a command, and messages from Redis that
    /// claimed to be text and were not UTF-8.
    pub errors: u64,
}

/// What [`RedisLink::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvent<'a> {
    /// `HELLO` was answered: the link is up.
    Up,
    /// Another process's publish (or another program's) to `topic`.
    Message {
        /// The topic, without the prefix.
        topic: &'a str,
        /// The message.
        msg: Message<'a>,
    },
    /// `HELLO` was refused (a wrong password, a Redis older than 6 without
    /// RESP3): close the connection and try again later.
    Refused(String),
    /// Redis answered a command with an error; the link carries on.
    Error(String),
}

/// Why the bytes from Redis cannot be read on: the connection must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not RESP3.
    #[error("not RESP3 from Redis: {0}")]
    Protocol(String),
    /// One message larger than the link takes.
    #[error("a reply from Redis larger than {0} bytes")]
    TooLarge(usize),
}

/// One Redis connection's protocol state (see the module docs).
#[derive(Debug)]
pub struct RedisLink {
    prefix: Box<str>,
    state: LinkState,
    /// Commands not yet written; `out[sent..]` is what is left.
    out: Vec<u8>,
    sent: usize,
    /// A reply begun in an earlier read.
    inbuf: Vec<u8>,
    /// Topics subscribed on this connection (asked of Redis).
    subscribed: HashSet<Box<str>>,
    /// Where each `PUBLISH` not yet answered ends, in bytes queued on this
    /// connection since it started; `queued` and `written` are the totals.
    publishes: VecDeque<u64>,
    queued: u64,
    written: u64,
    /// A `PING` was sent and its `PONG` has not come.
    ping_out: bool,
    max_pending: usize,
    max_reply: usize,
    /// The envelope being built.
    scratch: Vec<u8>,
    stats: LinkStats,
}

impl RedisLink {
    /// A link that is down, with `config`'s prefix and limits.
    pub fn new(config: &RedisConfig) -> Self {
        RedisLink {
            prefix: config.prefix.as_str().into(),
            state: LinkState::Down,
            out: Vec::new(),
            sent: 0,
            inbuf: Vec::new(),
            subscribed: HashSet::new(),
            publishes: VecDeque::new(),
            queued: 0,
            written: 0,
            ping_out: false,
            max_pending: config.max_pending,
            // A message as large as the pending limit, plus its framing.
            max_reply: config.max_pending + 64 * 1024,
            scratch: Vec::new(),
            stats: LinkStats::default(),
        }
    }

    /// Where the link stands.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// The counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// A new connection is being made: queues `HELLO 3` (with `AUTH` when
    /// a password is given) and a `SUBSCRIBE` of every topic in `held`, to
    /// be written as soon as the socket is connected.
    pub fn connect<'t>(
        &mut self,
        user: Option<&str>,
        password: Option<&str>,
        held: impl IntoIterator<Item = &'t str>,
    ) {
        self.disconnect();
        self.state = LinkState::Hello;
        let mut hello = vec![blob(b"HELLO"), blob(b"3")];
        if let Some(password) = password {
            let user = user.unwrap_or("default");
            hello.extend([
                blob(b"AUTH"),
                blob(user.as_bytes()),
                blob(password.as_bytes()),
            ]);
        }
        hello.extend([blob(b"SETNAME"), blob(b"wsloop")]);
        self.command(&hello);
        let held: Vec<&str> = held.into_iter().collect();
        for chunk in held.chunks(CHANNELS_PER_COMMAND) {
            self.subscribe_all(b"SUBSCRIBE", chunk);
            self.subscribed.extend(chunk.iter().map(|&t| Box::from(t)));
        }
    }

    /// The connection ended: what was queued for it is dropped, and the
    /// publishes it did not see answered are counted: as dropped when they
    /// were never written, as unconfirmed when they were.
    pub fn disconnect(&mut self) {
        self.state = LinkState::Down;
        for end in self.publishes.drain(..) {
            if end <= self.written {
                self.stats.unconfirmed += 1;
            } else {
                self.stats.dropped += 1;
            }
        }
        self.out = Vec::new();
        self.sent = 0;
        self.inbuf = Vec::new();
        self.subscribed.clear();
        self.queued = 0;
        self.written = 0;
        self.ping_out = false;
    }

    /// Queues a `PING`, to learn that Redis still answers; false (and no
    /// `PING`) when the last one is still unanswered: the connection is
    /// dead. Call it when the link has been quiet for a while.
    pub fn ping(&mut self) -> bool {
        if self.ping_out {
            return false;
        }
        self.ping_out = true;
        self.command(&[blob(b"PING")]);
        true
    }

    /// Queues `PUBLISH` of `msg` on `topic`'s channel, stamped with
    /// `origin` (the publishing process). False when it was dropped: the
    /// link is down or `max_pending` bytes are waiting already.
    pub fn publish(&mut self, origin: u64, topic: &str, msg: Message<'_>) -> bool {
        let needed =
            PUBLISH_FRAMING + self.prefix.len() + topic.len() + ENVELOPE + msg.as_bytes().len();
        if self.state == LinkState::Down || self.pending().len() + needed > self.max_pending {
            self.stats.dropped += 1;
            return false;
        }
        let mut env = std::mem::take(&mut self.scratch);
        env.clear();
        env.extend_from_slice(MAGIC);
        env.extend_from_slice(&origin.to_be_bytes());
        env.push(match msg {
            Message::Text(_) => b't',
            Message::Binary(_) => b'b',
        });
        env.extend_from_slice(msg.as_bytes());
        let channel = self.channel(topic);
        self.command(&[blob(b"PUBLISH"), blob(&channel), blob(&env)]);
        self.scratch = env;
        if self.scratch.capacity() > KEEP_CAPACITY {
            self.scratch = Vec::new();
        }
        self.publishes.push_back(self.queued);
        self.stats.published += 1;
        true
    }

    /// Brings this connection's subscriptions in line with the topics
    /// held here: each of `changed` is a topic that gained its first local
    /// subscriber or lost its last this turn, with whether it is held now.
    /// A topic that came and went in one turn costs nothing. Does nothing
    /// while down (the next connection subscribes every held topic).
    pub fn sync<'t>(&mut self, changed: impl IntoIterator<Item = (&'t str, bool)>) {
        if self.state == LinkState::Down {
            return;
        }
        let (mut sub, mut unsub) = (Vec::new(), Vec::new());
        for (topic, held) in changed {
            if held && !self.subscribed.contains(topic) {
                self.subscribed.insert(topic.into());
                sub.push(topic);
            } else if !held && self.subscribed.remove(topic) {
                unsub.push(topic);
            }
        }
        for chunk in sub.chunks(CHANNELS_PER_COMMAND) {
            self.subscribe_all(b"SUBSCRIBE", chunk);
        }
        for chunk in unsub.chunks(CHANNELS_PER_COMMAND) {
            self.subscribe_all(b"UNSUBSCRIBE", chunk);
        }
    }

    /// Whether `topic` is subscribed on this connection.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subscribed.contains(topic)
    }

    /// The bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// `n` bytes of [`RedisLink::pending`] were written.
    pub fn advance(&mut self, n: usize) {
        self.sent += n;
        self.written += n as u64;
        if self.sent >= self.out.len() {
            self.out.clear();
            self.sent = 0;
            if self.out.capacity() > KEEP_CAPACITY {
                self.out = Vec::new();
            }
        } else if self.sent > 64 * 1024 && self.sent > self.out.len() / 2 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Feeds bytes read from Redis; `on` gets every event in order, with
    /// messages from `origin` (this process) left out: its clients have
    /// them already. An error means the connection must be closed.
    pub fn read(
        &mut self,
        origin: u64,
        bytes: &[u8],
        mut on: impl FnMut(LinkEvent<'_>),
    ) -> Result<(), LinkError> {
        if self.inbuf.is_empty() {
            let used = self.decode_all(origin, bytes, &mut on)?;
            self.keep(&bytes[used..])
        } else {
            let mut buf = std::mem::take(&mut self.inbuf);
            buf.extend_from_slice(bytes);
            let used = self.decode_all(origin, &buf, &mut on);
            buf.drain(..*used.as_ref().unwrap_or(&0));
            self.inbuf = buf;
            used?;
            self.keep(&[])
        }
    }

    /// Keeps a reply's beginning for the next read, within bounds.
    fn keep(&mut self, rest: &[u8]) -> Result<(), LinkError> {
        self.inbuf.extend_from_slice(rest);
        if self.inbuf.len() > self.max_reply {
            return Err(LinkError::TooLarge(self.max_reply));
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_CAPACITY {
            self.inbuf = Vec::new();
        }
        Ok(())
    }

    fn decode_all(
        &mut self,
        origin: u64,
        buf: &[u8],
        on: &mut impl FnMut(LinkEvent<'_>),
    ) -> Result<usize, LinkError> {
        let mut pos = 0;
        while pos < buf.len() {
            let frame =
                decode_range(&buf[pos..]).map_err(|e| LinkError::Protocol(e.to_string()))?;
            let Some((frame, used)) = frame else {
                break;
            };
            self.on_frame(origin, &buf[pos..pos + used], frame, on);
            pos += used;
        }
        Ok(pos)
    }

    fn on_frame(
        &mut self,
        origin: u64,
        buf: &[u8],
        frame: RangeFrame,
        on: &mut impl FnMut(LinkEvent<'_>),
    ) {
        let text =
            |range: (usize, usize)| String::from_utf8_lossy(&buf[range.0..range.1]).into_owned();
        match frame {
            RangeFrame::Push { data, .. } => {
                let part = |i: usize| match data.get(i) {
                    Some(RangeFrame::BlobString { data: (a, b), .. })
                    | Some(RangeFrame::SimpleString { data: (a, b), .. }) => Some(&buf[*a..*b]),
                    _ => None,
                };
                if part(0) == Some(b"pong") {
                    self.ping_out = false; // RESP2 servers answer a PING so while subscribed
                    return;
                }
                if part(0) != Some(b"message") {
                    return; // subscribe and unsubscribe confirmations
                }
                let (Some(channel), Some(payload)) = (part(1), part(2)) else {
                    return;
                };
                let Some(topic) = channel
                    .strip_prefix(self.prefix.as_bytes())
                    .and_then(|t| std::str::from_utf8(t).ok())
                else {
                    return;
                };
                if let Some(msg) = self.open(origin, payload) {
                    self.stats.received += 1;
                    on(LinkEvent::Message { topic, msg });
                }
            }
            RangeFrame::Map { .. } if self.state == LinkState::Hello => {
                self.state = LinkState::Up;
                on(LinkEvent::Up);
            }
            RangeFrame::Number { .. } => {
                self.publishes.pop_front();
            }
            RangeFrame::SimpleString { data, .. } if &buf[data.0..data.1] == b"PONG" => {
                self.ping_out = false;
            }
            RangeFrame::SimpleError { data, .. } | RangeFrame::BlobError { data, .. } => {
                let why = text(data);
                if self.state == LinkState::Hello {
                    on(LinkEvent::Refused(why));
                } else {
                    // A command refused (an ACL without the channel, say):
                    // which one is not said, so nothing is matched to it.
                    self.stats.errors += 1;
                    on(LinkEvent::Error(why));
                }
            }
            _ => {}
        }
    }

    /// The message in a payload, or `None` for this process's own.
    fn open<'a>(&mut self, origin: u64, payload: &'a [u8]) -> Option<Message<'a>> {
        let Some(body) = payload
            .strip_prefix(MAGIC)
            .filter(|_| payload.len() >= ENVELOPE)
        else {
            // Another program's PUBLISH.
            return Some(match std::str::from_utf8(payload) {
                Ok(text) => Message::Text(text),
                Err(_) => Message::Binary(payload),
            });
        };
        let (from, rest) = body.split_at(8);
        // Invariant: `body` is at least 9 bytes (checked above).
        let from = u64::from_be_bytes(from.try_into().expect("8 bytes"));
        if from == origin {
            return None;
        }
        let (kind, data) = (rest[0], &rest[1..]);
        match kind {
            b't' => match simdutf8::basic::from_utf8(data) {
                Ok(text) => Some(Message::Text(text)),
                Err(_) => {
                    self.stats.errors += 1;
                    None
                }
            },
            _ => Some(Message::Binary(data)),
        }
    }

    fn channel(&self, topic: &str) -> Vec<u8> {
        let mut c = Vec::with_capacity(self.prefix.len() + topic.len());
        c.extend_from_slice(self.prefix.as_bytes());
        c.extend_from_slice(topic.as_bytes());
        c
    }

    fn subscribe_all(&mut self, verb: &[u8], topics: &[&str]) {
        let channels: Vec<Vec<u8>> = topics.iter().map(|t| self.channel(t)).collect();
        let mut parts = vec![blob(verb)];
        parts.extend(channels.iter().map(|c| blob(c)));
        self.command(&parts);
    }

    /// Appends one command, an array of blob strings.
    fn command(&mut self, parts: &[BorrowedFrame<'_>]) {
        let frame = BorrowedFrame::Array {
            data: parts,
            attributes: None,
        };
        let start = self.out.len();
        self.out.resize(start + frame.encode_len(false), 0);
        // Invariant: the buffer was sized by the encoder's own length.
        let n = encode_borrowed(&mut self.out[start..], &frame, false)
            .expect("a buffer of encode_len bytes");
        self.out.truncate(start + n);
        self.queued += n as u64;
    }
}

fn blob(data: &[u8]) -> BorrowedFrame<'_> {
    BorrowedFrame::BlobString {
        data,
        attributes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> RedisLink {
        RedisLink::new(&RedisConfig::default())
    }

    fn take(l: &mut RedisLink) -> String {
        let s = String::from_utf8_lossy(l.pending()).into_owned();
        l.advance(l.pending().len());
        s
    }

    fn events(l: &mut RedisLink, origin: u64, bytes: &[u8]) -> Vec<String> {
        let mut got = Vec::new();
        l.read(origin, bytes, |e| got.push(format!("{e:?}")))
            .unwrap();
        got
    }

    #[test]
    fn connect_says_hello_with_auth_and_subscribes_what_is_held() {
        let mut l = link();
        l.connect(None, Some("p w"), ["a", "b"]);
        assert_eq!(
            take(&mut l),
            "*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$3\r\np w\r\n\
             $7\r\nSETNAME\r\n$6\r\nwsloop\r\n\
             *3\r\n$9\r\nSUBSCRIBE\r\n$8\r\nwsloop:a\r\n$8\r\nwsloop:b\r\n"
        );
        assert_eq!(l.state(), LinkState::Hello);
        assert_eq!(events(&mut l, 1, b"%1\r\n+server\r\n+redis\r\n"), ["Up"]);
        assert_eq!(l.state(), LinkState::Up);
    }

    #[test]
    fn a_refused_hello_is_reported() {
        let mut l = link();
        l.connect(Some("u"), Some("bad"), []);
        take(&mut l);
        assert_eq!(
            events(&mut l, 1, b"-WRONGPASS invalid username-password pair\r\n"),
            ["Refused(\"WRONGPASS invalid username-password pair\")"]
        );
    }

    #[test]
    fn publishes_carry_the_origin_and_only_others_come_back() {
        let mut l = link();
        assert!(!l.publish(7, "t", Message::Text("x")), "down: dropped");
        l.connect(None, None, []);
        take(&mut l);
        assert!(l.publish(7, "t", Message::Text("hi")));
        let out = take(&mut l);
        assert_eq!(
            out,
            "*3\r\n$7\r\nPUBLISH\r\n$8\r\nwsloop:t\r\n$15\r\nWSL1\0\0\0\0\0\0\0\x07thi\r\n"
        );
        // Its own message (origin 7) is left out; another's comes through,
        // split across reads.
        let own = b">3\r\n$7\r\nmessage\r\n$8\r\nwsloop:t\r\n$15\r\nWSL1\0\0\0\0\0\0\0\x07thi\r\n";
        let other =
            b">3\r\n$7\r\nmessage\r\n$8\r\nwsloop:t\r\n$15\r\nWSL1\0\0\0\0\0\0\0\x09b\x00\xff\r\n";
        let mut all = own.to_vec();
        all.extend_from_slice(b":1\r\n");
        all.extend_from_slice(other);
        let (a, b) = all.split_at(all.len() - 5);
        assert_eq!(events(&mut l, 7, a), Vec::<String>::new());
        assert_eq!(
            events(&mut l, 7, b),
            ["Message { topic: \"t\", msg: Binary([0, 255]) }"]
        );
        // Another program's plain PUBLISH, and another prefix's channel.
        let plain = b">3\r\n$7\r\nmessage\r\n$8\r\nwsloop:t\r\n$5\r\nhello\r\n\
                      >3\r\n$7\r\nmessage\r\n$7\r\nother:t\r\n$1\r\nx\r\n";
        assert_eq!(
            events(&mut l, 7, plain),
            ["Message { topic: \"t\", msg: Text(\"hello\") }"]
        );
        assert_eq!(l.stats().received, 2);
        // An envelope claiming text that is not UTF-8 is dropped.
        let bad =
            b">3\r\n$7\r\nmessage\r\n$8\r\nwsloop:t\r\n$14\r\nWSL1\0\0\0\0\0\0\0\x09t\xff\r\n";
        assert_eq!(events(&mut l, 7, bad), Vec::<String>::new());
        assert_eq!(l.stats().errors, 1);
    }

    #[test]
    fn subscriptions_are_netted_and_publishes_bounded() {
        let mut l = RedisLink::new(&RedisConfig {
            max_pending: 300,
            ..RedisConfig::default()
        });
        l.sync([("a", true)]);
        assert_eq!(l.pending(), b"", "down: nothing");
        l.connect(None, None, ["a"]);
        take(&mut l);
        // The turn's changes with each topic's state at the turn's end: b
        // came, c came and went, a went.
        l.sync([("a", false), ("b", true), ("c", false), ("c", false)]);
        assert_eq!(
            take(&mut l),
            "*2\r\n$9\r\nSUBSCRIBE\r\n$8\r\nwsloop:b\r\n*2\r\n$11\r\nUNSUBSCRIBE\r\n$8\r\nwsloop:a\r\n"
        );
        assert!(l.is_subscribed("b") && !l.is_subscribed("a") && !l.is_subscribed("c"));
        // One publish is written, then Redis stops reading: the next ones
        // wait, up to 300 bytes (each takes 71, counted as at most 105).
        assert!(l.publish(1, "b", Message::Binary(&[0; 20])));
        let first = l.pending().len();
        assert_eq!(first, 71);
        l.advance(first);
        for _ in 0..3 {
            assert!(l.publish(1, "b", Message::Binary(&[0; 20])));
        }
        assert!(
            !l.publish(1, "b", Message::Binary(&[0; 20])),
            "past the bound"
        );
        assert_eq!((l.stats().published, l.stats().dropped), (4, 1));
        // The connection ends: the written one may have been delivered,
        // the three that waited were not.
        l.disconnect();
        assert_eq!((l.stats().unconfirmed, l.stats().dropped), (1, 4));
        assert_eq!(l.state(), LinkState::Down);
        assert!(!l.is_subscribed("b"));
    }

    #[test]
    fn answers_are_matched_to_publishes_and_pings() {
        let mut l = link();
        l.connect(None, None, []);
        events(&mut l, 1, b"%0\r\n");
        take(&mut l);
        l.publish(1, "t", Message::Text("x"));
        l.publish(1, "t", Message::Text("y"));
        l.advance(l.pending().len());
        assert!(l.ping());
        assert_eq!(take(&mut l), "*1\r\n$4\r\nPING\r\n");
        assert!(!l.ping(), "the last PING is unanswered");
        // One PUBLISH answered, then the PONG; an error is reported.
        let got = events(&mut l, 1, b":1\r\n+PONG\r\n-NOPERM no\r\n");
        assert_eq!(got, ["Error(\"NOPERM no\")"]);
        assert!(l.ping(), "answered");
        l.disconnect();
        assert_eq!(l.stats().unconfirmed, 1, "the one never answered");
        assert_eq!(l.stats().errors, 1);
    }

    #[test]
    fn garbage_and_oversized_replies_end_the_connection() {
        let mut l = link();
        l.connect(None, None, []);
        assert!(matches!(
            l.read(1, b"?what\r\n", |_| {}),
            Err(LinkError::Protocol(_))
        ));
        let mut l = RedisLink::new(&RedisConfig {
            max_pending: 10,
            ..RedisConfig::default()
        });
        l.connect(None, None, []);
        let huge = format!("${}\r\n", 1 << 20);
        let mut bytes = huge.into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', 70 * 1024));
        assert!(matches!(
            l.read(1, &bytes, |_| {}),
            Err(LinkError::TooLarge(_))
        ));
    }
}
