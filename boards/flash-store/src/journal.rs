//! The lease journal ([`appliance::journal::Storage`]) on NOR flash, old-or-new across a
//! power cut.
//!
//! Why the appliance's journal and not `sequential-storage` or `ekv`: replay in write order
//! is what the lease table needs (a later record for an address or a MAC supersedes an
//! earlier one, whoever it belonged to; a key-value map keyed by MAC or by address keeps
//! stale owners of the other key and has no order across keys), the records are the ones
//! host-sim writes, and the flash layer below is about 250 lines.
//!
//! Layout: two banks of whole erase pages. A bank starts with a header (magic `RKJ1`,
//! sequence number, frame length, CRC-32) followed by the log, one frame (record + CRC) per
//! slot of the frame rounded up to `WRITE_SIZE`; the log ends at the first slot that is all
//! 0xFF. The valid header with the higher sequence number names the live bank.
//!
//! Why it is old-or-new: an append programs one erased slot, so a cut leaves either no
//! frame, the whole frame, or a torn frame whose CRC fails (replay stops there and the
//! adapter compacts). A rewrite (compaction) erases the other bank, writes the frames, and
//! only then its header: until the header's last unit is programmed the old bank is the
//! live one, after it the new one is.

use appliance::journal::{Storage, crc32};
use embedded_storage::nor_flash::NorFlash;

const MAGIC: [u8; 4] = *b"RKJ1";
const HEADER: usize = 16;
/// The largest slot (frame or header rounded up to `WRITE_SIZE`) this supports.
const MAX_SLOT: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error<E> {
    Flash(E),
    /// The bank (or, in a rewrite, the new bank) has no free slot.
    Full,
    /// The region or the frame does not fit the flash (see [`NorJournal::mount`]).
    Geometry,
    /// `rewrite_append`/`rewrite_commit` without `rewrite_begin`, or a frame of another
    /// length.
    Misuse,
}

/// Why the region was formatted at mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Formatted {
    /// It was all erased: a first boot.
    Blank,
    /// Neither bank had a valid header, yet it held data: corruption (or a cut during the
    /// very first format).
    Unreadable,
}

/// What mount found: for the boot log and for tests. A torn last frame (seen by the
/// journal's replay) is the normal trace of a cut; `Unreadable` and stray bytes are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Mount {
    pub bank: u32,
    pub seq: u32,
    /// Slots in use in the live bank (the last may be torn).
    pub frames: usize,
    pub formatted: Option<Formatted>,
    /// The other bank held data without a valid header: a rewrite was cut short (harmless,
    /// it is erased before reuse).
    pub interrupted_rewrite: bool,
    /// Bytes that are not erased after the live log's end: never written there by the
    /// journal, so corruption.
    pub stray_bytes: usize,
}

/// The journal's storage in `[base, base + 2 * bank_len)` of `F`.
pub struct NorJournal<F> {
    flash: F,
    base: u32,
    bank_len: u32,
    frame: usize,
    slot: usize,
    header_slot: usize,
    active: u32,
    seq: u32,
    used: usize,
    /// Frames written to the other bank by a rewrite in progress.
    rewrite: Option<usize>,
}

impl<F: NorFlash> NorJournal<F> {
    /// Mounts (or formats) the journal. `frame` is the journal's frame length (record length
    /// plus its 4-byte CRC). `base` and `bank_len` must be multiples of `ERASE_SIZE`, and a
    /// bank must hold at least one frame.
    pub fn mount(
        flash: F,
        base: u32,
        bank_len: u32,
        frame: usize,
    ) -> Result<(Self, Mount), Error<F::Error>> {
        let erase = F::ERASE_SIZE as u32;
        let round = |n: usize| n.div_ceil(F::WRITE_SIZE) * F::WRITE_SIZE;
        let mut j = NorJournal {
            base,
            bank_len,
            frame,
            slot: round(frame),
            header_slot: round(HEADER),
            active: 0,
            seq: 0,
            used: 0,
            rewrite: None,
            flash,
        };
        let end = u64::from(base) + 2 * u64::from(bank_len);
        let fits = erase > 0
            && base.is_multiple_of(erase)
            && bank_len.is_multiple_of(erase)
            && end <= j.flash.capacity() as u64
            && frame > 0
            && j.slot <= MAX_SLOT
            && j.header_slot <= MAX_SLOT
            && F::WRITE_SIZE.is_multiple_of(F::READ_SIZE)
            && j.capacity() > 0;
        if !fits {
            return Err(Error::Geometry);
        }
        let mut mount = Mount {
            bank: 0,
            seq: 1,
            frames: 0,
            formatted: None,
            interrupted_rewrite: false,
            stray_bytes: 0,
        };
        let (active, seq) = match (j.header(0)?, j.header(1)?) {
            (Some(a), Some(b)) if newer(b, a) => (1, b),
            (Some(a), _) => (0, a),
            (None, Some(b)) => (1, b),
            (None, None) => {
                let blank = j.non_erased(j.bank(0), 2 * bank_len as usize)? == 0;
                j.flash
                    .erase(j.bank(0), j.bank(0) + bank_len)
                    .map_err(Error::Flash)?;
                j.write_header(0, 1)?;
                mount.formatted = Some(if blank {
                    Formatted::Blank
                } else {
                    Formatted::Unreadable
                });
                (0, 1)
            }
        };
        j.active = active;
        j.seq = seq;
        if mount.formatted.is_none() {
            j.used = j.scan_used(active)?;
            let log_end = j.slot_addr(active, j.used);
            let bank_end = j.bank(active) + bank_len;
            mount.stray_bytes = j.non_erased(log_end, (bank_end - log_end) as usize)?;
            let other = 1 - active;
            mount.interrupted_rewrite =
                j.header(other)?.is_none() && j.non_erased(j.bank(other), bank_len as usize)? > 0;
        }
        mount.bank = active;
        mount.seq = seq;
        mount.frames = j.used;
        Ok((j, mount))
    }

    /// Frames a bank holds.
    pub fn capacity(&self) -> usize {
        (self.bank_len as usize).saturating_sub(self.header_slot) / self.slot
    }

    /// Frames in the live bank.
    pub fn frames(&self) -> usize {
        self.used
    }

    pub fn into_flash(self) -> F {
        self.flash
    }

    fn bank(&self, bank: u32) -> u32 {
        self.base + bank * self.bank_len
    }

    fn slot_addr(&self, bank: u32, i: usize) -> u32 {
        self.bank(bank) + (self.header_slot + i * self.slot) as u32
    }

    /// The bank's sequence number if its header is valid for this journal.
    fn header(&mut self, bank: u32) -> Result<Option<u32>, Error<F::Error>> {
        let mut h = [0u8; HEADER];
        self.flash
            .read(self.bank(bank), &mut h)
            .map_err(Error::Flash)?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let valid = h[..4] == MAGIC
            && crc32(&h[..12]) == word(12)
            && usize::from(u16::from_le_bytes([h[8], h[9]])) == self.frame;
        Ok(valid.then(|| word(4)))
    }

    fn write_header(&mut self, bank: u32, seq: u32) -> Result<(), Error<F::Error>> {
        let mut h = [0xFF; MAX_SLOT];
        h[..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&seq.to_le_bytes());
        h[8..10].copy_from_slice(&(self.frame as u16).to_le_bytes());
        let crc = crc32(&h[..12]);
        h[12..16].copy_from_slice(&crc.to_le_bytes());
        let at = self.bank(bank);
        self.flash
            .write(at, &h[..self.header_slot])
            .map_err(Error::Flash)
    }

    /// Slots in use: up to the first all-0xFF slot.
    fn scan_used(&mut self, bank: u32) -> Result<usize, Error<F::Error>> {
        for i in 0..self.capacity() {
            if self.non_erased(self.slot_addr(bank, i), self.slot)? == 0 {
                return Ok(i);
            }
        }
        Ok(self.capacity())
    }

    /// How many bytes in `[at, at + len)` are not 0xFF.
    fn non_erased(&mut self, at: u32, len: usize) -> Result<usize, Error<F::Error>> {
        let mut buf = [0u8; 64];
        let mut count = 0;
        let mut done = 0;
        while done < len {
            let n = buf.len().min(len - done);
            let at = at + done as u32;
            self.flash.read(at, &mut buf[..n]).map_err(Error::Flash)?;
            count += buf[..n].iter().filter(|&&b| b != 0xFF).count();
            done += n;
        }
        Ok(count)
    }

    fn program(&mut self, bank: u32, i: usize, data: &[u8]) -> Result<(), Error<F::Error>> {
        if data.len() != self.frame {
            return Err(Error::Misuse);
        }
        let mut buf = [0xFF; MAX_SLOT];
        buf[..data.len()].copy_from_slice(data);
        let at = self.slot_addr(bank, i);
        self.flash
            .write(at, &buf[..self.slot])
            .map_err(Error::Flash)
    }
}

/// Sequence numbers compare with wrap-around (RFC 1982 style).
fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl<F: NorFlash> Storage for NorJournal<F> {
    type Error = Error<F::Error>;

    fn len(&self) -> usize {
        self.used * self.frame
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let end = self.len();
        let mut slot = [0u8; MAX_SLOT];
        let mut n = 0;
        while n < buf.len() && offset + n < end {
            let pos = offset + n;
            let (i, within) = (pos / self.frame, pos % self.frame);
            let at = self.slot_addr(self.active, i);
            self.flash
                .read(at, &mut slot[..self.slot])
                .map_err(Error::Flash)?;
            let take = (self.frame - within).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&slot[within..within + take]);
            n += take;
        }
        Ok(n)
    }

    fn append(&mut self, data: &[u8]) -> Result<(), Self::Error> {
        if self.used == self.capacity() {
            return Err(Error::Full);
        }
        self.program(self.active, self.used, data)?;
        self.used += 1;
        Ok(())
    }

    /// A program is durable when it returns.
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn rewrite_begin(&mut self) -> Result<(), Self::Error> {
        let other = self.bank(1 - self.active);
        self.flash
            .erase(other, other + self.bank_len)
            .map_err(Error::Flash)?;
        self.rewrite = Some(0);
        Ok(())
    }

    fn rewrite_append(&mut self, data: &[u8]) -> Result<(), Self::Error> {
        let n = self.rewrite.ok_or(Error::Misuse)?;
        if n == self.capacity() {
            return Err(Error::Full);
        }
        self.program(1 - self.active, n, data)?;
        self.rewrite = Some(n + 1);
        Ok(())
    }

    fn rewrite_commit(&mut self) -> Result<(), Self::Error> {
        let n = self.rewrite.take().ok_or(Error::Misuse)?;
        let (other, seq) = (1 - self.active, self.seq.wrapping_add(1));
        self.write_header(other, seq)?;
        self.active = other;
        self.seq = seq;
        self.used = n;
        Ok(())
    }
}
