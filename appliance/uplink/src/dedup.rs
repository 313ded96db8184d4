//! De-duplication on both ends. Both types are a few bytes of state that their owner
//! persists (the provider in its database, the appliance in its journal); the logic is here.

use serde::{Deserialize, Serialize};

/// What to do with an incoming event or command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// New: apply it, and persist the new state together with its effect.
    Apply,
    /// Already applied (a resend after a reconnect): drop it.
    Duplicate,
}

/// The provider's view of one appliance's event stream: the last sequence number applied.
///
/// The appliance sends in increasing order and resends from the provider's last ack, so
/// "apply if above the last applied" is exactly-once. Numbers may skip (a full outbox drops
/// superseded state), so there is no "next expected" check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbox {
    last_applied: u64,
}

impl Inbox {
    /// Restores the state the provider persisted (0 for a new appliance).
    pub const fn new(last_applied: u64) -> Self {
        Inbox { last_applied }
    }

    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }

    /// Judges event `seq`; on [`Verdict::Apply`] the last applied number moves to `seq`.
    /// The provider acks with [`Inbox::last_applied`], at once or in batches.
    pub fn accept(&mut self, seq: u64) -> Verdict {
        if seq > self.last_applied {
            self.last_applied = seq;
            Verdict::Apply
        } else {
            Verdict::Duplicate
        }
    }
}

/// How many command ids below the highest one the appliance remembers.
pub const COMMAND_MEMORY: u64 = 64;

/// The appliance's memory of the command ids it has accepted: the highest, and a bitmap of
/// the [`COMMAND_MEMORY`] ids below it (as in IPsec's anti-replay window). An id older than
/// that window is taken as already seen; the provider's command window (at most
/// [`COMMAND_MEMORY`]) keeps a live command from ever falling that far behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandFilter {
    highest: u64,
    /// Bit `i` set: id `highest - 1 - i` was accepted.
    below: u64,
}

impl CommandFilter {
    pub const fn new() -> Self {
        CommandFilter {
            highest: 0,
            below: 0,
        }
    }

    /// Judges command `id` (ids start at 1; 0 is never new) and, if new, remembers it.
    pub fn accept(&mut self, id: u64) -> Verdict {
        if !self.is_new(id) {
            return Verdict::Duplicate;
        }
        if id > self.highest {
            let shift = id - self.highest;
            // The old highest (if any) becomes bit `shift - 1`.
            self.below = match shift {
                s if s >= COMMAND_MEMORY => 0,
                s => self.below << s,
            };
            if self.highest != 0 && shift <= COMMAND_MEMORY {
                self.below |= 1 << (shift - 1);
            }
            self.highest = id;
        } else {
            self.below |= 1 << (self.highest - id - 1);
        }
        Verdict::Apply
    }

    /// Whether `id` would be accepted.
    pub fn is_new(&self, id: u64) -> bool {
        if id > self.highest {
            return true;
        }
        let back = self.highest - id;
        back != 0 && back <= COMMAND_MEMORY && self.below & (1 << (back - 1)) == 0
    }
}
