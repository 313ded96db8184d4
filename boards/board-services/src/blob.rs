//! A small blob (a few KiB) kept whole on NOR flash, the old copy or the new one across a
//! power cut: the lease journal's flash layer ([`NorJournal`]) holding the blob as
//! fixed-size chunks, each save one rewrite (erase the other bank, write the chunks, then
//! the bank header that makes them live). For state that changes as a whole and stays
//! small, such as the uplink's outbox; every save erases a bank, so it suits state that
//! changes a few times a minute, not per datagram.

use alloc::vec::Vec;

use appliance::journal::{Journal, Record};
use embedded_storage::nor_flash::NorFlash;
use flash_store::journal::NorJournal;

use crate::store::LeaseFlash;

/// Where a board keeps a blob; `save` reports success (a failure is logged by the store).
pub trait BlobStore {
    /// What the last successful `save` stored (`None`: nothing yet). Taken once, at start.
    fn load(&mut self) -> Option<Vec<u8>>;
    fn save(&mut self, bytes: &[u8]) -> bool;
}

/// Payload bytes per chunk: a chunk record is its length byte and these, the journal's
/// largest record.
const CHUNK: usize = 59;

struct Chunk {
    len: u8,
    bytes: [u8; CHUNK],
}

impl Record for Chunk {
    const LEN: usize = 1 + CHUNK;

    fn encode(&self, out: &mut [u8]) {
        if let Some((len, bytes)) = out.split_first_mut() {
            *len = self.len;
            bytes.copy_from_slice(&self.bytes);
        }
    }

    fn decode(bytes: &[u8]) -> Option<Chunk> {
        let (&len, rest) = bytes.split_first()?;
        let bytes = rest.try_into().ok()?;
        (usize::from(len) <= CHUNK).then_some(Chunk { len, bytes })
    }
}

/// A [`BlobStore`] on a region of NOR flash (two banks, as the lease journal).
pub struct BlobJournal<F: NorFlash> {
    journal: Journal<NorJournal<F>>,
    loaded: Option<Vec<u8>>,
}

impl<F> BlobJournal<F>
where
    F: NorFlash,
    F::Error: defmt::Format,
{
    /// Mounts (or formats) the region and reads the blob; `None` when the region is unusable
    /// (logged, with `what` naming the blob).
    pub fn mount(region: LeaseFlash<F>, what: &str) -> Option<BlobJournal<F>> {
        let frame = Chunk::LEN + 4;
        let (nor, _) = NorJournal::mount(region.flash, region.base, region.bank_len, frame)
            .map_err(|e| defmt::warn!("{}: flash unusable ({}), RAM only", what, e))
            .ok()?;
        let mut bytes = Vec::new();
        let mut chunks = 0;
        let (journal, replay) = Journal::open(nor, |c: Chunk| {
            chunks += 1;
            bytes.extend_from_slice(c.bytes.get(..usize::from(c.len)).unwrap_or_default());
        })
        .map_err(|e| defmt::warn!("{}: flash unreadable ({}), RAM only", what, e))
        .ok()?;
        if replay.torn_bytes > 0 {
            // A cut append cannot happen (saves only rewrite): the blob is not trusted.
            defmt::warn!("{}: torn_bytes={}, dropped", what, replay.torn_bytes);
            chunks = 0;
        }
        Some(BlobJournal {
            journal,
            loaded: (chunks > 0).then_some(bytes),
        })
    }
}

impl<F> BlobStore for BlobJournal<F>
where
    F: NorFlash,
    F::Error: defmt::Format,
{
    fn load(&mut self) -> Option<Vec<u8>> {
        self.loaded.take()
    }

    fn save(&mut self, bytes: &[u8]) -> bool {
        let chunks: Vec<Chunk> = (bytes.chunks(CHUNK))
            .map(|c| {
                let mut chunk = Chunk {
                    len: c.len() as u8,
                    bytes: [0; CHUNK],
                };
                chunk.bytes[..c.len()].copy_from_slice(c); // ok: c.len() <= CHUNK
                chunk
            })
            .collect();
        match self.journal.compact(chunks.iter()) {
            Ok(()) => true,
            Err(e) => {
                defmt::warn!("blob: save of {} bytes failed ({})", bytes.len(), e);
                false
            }
        }
    }
}
