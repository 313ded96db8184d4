//! The machine table: every rack machine the appliance has seen boot, keyed by MAC and also
//! found by SMBIOS UUID, with the boot target the provider chose for it.
//!
//! The table has a fixed capacity `N`. When a new machine arrives and the table is full,
//! the machine seen longest ago *without* a boot override is forgotten (it is re-learned at
//! its next boot). If every entry has an override, the newcomer is not recorded, still
//! boots by default, and [`Inventory::dropped`] counts it.

use heapless::Vec;

use crate::dhcp::pxe::BootTarget;
use crate::net::{MacAddr, Uuid};

/// How a machine is named by whoever refers to it: DHCP knows the MAC first, firmware and
/// the provider know the UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineKey {
    Mac(MacAddr),
    Uuid(Uuid),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// `None` for an entry the provider made by UUID before the machine first booted.
    pub mac: Option<MacAddr>,
    pub uuid: Option<Uuid>,
    /// Option 93 of its last PXE request.
    pub arch: Option<u16>,
    pub boot: BootTarget,
    /// Unix seconds; zero until seen.
    pub first_seen: u64,
    pub last_seen: u64,
}

impl Machine {
    fn matches(&self, mac: Option<MacAddr>, uuid: Option<Uuid>) -> bool {
        (mac.is_some() && self.mac == mac) || (uuid.is_some() && self.uuid == uuid)
    }

    fn new(mac: Option<MacAddr>, uuid: Option<Uuid>) -> Machine {
        Machine {
            mac,
            uuid,
            arch: None,
            boot: BootTarget::Default,
            first_seen: 0,
            last_seen: 0,
        }
    }
}

/// The table is full of machines with boot overrides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

pub struct Inventory<const N: usize> {
    machines: Vec<Machine, N>,
    dropped: u32,
}

impl<const N: usize> Default for Inventory<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Inventory<N> {
    /// An empty table (`const`, for a board's `static`).
    pub const fn new() -> Self {
        Inventory {
            machines: Vec::new(),
            dropped: 0,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Machine> {
        self.machines.iter()
    }

    /// Machines that could not be recorded because the table was full of overrides.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// The boot target for a requester, whether or not it is recorded.
    pub fn boot_target(&self, mac: MacAddr, uuid: Option<Uuid>) -> BootTarget {
        self.position(Some(mac), uuid)
            .map(|i| self.machines[i].boot.clone())
            .unwrap_or_default()
    }

    /// Records a sighting of a booting machine and returns its boot target.
    pub fn observe(
        &mut self,
        now: u64,
        mac: MacAddr,
        uuid: Option<Uuid>,
        arch: Option<u16>,
    ) -> BootTarget {
        let Some(i) = self
            .position(Some(mac), uuid)
            .or_else(|| self.make_room(Some(mac), uuid))
        else {
            self.dropped = self.dropped.saturating_add(1);
            return BootTarget::Default;
        };
        let m = &mut self.machines[i];
        m.mac = Some(mac);
        m.uuid = uuid.or(m.uuid);
        m.arch = arch.or(m.arch);
        if m.first_seen == 0 {
            m.first_seen = now;
        }
        m.last_seen = now;
        m.boot.clone()
    }

    /// Sets a machine's boot target, recording it if it has not booted yet.
    /// [`Full`] when the table is full of machines that have overrides.
    pub fn set_boot(&mut self, key: MachineKey, boot: BootTarget) -> Result<(), Full> {
        let (mac, uuid) = match key {
            MachineKey::Mac(m) => (Some(m), None),
            MachineKey::Uuid(u) => (None, Some(u)),
        };
        match self
            .position(mac, uuid)
            .or_else(|| self.make_room(mac, uuid))
        {
            Some(i) => {
                self.machines[i].boot = boot;
                Ok(())
            }
            None => Err(Full),
        }
    }

    fn position(&self, mac: Option<MacAddr>, uuid: Option<Uuid>) -> Option<usize> {
        self.machines.iter().position(|m| m.matches(mac, uuid))
    }

    /// Appends an entry, evicting the least recently seen one without an override if full.
    fn make_room(&mut self, mac: Option<MacAddr>, uuid: Option<Uuid>) -> Option<usize> {
        if self.machines.is_full() {
            let victim = (self.machines.iter().enumerate())
                .filter(|(_, m)| m.boot == BootTarget::Default)
                .min_by_key(|(_, m)| m.last_seen)
                .map(|(i, _)| i)?;
            self.machines.swap_remove(victim);
        }
        self.machines.push(Machine::new(mac, uuid)).ok()?;
        Some(self.machines.len() - 1)
    }
}

#[cfg(test)]
mod tests;
