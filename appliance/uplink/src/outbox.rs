//! The appliance's unacknowledged events: a bounded ring in sequence order.

use heapless::Deque;

use crate::message::{Event, Sequenced};

/// The outbox could not take the event; it is handed back.
///
/// For state-like events the caller can simply report the current state again once acks
/// have made room (the inventory and lease table still hold it). A command result never
/// meets this: [`crate::Session`] reserves its slot when it accepts the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Full(pub Event);

/// Events waiting for the provider's ack, oldest first, each with its sequence number.
///
/// When the outbox is at its limit, a state-like event (one with an [`Event::key`]) replaces
/// the oldest waiting event with the same key: the older one is removed and the newer one
/// appended with a fresh number, so the provider sees a gap, never a reused number. Any
/// other event is refused with [`Full`].
pub struct Outbox<const N: usize> {
    ring: Deque<Sequenced, N>,
    next_seq: u64,
}

impl<const N: usize> Default for Outbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Outbox<N> {
    pub const fn new() -> Self {
        Outbox {
            ring: Deque::new(),
            next_seq: 1,
        }
    }

    /// An outbox persisted before a restart: `events` strictly increasing and each numbered
    /// below `next_seq`, at most `N` of them; `None` otherwise (a damaged copy).
    pub fn restore(next_seq: u64, events: impl IntoIterator<Item = Sequenced>) -> Option<Self> {
        let mut outbox = Outbox::new();
        let mut last = 0;
        for e in events {
            if e.seq <= last || e.seq >= next_seq {
                return None;
            }
            last = e.seq;
            outbox.ring.push_back(e).ok()?;
        }
        outbox.next_seq = next_seq;
        Some(outbox)
    }

    /// The waiting events, oldest first: what the appliance persists.
    pub fn iter(&self) -> impl Iterator<Item = &Sequenced> {
        self.ring.iter()
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// The number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends `event` unless that would make the outbox longer than `limit` (at most `N`);
    /// returns its sequence number.
    pub fn push(&mut self, event: Event, limit: usize) -> Result<u64, Full> {
        if self.ring.len() >= limit.min(N) {
            let Some(key) = event.key() else {
                return Err(Full(event));
            };
            let mut removed = false;
            self.ring.retain(|e| {
                let same = !removed && e.event.key() == Some(key);
                removed |= same;
                !same
            });
            if !removed {
                return Err(Full(event));
            }
        }
        let seq = self.next_seq;
        self.ring
            .push_back(Sequenced { seq, event })
            .map_err(|s| Full(s.event))?;
        self.next_seq = seq.saturating_add(1);
        Ok(seq)
    }

    /// Drops every event numbered `upto` or lower.
    pub fn ack(&mut self, upto: u64) {
        while self.ring.front().is_some_and(|e| e.seq <= upto) {
            self.ring.pop_front();
        }
    }

    /// The oldest event numbered above `seq`: the next one to send after `seq`.
    pub fn first_after(&self, seq: u64) -> Option<&Sequenced> {
        self.ring.iter().find(|e| e.seq > seq)
    }

    /// Whether a result for this command is still waiting.
    pub fn has_result(&self, command_id: u64) -> bool {
        self.ring
            .iter()
            .any(|e| matches!(&e.event, Event::CommandResult(r) if r.command_id == command_id))
    }

    /// Makes numbering continue above `last_acked`. On the first welcome after a restart,
    /// nothing has been sent, so every waiting event is renumbered from `last_acked + 1`;
    /// otherwise only numbers not yet given out move up.
    pub fn continue_after(&mut self, last_acked: u64, renumber: bool) {
        if renumber {
            let mut seq = last_acked;
            for e in self.ring.iter_mut() {
                seq = seq.saturating_add(1);
                e.seq = seq;
            }
            self.next_seq = seq.saturating_add(1);
        } else if self.next_seq <= last_acked {
            self.next_seq = last_acked.saturating_add(1);
        }
    }
}
