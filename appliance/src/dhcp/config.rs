//! The DHCP server's configuration, with fixed capacities and validation that names the
//! offending entry.

use core::fmt;
use core::net::Ipv4Addr;

use heapless::{String, Vec};

use super::pxe::BootConfig;
use super::wire::opt;
use crate::inventory::MachineKey;
use crate::net::{Ipv4Net, MacAddr, Uuid};

pub const MAX_SUBNETS: usize = 8;
pub const MAX_RESERVATIONS: usize = 64;
pub const MAX_DNS: usize = 3;
pub const MAX_EXTRA_OPTIONS: usize = 8;
pub const MAX_OPTION_LEN: usize = 64;
pub const MAX_DOMAIN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The rack's DHCP server: addresses and boot files.
    Full,
    /// Beside the site's DHCP server: boot files for PXE clients only, never an address.
    Proxy,
}

/// A subnet the appliance serves: its own segment, or one behind a relay (giaddr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub net: Ipv4Net,
    pub pool_first: Ipv4Addr,
    pub pool_last: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
}

impl Subnet {
    pub fn in_pool(&self, ip: Ipv4Addr) -> bool {
        (self.pool_first..=self.pool_last).contains(&ip)
    }

    pub fn pool_size(&self) -> u32 {
        u32::from(self.pool_last) - u32::from(self.pool_first) + 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub key: MachineKey,
    pub ip: Ipv4Addr,
}

impl Reservation {
    pub fn matches(&self, mac: MacAddr, uuid: Option<Uuid>) -> bool {
        match self.key {
            MachineKey::Mac(m) => m == mac,
            MachineKey::Uuid(u) => Some(u) == uuid,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    /// The appliance's address: server identifier (option 54).
    pub server_ip: Ipv4Addr,
    pub subnets: Vec<Subnet, MAX_SUBNETS>,
    pub dns: Vec<Ipv4Addr, MAX_DNS>,
    pub domain: String<MAX_DOMAIN>,
    pub lease_secs: u32,
    pub reservations: Vec<Reservation, MAX_RESERVATIONS>,
    /// Any further option, sent verbatim in every OFFER and ACK.
    pub extra_options: Vec<(u8, Vec<u8, MAX_OPTION_LEN>), MAX_EXTRA_OPTIONS>,
    pub boot: BootConfig,
}

impl Config {
    /// A configuration with no subnets; add them before use.
    pub fn new(mode: Mode, server_ip: Ipv4Addr) -> Config {
        Config {
            mode,
            server_ip,
            subnets: Vec::new(),
            dns: Vec::new(),
            domain: String::new(),
            lease_secs: 3600,
            reservations: Vec::new(),
            extra_options: Vec::new(),
            boot: BootConfig::new(server_ip),
        }
    }

    /// Checks what a typo would break; the server relies on it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mode == Mode::Full && !self.subnets.iter().any(|s| s.net.contains(self.server_ip)) {
            return Err(ConfigError::NoLocalSubnet);
        }
        for s in &self.subnets {
            if s.pool_first > s.pool_last
                || !s.net.contains(s.pool_first)
                || !s.net.contains(s.pool_last)
            {
                return Err(ConfigError::PoolOutsideSubnet(s.net));
            }
        }
        if let Some(r) = self
            .reservations
            .iter()
            .find(|r| !self.subnets.iter().any(|s| s.net.contains(r.ip)))
        {
            return Err(ConfigError::ReservationOutsideSubnets(r.ip));
        }
        if self.lease_secs < 4 {
            return Err(ConfigError::LeaseTooShort);
        }
        if let Some((code, _)) = self.extra_options.iter().find(|(c, _)| MANAGED.contains(c)) {
            return Err(ConfigError::ManagedOption(*code));
        }
        Ok(())
    }
}

/// Options the server computes itself; the config may not override them.
const MANAGED: [u8; 10] = [
    opt::PAD,
    opt::LEASE_TIME,
    opt::OVERLOAD,
    opt::MESSAGE_TYPE,
    opt::SERVER_ID,
    opt::RENEWAL_TIME,
    opt::REBINDING_TIME,
    opt::VENDOR_CLASS,
    opt::CLIENT_UUID,
    opt::END,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    NoLocalSubnet,
    PoolOutsideSubnet(Ipv4Net),
    ReservationOutsideSubnets(Ipv4Addr),
    LeaseTooShort,
    ManagedOption(u8),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoLocalSubnet => {
                f.write_str("full DHCP mode needs a pool in the appliance's own subnet")
            }
            ConfigError::PoolOutsideSubnet(net) => {
                write!(f, "the pool of {net} is empty or outside it")
            }
            ConfigError::ReservationOutsideSubnets(ip) => {
                write!(f, "reservation {ip} is in no served subnet")
            }
            ConfigError::LeaseTooShort => f.write_str("lease time must be at least 4 seconds"),
            ConfigError::ManagedOption(c) => write!(f, "option {c} is set by the server itself"),
        }
    }
}
