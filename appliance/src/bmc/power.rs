//! The power manager: for each machine a desired and an observed power state, reconciled
//! through its BMC.
//!
//! It decides *what* to ask which BMC and *when*; the adapter owns one client (IPMI or
//! Redfish) per BMC, runs the jobs it hands out and reports each result back. BMCs freeze
//! under bursts and run out of sessions, so the manager keeps at most one operation in flight
//! per BMC, a bounded number of BMCs in flight overall, a minimum interval between power
//! operations on one machine, and backs off exponentially after failures. A machine it
//! turned on (or saw turn on) is not turned off again before `min_on_before_off_ms` (Omni:
//! 15 min), so a slow boot is never cut short.
//!
//! The table is a caller-provided slice with one slot per BMC: adding to a full table fails
//! with [`Full`] and changes nothing.

use super::{Error, Operation, PowerAction, PowerState, PxeBoot};
use crate::net::MacAddr;

/// Times are milliseconds on the adapter's monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// BMCs with an operation in flight at once.
    pub max_in_flight: usize,
    /// Re-read the power state this often, to notice changes made by others.
    pub status_interval_ms: u64,
    /// Least time between two power operations on one machine.
    pub min_power_interval_ms: u64,
    /// Least time between a power-on and the next power-off (off, soft-off) of one machine.
    pub min_on_before_off_ms: u64,
    /// First delay after a failure; doubles per consecutive failure up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_in_flight: 16,
            status_interval_ms: 30_000,
            min_power_interval_ms: 5_000,
            // None until the provider's configuration says.
            min_on_before_off_ms: 0,
            backoff_ms: 1_000,
            max_backoff_ms: 60_000,
        }
    }
}

/// Index of a BMC in the table.
pub type BmcId = usize;

/// One BMC and the machine it powers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Slot {
    machine: Option<MacAddr>,
    desired: Option<PowerState>,
    observed: Option<PowerState>,
    /// A network-boot override to set before the next power-on.
    pxe: Option<PxeBoot>,
    /// A one-off action (cycle, reset) asked for explicitly; runs once.
    action: Option<PowerAction>,
    in_flight: Option<Operation>,
    /// The next periodic status read.
    next_status_at: u64,
    /// Nothing before this time: the backoff after a failure.
    retry_at: u64,
    last_power_op: Option<u64>,
    /// When the machine was last turned on (by the manager, or seen to turn on).
    on_at: Option<u64>,
    failures: u32,
    last_error: Option<Error>,
}

/// The table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// What the rest of the appliance hears from the manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The BMC reports a different power state than before (or the first one).
    PowerChanged {
        bmc: BmcId,
        machine: Option<MacAddr>,
        state: PowerState,
    },
    /// An operation failed; the manager retries after a backoff.
    Failed {
        bmc: BmcId,
        op: Operation,
        error: Error,
    },
}

/// A BMC's state as the manager sees it, for status displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub machine: Option<MacAddr>,
    pub desired: Option<PowerState>,
    pub observed: Option<PowerState>,
    pub failures: u32,
    pub last_error: Option<Error>,
}

pub struct PowerManager<'a> {
    config: Config,
    slots: &'a mut [Slot],
    used: usize,
    in_flight: usize,
}

impl<'a> PowerManager<'a> {
    pub fn new(config: Config, slots: &'a mut [Slot]) -> PowerManager<'a> {
        slots.fill(Slot::default());
        PowerManager {
            config,
            slots,
            used: 0,
            in_flight: 0,
        }
    }

    /// Sets how often each BMC's state is re-read (the provider's poll interval). A read
    /// already scheduled further out than `interval_ms` from `now` is brought forward.
    pub fn set_status_interval(&mut self, interval_ms: u64, now: u64) {
        self.config.status_interval_ms = interval_ms;
        let latest = now.saturating_add(interval_ms);
        for s in self.slots[..self.used].iter_mut() {
            s.next_status_at = s.next_status_at.min(latest);
        }
    }

    /// Sets the least time between a power-on and the next power-off (the provider's
    /// `min_on_before_off_secs`); applies to power-offs not yet started.
    pub fn set_min_on_before_off(&mut self, ms: u64) {
        self.config.min_on_before_off_ms = ms;
    }

    /// Registers a BMC, optionally tied to the machine it powers. Its state is read first.
    pub fn add(&mut self, machine: Option<MacAddr>, now: u64) -> Result<BmcId, Full> {
        let id = self.used;
        let slot = self.slots.get_mut(id).ok_or(Full)?;
        *slot = Slot {
            machine,
            next_status_at: now,
            ..Slot::default()
        };
        self.used += 1;
        Ok(id)
    }

    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    pub fn view(&self, bmc: BmcId) -> Option<View> {
        self.slots().get(bmc).map(|s| View {
            machine: s.machine,
            desired: s.desired,
            observed: s.observed,
            failures: s.failures,
            last_error: s.last_error,
        })
    }

    /// The power state this machine should have. With `pxe`, a power-on is preceded by a
    /// network-boot override (so a machine turned on for a cluster boots from the appliance).
    pub fn set_desired(&mut self, bmc: BmcId, state: PowerState, pxe: Option<PxeBoot>) {
        if let Some(s) = self.slot_mut(bmc) {
            s.desired = Some(state);
            s.pxe = if state == PowerState::On { pxe } else { None };
        }
    }

    /// Sets a network-boot override at the next opportunity, without changing the power.
    pub fn set_boot(&mut self, bmc: BmcId, pxe: PxeBoot) {
        if let Some(s) = self.slot_mut(bmc) {
            s.pxe = Some(pxe);
        }
    }

    /// Runs `action` once (e.g. a reboot request), after any operation in flight.
    pub fn request(&mut self, bmc: BmcId, action: PowerAction) {
        if let Some(s) = self.slot_mut(bmc) {
            s.action = Some(action);
        }
    }

    /// Forgets a pending one-off action and boot override: their requester gave up on them
    /// (e.g. reported them failed), so a retry after the backoff must not run them later.
    pub fn withdraw(&mut self, bmc: BmcId) {
        if let Some(s) = self.slot_mut(bmc) {
            s.action = None;
            s.pxe = None;
        }
    }

    /// Re-reads the power state at the next opportunity instead of at the status interval.
    pub fn refresh(&mut self, bmc: BmcId, now: u64) {
        if let Some(s) = self.slot_mut(bmc) {
            s.next_status_at = s.next_status_at.min(now);
        }
    }

    /// The next operation to start, if a BMC is due and the in-flight bound allows.
    pub fn poll_job(&mut self, now: u64) -> Option<(BmcId, Operation)> {
        if self.in_flight >= self.config.max_in_flight {
            return None;
        }
        let config = self.config;
        let (id, op) = self
            .slots()
            .iter()
            .enumerate()
            .find(|(_, s)| s.in_flight.is_none() && s.due(&config) <= now)
            .map(|(id, s)| (id, s.next_op(&config, now)))?;
        let slot = self.slot_mut(id)?;
        slot.in_flight = Some(op);
        if !matches!(op, Operation::Status) {
            slot.last_power_op = Some(now);
        }
        self.in_flight += 1;
        Some((id, op))
    }

    /// Records the result of the operation started for `bmc`.
    pub fn complete(
        &mut self,
        bmc: BmcId,
        result: Result<PowerState, Error>,
        now: u64,
    ) -> Option<Event> {
        let config = self.config;
        let slot = self.slots.get_mut(..self.used)?.get_mut(bmc)?;
        let op = slot.in_flight.take()?;
        self.in_flight = self.in_flight.saturating_sub(1);
        match result {
            Ok(state) => {
                slot.failures = 0;
                slot.last_error = None;
                slot.retry_at = 0;
                match op {
                    Operation::BootPxe(_) => slot.pxe = None,
                    Operation::Power(action) if slot.action == Some(action) => slot.action = None,
                    _ => {}
                }
                let turned_on = matches!(
                    op,
                    Operation::Power(PowerAction::On | PowerAction::Cycle | PowerAction::HardReset)
                ) || (slot.observed == Some(PowerState::Off)
                    && state == PowerState::On);
                if turned_on {
                    slot.on_at = Some(now);
                }
                let changed = slot.observed != Some(state);
                slot.observed = Some(state);
                // A cycle or reset may read Off while the BMC waits to power on again
                // (IPMI's power cycle): read it again soon rather than report Off for long.
                let settling = state == PowerState::Off
                    && matches!(
                        op,
                        Operation::Power(PowerAction::Cycle | PowerAction::HardReset)
                    );
                let next = match settling {
                    true => config.min_power_interval_ms,
                    false => config.status_interval_ms,
                };
                slot.next_status_at = now.saturating_add(next);
                changed.then_some(Event::PowerChanged {
                    bmc,
                    machine: slot.machine,
                    state,
                })
            }
            Err(error) => {
                slot.failures = slot.failures.saturating_add(1);
                slot.last_error = Some(error);
                let shift = slot.failures.saturating_sub(1).min(16);
                let delay = config
                    .backoff_ms
                    .saturating_mul(1 << shift)
                    .min(config.max_backoff_ms);
                slot.retry_at = now.saturating_add(delay);
                if error == Error::Unsupported {
                    // Retrying cannot help: drop what the BMC does not offer.
                    match op {
                        Operation::Power(action) if slot.action == Some(action) => {
                            slot.action = None
                        }
                        Operation::BootPxe(_) => slot.pxe = None,
                        _ => {}
                    }
                }
                Some(Event::Failed { bmc, op, error })
            }
        }
    }

    /// When `poll_job` may next have something to start.
    pub fn poll_at(&self) -> Option<u64> {
        let config = self.config;
        self.slots()
            .iter()
            .filter(|s| s.in_flight.is_none())
            .map(|s| s.due(&config))
            .min()
    }

    fn slots(&self) -> &[Slot] {
        self.slots.get(..self.used).unwrap_or_default()
    }

    fn slot_mut(&mut self, bmc: BmcId) -> Option<&mut Slot> {
        self.slots.get_mut(..self.used)?.get_mut(bmc)
    }
}

impl Slot {
    /// The power operation wanted: a one-off action first, then the boot override, then the
    /// power state.
    fn wanted_op(&self) -> Option<Operation> {
        self.observed?;
        if let Some(action) = self.action {
            return Some(Operation::Power(action));
        }
        if let Some(pxe) = self.pxe {
            return Some(Operation::BootPxe(pxe));
        }
        match self.desired {
            Some(d) if Some(d) != self.observed => Some(Operation::Power(match d {
                PowerState::Off => PowerAction::Off,
                PowerState::On => PowerAction::On,
            })),
            _ => None,
        }
    }

    /// When `op` may run: the minimum interval after the last power operation, and for a
    /// power-off of a machine still on the minimum time after the last power-on (one that
    /// went off by itself has no boot left to protect).
    fn allowed_at(&self, op: Operation, config: &Config) -> u64 {
        let interval =
            (self.last_power_op).map_or(0, |t| t.saturating_add(config.min_power_interval_ms));
        let off = matches!(
            op,
            Operation::Power(PowerAction::Off | PowerAction::SoftOff)
        ) && self.observed != Some(PowerState::Off);
        let on_for = match self.on_at {
            Some(t) if off => t.saturating_add(config.min_on_before_off_ms),
            _ => 0,
        };
        interval.max(on_for)
    }

    /// The earliest time this BMC has something to do: a wanted power operation once it is
    /// allowed, else the next status read; never inside a backoff.
    fn due(&self, config: &Config) -> u64 {
        let status = self.next_status_at;
        let due = match self.wanted_op() {
            Some(op) => status.min(self.allowed_at(op, config)),
            None => status,
        };
        due.max(self.retry_at)
    }

    /// What to do now: the wanted power operation once allowed, else a status read.
    fn next_op(&self, config: &Config, now: u64) -> Operation {
        match self.wanted_op() {
            Some(op) if now >= self.allowed_at(op, config) => op,
            _ => Operation::Status,
        }
    }
}

#[cfg(test)]
mod tests;
