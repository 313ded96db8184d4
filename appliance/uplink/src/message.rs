//! The messages. Every string is a fixed-capacity `heapless::String` whose limit is a const
//! here; a peer that sends a longer one gets a decode error, never a truncated value.
//!
//! Layout rule (see the crate doc): enums only grow at the end and a variant's fields never
//! change, because postcard writes a variant as its index and a struct as its fields in order,
//! with no names or tags.

use core::fmt;

use heapless::String;
use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks; a peer may speak any version from
/// [`MIN_PROTOCOL_VERSION`] up to this.
pub const PROTOCOL_VERSION: u16 = 1;
/// The oldest version this crate still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// Appliance id (the name in its client certificate).
pub const ID_MAX: usize = 64;
/// Firmware version string.
pub const VERSION_MAX: usize = 32;
/// A URL (boot script, kernel, Redfish service). Image Factory PXE URLs are ~130 bytes.
pub const URL_MAX: usize = 256;
/// A TFTP file name.
pub const FILE_MAX: usize = 128;
/// Extra kernel arguments for an install.
pub const KERNEL_ARGS_MAX: usize = 256;
/// Omni's wipe id.
pub const WIPE_ID_MAX: usize = 64;
/// BMC user name (IPMI allows 16, Redfish more).
pub const USER_MAX: usize = 32;
/// BMC password (IPMI v2 allows 20).
pub const PASSWORD_MAX: usize = 64;
/// Error text in a command result.
pub const ERROR_MAX: usize = 96;
/// Omni's machine join config (SideroLink, event sink and kmsg log documents, ~560 bytes
/// with a signed join token). The cap keeps the largest `ConfigUpdate` within one frame.
pub const JOIN_CONFIG_MAX: usize = 736;

pub type Url = String<URL_MAX>;

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub struct Mac(pub [u8; 6]);

/// An SMBIOS system UUID, in the byte order DHCP option 97 carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub struct Uuid(pub [u8; 16]);

/// An IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub struct Ipv4(pub [u8; 4]);

/// How a message names a machine: by its boot NIC, or by its UUID (Omni's key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum MachineId {
    Mac(Mac),
    Uuid(Uuid),
}

/// What an appliance can do, as bits, so a feature can be added without a version bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities(pub u32);

impl Capabilities {
    pub const DHCP_SERVER: u32 = 1 << 0;
    pub const PROXY_DHCP: u32 = 1 << 1;
    pub const TFTP: u32 = 1 << 2;
    pub const HTTP_BOOT: u32 = 1 << 3;
    pub const IPMI: u32 = 1 << 4;
    pub const REDFISH: u32 = 1 << 5;

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit == bit
    }
}

/// The first message on every connection, from the appliance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The highest version the appliance speaks.
    pub protocol: u16,
    pub appliance_id: String<ID_MAX>,
    pub firmware_version: String<VERSION_MAX>,
    pub capabilities: Capabilities,
    /// How many commands the provider may have outstanding (sent, no result applied yet).
    pub command_window: u16,
    /// Drawn at random when the appliance starts. A new one tells the provider that the
    /// appliance's tables held only in memory (boot targets, BMC credentials) are empty, so
    /// it sends them again.
    pub boot_id: u64,
}

/// The provider's answer to [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The version both will speak: at most the appliance's.
    pub protocol: u16,
    /// The last event sequence number the provider has applied; the appliance resends the
    /// rest.
    pub last_acked_seq: u64,
    /// The provider's clock, Unix seconds, for an appliance without a real-time clock.
    pub time: u64,
}

/// Why the provider turns a [`Hello`] down; it closes the connection after sending this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// No common protocol version; the provider speaks `min..=max`.
    Version { min: u16, max: u16 },
}

/// Appliance -> provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToProvider {
    Hello(Hello),
    Event(Sequenced),
    Pong(u32),
}

/// Provider -> appliance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToAppliance {
    Welcome(Welcome),
    Refused(Refusal),
    /// Cumulative: every event up to and including `upto` is applied.
    Ack {
        upto: u64,
    },
    /// Ids start at 1 and increase; a resent command keeps its id.
    Command {
        id: u64,
        command: Command,
    },
    Ping(u32),
}

/// An event with its sequence number (from 1, increasing; gaps allowed, see the outbox).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequenced {
    pub seq: u64,
    pub event: Event,
}

/// Something the appliance observed. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    MachineSeen(MachineSeen),
    Lease(Lease),
    BootServed(BootServed),
    PowerState(PowerState),
    CommandResult(CommandResult),
}

/// What a state-like event is about: a newer event with the same key makes an older
/// waiting one redundant, so a full outbox may drop the older one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Seen(Mac),
    Lease(Mac),
    Power(MachineId),
}

impl Event {
    /// `None` for events that are history, not state: each must arrive.
    pub fn key(&self) -> Option<Key> {
        match self {
            Event::MachineSeen(m) => Some(Key::Seen(m.mac)),
            Event::Lease(l) => Some(Key::Lease(l.mac)),
            Event::PowerState(p) => Some(Key::Power(p.machine)),
            Event::BootServed(_) | Event::CommandResult(_) => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineSeen {
    pub mac: Mac,
    pub uuid: Option<Uuid>,
    /// Client system architecture (DHCP option 93, RFC 4578 registry).
    pub arch: Option<u16>,
    pub first_seen: u64,
    pub last_seen: u64,
}

/// A lease granted or renewed; a released or declined lease is sent with `expires` at the
/// time it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub mac: Mac,
    pub ip: Ipv4,
    pub expires: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootServed {
    pub mac: Mac,
    pub what: Served,
    pub at: u64,
}

/// What the boot chain fetched from the appliance, or was pointed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Served {
    TftpFile(String<FILE_MAX>),
    Script(Url),
    KernelUrl(Url),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerState {
    pub machine: MachineId,
    pub state: Power,
    pub at: u64,
}

/// Power as the BMC reports it (Omni's InfraMachineStatus.power_state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Power {
    Unknown,
    Off,
    On,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub command_id: u64,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    Failed(String<ERROR_MAX>),
    /// The appliance restarted after accepting the command and before reporting: it may or
    /// may not have run. Re-issue under a new id if it is still wanted.
    Interrupted,
}

/// What the provider asks of the appliance. Each travels in [`ToAppliance::Command`] with
/// an id, runs at most once, and is answered by exactly one [`CommandResult`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    SetBootTarget {
        machine: MachineId,
        target: BootTarget,
    },
    /// The provider's command id doubles as Omni's reboot / power-off request id.
    PowerCommand {
        machine: MachineId,
        action: PowerAction,
        /// Set a one-time network boot (in this firmware mode) before the action.
        pxe_once: Option<BootMode>,
    },
    BmcCredentials(BmcCredentials),
    ConfigUpdate(Config),
}

/// What a machine boots when it next asks (Omni's lifecycle, see the crate doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootTarget {
    /// The provider's agent image (the configured `agent_url`); `wipe_id` asks it to wipe the
    /// disks once per id.
    Agent {
        wipe_id: Option<String<WIPE_ID_MAX>>,
    },
    /// Install: chain this URL (e.g. an Image Factory PXE URL) with extra kernel arguments.
    Install {
        url: Url,
        kernel_args: String<KERNEL_ARGS_MAX>,
    },
    /// Boot from the local disk.
    Disk,
    /// A custom iPXE script at this URL.
    Script(Url),
    /// A kernel or EFI image at this URL (UEFI HTTP boot, or chained by iPXE).
    Url(Url),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerAction {
    On,
    Off,
    /// ACPI soft-off.
    SoftOff,
    Cycle,
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootMode {
    Efi,
    Legacy,
}

/// How to reach a machine's BMC. `Debug` never shows the password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcCredentials {
    pub machine: MachineId,
    pub endpoint: BmcEndpoint,
    pub user: String<USER_MAX>,
    pub password: Secret,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BmcEndpoint {
    Ipmi {
        ip: Ipv4,
        port: u16,
    },
    /// `cert_sha256` pins the BMC's self-signed certificate when given.
    Redfish {
        url: Url,
        cert_sha256: Option<[u8; 32]>,
    },
}

/// A password: serialized as is, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub String<PASSWORD_MAX>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Settings the provider may change at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Where [`BootTarget::Agent`] boots from.
    pub agent_url: Url,
    /// How often to read power state from each BMC (Omni: 30 s).
    pub power_poll_secs: u16,
    /// Least time between a power-on and the next power-off (Omni: 15 min).
    pub min_on_before_off_secs: u32,
    /// The join config the appliance serves at `/config?u=UUID` (Talos' `talos.config`
    /// kernel argument points there); empty: none, `/config` answers 404.
    pub join_config: String<JOIN_CONFIG_MAX>,
}

/// The version the provider answers a [`Hello`] with, or why it refuses.
pub fn negotiate(hello: &Hello) -> Result<u16, Refusal> {
    if hello.protocol < MIN_PROTOCOL_VERSION {
        return Err(Refusal::Version {
            min: MIN_PROTOCOL_VERSION,
            max: PROTOCOL_VERSION,
        });
    }
    Ok(hello.protocol.min(PROTOCOL_VERSION))
}
