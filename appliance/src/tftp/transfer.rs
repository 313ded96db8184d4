//! One read transfer: its send window, retransmission timer and block source.
//!
//! Blocks are counted with 64-bit indices (0 is the OACK, 1 the first DATA); the wire
//! carries them modulo 2^16, so block 65535 is followed by 0 as tftp-hpa, atftp and iPXE
//! expect, and an ACK is mapped back to the one index in the window it can mean.

use core::net::SocketAddrV4;

use super::event::{Abort, Summary};
use super::wire::{self, DATA_HEADER_LEN, ErrorCode, Mode, Options};
use crate::assets::{Asset, AssetError, AssetStore};

/// One slot of the server's transfer table. The adapter provides the storage:
/// `Server::new(config, &mut [Transfer::EMPTY; N])`.
#[derive(Clone, Debug)]
pub struct Transfer(pub(super) State);

impl Transfer {
    pub const EMPTY: Transfer = Transfer(State::Idle);

    pub fn is_idle(&self) -> bool {
        matches!(self.0, State::Idle)
    }
}

// Every slot must be able to hold a transfer, so the slice is sized for `Active` anyway.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub(super) enum State {
    Idle,
    Active(Active),
    /// Ended by the server; this ERROR still goes out from the slot's port.
    Closing {
        peer: SocketAddrV4,
        code: ErrorCode,
        message: &'static str,
    },
}

/// Where a block starts in the source: the file offset, and the second byte of a netascii
/// pair (CR LF or CR NUL) that did not fit in the previous block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    offset: u64,
    carry: Option<u8>,
}

impl Cursor {
    const START: Cursor = Cursor {
        offset: 0,
        carry: None,
    };
}

/// What an ACK did to the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ack {
    /// A duplicate, a stale one, or for a block never sent: ignored, never answered (no
    /// Sorcerer's Apprentice).
    Stale,
    /// The window slid.
    Progress,
    /// The last block was acknowledged.
    Done,
}

#[derive(Clone, Debug)]
pub(super) struct Active {
    pub info: Summary,
    asset: Asset,
    /// The options to acknowledge; `Some` makes block 0 the OACK.
    oack: Option<Options>,
    /// A hash of the RRQ, to tell its retransmission from a new request.
    pub request_hash: u32,
    /// The first unacknowledged block.
    base: u64,
    /// The next block to send; `base <= next <= base + windowsize`.
    next: u64,
    /// One past the highest block ever sent: ACKs at or beyond it are ignored.
    high: u64,
    /// The last block and its length, once produced (a block shorter than blksize).
    last: Option<(u64, usize)>,
    /// The source position of block `anchor.0 <= base`; netascii regenerates from it.
    anchor: (u64, Cursor),
    /// The source position of block `next`; `None` after a rewind (then `next == base`).
    cursor: Option<Cursor>,
    initial_rto: u64,
    rto: u64,
    max_rto: u64,
    pub deadline: u64,
    retries: u8,
    pub started_ms: u64,
    pub retransmits: u32,
}

impl Active {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        now: u64,
        info: Summary,
        asset: Asset,
        oack: Option<Options>,
        request_hash: u32,
        initial_rto: u64,
        max_rto: u64,
    ) -> Active {
        let first = if oack.is_some() { 0 } else { 1 };
        Active {
            info,
            asset,
            oack,
            request_hash,
            base: first,
            next: first,
            high: first,
            last: None,
            anchor: (1, Cursor::START),
            cursor: None,
            initial_rto,
            rto: initial_rto,
            max_rto: max_rto.max(initial_rto),
            deadline: now,
            retries: 0,
            started_ms: now,
            retransmits: 0,
        }
    }

    pub fn asset(&self) -> Asset {
        self.asset
    }

    /// The OACK is out and not yet acknowledged: a client ERROR now is about the options.
    pub fn awaiting_oack_ack(&self) -> bool {
        self.base == 0
    }

    /// The client acknowledged something: a new RRQ from it is a new request, not a
    /// retransmission.
    pub fn progressed(&self) -> bool {
        self.base > if self.oack.is_some() { 0 } else { 1 }
    }

    /// Payload bytes the client acknowledged (netascii: as converted).
    pub fn bytes(&self) -> u64 {
        let blksize = u64::from(self.info.blksize);
        let done = self.base.saturating_sub(1);
        match self.last {
            Some((last, len)) if done >= last => (last - 1) * blksize + len as u64,
            _ => done * blksize,
        }
    }

    /// Whether a packet can go out now, without waiting for the timer.
    pub fn ready(&self) -> bool {
        // The OACK is a window of its own: DATA waits for its ACK.
        let limit = if self.base == 0 {
            1
        } else {
            self.base + u64::from(self.info.windowsize)
        };
        self.next < limit && self.last.is_none_or(|(last, _)| self.next <= last)
    }

    pub fn on_ack(&mut self, block: u16) -> Ack {
        let ahead = u64::from(block.wrapping_sub(self.base as u16));
        if self.base + ahead >= self.high {
            return Ack::Stale;
        }
        let acked = self.base + ahead;
        self.base = acked + 1;
        self.retries = 0;
        self.rto = self.initial_rto;
        if self.last.is_some_and(|(last, _)| acked == last) {
            return Ack::Done;
        }
        // An ACK inside the window acknowledges everything up to it; the window slides and
        // new blocks fill it. What follows the ACKed block is resent only if the timer
        // fires: rewinding here too would chase ACKs the client sends for duplicates and
        // keep both ends out of phase, resending part of every window.
        if self.next < self.base {
            // After a timeout the resend had not yet caught up with what the client had.
            self.rewind();
        } else if let Some(c) = self.cursor.filter(|_| self.next == self.base) {
            self.anchor = (self.base, c);
        }
        Ack::Progress
    }

    /// The timer fired: back off and resend the window from `base`. `false` once the
    /// retries are spent.
    pub fn on_timeout(&mut self, max_retries: u8) -> bool {
        if self.retries >= max_retries {
            return false;
        }
        self.retries += 1;
        self.rto = self.rto.saturating_mul(2).min(self.max_rto);
        self.rewind();
        true
    }

    fn rewind(&mut self) {
        self.next = self.base;
        self.cursor = None;
    }

    /// Writes the next packet of the window into `out`: the OACK or a DATA block. Returns
    /// its length and whether it was sent before.
    pub fn emit(
        &mut self,
        now: u64,
        store: &mut impl AssetStore,
        out: &mut [u8],
    ) -> Result<(usize, bool), Abort> {
        let len = match self.oack.filter(|_| self.next == 0) {
            Some(options) => wire::emit_oack(out, &options).ok_or(Abort::NoSpace)?,
            None => self.emit_data(store, out)?,
        };
        let again = self.next < self.high;
        self.next += 1;
        self.high = self.high.max(self.next);
        self.deadline = now.saturating_add(self.rto);
        if again {
            self.retransmits = self.retransmits.saturating_add(1);
        }
        Ok((len, again))
    }

    fn emit_data(&mut self, store: &mut impl AssetStore, out: &mut [u8]) -> Result<usize, Abort> {
        let blksize = usize::from(self.info.blksize);
        let buf = out
            .get_mut(..DATA_HEADER_LEN + blksize)
            .ok_or(Abort::NoSpace)?;
        let (head, body) = buf.split_at_mut(DATA_HEADER_LEN);
        let at = match self.cursor {
            Some(c) => c,
            None => self.seek(store, body)?,
        };
        let (after, len) = self.read_block(store, at, body).map_err(|_| Abort::Io)?;
        wire::emit_data_header(head, self.next as u16);
        self.cursor = Some(after);
        if len < blksize {
            self.last = Some((self.next, len));
        }
        Ok(DATA_HEADER_LEN + len)
    }

    /// The source position of block `next` (== `base` after a rewind). Octet blocks sit at
    /// fixed offsets; netascii ones are regenerated from the anchor into `scratch`, so a
    /// retransmission carries exactly the bytes the first transmission did.
    fn seek(&mut self, store: &mut impl AssetStore, scratch: &mut [u8]) -> Result<Cursor, Abort> {
        let blksize = u64::from(self.info.blksize);
        if self.info.mode != Mode::Netascii {
            return Ok(Cursor {
                offset: (self.next - 1) * blksize,
                carry: None,
            });
        }
        let (mut block, mut at) = self.anchor;
        while block < self.next {
            at = self
                .read_block(store, at, scratch)
                .map_err(|_| Abort::Io)?
                .0;
            block += 1;
        }
        self.anchor = (block, at);
        Ok(at)
    }

    /// Fills `out` (one block) from `at`; returns the position after it and the length.
    fn read_block(
        &self,
        store: &mut impl AssetStore,
        at: Cursor,
        out: &mut [u8],
    ) -> Result<(Cursor, usize), AssetError> {
        if self.info.mode != Mode::Netascii {
            let n = store.read(self.asset, at.offset, out)?.min(out.len());
            let offset = at.offset + n as u64;
            return Ok((
                Cursor {
                    offset,
                    carry: None,
                },
                n,
            ));
        }
        netascii_block(store, self.asset, at, out)
    }
}

/// Converts from `at` into `out` (RFC 764: LF -> CR LF, CR -> CR NUL). A pair that does not
/// fit leaves its second byte as the carry for the next block.
fn netascii_block(
    store: &mut impl AssetStore,
    asset: Asset,
    mut at: Cursor,
    out: &mut [u8],
) -> Result<(Cursor, usize), AssetError> {
    let mut n = 0;
    if let Some(b) = at.carry.take() {
        out[0] = b;
        n = 1;
    }
    let mut chunk = [0u8; 64];
    while n < out.len() {
        // Each source byte yields at least one output byte: never read more than fits.
        let want = (out.len() - n).min(chunk.len());
        let got = store.read(asset, at.offset, &mut chunk[..want])?.min(want);
        for &b in &chunk[..got] {
            if n == out.len() {
                break;
            }
            let (first, second) = match b {
                b'\n' => (b'\r', Some(b'\n')),
                b'\r' => (b'\r', Some(0)),
                b => (b, None),
            };
            out[n] = first;
            n += 1;
            at.offset += 1;
            if let Some(s) = second {
                if n < out.len() {
                    out[n] = s;
                    n += 1;
                } else {
                    at.carry = Some(s);
                }
            }
        }
        if got < want {
            break;
        }
    }
    Ok((at, n))
}

#[cfg(test)]
mod tests;
