//! The DHCP server's leases in a journal on any [`Storage`]: replayed into the lease table
//! at boot, and each change appended before the reply that announces it is sent, so an
//! acknowledged lease survives a power cut.

use appliance::dhcp::{Lease, LeaseState, LeaseTable};
use appliance::journal::{Journal, Replay, Storage};

/// What a boot restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    pub replay: Replay,
    /// Leases in the table after the replay.
    pub leases: usize,
    /// Records the table refused (full of active leases).
    pub dropped: usize,
    /// The log was rewritten at once because it ended in a torn record.
    pub compacted: bool,
}

pub struct LeaseLog<S> {
    journal: Journal<S>,
}

impl<S: Storage> LeaseLog<S> {
    /// Replays `storage` into `table`. A torn tail is compacted away at once: appends after
    /// it would be lost behind it at the next replay.
    pub fn open(storage: S, table: &mut LeaseTable<'_>) -> Result<(Self, Restored), S::Error> {
        let mut dropped = 0;
        let (journal, replay) = Journal::open(storage, |lease: Lease| {
            if table.bind(lease, 0).is_err() {
                dropped += 1;
            }
        })?;
        let mut log = LeaseLog { journal };
        let compacted = replay.torn_bytes > 0;
        if compacted {
            log.compact(table)?;
        }
        let restored = Restored {
            replay,
            leases: table.len(),
            dropped,
            compacted,
        };
        Ok((log, restored))
    }

    /// Persists `lease`, which `table` holds already. When the append fails (the bank is
    /// full) the live leases are rewritten instead, `lease` among them.
    pub fn record(&mut self, lease: &Lease, table: &LeaseTable<'_>) -> Result<(), S::Error> {
        match self
            .journal
            .append(lease)
            .and_then(|()| self.journal.flush())
        {
            Ok(()) => Ok(()),
            Err(_) => self.compact(table),
        }
    }

    fn compact(&mut self, table: &LeaseTable<'_>) -> Result<(), S::Error> {
        let live = table.iter().filter(|l| l.state != LeaseState::Offered);
        self.journal.compact(live)
    }

    /// Records in the log, live or superseded.
    pub fn records(&self) -> usize {
        self.journal.records()
    }

    pub fn into_storage(self) -> S {
        self.journal.into_storage()
    }
}
