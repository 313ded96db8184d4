//! The boot asset region: the files a board serves (iPXE binaries, the script template)
//! packed by the host and read in place by the firmware, never copied into RAM.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `RKAS` |
//! | 4 | 2 | version, little-endian ([`VERSION`]) |
//! | 6 | 2 | file count, little-endian (at most [`MAX_FILES`]) |
//! | 8 | 4 | payload length, little-endian |
//! | 12 | 4 | CRC-32 (IEEE) of the payload, little-endian |
//! | 16 | 64 x count | entries: name (UTF-8, NUL-padded, [`NAME_LEN`] bytes), offset, length (u32 LE, from the payload's start) |
//! | ... | | the files' bytes |
//!
//! The whole payload is checked at boot (a 74 KiB undionly.kpxe takes milliseconds): a
//! half-written region must not reach a client as a corrupt boot loader.

use core::fmt;

use appliance::assets::{Asset, AssetError, AssetStore, Name};

pub const MAGIC: [u8; 4] = *b"RKAS";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 16;
pub const ENTRY_LEN: usize = 64;
/// Longest file name in the region.
pub const NAME_LEN: usize = ENTRY_LEN - 8;
/// Files a region holds.
pub const MAX_FILES: usize = 32;

/// Why a region's bytes are not a usable set of files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssetsError {
    /// No magic: nothing was written there.
    Empty,
    /// Fewer bytes than the header says, or (encoding) than the files need.
    Truncated,
    Version(u16),
    TooManyFiles,
    Crc {
        stored: u32,
        computed: u32,
    },
    /// An entry's name is empty, too long or not UTF-8, or its bytes lie outside the payload.
    BadEntry(usize),
}

impl fmt::Display for AssetsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssetsError::Empty => f.write_str("no assets (magic missing)"),
            AssetsError::Truncated => f.write_str("region shorter than its files"),
            AssetsError::Version(v) => write!(f, "unknown version {v} (expected {VERSION})"),
            AssetsError::TooManyFiles => write!(f, "more than {MAX_FILES} files"),
            AssetsError::Crc { stored, computed } => {
                write!(f, "CRC-32 {stored:08x} stored, {computed:08x} computed")
            }
            AssetsError::BadEntry(i) => write!(f, "entry {i} is malformed"),
        }
    }
}

/// The region's length for `files`.
pub fn encoded_len(files: &[(&str, &[u8])]) -> usize {
    HEADER_LEN + files.len() * ENTRY_LEN + files.iter().map(|(_, d)| d.len()).sum::<usize>()
}

/// Packs `files` into `out` (at least [`encoded_len`] bytes); returns the length.
pub fn encode(files: &[(&str, &[u8])], out: &mut [u8]) -> Result<usize, AssetsError> {
    if files.len() > MAX_FILES {
        return Err(AssetsError::TooManyFiles);
    }
    let len = encoded_len(files);
    let out = out.get_mut(..len).ok_or(AssetsError::Truncated)?;
    let payload_len = u32::try_from(len - HEADER_LEN).map_err(|_| AssetsError::Truncated)?;
    let (header, payload) = out.split_at_mut(HEADER_LEN);
    let mut data_at = files.len() * ENTRY_LEN;
    for (i, (name, data)) in files.iter().enumerate() {
        if name.is_empty() || name.len() > NAME_LEN || name.contains('\0') {
            return Err(AssetsError::BadEntry(i));
        }
        let entry = &mut payload[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
        entry.fill(0);
        entry[..name.len()].copy_from_slice(name.as_bytes());
        entry[NAME_LEN..NAME_LEN + 4].copy_from_slice(&(data_at as u32).to_le_bytes());
        entry[NAME_LEN + 4..].copy_from_slice(&(data.len() as u32).to_le_bytes());
        payload[data_at..data_at + data.len()].copy_from_slice(data);
        data_at += data.len();
    }
    header[..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&VERSION.to_le_bytes());
    header[6..8].copy_from_slice(&(files.len() as u16).to_le_bytes());
    header[8..12].copy_from_slice(&payload_len.to_le_bytes());
    header[12..16].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    Ok(len)
}

/// The files in a checked region, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub struct Assets<'a> {
    count: usize,
    payload: &'a [u8],
}

/// Checks `region` and returns its files.
pub fn decode(region: &[u8]) -> Result<Assets<'_>, AssetsError> {
    let header = region.get(..HEADER_LEN).ok_or(AssetsError::Truncated)?;
    if header[..4] != MAGIC {
        return Err(AssetsError::Empty);
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(AssetsError::Version(version));
    }
    let count = usize::from(u16::from_le_bytes([header[6], header[7]]));
    if count > MAX_FILES {
        return Err(AssetsError::TooManyFiles);
    }
    let len = usize::try_from(word(8)).map_err(|_| AssetsError::Truncated)?;
    let payload = (region.get(HEADER_LEN..))
        .and_then(|p| p.get(..len))
        .ok_or(AssetsError::Truncated)?;
    let (stored, computed) = (word(12), crc32fast::hash(payload));
    if stored != computed {
        return Err(AssetsError::Crc { stored, computed });
    }
    let assets = Assets { count, payload };
    for i in 0..count {
        assets.entry(i).ok_or(AssetsError::BadEntry(i))?;
    }
    Ok(assets)
}

impl<'a> Assets<'a> {
    /// No files (a board without a region).
    pub const EMPTY: Assets<'static> = Assets {
        count: 0,
        payload: &[],
    };

    /// Entry `i`: its name and bytes, `None` when malformed.
    fn entry(&self, i: usize) -> Option<(&'a str, &'a [u8])> {
        let payload: &'a [u8] = self.payload;
        let e = payload.get(i * ENTRY_LEN..(i + 1) * ENTRY_LEN)?;
        let name_len = e[..NAME_LEN]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(NAME_LEN);
        let name = core::str::from_utf8(&e[..name_len])
            .ok()
            .filter(|n| !n.is_empty())?;
        let word = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
        let at = usize::try_from(word(NAME_LEN)).ok()?;
        let len = usize::try_from(word(NAME_LEN + 4)).ok()?;
        let data = payload.get(at..at.checked_add(len)?)?;
        Some((name, data))
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The files, in region order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        (0..self.count).filter_map(|i| self.entry(i))
    }

    /// The bytes of the file named `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, d)| d)
    }
}

/// Reads in place: a handle is the entry's index, so nothing is held open.
impl AssetStore for Assets<'_> {
    fn open(&mut self, name: &Name) -> Result<Asset, AssetError> {
        let i = (0..self.count)
            .find(|&i| self.entry(i).is_some_and(|(n, _)| n == name.as_str()))
            .ok_or(AssetError::NotFound)?;
        let (_, data) = self.entry(i).ok_or(AssetError::Io)?;
        Ok(Asset {
            id: i as u32,
            size: data.len() as u64,
        })
    }

    fn read(&mut self, asset: Asset, offset: u64, buf: &mut [u8]) -> Result<usize, AssetError> {
        let (_, data) = self.entry(asset.id as usize).ok_or(AssetError::NotFound)?;
        let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn close(&mut self, _asset: Asset) {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;

    use super::*;
    use appliance::assets::normalize;

    #[test]
    fn round_trip_and_reads() {
        let files: &[(&str, &[u8])] =
            &[("undionly.kpxe", &[7u8; 3000]), ("boot.ipxe", b"#!ipxe\n")];
        let mut buf = vec![0xAA; encoded_len(files) + 100];
        let len = encode(files, &mut buf).unwrap();
        assert_eq!(len, encoded_len(files));
        let mut a = decode(&buf).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("boot.ipxe"), Some(&b"#!ipxe\n"[..]));
        let asset = a.open(&normalize(b"/undionly.kpxe").unwrap()).unwrap();
        assert_eq!(asset.size, 3000);
        let mut block = [0u8; 512];
        assert_eq!(a.read(asset, 2900, &mut block), Ok(100));
        assert_eq!(
            a.open(&normalize(b"nope").unwrap()),
            Err(AssetError::NotFound)
        );
    }

    #[test]
    fn damaged_regions_are_refused() {
        assert_eq!(decode(&[0u8; 64]).unwrap_err(), AssetsError::Empty);
        let files: &[(&str, &[u8])] = &[("a", b"hello")];
        let mut buf = vec![0; encoded_len(files)];
        encode(files, &mut buf).unwrap();
        assert_eq!(
            decode(&buf[..buf.len() - 1]).unwrap_err(),
            AssetsError::Truncated
        );
        for i in HEADER_LEN..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(decode(&bad), Err(AssetsError::Crc { .. })),
                "byte {i}"
            );
        }
        assert_eq!(
            encode(&[("", b"x")], &mut buf),
            Err(AssetsError::BadEntry(0))
        );
    }
}
