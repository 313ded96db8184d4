//! An append-only journal of fixed-size records over a small storage trait, with compaction.
//!
//! Each record is followed by a CRC-32, so a record torn by a power cut is detected: replay
//! stops there and the next compaction rewrites a clean log. State survives a restart by
//! replaying the log in order; later records win.

/// Where a journal lives: a file on the host, a flash region on a board.
pub trait Storage {
    type Error: core::fmt::Debug;

    /// Bytes in the live log.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads from the live log at `offset`; returns how many bytes were read (0 at the end).
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<usize, Self::Error>;
    fn append(&mut self, data: &[u8]) -> Result<(), Self::Error>;
    /// Makes appended data durable, as far as the medium allows.
    fn flush(&mut self) -> Result<(), Self::Error>;
    /// Starts writing a replacement log beside the live one.
    fn rewrite_begin(&mut self) -> Result<(), Self::Error>;
    fn rewrite_append(&mut self, data: &[u8]) -> Result<(), Self::Error>;
    /// Atomically swaps the replacement in: after a crash, either log is whole.
    fn rewrite_commit(&mut self) -> Result<(), Self::Error>;
}

/// A fixed-size journal record.
pub trait Record: Sized {
    /// Encoded length without the CRC; at most [`MAX_RECORD`].
    const LEN: usize;
    fn encode(&self, out: &mut [u8]);
    /// `None` for bytes that are not a valid record.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

pub const MAX_RECORD: usize = 60;
const CRC_LEN: usize = 4;

/// What a replay found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub records: usize,
    /// Bytes after the last good record (a torn write), ignored.
    pub torn_bytes: usize,
}

pub struct Journal<S> {
    storage: S,
    records: usize,
}

impl<S: Storage> Journal<S> {
    /// Opens a journal, handing every good record to `apply` in log order.
    pub fn open<R: Record>(
        mut storage: S,
        mut apply: impl FnMut(R),
    ) -> Result<(Journal<S>, Replay), S::Error> {
        let mut buf = [0u8; MAX_RECORD + CRC_LEN];
        let frame = &mut buf[..R::LEN + CRC_LEN];
        let mut replay = Replay::default();
        let mut offset = 0;
        while offset < storage.len() {
            let n = storage.read(offset, frame)?;
            let record = (n == frame.len())
                .then(|| frame.split_at(R::LEN))
                .filter(|(body, crc)| crc32(body).to_le_bytes() == **crc)
                .and_then(|(body, _)| R::decode(body));
            match record {
                Some(r) => apply(r),
                None => {
                    replay.torn_bytes = storage.len() - offset;
                    break;
                }
            }
            replay.records += 1;
            offset += frame.len();
        }
        Ok((
            Journal {
                storage,
                records: replay.records,
            },
            replay,
        ))
    }

    pub fn append<R: Record>(&mut self, record: &R) -> Result<(), S::Error> {
        let mut buf = [0u8; MAX_RECORD + CRC_LEN];
        let frame = encode(record, &mut buf);
        self.storage.append(frame)?;
        self.records += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), S::Error> {
        self.storage.flush()
    }

    /// Records in the log, live or superseded.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Worth compacting once most records are superseded.
    pub fn should_compact(&self, live: usize) -> bool {
        self.records > 2 * live + 256
    }

    /// Replaces the log with one record per live item.
    pub fn compact<'r, R: Record + 'r>(
        &mut self,
        live: impl Iterator<Item = &'r R>,
    ) -> Result<(), S::Error> {
        let mut buf = [0u8; MAX_RECORD + CRC_LEN];
        self.storage.rewrite_begin()?;
        let mut records = 0;
        for record in live {
            self.storage.rewrite_append(encode(record, &mut buf))?;
            records += 1;
        }
        self.storage.rewrite_commit()?;
        self.records = records;
        Ok(())
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Closes the journal, handing its storage back (to reopen it, as a restart does).
    pub fn into_storage(self) -> S {
        self.storage
    }
}

fn encode<'b, R: Record>(record: &R, buf: &'b mut [u8; MAX_RECORD + CRC_LEN]) -> &'b [u8] {
    let (body, crc) = buf.split_at_mut(R::LEN);
    record.encode(body);
    crc[..CRC_LEN].copy_from_slice(&crc32(body).to_le_bytes());
    &buf[..R::LEN + CRC_LEN]
}

/// CRC-32 (IEEE 802.3), bitwise: records are small and rare enough not to need a table.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A journal in RAM: the storage of unit tests and of the in-process rack simulator.
#[derive(Default)]
pub struct RamStorage<const N: usize> {
    live: heapless::Vec<u8, N>,
    next: heapless::Vec<u8, N>,
}

/// The RAM journal is out of space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamFull;

impl<const N: usize> Storage for RamStorage<N> {
    type Error = RamFull;

    fn len(&self) -> usize {
        self.live.len()
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<usize, RamFull> {
        let src = self.live.get(offset..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }

    fn append(&mut self, data: &[u8]) -> Result<(), RamFull> {
        self.live.extend_from_slice(data).map_err(|_| RamFull)
    }

    fn flush(&mut self) -> Result<(), RamFull> {
        Ok(())
    }

    fn rewrite_begin(&mut self) -> Result<(), RamFull> {
        self.next.clear();
        Ok(())
    }

    fn rewrite_append(&mut self, data: &[u8]) -> Result<(), RamFull> {
        self.next.extend_from_slice(data).map_err(|_| RamFull)
    }

    fn rewrite_commit(&mut self) -> Result<(), RamFull> {
        core::mem::swap(&mut self.live, &mut self.next);
        self.next.clear();
        Ok(())
    }
}

impl<const N: usize> RamStorage<N> {
    /// Cuts the live log short, as a power cut mid-write would.
    pub fn truncate(&mut self, len: usize) {
        self.live.truncate(len);
    }
}

#[cfg(test)]
mod tests;
