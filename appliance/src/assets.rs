//! The boot asset store: the files TFTP and HTTP serve, read in blocks (never whole into
//! RAM) from a directory on the host, or a flash or PSRAM region on a board.

use core::fmt;

/// Longest file name a client may ask for.
pub const MAX_NAME: usize = 128;

/// A normalised file name: relative, `/`-separated, no `.` or `..` parts, no NUL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(heapless::String<MAX_NAME>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a requested name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    /// Not UTF-8, or a NUL or control character.
    BadCharacter,
    /// A `..` part: outside the store.
    Traversal,
}

/// Normalises a name from the wire. Leading slashes are dropped (clients send `/file` and
/// `file` alike) and `\` counts as `/` (Windows-style loaders), so `pxelinux.cfg\default`
/// and `/pxelinux.cfg/default` are the same file. `.` parts and repeated slashes vanish;
/// `..` is refused outright rather than resolved, so nothing outside the store is named.
pub fn normalize(raw: &[u8]) -> Result<Name, NameError> {
    let text = core::str::from_utf8(raw).map_err(|_| NameError::BadCharacter)?;
    if text.chars().any(char::is_control) {
        return Err(NameError::BadCharacter);
    }
    let mut name = heapless::String::<MAX_NAME>::new();
    for part in text
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != ".")
    {
        if part == ".." {
            return Err(NameError::Traversal);
        }
        if !name.is_empty() {
            name.push('/').map_err(|_| NameError::TooLong)?;
        }
        name.push_str(part).map_err(|_| NameError::TooLong)?;
    }
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    Ok(Name(name))
}

/// An open file in a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// The store's handle for it.
    pub id: u32,
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssetError {
    NotFound,
    /// The store has as many files open as it can.
    Busy,
    /// The medium failed.
    Io,
}

/// Where boot files come from. Handles are cheap to open and must be closed.
pub trait AssetStore {
    fn open(&mut self, name: &Name) -> Result<Asset, AssetError>;
    /// Reads from `offset`; fewer bytes than `buf` only at the end of the file.
    fn read(&mut self, asset: Asset, offset: u64, buf: &mut [u8]) -> Result<usize, AssetError>;
    fn close(&mut self, asset: Asset);
}

/// Files held in memory: for unit tests and the in-process rack.
pub struct StaticAssets<'a> {
    files: &'a [(&'a str, &'a [u8])],
}

impl<'a> StaticAssets<'a> {
    pub fn new(files: &'a [(&'a str, &'a [u8])]) -> StaticAssets<'a> {
        StaticAssets { files }
    }
}

impl AssetStore for StaticAssets<'_> {
    fn open(&mut self, name: &Name) -> Result<Asset, AssetError> {
        let i = self
            .files
            .iter()
            .position(|(n, _)| *n == name.as_str())
            .ok_or(AssetError::NotFound)?;
        Ok(Asset {
            id: i as u32,
            size: self.files[i].1.len() as u64,
        })
    }

    fn read(&mut self, asset: Asset, offset: u64, buf: &mut [u8]) -> Result<usize, AssetError> {
        let data = self
            .files
            .get(asset.id as usize)
            .ok_or(AssetError::NotFound)?
            .1;
        let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn close(&mut self, _asset: Asset) {}
}

#[cfg(test)]
mod tests;
