//! A board's configuration as it sits in the board's config region: what the operator
//! chose when building the image (address, DHCP mode, MAC, enrollment token), read by the
//! firmware at boot and written by `images build`. Shared by both so they agree on the
//! bytes; `no_std`, no allocator.
//!
//! The region layout and its checks are in [`region`]; the firmware falls back to
//! [`BoardConfig::default`] (its compiled-in config) when the region holds no valid config.
#![no_std]

pub mod assets;
pub mod region;

use core::fmt;
use core::net::Ipv4Addr;

use appliance::dhcp::config::ConfigError;
use appliance::dhcp::{Config, Mode, Subnet};
use appliance::net::Ipv4Net;
use heapless::String;
use serde::{Deserialize, Serialize};
use uplink::enroll::TOKEN_TEXT_MAX;

pub use region::{RegionError, decode, encode};

/// The compiled-in MAC: locally administered, unicast.
pub const DEFAULT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x77, 0x00, 0x01];
/// Lease time when the operator gives none (the appliance's default).
pub const DEFAULT_LEASE_SECS: u32 = 3600;

/// How the board answers DHCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DhcpMode {
    /// The rack's DHCP server, leasing `first..=last` on the board's own subnet.
    Pool { first: Ipv4Addr, last: Ipv4Addr },
    /// proxyDHCP beside the site's server: boot files only.
    Proxy,
}

/// What one image configures. `Debug` does not show the token (it holds a secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardConfig {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// Default route, and the router (option 3) handed to the pool's clients.
    pub gateway: Option<Ipv4Addr>,
    pub dhcp: DhcpMode,
    pub lease_secs: u32,
    pub mac: [u8; 6],
    /// Enrollment token text (`rack1:...`), kept for the uplink.
    pub token: Option<String<TOKEN_TEXT_MAX>>,
}

impl Default for BoardConfig {
    /// The firmware's compiled-in config: 10.77.0.1/24, pool .100-.199, no token.
    fn default() -> Self {
        BoardConfig {
            ip: Ipv4Addr::new(10, 77, 0, 1),
            prefix: 24,
            gateway: None,
            dhcp: DhcpMode::Pool {
                first: Ipv4Addr::new(10, 77, 0, 100),
                last: Ipv4Addr::new(10, 77, 0, 199),
            },
            lease_secs: DEFAULT_LEASE_SECS,
            mac: DEFAULT_MAC,
            token: None,
        }
    }
}

impl fmt::Debug for BoardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoardConfig")
            .field("ip", &self.ip)
            .field("prefix", &self.prefix)
            .field("gateway", &self.gateway)
            .field("dhcp", &self.dhcp)
            .field("lease_secs", &self.lease_secs)
            .field("mac", &self.mac)
            .field("token", &self.token.as_ref().map(|_| ".."))
            .finish()
    }
}

/// Why a config cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Prefix longer than 32 bits.
    Prefix(u8),
    /// A multicast MAC (low bit of the first byte set) cannot be a NIC's address.
    MulticastMac,
    Dhcp(ConfigError),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Prefix(p) => write!(f, "prefix /{p} is longer than 32 bits"),
            Invalid::MulticastMac => f.write_str("the MAC is a multicast address"),
            Invalid::Dhcp(e) => write!(f, "{e}"),
        }
    }
}

impl BoardConfig {
    /// The board's address and prefix; `None` when the prefix is too long.
    pub fn net(&self) -> Option<Ipv4Net> {
        Ipv4Net::new(self.ip, self.prefix)
    }

    /// The appliance's DHCP configuration, checked the way the server needs it (a pool
    /// outside the subnet, a lease too short, ...).
    pub fn dhcp_config(&self) -> Result<Config, Invalid> {
        let net = self.net().ok_or(Invalid::Prefix(self.prefix))?;
        if self.mac[0] & 1 != 0 {
            return Err(Invalid::MulticastMac);
        }
        let mode = match self.dhcp {
            DhcpMode::Pool { .. } => Mode::Full,
            DhcpMode::Proxy => Mode::Proxy,
        };
        let mut config = Config::new(mode, self.ip);
        config.lease_secs = self.lease_secs;
        if let DhcpMode::Pool { first, last } = self.dhcp {
            let subnet = Subnet {
                net,
                pool_first: first,
                pool_last: last,
                router: self.gateway,
            };
            // A fresh config has room for subnets; a full one would be a library change.
            config
                .subnets
                .push(subnet)
                .map_err(|_| Invalid::Dhcp(ConfigError::NoLocalSubnet))?;
        }
        config.validate().map_err(Invalid::Dhcp)?;
        Ok(config)
    }
}
