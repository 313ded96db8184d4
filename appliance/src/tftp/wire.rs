//! The TFTP packet codec (RFC 1350, options per RFC 2347/2348/2349/7440): a zero-copy
//! [`Packet`] parsed from a datagram, and emitters for what the server sends.

use core::fmt::Write as _;

pub const SERVER_PORT: u16 = 69;
/// Opcode and block number.
pub const DATA_HEADER_LEN: usize = 4;
/// RFC 1350's block size, used when the client asks for none.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// RFC 2348's range.
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;
/// RFC 2347: a request, options included, fits in 512 bytes. Longer ones are refused, which
/// also bounds the work an option flood can cause.
pub const MAX_REQUEST_LEN: usize = 512;

pub const OP_RRQ: u16 = 1;
pub const OP_WRQ: u16 = 2;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// ERROR packet codes (RFC 1350, 2347).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// See the message.
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTid = 5,
    FileExists = 6,
    NoSuchUser = 7,
    /// RFC 2347: the options were refused; clients also use it to end a `tsize` probe.
    OptionRefused = 8,
}

/// Why a datagram is not a usable TFTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Too short for its opcode's fixed fields.
    Truncated,
    UnknownOpcode(u16),
    /// A file name or mode without its terminating NUL.
    Unterminated,
    /// Not `netascii`, `octet` or `mail`.
    BadMode,
    /// A request over [`MAX_REQUEST_LEN`] bytes.
    TooLong,
}

/// Transfer modes, compared case-insensitively on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Netascii,
    Octet,
    /// Obsolete (RFC 1350); parsed so it can be refused by name.
    Mail,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
            Mode::Mail => "mail",
        }
    }

    fn parse(raw: &[u8]) -> Option<Mode> {
        [Mode::Netascii, Mode::Octet, Mode::Mail]
            .into_iter()
            .find(|m| raw.eq_ignore_ascii_case(m.name().as_bytes()))
    }
}

/// A read or write request, borrowing the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Raw; the server normalises it with [`crate::assets::normalize`].
    pub filename: &'a [u8],
    pub mode: Mode,
    /// The option area after the mode, walked by [`Request::options`].
    pub options: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn options(&self) -> OptionIter<'a> {
        OptionIter(self.options)
    }
}

/// A parsed TFTP packet borrowing the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Read(Request<'a>),
    Write(Request<'a>),
    Data {
        block: u16,
        data: &'a [u8],
    },
    Ack {
        block: u16,
    },
    /// `message` is the text up to its NUL (or the end, if a sender left it out).
    Error {
        code: u16,
        message: &'a [u8],
    },
    Oack {
        options: OptionIter<'a>,
    },
}

impl<'a> Packet<'a> {
    /// Parses a datagram. Never panics on any input.
    pub fn parse(data: &'a [u8]) -> Result<Packet<'a>, Error> {
        let (op, body) = split_u16(data)?;
        match op {
            OP_RRQ | OP_WRQ => {
                if data.len() > MAX_REQUEST_LEN {
                    return Err(Error::TooLong);
                }
                let (filename, rest) = split_cstr(body).ok_or(Error::Unterminated)?;
                let (mode, options) = split_cstr(rest).ok_or(Error::Unterminated)?;
                let mode = Mode::parse(mode).ok_or(Error::BadMode)?;
                let req = Request {
                    filename,
                    mode,
                    options,
                };
                Ok(if op == OP_RRQ {
                    Packet::Read(req)
                } else {
                    Packet::Write(req)
                })
            }
            OP_DATA => {
                let (block, data) = split_u16(body)?;
                Ok(Packet::Data { block, data })
            }
            OP_ACK => Ok(Packet::Ack {
                block: split_u16(body)?.0,
            }),
            OP_ERROR => {
                let (code, rest) = split_u16(body)?;
                let message = split_cstr(rest).map_or(rest, |(m, _)| m);
                Ok(Packet::Error { code, message })
            }
            OP_OACK => Ok(Packet::Oack {
                options: OptionIter(body),
            }),
            other => Err(Error::UnknownOpcode(other)),
        }
    }
}

/// Walks `name NUL value NUL` pairs. It ends at the end of the area, at an empty name (some
/// clients pad requests with NULs), or at a pair missing its final NUL, which is dropped:
/// a damaged option should not cost the client its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionIter<'a>(&'a [u8]);

impl<'a> OptionIter<'a> {
    /// Walks an option area (what follows the mode in a request, or an OACK's body).
    pub fn new(area: &'a [u8]) -> OptionIter<'a> {
        OptionIter(area)
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (name, rest) = split_cstr(self.0)?;
        let (value, rest) = split_cstr(rest)?;
        if name.is_empty() {
            return None;
        }
        self.0 = rest;
        Some((name, value))
    }
}

/// The options a client asked for, each `None` when absent or malformed. Malformed values
/// (not decimal, out of range) are ignored rather than refused with ERROR 8: the option is
/// then left out of the OACK and RFC 2347 has the client fall back to its default, which
/// keeps a quirky client booting. Of a repeated option, the first well-formed instance
/// counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// RFC 2348: 8..=65464; larger requests are clamped to 65464 (a server may answer
    /// smaller), smaller ones ignored.
    pub blksize: Option<u16>,
    /// RFC 2349: seconds, 1..=255.
    pub timeout: Option<u8>,
    /// RFC 2349: the size the client claims (0 in a read request).
    pub tsize: Option<u64>,
    /// RFC 7440: 1..=65535.
    pub windowsize: Option<u16>,
}

impl Options {
    pub fn parse(iter: OptionIter<'_>) -> Options {
        let mut o = Options::default();
        for (name, value) in iter {
            let n = decimal(value);
            let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
            if is("blksize") && o.blksize.is_none() {
                o.blksize = n
                    .filter(|&v| v >= u64::from(MIN_BLKSIZE))
                    .map(|v| v.min(u64::from(MAX_BLKSIZE)) as u16);
            } else if is("timeout") && o.timeout.is_none() {
                o.timeout = n.filter(|v| (1..=255).contains(v)).map(|v| v as u8);
            } else if is("tsize") && o.tsize.is_none() {
                o.tsize = n;
            } else if is("windowsize") && o.windowsize.is_none() {
                o.windowsize = n.filter(|v| (1..=65535).contains(v)).map(|v| v as u16);
            }
        }
        o
    }

    pub fn is_empty(&self) -> bool {
        *self == Options::default()
    }
}

/// Writes an OACK acknowledging `options` (in RFC order); `None` if `buf` is too small.
pub fn emit_oack(buf: &mut [u8], options: &Options) -> Option<usize> {
    let mut w = Cursor::new(buf);
    w.put(&OP_OACK.to_be_bytes())?;
    let fields = [
        ("blksize", options.blksize.map(u64::from)),
        ("timeout", options.timeout.map(u64::from)),
        ("tsize", options.tsize),
        ("windowsize", options.windowsize.map(u64::from)),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            let mut digits = heapless::String::<20>::new();
            // u64::MAX has 20 digits, so this cannot fail.
            let _ = write!(digits, "{v}");
            w.put(name.as_bytes())?;
            w.put(&[0])?;
            w.put(digits.as_bytes())?;
            w.put(&[0])?;
        }
    }
    Some(w.len)
}

/// Writes an ERROR, shortening `message` to fit `buf`; `None` only if not even the
/// 5-byte header and NUL fit.
pub fn emit_error(buf: &mut [u8], code: ErrorCode, message: &str) -> Option<usize> {
    let room = buf.len().checked_sub(5)?;
    let text = &message.as_bytes()[..message.len().min(room)];
    buf[..2].copy_from_slice(&OP_ERROR.to_be_bytes());
    buf[2..4].copy_from_slice(&(code as u16).to_be_bytes());
    buf[4..4 + text.len()].copy_from_slice(text);
    buf[4 + text.len()] = 0;
    Some(5 + text.len())
}

/// Writes a DATA header; the caller has put the payload at `buf[DATA_HEADER_LEN..]`.
pub fn emit_data_header(buf: &mut [u8], block: u16) {
    buf[..2].copy_from_slice(&OP_DATA.to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
}

/// Writes an ACK (clients send these; the tests and the fuzz target use it).
pub fn emit_ack(buf: &mut [u8], block: u16) -> Option<usize> {
    let b = buf.get_mut(..4)?;
    b[..2].copy_from_slice(&OP_ACK.to_be_bytes());
    b[2..].copy_from_slice(&block.to_be_bytes());
    Some(4)
}

/// A strict decimal: digits only, no sign or spaces, no overflow.
fn decimal(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() {
        return None;
    }
    raw.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn split_u16(data: &[u8]) -> Result<(u16, &[u8]), Error> {
    match data {
        [hi, lo, rest @ ..] => Ok((u16::from_be_bytes([*hi, *lo]), rest)),
        _ => Err(Error::Truncated),
    }
}

/// Splits at the first NUL: the string before it and the bytes after.
fn split_cstr(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = data.iter().position(|&b| b == 0)?;
    Some((&data[..nul], &data[nul + 1..]))
}

struct Cursor<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Cursor<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Cursor { buf, len: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len + bytes.len();
        self.buf.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }
}

#[cfg(test)]
mod tests;
