//! The config region's bytes: a 16-byte header, then the postcard-encoded [`BoardConfig`].
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `RKCF` |
//! | 4 | 2 | version, little-endian ([`VERSION`]) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 4 | payload length, little-endian (at most [`PAYLOAD_MAX`]) |
//! | 12 | 4 | CRC-32 (IEEE) of the payload, little-endian |
//!
//! A region without the magic is "no config" (QEMU without `-device loader`, an erased
//! flash page); anything else that fails a check is an error, never a panic.

use core::fmt;

use crate::{BoardConfig, Invalid};

pub const MAGIC: [u8; 4] = *b"RKCF";
/// Bumped when [`BoardConfig`]'s encoding changes.
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 16;
/// Largest payload: the longest token (320 bytes) and the rest (about 40) fit with room.
pub const PAYLOAD_MAX: usize = 496;
/// Bytes a region needs to hold any config.
pub const REGION_MAX: usize = HEADER_LEN + PAYLOAD_MAX;

/// Why a region's bytes are not a usable config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// No magic: nothing was written there.
    Empty,
    /// Fewer bytes than the header, or than the header says.
    Truncated,
    Version(u16),
    /// The header's payload length is over [`PAYLOAD_MAX`].
    Length(u32),
    Crc {
        stored: u32,
        computed: u32,
    },
    /// The payload is not a postcard config (or has bytes after it).
    Encoding,
    /// The config does not fit in [`PAYLOAD_MAX`] (encoding only).
    TooLarge,
    Invalid(Invalid),
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionError::Empty => f.write_str("no config (magic missing)"),
            RegionError::Truncated => f.write_str("region shorter than its header says"),
            RegionError::Version(v) => write!(f, "unknown version {v} (expected {VERSION})"),
            RegionError::Length(n) => write!(f, "payload length {n} over {PAYLOAD_MAX}"),
            RegionError::Crc { stored, computed } => {
                write!(f, "CRC-32 {stored:08x} stored, {computed:08x} computed")
            }
            RegionError::Encoding => f.write_str("payload is not a config"),
            RegionError::TooLarge => write!(f, "config over {PAYLOAD_MAX} bytes"),
            RegionError::Invalid(e) => write!(f, "invalid config: {e}"),
        }
    }
}

/// Writes `config` as a region into `out` and returns its length. Refuses a config the
/// firmware would refuse.
pub fn encode(config: &BoardConfig, out: &mut [u8]) -> Result<usize, RegionError> {
    config.dhcp_config().map_err(RegionError::Invalid)?;
    let (header, rest) = out
        .split_at_mut_checked(HEADER_LEN)
        .ok_or(RegionError::Truncated)?;
    let room = rest.len().min(PAYLOAD_MAX);
    let payload =
        postcard::to_slice(config, &mut rest[..room]).map_err(|_| RegionError::TooLarge)?;
    let len = payload.len();
    let crc = crc32fast::hash(payload);
    header[0..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&VERSION.to_le_bytes());
    header[6..8].fill(0);
    // len <= PAYLOAD_MAX, so it fits in u32.
    header[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(HEADER_LEN + len)
}

/// Reads a config from `region` (which may be longer than the config) and checks it.
pub fn decode(region: &[u8]) -> Result<BoardConfig, RegionError> {
    let (header, rest) = region
        .split_at_checked(HEADER_LEN)
        .ok_or(RegionError::Truncated)?;
    if header[0..4] != MAGIC {
        return Err(RegionError::Empty);
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(RegionError::Version(version));
    }
    let len = word(8);
    let n = usize::try_from(len).map_err(|_| RegionError::Length(len))?;
    if n > PAYLOAD_MAX {
        return Err(RegionError::Length(len));
    }
    let payload = rest.get(..n).ok_or(RegionError::Truncated)?;
    let (stored, computed) = (word(12), crc32fast::hash(payload));
    if stored != computed {
        return Err(RegionError::Crc { stored, computed });
    }
    let config: BoardConfig = match postcard::take_from_bytes(payload) {
        Ok((config, [])) => config,
        _ => return Err(RegionError::Encoding),
    };
    config.dhcp_config().map_err(RegionError::Invalid)?;
    Ok(config)
}

#[cfg(test)]
mod tests;
