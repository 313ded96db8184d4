//! The simulated machine behind the BMC: power state and boot options (IPMI v2.0 §28), held in
//! memory and, if asked, written to a small `key=value` text file after every change so a test
//! can read the BMC's view without going through IPMI.

use std::fs;
use std::path::PathBuf;

/// Completion codes used by the chassis commands (§5.2).
pub const CC_PARAM_NOT_SUPPORTED: u8 = 0x80;
pub const CC_SET_IN_PROGRESS: u8 = 0x81;
pub const CC_BAD_LENGTH: u8 = 0xC7;
pub const CC_INVALID_FIELD: u8 = 0xCC;
pub const CC_NOT_IN_PRESENT_STATE: u8 = 0xD5;

/// What a Chassis Control did to the machine, for a simulation that runs the machine. A control
/// that changes nothing (power-up while on, power-down while off) or is refused has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChassisEvent {
    /// Power-up while off: the machine starts.
    PowerOn { boot: BootDevice },
    /// Power-down or soft shutdown while on: the machine is off at once (no OS to ask here).
    PowerOff,
    /// Power cycle or hard reset while on: the machine starts again.
    Reset { boot: BootDevice },
}

/// The device a start boots from: the boot flags (parameter 5) if valid at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootDevice {
    /// No valid override, or selector "no override": the machine's own boot order.
    Default,
    /// Network boot; `efi` is the BIOS boot type bit (UEFI, not legacy PC).
    Pxe { efi: bool },
    /// The default hard drive.
    Disk,
    /// Any other device selector (parameter 5 data 2, bits 5:2), e.g. 5 for CD/DVD.
    Other(u8),
}

/// The chassis: power state, boot options, and the events not yet taken.
pub struct Chassis {
    power_on: bool,
    /// Whether the last power-on came from an IPMI command (Get Chassis Status byte 2 bit 4).
    on_by_ipmi: bool,
    /// Boot options parameter 0 (set in progress), 4 (boot info acknowledge), 5 (boot flags).
    set_in_progress: u8,
    boot_ack: u8,
    boot_flags: [u8; 5],
    /// What the machine booted with last time it was powered up or reset.
    last_boot: String,
    boots: u32,
    state_file: Option<PathBuf>,
    /// Oldest first; drained by `take_events`.
    events: Vec<ChassisEvent>,
}

/// Name of the boot device selector (parameter 5 data 2, bits 5:2).
fn device_name(flags: &[u8; 5]) -> String {
    match (flags[1] >> 2) & 0x0F {
        0 => "none".into(),
        1 => "pxe".into(),
        2 => "disk".into(),
        3 => "safe".into(),
        4 => "diag".into(),
        5 => "cdrom".into(),
        6 => "bios".into(),
        7 => "remote-floppy".into(),
        8 => "remote-cdrom".into(),
        9 => "remote-media".into(),
        11 => "remote-disk".into(),
        15 => "floppy".into(),
        n => format!("reserved-{n}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Chassis {
    /// Powered off, no boot override; writes the state file at once.
    pub fn new(state_file: Option<PathBuf>) -> Chassis {
        let c = Chassis {
            power_on: false,
            on_by_ipmi: false,
            set_in_progress: 0,
            boot_ack: 0,
            boot_flags: [0; 5],
            last_boot: "never".into(),
            boots: 0,
            state_file,
            events: Vec::new(),
        };
        c.save();
        c
    }

    fn boot_summary(&self) -> String {
        let f = &self.boot_flags;
        format!(
            "device={} mode={} {}{}",
            device_name(f),
            if f[0] & 0x20 != 0 { "efi" } else { "legacy" },
            if f[0] & 0x40 != 0 {
                "persistent"
            } else {
                "next-boot-only"
            },
            if f[0] & 0x80 != 0 { "" } else { " (not valid)" },
        )
    }

    /// Writes the state file (temporary file, then rename, so a reader never sees half of it).
    fn save(&self) {
        let Some(path) = &self.state_file else { return };
        let f = &self.boot_flags;
        let yes = |b: bool| if b { "yes" } else { "no" };
        let text = format!(
            "power={}\nboot_valid={}\nboot_persistent={}\nboot_mode={}\nboot_device={}\nboot_flags={}\nboots={}\nlast_boot={}\n",
            if self.power_on { "on" } else { "off" },
            yes(f[0] & 0x80 != 0),
            yes(f[0] & 0x40 != 0),
            if f[0] & 0x20 != 0 { "efi" } else { "legacy" },
            device_name(f),
            hex(f),
            self.boots,
            self.last_boot,
        );
        let tmp = path.with_extension("tmp");
        if let Err(e) = fs::write(&tmp, text).and_then(|()| fs::rename(&tmp, path)) {
            eprintln!("state-file {}: {e}", path.display());
        }
    }

    /// The events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<ChassisEvent> {
        std::mem::take(&mut self.events)
    }

    /// Whether the machine is powered, as Get Chassis Status reports it.
    pub fn power_on(&self) -> bool {
        self.power_on
    }

    /// The machine turned itself off (shutdown from its OS): the BMC now reports it off.
    /// No event, since the caller is the one that knows.
    pub fn set_power_off_by_host(&mut self) {
        self.power_on = false;
        self.on_by_ipmi = false;
        self.save();
    }

    /// The device a start now would boot from.
    fn boot_device(&self) -> BootDevice {
        let f = &self.boot_flags;
        if f[0] & 0x80 == 0 {
            return BootDevice::Default;
        }
        match (f[1] >> 2) & 0x0F {
            0 => BootDevice::Default,
            1 => BootDevice::Pxe {
                efi: f[0] & 0x20 != 0,
            },
            2 => BootDevice::Disk,
            n => BootDevice::Other(n),
        }
    }

    /// The machine starts (power-up, cycle, reset): it boots with the valid boot flags, and, as
    /// the BIOS would once it has read them, next-boot-only flags are then cleared. Returns the
    /// device it boots from.
    fn boot(&mut self) -> BootDevice {
        let device = self.boot_device();
        let f = &mut self.boot_flags;
        self.last_boot = if f[0] & 0x80 != 0 {
            format!(
                "{}/{}",
                device_name(f),
                if f[0] & 0x20 != 0 { "efi" } else { "legacy" }
            )
        } else {
            "default".into()
        };
        if f[0] & 0xC0 == 0x80 {
            f[0] &= !0x80;
        }
        self.boots += 1;
        device
    }

    /// Get Chassis Status (§28.2): power state (restore policy "always off"), last power event,
    /// misc state.
    pub fn status(&self) -> (Vec<u8>, String) {
        let data = vec![
            u8::from(self.power_on),
            if self.on_by_ipmi { 0x10 } else { 0 },
            0,
        ];
        (
            data,
            format!(
                "get-chassis-status power={}",
                if self.power_on { "on" } else { "off" }
            ),
        )
    }

    /// Chassis Control (§28.3). Cycle, reset and soft-off need the power on (the spec's D5h
    /// otherwise); power up and down are idempotent. Events: power-up from off gives `PowerOn`;
    /// power-down or soft-off while on gives `PowerOff`; cycle or hard reset (while on) gives one
    /// `Reset`, the machine being off for no time worth simulating.
    pub fn control(&mut self, data: &[u8]) -> (u8, String) {
        let [action] = data else {
            return (CC_BAD_LENGTH, "chassis-control bad-length".into());
        };
        let name = match action & 0x0F {
            0 => "power-down",
            1 => "power-up",
            2 => "power-cycle",
            3 => "hard-reset",
            5 => "soft-shutdown",
            _ => "unsupported",
        };
        let (cc, event) = match (action & 0x0F, self.power_on) {
            (0, false) | (1, true) => (0, None),
            (0 | 5, true) => (0, Some(ChassisEvent::PowerOff)),
            (1, false) => (0, Some(ChassisEvent::PowerOn { boot: self.boot() })),
            (2 | 3, true) => (0, Some(ChassisEvent::Reset { boot: self.boot() })),
            (2 | 3 | 5, false) => (CC_NOT_IN_PRESENT_STATE, None),
            _ => (CC_INVALID_FIELD, None),
        };
        if cc == 0 {
            self.power_on = matches!(action & 0x0F, 1..=3);
            self.on_by_ipmi = self.power_on;
            self.events.extend(event);
            self.save();
        }
        let outcome = if cc == 0 {
            String::new()
        } else {
            format!(" refused cc=0x{cc:02x}")
        };
        (cc, format!("chassis-control {name}{outcome}"))
    }

    /// Set System Boot Options (§28.12): parameters 0 (set in progress), 4 (boot info
    /// acknowledge) and 5 (boot flags).
    pub fn set_boot(&mut self, data: &[u8]) -> (u8, String) {
        let Some((&param, value)) = data.split_first() else {
            return (CC_BAD_LENGTH, "set-boot-options bad-length".into());
        };
        let param = param & 0x7F;
        let cc = match (param, value) {
            (0, [v]) => match (v & 3, self.set_in_progress) {
                (3, _) => CC_INVALID_FIELD,
                (1, 1) => CC_SET_IN_PROGRESS,
                (v, _) => {
                    // Commit write is immediate here: every set takes effect at once.
                    self.set_in_progress = if v == 2 { 0 } else { v };
                    0
                }
            },
            (4, [mask, ack]) => {
                self.boot_ack = (self.boot_ack & !mask) | (ack & mask);
                0
            }
            (5, v) if v.len() == 5 => {
                self.boot_flags.copy_from_slice(v);
                self.save();
                0
            }
            (0 | 4 | 5, _) => CC_BAD_LENGTH,
            _ => CC_PARAM_NOT_SUPPORTED,
        };
        let what = match param {
            5 if cc == 0 => format!(" {} ({})", hex(&self.boot_flags), self.boot_summary()),
            _ => format!(" {}", hex(value)),
        };
        let outcome = if cc == 0 {
            String::new()
        } else {
            format!(" refused cc=0x{cc:02x}")
        };
        (cc, format!("set-boot-options param={param}{what}{outcome}"))
    }

    /// Get System Boot Options (§28.13): parameter version 1, the parameter (valid), its data.
    pub fn get_boot(&self, data: &[u8]) -> (u8, Vec<u8>, String) {
        let [param, _set, _block] = data else {
            return (CC_BAD_LENGTH, vec![], "get-boot-options bad-length".into());
        };
        let param = param & 0x7F;
        let value = match param {
            0 => vec![self.set_in_progress],
            4 => vec![0, self.boot_ack],
            5 => self.boot_flags.to_vec(),
            _ => {
                return (
                    CC_PARAM_NOT_SUPPORTED,
                    vec![],
                    format!("get-boot-options param={param} unsupported"),
                );
            }
        };
        let mut out = vec![0x01, param];
        out.extend_from_slice(&value);
        (0, out, format!("get-boot-options param={param}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POWER_DOWN: u8 = 0;
    const POWER_UP: u8 = 1;
    const CYCLE: u8 = 2;
    const HARD_RESET: u8 = 3;
    const SOFT_OFF: u8 = 5;

    /// Runs a Chassis Control and returns its completion code.
    fn control(c: &mut Chassis, action: u8) -> u8 {
        c.control(&[action]).0
    }

    /// Sets boot flags (parameter 5) from their first two data bytes.
    fn flags(c: &mut Chassis, f0: u8, f1: u8) {
        assert_eq!(c.set_boot(&[5, f0, f1, 0, 0, 0]).0, 0);
    }

    #[test]
    fn pxe_once_is_used_by_the_next_start_only() {
        let mut c = Chassis::new(None);
        flags(&mut c, 0xA0, 0x04); // valid, next boot only, EFI, PXE
        assert_eq!(control(&mut c, POWER_UP), 0);
        assert!(c.power_on());
        assert_eq!(
            c.take_events(),
            [ChassisEvent::PowerOn {
                boot: BootDevice::Pxe { efi: true }
            }]
        );
        assert_eq!(control(&mut c, HARD_RESET), 0);
        assert_eq!(
            c.take_events(),
            [ChassisEvent::Reset {
                boot: BootDevice::Default
            }]
        );
    }

    #[test]
    fn persistent_flags_stay_for_every_start() {
        let mut c = Chassis::new(None);
        flags(&mut c, 0xC0, 0x08); // valid, persistent, legacy, disk
        control(&mut c, POWER_UP);
        control(&mut c, CYCLE);
        control(&mut c, HARD_RESET);
        let disk = BootDevice::Disk;
        assert_eq!(
            c.take_events(),
            [
                ChassisEvent::PowerOn { boot: disk },
                ChassisEvent::Reset { boot: disk },
                ChassisEvent::Reset { boot: disk },
            ]
        );
    }

    #[test]
    fn flags_not_valid_or_other_devices() {
        let mut c = Chassis::new(None);
        flags(&mut c, 0x20, 0x04); // PXE, but the valid bit is clear
        control(&mut c, POWER_UP);
        flags(&mut c, 0xC0, 0x14); // persistent CD/DVD
        control(&mut c, CYCLE);
        assert_eq!(
            c.take_events(),
            [
                ChassisEvent::PowerOn {
                    boot: BootDevice::Default
                },
                ChassisEvent::Reset {
                    boot: BootDevice::Other(5)
                },
            ]
        );
    }

    #[test]
    fn power_down_and_soft_off_while_on_turn_it_off() {
        let mut c = Chassis::new(None);
        control(&mut c, POWER_UP);
        assert_eq!(control(&mut c, POWER_DOWN), 0);
        control(&mut c, POWER_UP);
        assert_eq!(control(&mut c, SOFT_OFF), 0);
        assert!(!c.power_on());
        let on = ChassisEvent::PowerOn {
            boot: BootDevice::Default,
        };
        assert_eq!(
            c.take_events(),
            [on, ChassisEvent::PowerOff, on, ChassisEvent::PowerOff]
        );
        assert!(c.take_events().is_empty());
    }

    #[test]
    fn no_event_when_nothing_changes_or_refused() {
        let mut c = Chassis::new(None);
        assert_eq!(control(&mut c, POWER_DOWN), 0);
        for action in [CYCLE, HARD_RESET, SOFT_OFF] {
            assert_eq!(control(&mut c, action), CC_NOT_IN_PRESENT_STATE);
        }
        assert_eq!(control(&mut c, 4), CC_INVALID_FIELD); // diagnostic interrupt
        assert_eq!(c.control(&[]).0, CC_BAD_LENGTH);
        assert_eq!(c.control(&[POWER_UP, 0]).0, CC_BAD_LENGTH);
        assert!(c.take_events().is_empty());
        assert!(!c.power_on());

        control(&mut c, POWER_UP);
        c.take_events();
        assert_eq!(control(&mut c, POWER_UP), 0);
        assert!(c.take_events().is_empty());
    }

    #[test]
    fn off_by_host_is_seen_without_an_event() {
        let mut c = Chassis::new(None);
        flags(&mut c, 0xA0, 0x04);
        control(&mut c, POWER_UP);
        c.take_events();
        c.set_power_off_by_host();
        assert!(!c.power_on());
        assert_eq!(c.status().0[0], 0);
        assert!(c.take_events().is_empty());
        assert_eq!(control(&mut c, CYCLE), CC_NOT_IN_PRESENT_STATE);
        control(&mut c, POWER_UP);
        assert_eq!(
            c.take_events(),
            [ChassisEvent::PowerOn {
                boot: BootDevice::Default
            }]
        );
    }
}
