//! The sans-IO TFTP server: requests on port 69 start transfers in the adapter's slots; each
//! slot has its own local port (the server's TID), receives ACKs there and sends from there.

use core::net::SocketAddrV4;

use heapless::Deque;

use super::event::{Abort, Event, Outcome, RawName, Stats, Summary};
use super::transfer::{Ack, Active, State, Transfer};
use super::wire::{self, DEFAULT_BLKSIZE, ErrorCode, MIN_BLKSIZE, Mode, Options, Packet};
use crate::assets::{AssetError, AssetStore, NameError, normalize};

/// Events held for [`Server::poll_event`]; when full, new ones are dropped and counted.
pub const EVENT_QUEUE: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The largest blksize granted; the adapter sets it from the link MTU (1468 for 1500:
    /// 20 IP + 8 UDP + 4 TFTP header bytes), so DATA is never fragmented.
    pub max_blksize: u16,
    /// The largest RFC 7440 window granted.
    pub max_windowsize: u16,
    /// The retransmission timeout unless the client sets one (RFC 2349).
    pub default_timeout_ms: u64,
    /// Exponential backoff stops growing here (or at the client's timeout, if longer).
    pub max_timeout_ms: u64,
    /// Retransmissions of one window before the transfer is aborted.
    pub max_retries: u8,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_blksize: 1468,
            max_windowsize: 64,
            default_timeout_ms: 1000,
            max_timeout_ms: 8000,
            max_retries: 5,
        }
    }
}

/// What [`Server::request`] did with a datagram on port 69.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A transfer started in this slot; its first packet comes from [`Server::dispatch`].
    Started { slot: usize },
    /// An ERROR of `len` bytes is in `out`, to go back to the sender from port 69.
    Refused { len: usize, code: u16 },
    /// Nothing to send (counted in [`Stats`]).
    Dropped,
}

/// A packet [`Server::dispatch`] wrote: send `len` bytes of `out` from slot `slot`'s port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub slot: usize,
    pub dst: SocketAddrV4,
    pub len: usize,
}

pub struct Server<'a> {
    config: Config,
    slots: &'a mut [Transfer],
    events: Deque<Event, EVENT_QUEUE>,
    stats: Stats,
    /// Where the free-slot search starts: slots are taken round-robin, so a freed slot (and
    /// its port) is not reused at once and late packets of its last transfer find it idle.
    next_slot: usize,
    /// Where `dispatch` starts, so one transfer's window does not starve the others.
    turn: usize,
}

impl<'a> Server<'a> {
    /// Lays the server over `slots` (reset to [`Transfer::EMPTY`]); their number is the
    /// number of concurrent transfers.
    pub fn new(config: Config, slots: &'a mut [Transfer]) -> Server<'a> {
        slots.fill(Transfer::EMPTY);
        Server {
            config,
            slots,
            events: Deque::new(),
            stats: Stats::default(),
            next_slot: 0,
            turn: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Transfers in progress (including ones with a final ERROR still to send).
    pub fn active(&self) -> usize {
        self.slots.iter().filter(|s| !s.is_idle()).count()
    }

    /// A datagram that arrived on port 69. May start a transfer in a free slot, or write an
    /// ERROR into `out` to send back to `src` from port 69.
    pub fn request(
        &mut self,
        now_ms: u64,
        src: SocketAddrV4,
        payload: &[u8],
        store: &mut impl AssetStore,
        out: &mut [u8],
    ) -> RequestOutcome {
        self.stats.requests = self.stats.requests.wrapping_add(1);
        let (req, write) = match Packet::parse(payload) {
            Ok(Packet::Read(req)) => (req, false),
            Ok(Packet::Write(req)) => (req, true),
            Ok(_) => {
                self.stats.stray += 1;
                return RequestOutcome::Dropped;
            }
            Err(wire::Error::Truncated) => {
                self.stats.malformed += 1;
                return RequestOutcome::Dropped;
            }
            Err(e) => {
                self.stats.malformed += 1;
                let message = match e {
                    wire::Error::UnknownOpcode(_) => "unknown opcode",
                    wire::Error::BadMode => "unknown transfer mode",
                    wire::Error::TooLong => "request longer than 512 bytes",
                    _ => "malformed request",
                };
                return refusal(out, ErrorCode::IllegalOperation, message);
            }
        };
        let mut refuse = |server: &mut Self, code, reason, message| {
            server.stats.refused += 1;
            server.event(Event::Refused {
                peer: src,
                write,
                name: RawName::new(req.filename),
                code: code as u16,
                reason,
            });
            refusal(out, code, message)
        };
        if write {
            let m = "this server is read-only";
            return refuse(self, ErrorCode::AccessViolation, "read-only", m);
        }
        // A client that lost our first packet sends its RRQ again: not a second transfer.
        // Anything else from the same address and port means it gave up on the old one.
        let hash = fnv1a(payload);
        if let Some(i) = self.slot_of(src) {
            if let State::Active(t) = &self.slots[i].0
                && t.request_hash == hash
                && !t.progressed()
            {
                self.stats.duplicate_requests += 1;
                return RequestOutcome::Dropped;
            }
            self.finish(i, now_ms, store, Outcome::Aborted(Abort::Superseded));
        }
        if req.mode == Mode::Mail {
            let m = "mail mode is not supported";
            return refuse(self, ErrorCode::IllegalOperation, "mail-mode", m);
        }
        let name = match normalize(req.filename) {
            Ok(name) => name,
            Err(e) => {
                let (code, reason) = match e {
                    NameError::Traversal => (ErrorCode::AccessViolation, "traversal"),
                    NameError::BadCharacter => (ErrorCode::AccessViolation, "bad-name"),
                    NameError::Empty => (ErrorCode::FileNotFound, "empty-name"),
                    NameError::TooLong => (ErrorCode::FileNotFound, "name-too-long"),
                };
                let m = if code == ErrorCode::AccessViolation {
                    "access violation"
                } else {
                    "file not found"
                };
                return refuse(self, code, reason, m);
            }
        };
        let Some(slot) = self.free_slot() else {
            self.stats.full += 1;
            let m = "server busy: too many transfers, retry later";
            return refuse(self, ErrorCode::NotDefined, "table-full", m);
        };
        let asset = match store.open(&name) {
            Ok(asset) => asset,
            Err(e) => {
                let (code, reason, m) = match e {
                    AssetError::NotFound => {
                        (ErrorCode::FileNotFound, "not-found", "file not found")
                    }
                    AssetError::Busy => (
                        ErrorCode::NotDefined,
                        "store-busy",
                        "server busy, retry later",
                    ),
                    AssetError::Io => (ErrorCode::NotDefined, "io-error", "read error"),
                };
                return refuse(self, code, reason, m);
            }
        };
        let (oack, info) = self.negotiate(src, name, req.mode, asset.size, req.options());
        let initial_rto = oack
            .and_then(|o| o.timeout)
            .map_or(self.config.default_timeout_ms, |s| u64::from(s) * 1000);
        let t = Active::new(
            now_ms,
            info.clone(),
            asset,
            oack,
            hash,
            initial_rto,
            self.config.max_timeout_ms,
        );
        self.slots[slot] = Transfer(State::Active(t));
        self.next_slot = (slot + 1) % self.slots.len();
        self.stats.started += 1;
        self.event(Event::Started {
            slot,
            transfer: info,
        });
        RequestOutcome::Started { slot }
    }

    /// A datagram that arrived on slot `slot`'s own port. Returns `Some(len)` if an ERROR
    /// (code 5, unknown TID) was written to `out` for `src`. Packets to an idle slot are
    /// late ones from a finished transfer and are dropped.
    pub fn receive(
        &mut self,
        now_ms: u64,
        slot: usize,
        src: SocketAddrV4,
        payload: &[u8],
        store: &mut impl AssetStore,
        out: &mut [u8],
    ) -> Option<usize> {
        let Some(State::Active(t)) = self.slots.get_mut(slot).map(|s| &mut s.0) else {
            self.stats.stray += 1;
            return None;
        };
        let packet = Packet::parse(payload);
        if t.info.peer != src {
            // RFC 1350: tell the stray sender, leave the transfer alone. Never answer an
            // ERROR with an ERROR.
            if let Ok(Packet::Error { .. }) = packet {
                self.stats.stray += 1;
                return None;
            }
            self.stats.unknown_tid += 1;
            return wire::emit_error(out, ErrorCode::UnknownTid, "unknown transfer ID");
        }
        let outcome = match packet {
            Ok(Packet::Ack { block }) => match t.on_ack(block) {
                Ack::Stale => {
                    self.stats.duplicate_acks += 1;
                    return None;
                }
                Ack::Progress => return None,
                Ack::Done => Outcome::Completed,
            },
            Ok(Packet::Error { code, .. }) => {
                if code == ErrorCode::OptionRefused as u16 && t.awaiting_oack_ack() {
                    Outcome::Probe
                } else {
                    Outcome::Aborted(Abort::ClientError(code))
                }
            }
            Ok(_) => {
                self.stats.stray += 1;
                return None;
            }
            Err(_) => {
                self.stats.malformed += 1;
                return None;
            }
        };
        self.finish(slot, now_ms, store, outcome);
        None
    }

    /// A datagram on the one port all slots share, for an adapter that cannot afford a socket
    /// per slot (a board: 64 sockets would cost more RAM than the transfers): it goes to its
    /// sender's transfer as [`Server::receive`] would. Without one it is a late packet of a
    /// finished transfer or a stranger's, and is dropped (counted as stray), as on an idle
    /// slot's port. [`Transmit::slot`] then only names the transfer; all send from that port.
    pub fn receive_shared(
        &mut self,
        now_ms: u64,
        src: SocketAddrV4,
        payload: &[u8],
        store: &mut impl AssetStore,
        out: &mut [u8],
    ) -> Option<usize> {
        let Some(slot) = self.slot_of(src) else {
            self.stats.stray += 1;
            return None;
        };
        self.receive(now_ms, slot, src, payload, store, out)
    }

    /// The next packet to send (OACK, DATA of the window, a retransmission, or a final
    /// ERROR), written into `out`, which must hold `4 + max(512, max_blksize)` bytes. Call
    /// until `None`.
    pub fn dispatch(
        &mut self,
        now_ms: u64,
        store: &mut impl AssetStore,
        out: &mut [u8],
    ) -> Option<Transmit> {
        let n = self.slots.len();
        for step in 0..n {
            let slot = (self.turn + step) % n;
            if let Some(tx) = self.service(slot, now_ms, store, out) {
                self.turn = (slot + 1) % n;
                return Some(tx);
            }
        }
        None
    }

    /// When [`Server::dispatch`] next has something to do: a retransmission deadline, or a
    /// time at or before now (0) when packets are waiting. `None` when idle.
    pub fn poll_at(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|s| match &s.0 {
                State::Idle => None,
                State::Closing { .. } => Some(0),
                State::Active(t) if t.ready() => Some(0),
                State::Active(t) => Some(t.deadline),
            })
            .min()
    }

    /// The oldest unread event. The queue holds [`EVENT_QUEUE`]; read it after each call.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn service(
        &mut self,
        slot: usize,
        now: u64,
        store: &mut impl AssetStore,
        out: &mut [u8],
    ) -> Option<Transmit> {
        let t = match &mut self.slots[slot].0 {
            State::Idle => return None,
            State::Closing {
                peer,
                code,
                message,
            } => {
                let (dst, len) = (*peer, wire::emit_error(out, *code, message));
                self.slots[slot] = Transfer::EMPTY;
                return len.map(|len| Transmit { slot, dst, len });
            }
            State::Active(t) => t,
        };
        if !t.ready() {
            if now < t.deadline {
                return None;
            }
            self.stats.timeouts += 1;
            if !t.on_timeout(self.config.max_retries) {
                self.finish(slot, now, store, Outcome::Aborted(Abort::Timeout));
                return self.service(slot, now, store, out);
            }
        }
        let dst = t.info.peer;
        match t.emit(now, store, out) {
            Ok((len, again)) => {
                self.stats.retransmits += u32::from(again);
                Some(Transmit { slot, dst, len })
            }
            Err(why) => {
                self.finish(slot, now, store, Outcome::Aborted(why));
                self.service(slot, now, store, out)
            }
        }
    }

    /// Ends the transfer in `slot`: closes its asset, reports it, and leaves an ERROR to
    /// send if the client must be told.
    fn finish(&mut self, slot: usize, now: u64, store: &mut impl AssetStore, outcome: Outcome) {
        let State::Active(t) = core::mem::replace(&mut self.slots[slot].0, State::Idle) else {
            return;
        };
        store.close(t.asset());
        let message = match outcome {
            Outcome::Completed => {
                self.stats.completed += 1;
                None
            }
            Outcome::Probe => {
                self.stats.probes += 1;
                None
            }
            Outcome::Aborted(why) => {
                self.stats.aborted += 1;
                match why {
                    Abort::Timeout => Some("timed out waiting for ACK"),
                    Abort::Io => Some("read error"),
                    Abort::NoSpace => Some("server buffer too small"),
                    Abort::ClientError(_) | Abort::Superseded => None,
                }
            }
        };
        if let Some(message) = message {
            self.slots[slot].0 = State::Closing {
                peer: t.info.peer,
                code: ErrorCode::NotDefined,
                message,
            };
        }
        self.event(Event::Finished {
            slot,
            bytes: t.bytes(),
            elapsed_ms: now.saturating_sub(t.started_ms),
            retransmits: t.retransmits,
            outcome,
            transfer: t.info,
        });
    }

    /// The options to acknowledge (`None`: no OACK, DATA 1 comes first) and the summary.
    fn negotiate(
        &self,
        peer: SocketAddrV4,
        name: crate::assets::Name,
        mode: Mode,
        size: u64,
        options: wire::OptionIter<'_>,
    ) -> (Option<Options>, Summary) {
        let asked = Options::parse(options);
        let max_blksize = self.config.max_blksize.max(MIN_BLKSIZE);
        let acked = Options {
            blksize: asked.blksize.map(|b| b.min(max_blksize)),
            timeout: asked.timeout,
            // Netascii's size on the wire is unknown without converting the whole file
            // first, so tsize is not offered for it (RFC 2349 lets a server omit it).
            tsize: asked.tsize.filter(|_| mode == Mode::Octet).map(|_| size),
            windowsize: asked
                .windowsize
                .map(|w| w.min(self.config.max_windowsize.max(1))),
        };
        let info = Summary {
            peer,
            name,
            mode,
            size,
            blksize: acked.blksize.unwrap_or(DEFAULT_BLKSIZE),
            windowsize: acked.windowsize.unwrap_or(1),
            tsize: acked.tsize.is_some(),
        };
        ((!acked.is_empty()).then_some(acked), info)
    }

    /// The active transfer whose client is `src`.
    fn slot_of(&self, src: SocketAddrV4) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| matches!(&s.0, State::Active(t) if t.info.peer == src))
    }

    fn free_slot(&self) -> Option<usize> {
        let n = self.slots.len();
        (0..n)
            .map(|i| (self.next_slot + i) % n)
            .find(|&i| self.slots[i].is_idle())
    }

    fn event(&mut self, event: Event) {
        if self.events.push_back(event).is_err() {
            self.stats.events_lost += 1;
        }
    }
}

fn refusal(out: &mut [u8], code: ErrorCode, message: &str) -> RequestOutcome {
    match wire::emit_error(out, code, message) {
        Some(len) => RequestOutcome::Refused {
            len,
            code: code as u16,
        },
        None => RequestOutcome::Dropped,
    }
}

/// FNV-1a: tells a retransmitted RRQ from a different one without keeping its bytes.
fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
