//! QEMU/TEST-ONLY: this board has no flash, so its "flash" is a host file reached over ARM
//! semihosting (SYS_OPEN/SEEK/READ/WRITE) in QEMU's working directory: `qemu-flash.bin`
//! for the leases, `qemu-outbox.bin` for the uplink's outbox (feature `uplink`).
//! It is a plain byte medium; `flash_store::emulated::EmulatedNor` puts NOR rules on top, so
//! the journal above it runs as it would on a real board, whose internal flash driver takes
//! its place.

use embassy_time::{Duration, block_for};
use flash_store::emulated::Medium;
use semihosting::fs::File;
use semihosting::io::{self, Read, Seek, SeekFrom, Write};

/// The leases' file and its size (the emulated part).
pub const LEASES: (&core::ffi::CStr, usize) = (c"qemu-flash.bin", 4 * 1024);
/// The uplink outbox's file: two banks of 16 KiB, about 15 KiB of stored outbox each.
#[cfg(feature = "uplink")]
pub const OUTBOX: (&core::ffi::CStr, usize) = (c"qemu-outbox.bin", 32 * 1024);
/// How long a medium write takes. A NOR part takes tens of microseconds to program a word
/// and milliseconds to erase a page; a host file takes nothing, so a kill of QEMU would
/// almost never land inside a write. Waiting here (at the 1 kHz tick's resolution) gives
/// writes their share of the time, as on a part.
const WRITE_TIME: Duration = Duration::from_micros(200);

pub struct HostFile {
    file: File,
    size: usize,
}

/// A failed semihosting call: the host's errno (-1 when it gave none). Logged with defmt as
/// is, which keeps core::fmt's Debug machinery out of the image.
#[derive(Clone, Copy, Debug, defmt::Format)]
pub struct HostError(pub i32);

impl From<io::Error> for HostError {
    fn from(e: io::Error) -> HostError {
        HostError(e.raw_os_error().unwrap_or(-1))
    }
}

impl HostFile {
    /// Opens the file (`LEASES` or `OUTBOX`), creating it when missing. A file shorter than
    /// its size (new, or cut while being extended) is extended with 0xFF: the cells past its
    /// end were never programmed, so they read as erased.
    pub fn open((path, size): (&core::ffi::CStr, usize)) -> Result<HostFile, HostError> {
        let file = match File::options().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(_) => File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?,
        };
        let mut f = HostFile { file, size };
        let len = usize::try_from(f.file.metadata()?.len()).unwrap_or(size);
        if len < size {
            f.file.seek(SeekFrom::Start(len as u64))?;
            let erased = [0xFF; 256];
            let mut at = len;
            while at < size {
                let n = erased.len().min(size - at);
                f.file.write_all(&erased[..n])?;
                at += n;
            }
        }
        Ok(f)
    }
}

impl Medium for HostFile {
    type Error = HostError;

    fn capacity(&self) -> usize {
        self.size
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), HostError> {
        self.file.seek(SeekFrom::Start(offset as u64))?;
        let mut n = 0;
        while n < buf.len() {
            match self.file.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        // Past the end of a short file: erased.
        buf[n..].fill(0xFF);
        Ok(())
    }

    /// One SYS_WRITE per call: the emulator calls with one program unit at a time, so a kill
    /// of QEMU tears a write between units, as a power cut tears one on NOR.
    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), HostError> {
        block_for(WRITE_TIME);
        self.file.seek(SeekFrom::Start(offset as u64))?;
        Ok(self.file.write_all(data)?)
    }
}
