//! What the server reports: one [`Event`] per started, finished or refused transfer, and
//! [`Stats`]; each `Display`s as one log line.

use core::fmt;
use core::net::SocketAddrV4;

use super::wire::Mode;
use crate::assets::Name;

/// What a transfer was asked for and agreed on; carried by its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub peer: SocketAddrV4,
    pub name: Name,
    pub mode: Mode,
    /// The file's size in the store (netascii sends more bytes than this).
    pub size: u64,
    pub blksize: u16,
    pub windowsize: u16,
    /// The size was offered in the OACK (RFC 2349 tsize).
    pub tsize: bool,
}

/// How a transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The last block was acknowledged.
    Completed,
    /// The client ended it with ERROR 8 after the OACK: EDK2's `tsize` probe, or a client
    /// declining the options. A normal end, not a failure.
    Probe,
    Aborted(Abort),
}

/// Why a transfer was aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    /// No ACK after the last retry (the client got ERROR 0).
    Timeout,
    /// The client sent an ERROR with this code.
    ClientError(u16),
    /// The client sent a new RRQ from the same address and port.
    Superseded,
    /// The store failed to read (the client got ERROR 0).
    Io,
    /// The adapter's output buffer is smaller than a DATA packet (the client got ERROR 0).
    NoSpace,
}

impl Abort {
    pub fn name(self) -> &'static str {
        match self {
            Abort::Timeout => "timeout",
            Abort::ClientError(_) => "client-error",
            Abort::Superseded => "superseded",
            Abort::Io => "io-error",
            Abort::NoSpace => "no-buffer-space",
        }
    }
}

/// Longest part of a refused request's file name kept for the log.
pub const RAW_NAME: usize = 64;

/// A refused file name as received, possibly shortened; printed with non-ASCII escaped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawName {
    bytes: heapless::Vec<u8, RAW_NAME>,
    truncated: bool,
}

impl RawName {
    pub fn new(raw: &[u8]) -> RawName {
        let keep = &raw[..raw.len().min(RAW_NAME)];
        RawName {
            // `keep` fits by construction.
            bytes: heapless::Vec::from_slice(keep).unwrap_or_default(),
            truncated: raw.len() > RAW_NAME,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Display for RawName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.bytes.escape_ascii())?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Started {
        slot: usize,
        transfer: Summary,
    },
    Finished {
        slot: usize,
        transfer: Summary,
        /// Payload bytes the client acknowledged.
        bytes: u64,
        elapsed_ms: u64,
        retransmits: u32,
        outcome: Outcome,
    },
    /// A well-formed RRQ or WRQ answered with an ERROR.
    Refused {
        peer: SocketAddrV4,
        write: bool,
        name: RawName,
        code: u16,
        reason: &'static str,
    },
}

impl fmt::Display for Summary {
    /// `name=ipxe.efi from=10.77.0.100:2070 blksize=1468 windowsize=4 tsize=1032192`;
    /// `size=` instead of `tsize=` when the size was not offered, `mode=netascii` if so.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name={} from={}", self.name, self.peer)?;
        if self.mode != Mode::Octet {
            write!(f, " mode={}", self.mode.name())?;
        }
        write!(
            f,
            " blksize={} windowsize={}",
            self.blksize, self.windowsize
        )?;
        let size = if self.tsize { "tsize" } else { "size" };
        write!(f, " {size}={}", self.size)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Started { slot, transfer } => {
                write!(f, "tftp RRQ {transfer} -> START slot={slot}")
            }
            Event::Finished {
                slot: _,
                transfer,
                bytes,
                elapsed_ms,
                retransmits,
                outcome,
            } => {
                write!(f, "tftp RRQ {transfer} -> ")?;
                match outcome {
                    Outcome::Completed => f.write_str("DONE")?,
                    Outcome::Probe => f.write_str("PROBE")?,
                    Outcome::Aborted(why) => {
                        write!(f, "ABORT reason={}", why.name())?;
                        if let Abort::ClientError(code) = why {
                            write!(f, " code={code}")?;
                        }
                    }
                }
                write!(
                    f,
                    " bytes={bytes} ms={elapsed_ms} retransmits={retransmits}"
                )
            }
            Event::Refused {
                peer,
                write,
                name,
                code,
                reason,
            } => {
                let op = if *write { "WRQ" } else { "RRQ" };
                write!(
                    f,
                    "tftp {op} name={name} from={peer} -> ERROR {code} reason={reason}"
                )
            }
        }
    }
}

/// Counters; `Display` gives one log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams on port 69.
    pub requests: u32,
    pub started: u32,
    pub completed: u32,
    /// Ended by the client with ERROR 8 after the OACK (EDK2's tsize probe).
    pub probes: u32,
    pub aborted: u32,
    /// Well-formed requests answered with an ERROR: not found, access, write, full...
    pub refused: u32,
    /// Of those, refused because every slot was taken.
    pub full: u32,
    /// A retransmitted RRQ for a transfer that is already under way: dropped.
    pub duplicate_requests: u32,
    /// ACKs that moved nothing (duplicate, stale, for a block never sent): dropped.
    pub duplicate_acks: u32,
    /// Packets on a slot's port from another address or port: answered with ERROR 5.
    pub unknown_tid: u32,
    /// Unparseable datagrams: dropped, or ERROR 4 for a broken request or unknown opcode.
    pub malformed: u32,
    /// Well-formed but out of place (ACK or DATA on port 69, anything to an idle slot, a
    /// client's DATA or OACK): dropped.
    pub stray: u32,
    pub timeouts: u32,
    pub retransmits: u32,
    pub events_lost: u32,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tftp stats requests={} started={} completed={} probes={} aborted={} refused={} \
             full={} duplicate_requests={} duplicate_acks={} unknown_tid={} malformed={} \
             stray={} timeouts={} retransmits={} events_lost={}",
            self.requests,
            self.started,
            self.completed,
            self.probes,
            self.aborted,
            self.refused,
            self.full,
            self.duplicate_requests,
            self.duplicate_acks,
            self.unknown_tid,
            self.malformed,
            self.stray,
            self.timeouts,
            self.retransmits,
            self.events_lost
        )
    }
}
