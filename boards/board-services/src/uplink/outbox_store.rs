//! The session's unacknowledged events and command filter in the board's [`BlobStore`], so
//! a reboot loses no event and runs no command twice ([`Session::restore`]). Stored whenever
//! either changed, before anything of the outbox is sent and before a command runs.
//!
//! Layout: version 1, the numbered flag, the next sequence number (u64, little-endian), then
//! frames of the tunnel's encoding: the command filter, then each waiting event as
//! `ToProvider::Event` (whose encoding only ever grows compatibly).

use alloc::vec::Vec;

use uplink::frame::{self, FrameDecoder, HEADER, MAX_FRAME};
use uplink::{CommandFilter, Outbox, Sequenced, Session, ToProvider};

use super::OUTBOX;
use crate::blob::BlobStore;

const VERSION: u8 = 1;

/// What a stored copy restores; the events on the heap, so that only the session's own
/// outbox is ever on the stack.
pub struct Stored {
    pub next_seq: u64,
    pub events: Vec<Sequenced>,
    pub numbered: bool,
    pub filter: CommandFilter,
}

impl Stored {
    /// The outbox it holds; `None` for events out of order or too many.
    pub fn outbox(self) -> Option<Outbox<OUTBOX>> {
        Outbox::restore(self.next_seq, self.events)
    }
}

/// The board's store and what it last stored, to skip rewriting an unchanged state.
pub struct OutboxStore {
    store: &'static mut dyn BlobStore,
    /// The numbered flag, the next number, the oldest waiting number, the count and the
    /// filter: every push moves the next number, every ack the oldest, a renumbering both.
    saved: Option<(bool, u64, u64, usize, CommandFilter)>,
}

impl OutboxStore {
    pub fn new(store: &'static mut dyn BlobStore) -> OutboxStore {
        OutboxStore { store, saved: None }
    }

    /// The stored state, if any and readable (logged either way). Not inlined, as `save`:
    /// their buffers stay out of the uplink future's frame.
    #[inline(never)]
    pub fn load(&mut self) -> Option<Stored> {
        let bytes = self.store.load()?;
        let stored = decode(&bytes);
        match &stored {
            Some(s) => defmt::info!(
                "uplink outbox restored events={} next_seq={} numbered={}",
                s.events.len(),
                s.next_seq,
                s.numbered
            ),
            None => defmt::warn!("uplink outbox: stored copy damaged, dropped"),
        }
        stored
    }

    /// Stores the session's state if it changed since the last call.
    #[inline(never)]
    pub fn save<const N: usize>(&mut self, session: &Session<N>) {
        let outbox = session.outbox();
        let oldest = outbox.iter().next().map_or(0, |e| e.seq);
        let now = (
            session.is_numbered(),
            outbox.next_seq(),
            oldest,
            outbox.len(),
            session.command_filter(),
        );
        if self.saved == Some(now) {
            return;
        }
        let Some(bytes) = encode(session) else {
            defmt::warn!("uplink outbox: not encodable, not stored");
            return;
        };
        if self.store.save(&bytes) {
            self.saved = Some(now);
            defmt::info!(
                "uplink outbox stored events={} bytes={}",
                outbox.len(),
                bytes.len()
            );
        }
    }
}

fn encode<const N: usize>(session: &Session<N>) -> Option<Vec<u8>> {
    let outbox = session.outbox();
    let mut bytes = Vec::with_capacity(32 + outbox.len() * 64);
    bytes.extend_from_slice(&[VERSION, u8::from(session.is_numbered())]);
    bytes.extend_from_slice(&outbox.next_seq().to_le_bytes());
    let mut buf = [0u8; HEADER + MAX_FRAME];
    let n = frame::encode(&session.command_filter(), &mut buf).ok()?;
    bytes.extend_from_slice(buf.get(..n)?);
    for e in outbox.iter() {
        let n = frame::encode(&ToProvider::Event(e.clone()), &mut buf).ok()?;
        bytes.extend_from_slice(buf.get(..n)?);
    }
    Some(bytes)
}

fn decode(bytes: &[u8]) -> Option<Stored> {
    let (&[version, numbered], rest) = bytes.split_first_chunk()?;
    let (next_seq, mut input) = rest.split_first_chunk()?;
    if version != VERSION || numbered > 1 {
        return None;
    }
    let mut decoder = FrameDecoder::new();
    let filter = frame::decode(decoder.decode(&mut input)?.ok()?).ok()?;
    let mut events = Vec::new();
    while let Some(body) = decoder.decode(&mut input) {
        match body.and_then(frame::decode) {
            Ok(ToProvider::Event(e)) => events.push(e),
            _ => return None,
        }
    }
    decoder.finish().ok()?;
    Some(Stored {
        next_seq: u64::from_le_bytes(*next_seq),
        events,
        numbered: numbered == 1,
        filter,
    })
}
