//! NOR flash rules over a plain byte medium, for boards without flash and for host tests.
//!
//! A medium (a host file, RAM) accepts any write; real NOR does not, and code that only ever
//! ran against a forgiving medium breaks on the first real board. So every operation is
//! checked here as a NOR part would: erase works on whole `ERASE` pages and sets them to
//! 0xFF; a program is `WRITE`-aligned and may only clear bits (1 -> 0), else it fails
//! ([`Error::Overwrite`]). Programs reach the medium one `WRITE` unit at a time, in address
//! order, so a power cut tears a write between units as it tears one on a NOR part.

use embedded_storage::nor_flash::{
    self, ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Bytes standing in for flash cells, with no rules of their own. Offsets are in bounds
/// (the emulator checks them first).
pub trait Medium {
    type Error: core::fmt::Debug;
    fn capacity(&self) -> usize;
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error>;
    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), Self::Error>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error<E> {
    /// Out of bounds or not aligned.
    Check(NorFlashErrorKind),
    /// A program would set a bit that is 0 (the unit at this offset was not erased).
    Overwrite(u32),
    Medium(E),
}

impl<E: core::fmt::Debug> NorFlashError for Error<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Error::Check(kind) => *kind,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// NOR flash over `M`: `WRITE`-byte program units, `ERASE`-byte pages.
pub struct EmulatedNor<M, const WRITE: usize, const ERASE: usize> {
    medium: M,
}

impl<M: Medium, const WRITE: usize, const ERASE: usize> EmulatedNor<M, WRITE, ERASE> {
    /// The medium's capacity should be a multiple of `ERASE` (a partial last page is
    /// unusable: erases fail there).
    pub fn new(medium: M) -> Self {
        EmulatedNor { medium }
    }

    pub fn into_medium(self) -> M {
        self.medium
    }
}

impl<M: Medium, const WRITE: usize, const ERASE: usize> ErrorType for EmulatedNor<M, WRITE, ERASE> {
    type Error = Error<M::Error>;
}

impl<M: Medium, const WRITE: usize, const ERASE: usize> ReadNorFlash
    for EmulatedNor<M, WRITE, ERASE>
{
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        nor_flash::check_read(self, offset, bytes.len()).map_err(Error::Check)?;
        self.medium
            .read(offset as usize, bytes)
            .map_err(Error::Medium)
    }

    fn capacity(&self) -> usize {
        self.medium.capacity()
    }
}

impl<M: Medium, const WRITE: usize, const ERASE: usize> NorFlash for EmulatedNor<M, WRITE, ERASE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        nor_flash::check_erase(self, from, to).map_err(Error::Check)?;
        let erased = [0xFF; 256];
        let mut at = from as usize;
        while at < to as usize {
            let n = erased.len().min(to as usize - at);
            self.medium.write(at, &erased[..n]).map_err(Error::Medium)?;
            at += n;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        nor_flash::check_write(self, offset, bytes.len()).map_err(Error::Check)?;
        // Every unit is checked before any is programmed: a refused write changes nothing.
        let mut old = [0u8; WRITE];
        for (i, unit) in bytes.chunks(WRITE).enumerate() {
            let at = offset as usize + i * WRITE;
            self.medium.read(at, &mut old).map_err(Error::Medium)?;
            if unit.iter().zip(&old).any(|(new, old)| new & !old != 0) {
                return Err(Error::Overwrite(at as u32));
            }
        }
        for (i, unit) in bytes.chunks(WRITE).enumerate() {
            let at = offset as usize + i * WRITE;
            self.medium.write(at, unit).map_err(Error::Medium)?;
        }
        Ok(())
    }
}

/// A RAM medium for host tests, which can cut the power: after `budget` more writes every
/// write fails and changes nothing, as if the board had stopped there.
#[derive(Clone)]
pub struct RamMedium<const N: usize> {
    pub bytes: [u8; N],
    budget: Option<usize>,
}

/// The power was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PowerCut;

impl<const N: usize> RamMedium<N> {
    /// A medium whose cells hold anything but 0xFF (a fresh part is not promised erased).
    pub fn new() -> Self {
        RamMedium {
            bytes: [0x5A; N],
            budget: None,
        }
    }

    /// Cuts the power after `writes` more medium writes (`None`: never).
    pub fn cut_after(&mut self, writes: Option<usize>) {
        self.budget = writes;
    }

    /// Medium writes still allowed before the cut (for counting a run's writes).
    pub fn budget(&self) -> Option<usize> {
        self.budget
    }
}

impl<const N: usize> Default for RamMedium<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Medium for RamMedium<N> {
    type Error = PowerCut;

    fn capacity(&self) -> usize {
        N
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), PowerCut> {
        buf.copy_from_slice(&self.bytes[offset..offset + buf.len()]);
        Ok(())
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), PowerCut> {
        match &mut self.budget {
            Some(0) => return Err(PowerCut),
            Some(n) => *n -= 1,
            None => {}
        }
        self.bytes[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }
}
