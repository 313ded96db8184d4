//! TFTP for PXE boot: a read-only server (RFC 1350) with options (RFC 2347 OACK, 2348
//! blksize, 2349 timeout and tsize, 7440 windowsize), serving files from the boot asset
//! store in blocks.
//!
//! Sans-IO like the rest: the adapter hands port-69 datagrams to [`Server::request`], each
//! slot's own port's datagrams to [`Server::receive`], and sends what [`Server::dispatch`]
//! writes until it returns `None`, again at [`Server::poll_at`].
//!
//! Choices:
//! - Retransmission only on timeout, with exponential backoff and a retry limit: duplicate
//!   ACKs are counted and ignored, never answered (no Sorcerer's Apprentice). An ACK inside
//!   the window (RFC 7440) acknowledges everything up to it and slides the window; the
//!   blocks after it are resent from there only when the timer fires.
//! - Block numbers wrap from 65535 to 0 (tftp-hpa, atftp, iPXE), so large files work at
//!   any blksize.
//! - Malformed option values are ignored (left out of the OACK), not refused with ERROR 8.
//! - tsize is not offered for netascii (the converted size would need a pass over the file).
//! - Netascii retransmissions regenerate blocks from the window's start position in the
//!   file (and its carried byte), so they are identical to the first transmission.
//! - A full table refuses new requests with ERROR 0 "server busy"; WRQ gets ERROR 2.
//! - Names go through [`crate::assets::normalize`]: `..` and control characters get ERROR 2;
//!   a leading `/` is dropped, so absolute names stay inside the store.
//! - An RRQ repeated byte for byte before anything was acknowledged is the client's
//!   retransmission and is dropped; any other RRQ from a client with a transfer running
//!   replaces that transfer. Slots are taken round-robin, so a just-freed slot's port is
//!   not reused at once; packets to an idle slot are dropped, not answered.
//! - An adapter short of sockets serves every slot from one port
//!   ([`Server::receive_shared`]): transfers are then told apart by the client's address
//!   and port alone, as a client that reuses its port for the next RRQ supersedes anyway.
//! - Events go to a bounded queue ([`EVENT_QUEUE`]); overflow is counted, never blocks.

pub mod event;
pub mod server;
pub mod transfer;
pub mod wire;

pub use event::{Abort, Event, Outcome, RawName, Stats, Summary};
pub use server::{Config, EVENT_QUEUE, RequestOutcome, Server, Transmit};
pub use transfer::Transfer;
pub use wire::{ErrorCode, Mode};
