//! The lease table: fixed capacity, in storage the adapter provides, indexed by MAC and by
//! address with open addressing so lookups stay O(1) at tens of thousands of leases.
//!
//! Leases are never removed, only reassigned: an expired or released lease keeps its
//! client's address as an affinity hint until the address or the slot is needed by another.
//! When every slot holds an active lease, [`LeaseTable::bind`] fails with [`Full`] and the
//! server answers no new client (counted) until a lease expires or is released.

use core::net::Ipv4Addr;

use crate::net::MacAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LeaseState {
    /// Held for a client between OFFER and REQUEST; not persisted.
    Offered = 1,
    Bound = 2,
    Released = 3,
    /// A client reported the address in use (DECLINE); held back until `expires`.
    Declined = 4,
}

impl LeaseState {
    pub fn from_u8(v: u8) -> Option<LeaseState> {
        use LeaseState::*;
        [Offered, Bound, Released, Declined]
            .into_iter()
            .find(|s| *s as u8 == v)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub state: LeaseState,
    /// Unix time in seconds.
    pub expires: u64,
}

impl Lease {
    /// Whether the address is taken at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        self.state != LeaseState::Released && self.expires > now
    }
}

/// The table is full of active leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

const EMPTY: u32 = u32::MAX;

/// One unit of table storage: a lease and one bucket of each index. A table over `n` slots
/// holds up to `n / 2` leases, keeping both indices at most half full.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    lease: Option<Lease>,
    by_mac: u32,
    by_ip: u32,
}

impl Slot {
    pub const EMPTY: Slot = Slot {
        lease: None,
        by_mac: EMPTY,
        by_ip: EMPTY,
    };
}

pub struct LeaseTable<'a> {
    slots: &'a mut [Slot],
    len: usize,
}

impl<'a> LeaseTable<'a> {
    /// Lays a table over `slots` (all [`Slot::EMPTY`] or not, it is reset).
    pub fn new(slots: &'a mut [Slot]) -> LeaseTable<'a> {
        slots.fill(Slot::EMPTY);
        LeaseTable { slots, len: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len() / 2
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.slots[..self.len]
            .iter()
            .filter_map(|s| s.lease.as_ref())
    }

    pub fn by_mac(&self, mac: MacAddr) -> Option<&Lease> {
        self.find(Key::Mac(mac))
            .and_then(|i| self.slots[i].lease.as_ref())
    }

    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.find(Key::Ip(ip))
            .and_then(|i| self.slots[i].lease.as_ref())
    }

    /// Records `lease`, taking over whatever held its client's slot or its address.
    ///
    /// The client's own lease is updated in place; else the slot of an inactive lease on the
    /// same address is reassigned; else a free slot is used; else the oldest inactive lease
    /// anywhere. [`Full`] when all slots hold active leases of others.
    pub fn bind(&mut self, lease: Lease, now: u64) -> Result<(), Full> {
        let by_ip = self.find(Key::Ip(lease.ip));
        let slot = match (self.find(Key::Mac(lease.mac)), by_ip) {
            (Some(mine), Some(other)) if mine != other => {
                // The address moves from an inactive lease of another client to this one:
                // that client forgets the address. Removal moves the last slot into `other`.
                let last = self.len - 1;
                self.remove(other);
                if mine == last { other } else { mine }
            }
            (Some(mine), _) => mine,
            (None, Some(other)) => other,
            (None, None) if self.len < self.capacity() => {
                self.len += 1;
                self.len - 1
            }
            (None, None) => self.oldest_inactive(now).ok_or(Full)?,
        };
        self.place(slot, lease);
        Ok(())
    }

    /// Puts `lease` into `slot`, re-indexing whatever of its keys changed.
    fn place(&mut self, slot: usize, lease: Lease) {
        let old = self.slots[slot].lease;
        if old.map(|o| o.mac) != Some(lease.mac) {
            if let Some(o) = old {
                self.unindex(Key::Mac(o.mac));
            }
            self.index(Key::Mac(lease.mac), slot);
        }
        if old.map(|o| o.ip) != Some(lease.ip) {
            if let Some(o) = old {
                self.unindex(Key::Ip(o.ip));
            }
            self.index(Key::Ip(lease.ip), slot);
        }
        self.slots[slot].lease = Some(lease);
    }

    /// Empties a slot; the last slot moves into it so leases stay packed at the front.
    fn remove(&mut self, slot: usize) {
        self.clear(slot);
        let last = self.len - 1;
        if let Some(moved) = self.slots[last].lease.filter(|_| slot != last) {
            self.clear(last);
            self.place(slot, moved);
        }
        self.len = last;
    }

    /// Unindexes and empties one slot (the lookup needs the lease still in place).
    fn clear(&mut self, slot: usize) {
        if let Some(old) = self.slots[slot].lease {
            self.unindex(Key::Mac(old.mac));
            self.unindex(Key::Ip(old.ip));
            self.slots[slot].lease = None;
        }
    }

    fn oldest_inactive(&self, now: u64) -> Option<usize> {
        (0..self.len)
            .filter_map(|i| self.slots[i].lease.map(|l| (i, l)))
            .filter(|(_, l)| !l.is_active(now))
            .min_by_key(|(_, l)| l.expires)
            .map(|(i, _)| i)
    }

    fn bucket(&self, key: Key) -> usize {
        // Fibonacci hashing spreads sequential addresses and MACs evenly.
        let h = key.raw().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 32) as usize) % self.slots.len()
    }

    fn find(&self, key: Key) -> Option<usize> {
        let n = self.slots.len();
        let mut b = self.bucket(key);
        for _ in 0..n {
            let slot = key.bucket_of(&self.slots[b]);
            if slot == EMPTY {
                return None;
            }
            if self.slots[slot as usize]
                .lease
                .is_some_and(|l| key.matches(&l))
            {
                return Some(slot as usize);
            }
            b = (b + 1) % n;
        }
        None
    }

    fn index(&mut self, key: Key, slot: usize) {
        let n = self.slots.len();
        let mut b = self.bucket(key);
        // At most half the buckets are used, so an empty one is always found.
        while *key.bucket_mut(&mut self.slots[b]) != EMPTY {
            b = (b + 1) % n;
        }
        *key.bucket_mut(&mut self.slots[b]) = slot as u32;
    }

    /// Removes `key` from its index, shifting later entries of the probe run back so that no
    /// lookup stops early at the hole (linear probing's backward-shift deletion).
    fn unindex(&mut self, key: Key) {
        let n = self.slots.len();
        let mut hole = self.bucket(key);
        loop {
            let slot = key.bucket_of(&self.slots[hole]);
            if slot == EMPTY {
                return;
            }
            if self.slots[slot as usize]
                .lease
                .is_some_and(|l| key.matches(&l))
            {
                break;
            }
            hole = (hole + 1) % n;
        }
        let mut next = (hole + 1) % n;
        loop {
            let slot = key.bucket_of(&self.slots[next]);
            if slot == EMPTY {
                break;
            }
            let home = self.slots[slot as usize]
                .lease
                .map_or(next, |l| self.bucket(key.same_kind(&l)));
            // Move the entry back when its home is not cyclically inside (hole, next].
            let in_run = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !in_run {
                *key.bucket_mut(&mut self.slots[hole]) = slot;
                hole = next;
            }
            next = (next + 1) % n;
        }
        *key.bucket_mut(&mut self.slots[hole]) = EMPTY;
    }
}

#[derive(Clone, Copy)]
enum Key {
    Mac(MacAddr),
    Ip(Ipv4Addr),
}

impl Key {
    fn raw(self) -> u64 {
        match self {
            Key::Mac(m) => {
                let b = m.0;
                u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
            }
            Key::Ip(ip) => u64::from(u32::from(ip)),
        }
    }

    fn matches(self, lease: &Lease) -> bool {
        match self {
            Key::Mac(m) => lease.mac == m,
            Key::Ip(ip) => lease.ip == ip,
        }
    }

    /// The key of the same index for another lease.
    fn same_kind(self, lease: &Lease) -> Key {
        match self {
            Key::Mac(_) => Key::Mac(lease.mac),
            Key::Ip(_) => Key::Ip(lease.ip),
        }
    }

    fn bucket_of(self, slot: &Slot) -> u32 {
        match self {
            Key::Mac(_) => slot.by_mac,
            Key::Ip(_) => slot.by_ip,
        }
    }

    fn bucket_mut(self, slot: &mut Slot) -> &mut u32 {
        match self {
            Key::Mac(_) => &mut slot.by_mac,
            Key::Ip(_) => &mut slot.by_ip,
        }
    }
}

#[cfg(test)]
mod tests;
