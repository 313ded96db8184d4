//! The IPMI commands the client sends and what it reads from their responses.

use super::wire::Reader;
use crate::bmc::{BootMode, Error, PowerAction, PowerState, PxeBoot};

/// Network functions (requests; a response's is one higher).
pub const NETFN_CHASSIS: u8 = 0x00;
pub const NETFN_APP: u8 = 0x06;

/// A command's fixed part; requests carry at most 6 data bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    pub netfn: u8,
    pub cmd: u8,
    data: [u8; 6],
    len: u8,
}

impl Command {
    const fn new(netfn: u8, cmd: u8, data: [u8; 6], len: u8) -> Command {
        Command {
            netfn,
            cmd,
            data,
            len,
        }
    }

    pub fn data(&self) -> &[u8] {
        self.data.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Get Channel Authentication Capabilities (App 38h) for the current channel (0Eh),
    /// asking for the v2.0 extended data (80h).
    pub fn channel_auth_capabilities(privilege: u8) -> Command {
        Command::new(NETFN_APP, 0x38, [0x8E, privilege, 0, 0, 0, 0], 2)
    }

    /// Get Channel Cipher Suites (App 54h): IPMI payload, records listed by suite, `index`
    /// selects the next 16 bytes of the list.
    pub fn channel_cipher_suites(index: u8) -> Command {
        Command::new(
            NETFN_APP,
            0x54,
            [0x0E, 0x00, 0x80 | (index & 0x3F), 0, 0, 0],
            3,
        )
    }

    /// Set Session Privilege Level (App 3Bh): sessions start at User level.
    pub fn set_session_privilege(privilege: u8) -> Command {
        Command::new(NETFN_APP, 0x3B, [privilege, 0, 0, 0, 0, 0], 1)
    }

    /// Close Session (App 3Ch) for the BMC's session id.
    pub fn close_session(bmc_id: u32) -> Command {
        let [a, b, c, d] = bmc_id.to_le_bytes();
        Command::new(NETFN_APP, 0x3C, [a, b, c, d, 0, 0], 4)
    }

    pub fn device_id() -> Command {
        Command::new(NETFN_APP, 0x01, [0; 6], 0)
    }

    pub fn system_guid() -> Command {
        Command::new(NETFN_APP, 0x37, [0; 6], 0)
    }

    pub fn chassis_status() -> Command {
        Command::new(NETFN_CHASSIS, 0x01, [0; 6], 0)
    }

    /// Chassis Control (Chassis 02h).
    pub fn chassis_control(action: PowerAction) -> Command {
        let code = match action {
            PowerAction::Off => 0,
            PowerAction::On => 1,
            PowerAction::Cycle => 2,
            PowerAction::HardReset => 3,
            PowerAction::SoftOff => 5,
        };
        Command::new(NETFN_CHASSIS, 0x02, [code, 0, 0, 0, 0, 0], 1)
    }

    /// Set System Boot Options (Chassis 08h) parameter 0, set-in-progress: 1 starts a
    /// change, 0 commits it (the lock ipmitool takes around boot flags).
    pub fn boot_set_in_progress(in_progress: bool) -> Command {
        Command::new(
            NETFN_CHASSIS,
            0x08,
            [0x00, u8::from(in_progress), 0, 0, 0, 0],
            2,
        )
    }

    /// Set System Boot Options parameter 5, boot flags: valid, once or persistent, EFI or
    /// legacy, boot device "force PXE" (0001b in bits 5:2 of the second byte).
    pub fn boot_flags_pxe(pxe: PxeBoot) -> Command {
        let mut flags = 0x80;
        if pxe.persistent {
            flags |= 0x40;
        }
        if pxe.mode == BootMode::Efi {
            flags |= 0x20;
        }
        Command::new(NETFN_CHASSIS, 0x08, [0x05, flags, 0x04, 0, 0, 0], 6)
    }
}

/// Whether the channel speaks IPMI v2.0 (RMCP+), from Get Channel Authentication
/// Capabilities: extended capabilities present (byte 2 bit 7) and v2.0 supported (byte 4 bit 1).
pub fn supports_v2(data: &[u8]) -> Result<bool, Error> {
    let mut r = Reader::new(data);
    let _channel = r.u8()?;
    let auth_types = r.u8()?;
    let _status = r.u8()?;
    let extended = r.u8()?;
    Ok(auth_types & 0x80 != 0 && extended & 0x02 != 0)
}

/// Cipher suite ids in Get Channel Cipher Suites record data (standard records C0h id
/// algs..., OEM records C1h id IANA(3) algs...). Algorithm bytes are skipped: the client
/// knows what each standard id means.
pub fn cipher_suite_ids(records: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut r = Reader::new(records);
    core::iter::from_fn(move || {
        loop {
            let start = r.u8().ok()?;
            let id = r.u8().ok()?;
            if start == 0xC1 {
                r.take(3).ok()?;
            }
            // Algorithm bytes (tagged 00h, 40h, 80h in their top bits) up to the next record.
            while r.peek().is_some_and(|b| b & 0xC0 != 0xC0) {
                r.u8().ok()?;
            }
            if start == 0xC0 {
                return Some(id);
            }
        }
    })
}

/// The power state from Get Chassis Status (byte 1 bit 0: power is on).
pub fn power_state(data: &[u8]) -> Result<PowerState, Error> {
    let current = Reader::new(data).u8()?;
    Ok(if current & 0x01 != 0 {
        PowerState::On
    } else {
        PowerState::Off
    })
}

/// What Get Device ID tells: enough to identify and log the BMC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceId {
    pub device_id: u8,
    pub revision: u8,
    /// Firmware major (7 bits) and minor (BCD) revision.
    pub firmware: (u8, u8),
    /// IPMI version, BCD (51h = 1.5, 02h = 2.0).
    pub ipmi_version: u8,
    pub manufacturer: u32,
    pub product: u16,
}

impl DeviceId {
    pub fn parse(data: &[u8]) -> Result<DeviceId, Error> {
        let mut r = Reader::new(data);
        let device_id = r.u8()?;
        let revision = r.u8()? & 0x0F;
        let firmware = (r.u8()? & 0x7F, r.u8()?);
        let ipmi_version = r.u8()?;
        let _support = r.u8()?;
        let [a, b, c] = r.array::<3>()?;
        let manufacturer = u32::from_le_bytes([a, b, c & 0x0F, 0]);
        let product = r.u16le()?;
        Ok(DeviceId {
            device_id,
            revision,
            firmware,
            ipmi_version,
            manufacturer,
            product,
        })
    }
}

/// Maps a non-zero completion code of a command to the operation's error.
pub fn completion_error(cc: u8) -> Error {
    match cc {
        // Invalid command, command not supported in present state, parameter not supported.
        0xC1 | 0xD5 | 0x80 => Error::Unsupported,
        // Insufficient privilege.
        0xD4 => Error::Auth,
        other => Error::Refused(u16::from(other)),
    }
}

#[cfg(test)]
mod tests;
