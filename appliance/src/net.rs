//! Small link-layer and addressing types shared by the services.

use core::fmt;
use core::net::Ipv4Addr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
    pub fn parse(s: &str) -> Option<MacAddr> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        parts.next().is_none().then_some(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A machine's SMBIOS UUID as firmware sends it in DHCP option 97.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses the canonical 8-4-4-4-12 hex form (dashes optional).
    pub fn parse(s: &str) -> Option<Uuid> {
        let mut out = [0u8; 16];
        let mut digits = s.bytes().filter(|&b| b != b'-');
        for byte in out.iter_mut() {
            let hi = hex_value(digits.next()?)?;
            let lo = hex_value(digits.next()?)?;
            *byte = hi << 4 | lo;
        }
        digits.next().is_none().then_some(Uuid(out))
    }

    /// Converts between the canonical byte order and the EFI GUID order firmware puts in
    /// DHCP option 97 (RFC 4578 follows EFI: the first three fields little-endian). The
    /// swap is its own inverse.
    pub fn swap_guid_order(self) -> Uuid {
        let mut b = self.0;
        b[..4].reverse();
        b[4..6].reverse();
        b[6..8].reverse();
        Uuid(b)
    }

    /// QEMU without `-smbios type=1,uuid=` and some boards send all zeros: not an identity.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An IPv4 network: address and prefix length.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// `None` when the prefix is longer than 32 bits.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }

    /// Parses `10.77.0.1/24`.
    pub fn parse(s: &str) -> Option<Ipv4Net> {
        let (addr, prefix) = s.split_once('/')?;
        Ipv4Net::new(addr.parse().ok()?, prefix.parse().ok()?)
    }

    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_bits())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask_bits() == 0
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests;
