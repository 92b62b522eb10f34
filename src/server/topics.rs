//! Topics: named groups of clients that a publish reaches together
//! (uWebSockets' pub/sub). Who is subscribed to what is kept both ways,
//! so that a publish walks one topic's members and a closing client
//! leaves all of its topics without a search.
//!
//! ```text
//! by_name ──► topics[t] = { name, members: slab of ConnId }
//! subs[client slab key] = [(t, member slot), ...]   (what `leave_all` undoes)
//! ```
//!
//! Subscribing, unsubscribing and leaving are O(1) per (client, topic)
//! besides the client's own short list; a topic goes when its last member
//! leaves, so names do not pile up.

use std::collections::HashMap;

use slab::Slab;

use crate::id::ConnId;

struct Topic {
    name: Box<str>,
    /// Each member, and whether it speaks permessage-deflate (its frames
    /// may differ from the plain one).
    members: Slab<(ConnId, bool)>,
    /// Members that speak permessage-deflate.
    compressing: usize,
}

/// Every topic of one loop and every client's subscriptions.
#[derive(Default)]
pub(super) struct Topics {
    by_name: HashMap<Box<str>, usize>,
    topics: Slab<Topic>,
    /// By client slab key: its (topic, member slot) pairs. Grown to the
    /// highest key that ever subscribed; a client that never did costs
    /// nothing here.
    subs: Vec<Vec<(u32, u32)>>,
    /// Memberships, over every topic.
    subscriptions: usize,
}

impl Topics {
    /// Subscribes client `id` to `name` (`compressing`: it speaks
    /// permessage-deflate); false if it already was.
    pub(super) fn subscribe(&mut self, id: ConnId, name: &str, compressing: bool) -> bool {
        let key = id.key();
        let t = match self.by_name.get(name) {
            Some(&t) => {
                if self
                    .subs
                    .get(key)
                    .is_some_and(|s| s.iter().any(|&(x, _)| x as usize == t))
                {
                    return false;
                }
                t
            }
            None => {
                let t = self.topics.insert(Topic {
                    name: name.into(),
                    members: Slab::new(),
                    compressing: 0,
                });
                self.by_name.insert(name.into(), t);
                t
            }
        };
        let topic = &mut self.topics[t];
        let slot = topic.members.insert((id, compressing));
        topic.compressing += usize::from(compressing);
        self.subscriptions += 1;
        if self.subs.len() <= key {
            self.subs.resize_with(key + 1, Vec::new);
        }
        self.subs[key].push((t as u32, slot as u32));
        true
    }

    /// Unsubscribes client `id` from `name`; false if it was not subscribed.
    pub(super) fn unsubscribe(&mut self, id: ConnId, name: &str) -> bool {
        let Some(&t) = self.by_name.get(name) else {
            return false;
        };
        let Some(list) = self.subs.get_mut(id.key()) else {
            return false;
        };
        let Some(i) = list.iter().position(|&(x, _)| x as usize == t) else {
            return false;
        };
        let (_, slot) = list.swap_remove(i);
        let _ = self.leave(t, slot as usize);
        true
    }

    /// Takes the client in slab slot `key` out of every topic (it closed).
    pub(super) fn leave_all(&mut self, key: usize, mut emptied: impl FnMut(&str)) {
        let Some(list) = self.subs.get_mut(key) else {
            return;
        };
        for (t, slot) in std::mem::take(list) {
            if let Some(name) = self.leave(t as usize, slot as usize) {
                emptied(&name);
            }
        }
    }

    /// Takes a member out; returns the topic's name when it was the last.
    fn leave(&mut self, t: usize, slot: usize) -> Option<Box<str>> {
        let topic = &mut self.topics[t];
        let (_, compressing) = topic.members.remove(slot);
        topic.compressing -= usize::from(compressing);
        self.subscriptions -= 1;
        if !topic.members.is_empty() {
            return None;
        }
        let topic = self.topics.remove(t);
        self.by_name.remove(&topic.name);
        Some(topic.name)
    }

    /// Every topic with a member.
    #[cfg(feature = "redis")]
    pub(super) fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.topics.iter().map(|(_, t)| &*t.name)
    }

    /// The index of topic `name`, while it has members.
    pub(super) fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The members of topic `t` (none if it is gone).
    pub(super) fn members_of(&self, t: usize) -> impl Iterator<Item = ConnId> + '_ {
        self.topics
            .get(t)
            .into_iter()
            .flat_map(|topic| topic.members.iter().map(|(_, &(id, _))| id))
    }

    /// Whether every member of topic `t` takes the plain frame (none speaks
    /// permessage-deflate).
    pub(super) fn all_plain(&self, t: usize) -> bool {
        self.topics
            .get(t)
            .is_some_and(|topic| topic.compressing == 0)
    }

    /// How many members topic `t` has.
    pub(super) fn len_of(&self, t: usize) -> usize {
        self.topics.get(t).map_or(0, |topic| topic.members.len())
    }

    /// The members of `name` (none if nobody is subscribed).
    #[cfg(test)]
    fn members(&self, name: &str) -> impl Iterator<Item = ConnId> + '_ {
        self.find(name).into_iter().flat_map(|t| self.members_of(t))
    }

    /// How many clients are subscribed to `name`.
    pub(super) fn count(&self, name: &str) -> usize {
        self.by_name
            .get(name)
            .map_or(0, |&t| self.topics[t].members.len())
    }

    /// The topics client `id` (in slab slot `id.key()`) is subscribed to.
    pub(super) fn of(&self, key: usize) -> impl Iterator<Item = &str> + '_ {
        self.subs
            .get(key)
            .into_iter()
            .flatten()
            .map(|&(t, _)| &*self.topics[t as usize].name)
    }

    /// How many topics have at least one subscriber.
    pub(super) fn len(&self) -> usize {
        self.topics.len()
    }

    /// Memberships, over every topic.
    pub(super) fn subscriptions(&self) -> usize {
        self.subscriptions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: usize) -> ConnId {
        ConnId::new(key, 1)
    }

    #[test]
    fn members_join_and_leave_both_ways() {
        let mut t = Topics::default();
        assert!(t.subscribe(id(0), "a", false));
        assert!(!t.subscribe(id(0), "a", false), "twice is once");
        assert!(t.subscribe(id(3), "a", true));
        assert!(t.subscribe(id(3), "b", false));
        let a = t.find("a").unwrap();
        assert!(!t.all_plain(a), "one member compresses");
        assert_eq!(t.members("a").collect::<Vec<_>>(), [id(0), id(3)]);
        assert_eq!(t.of(3).collect::<Vec<_>>(), ["a", "b"]);
        assert!(t.unsubscribe(id(0), "a"));
        assert!(!t.unsubscribe(id(0), "a"));
        assert!(!t.unsubscribe(id(0), "nope"));
        assert_eq!(t.count("a"), 1);
        assert!(!t.all_plain(a));
        assert!(t.all_plain(t.find("b").unwrap()));
        t.leave_all(3, |_| {});
        assert_eq!(t.count("a"), 0);
        assert_eq!(t.len(), 0, "empty topics are dropped");
        assert_eq!(t.by_name.len(), 0);
        t.leave_all(99, |_| {}); // never subscribed: nothing to do
    }

    #[test]
    fn a_slot_reused_by_a_new_client_starts_with_no_topics() {
        let mut t = Topics::default();
        t.subscribe(id(1), "x", true);
        t.leave_all(1, |_| {});
        let next = ConnId::new(1, 2);
        assert_eq!(t.of(1).count(), 0);
        assert!(t.subscribe(next, "x", false));
        assert!(
            t.all_plain(t.find("x").unwrap()),
            "the compressing member left"
        );
        assert_eq!(t.members("x").collect::<Vec<_>>(), [next]);
    }
}
