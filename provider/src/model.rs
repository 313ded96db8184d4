//! The domain model: appliances (one per rack) and their machines, with Omni's static
//! provider fields. No I/O; the store persists these as JSON and [`crate::lifecycle`] decides
//! what each machine needs from them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uplink::{BootTarget, Mac, MachineId, Uuid};

/// An appliance, as numbered by the provider at enrollment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApplianceId(pub u64);

impl fmt::Display for ApplianceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A rack appliance. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appliance {
    pub id: ApplianceId,
    /// The operator's label from its enrollment request. Its certificate and hello carry
    /// the id.
    pub name: String,
    /// From its last hello.
    pub firmware: Option<String>,
    pub enrolled_at: u64,
    pub revoked: bool,
    pub last_seen: Option<u64>,
    pub cert_fingerprint: String,
}

/// A machine's key: its SMBIOS UUID once known (Omni's key), else its boot NIC's MAC.
/// Written `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` or `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MachineKey(pub String);

impl MachineKey {
    pub fn of(mac: Mac, uuid: Option<Uuid>) -> Self {
        match uuid {
            Some(u) => MachineKey(fmt_uuid(u)),
            None => MachineKey(fmt_mac(mac)),
        }
    }
}

impl fmt::Display for MachineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn fmt_mac(mac: Mac) -> String {
    let m = mac.0;
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

pub fn fmt_uuid(uuid: Uuid) -> String {
    let hex: String = uuid.0.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in &mut out {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(Mac(out))
}

/// Omni's acceptance status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acceptance {
    Pending,
    Accepted,
    Rejected,
}

/// Omni's preferred power state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreferredPower {
    On,
    Off,
}

impl FromStr for PreferredPower {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(PreferredPower::On),
            "off" => Ok(PreferredPower::Off),
            other => Err(format!("power `{other}`: expected on or off")),
        }
    }
}

/// Power as last reported by the appliance (Omni's InfraMachineStatus.power_state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObservedPower {
    Unknown,
    On,
    Off,
}

impl From<uplink::Power> for ObservedPower {
    fn from(p: uplink::Power) -> Self {
        match p {
            uplink::Power::Unknown => ObservedPower::Unknown,
            uplink::Power::On => ObservedPower::On,
            uplink::Power::Off => ObservedPower::Off,
        }
    }
}

/// What Omni allocated the machine to: the cluster's Talos and its schematic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub talos_version: String,
    /// Image Factory schematic id, used as it is; `None`: the provider creates one from
    /// `kernel_args` and `extensions` (and the join config's kernel arguments).
    pub schematic: Option<String>,
    #[serde(default)]
    pub kernel_args: String,
    /// Official system extensions (Omni's `InfraMachine.extensions`).
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// An operator's override of the lifecycle's boot decision (`provider boot`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootOverride {
    Agent,
    Install,
    Disk,
    Url(String),
}

impl FromStr for BootOverride {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "agent" => Ok(BootOverride::Agent),
            "install" => Ok(BootOverride::Install),
            "disk" => Ok(BootOverride::Disk),
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(BootOverride::Url(url.to_string()))
            }
            other => Err(format!(
                "boot target `{other}`: expected agent, install, disk, auto or an http(s) URL"
            )),
        }
    }
}

/// What the appliance has been told about a machine, as far as its results confirm.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The boot target the appliance confirmed.
    pub boot: Option<BootTarget>,
    /// The BMC configuration revision the appliance confirmed.
    pub bmc_revision: u32,
    /// A steady power command already tried for the current observed state; cleared when
    /// the observed power changes, so a BMC that ignores it is not hammered.
    pub power_attempt: Option<PreferredPower>,
    /// The boot target the machine was last power-cycled into (install, or agent with a
    /// wipe), so each such target is booted once.
    pub cycled_into: Option<BootTarget>,
    /// The appliance restarted since `boot` was confirmed: it no longer holds it, so it is
    /// sent again, but boots reported from before the restart are still read against it.
    #[serde(default)]
    pub stale: bool,
}

/// A machine of one rack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub key: MachineKey,
    /// The rack it belongs to: only that appliance may speak for it.
    pub appliance: ApplianceId,
    pub mac: Mac,
    pub uuid: Option<Uuid>,
    /// DHCP option 93 architecture.
    pub arch: Option<u16>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub lease_ip: Option<[u8; 4]>,
    pub lease_expires: Option<u64>,
    /// What the boot chain last fetched, as the appliance reported it.
    pub last_boot: Option<String>,
    pub acceptance: Acceptance,
    pub preferred_power: PreferredPower,
    pub observed_power: ObservedPower,
    pub allocation: Option<Allocation>,
    /// Counts installs served since the last allocation; `installed` once one is.
    pub install_event_id: u64,
    pub installed: bool,
    /// A wipe is due while `wipe_id` differs from `wiped`.
    pub wipe_id: Option<String>,
    pub wiped: Option<String>,
    pub requested_reboot_id: Option<String>,
    pub last_reboot_id: Option<String>,
    pub power_off_request_id: Option<String>,
    pub last_power_off_id: Option<String>,
    pub cordoned: bool,
    pub boot_override: Option<BootOverride>,
    /// The BMC configuration's revision (it lives in its own table, never listed); `None`
    /// while none is configured.
    pub bmc_revision: Option<u32>,
    pub delivered: Delivered,
    /// No new command for this machine before this time (after a failed one).
    pub retry_after: u64,
    pub last_error: Option<String>,
}

impl Machine {
    /// A machine first seen now: pending, preferred off (Omni's defaults).
    pub fn new(appliance: ApplianceId, mac: Mac, uuid: Option<Uuid>, now: u64) -> Self {
        Machine {
            key: MachineKey::of(mac, uuid),
            appliance,
            mac,
            uuid,
            arch: None,
            first_seen: now,
            last_seen: now,
            lease_ip: None,
            lease_expires: None,
            last_boot: None,
            acceptance: Acceptance::Pending,
            preferred_power: PreferredPower::Off,
            observed_power: ObservedPower::Unknown,
            allocation: None,
            install_event_id: 0,
            installed: false,
            wipe_id: None,
            wiped: None,
            requested_reboot_id: None,
            last_reboot_id: None,
            power_off_request_id: None,
            last_power_off_id: None,
            cordoned: false,
            boot_override: None,
            bmc_revision: None,
            delivered: Delivered::default(),
            retry_after: 0,
            last_error: None,
        }
    }

    /// How commands name it: Omni's UUID when known, else the MAC.
    pub fn wire_id(&self) -> MachineId {
        match self.uuid {
            Some(u) => MachineId::Uuid(u),
            None => MachineId::Mac(self.mac),
        }
    }

    pub fn wipe_due(&self) -> bool {
        self.wipe_id.is_some() && self.wipe_id != self.wiped
    }
}

/// How the provider reaches a machine's BMC. Kept apart from [`Machine`] and never listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcConfig {
    pub endpoint: uplink::BmcEndpoint,
    pub user: String,
    pub password: String,
}

/// An operator's (or later Omni's) change to a machine: the API's one mutation message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum Change {
    Power {
        state: PreferredPower,
    },
    /// `None` returns the machine to the lifecycle's own decision.
    Boot {
        target: Option<BootOverride>,
    },
    Accept,
    Reject,
    Allocate(Allocation),
    Deallocate,
    Reboot,
    /// Wipe under Omni's id (its `wipe_id`): the agent boots with this wipe order.
    Wipe {
        id: String,
    },
    /// Omni's power-off request (`power_off_request_id`); `None` when Omni withdrew it.
    PowerOff {
        id: Option<String>,
    },
    Cordon,
    Uncordon,
    Bmc(BmcConfig),
}

/// A freshly created enrollment token; the secret (hex) is shown once. With the TLS
/// front's `addr` (`host:port`) and CA fingerprint (`ca_sha256`, hex) it makes the token an
/// appliance is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub id: String,
    pub secret: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub addr: String,
    pub ca_sha256: String,
}
