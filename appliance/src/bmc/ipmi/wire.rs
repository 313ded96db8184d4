//! Framing: RMCP, the IPMI v1.5 and v2.0 (RMCP+) session headers and trailer, and the IPMI
//! LAN message with its two checksums (IPMI v2.0 §13.6, §13.8). No cryptography here: the
//! session layer (`session.rs`) signs, verifies, encrypts and decrypts around these helpers.

use crate::bmc::Error;

/// RMCP header: version 1.0, reserved, sequence 0xFF (no RMCP ACK), class IPMI.
pub const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
/// Authentication type/format byte that marks an RMCP+ (v2.0) session header.
pub const FORMAT_RMCP_PLUS: u8 = 0x06;
/// Length of the v2.0 session header without OEM fields: format, payload type, session
/// id, sequence number, payload length.
pub const V2_HEADER_LEN: usize = 12;
/// Offset of the v2.0 payload in a datagram.
pub const V2_PAYLOAD_OFFSET: usize = RMCP_HEADER.len() + V2_HEADER_LEN;
/// The trailer's "next header" byte (always 07h).
const NEXT_HEADER: u8 = 0x07;

/// Payload types used by the client (§13.27.3).
pub mod payload {
    pub const IPMI: u8 = 0x00;
    pub const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub const RAKP1: u8 = 0x12;
    pub const RAKP2: u8 = 0x13;
    pub const RAKP3: u8 = 0x14;
    pub const RAKP4: u8 = 0x15;
}

const PAYLOAD_ENCRYPTED: u8 = 0x80;
const PAYLOAD_AUTHENTICATED: u8 = 0x40;
const PAYLOAD_TYPE_MASK: u8 = 0x3F;

/// Bounds-checked reader over a received byte slice: every field access can fail with
/// `Error::Malformed` instead of panicking.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.buf.len() {
            return Err(Error::Malformed);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, Error> {
        let (&b, tail) = self.buf.split_first().ok_or(Error::Malformed)?;
        self.buf = tail;
        Ok(b)
    }

    pub fn u16le(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32le(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        self.take(N)?.try_into().map_err(|_| Error::Malformed)
    }

    pub fn peek(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }
}

/// Bounds-checked writer into a caller's buffer; running out of room is `Error::Busy`
/// (the buffer is too small), never a panic.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, pos: 0 }
    }

    pub fn at(buf: &'a mut [u8], pos: usize) -> Writer<'a> {
        Writer { buf, pos }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.pos.checked_add(bytes.len()).ok_or(Error::Busy)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(Error::Busy)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    pub fn u8(&mut self, b: u8) -> Result<(), Error> {
        self.put(&[b])
    }

    pub fn u32le(&mut self, v: u32) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    /// The buffer from `start` to its end (room to grow in place, e.g. for a cipher pad).
    pub fn tail_from(&mut self, start: usize) -> Result<&mut [u8], Error> {
        self.buf.get_mut(start..).ok_or(Error::Busy)
    }

    /// Moves the end of the written bytes to `pos` (after filling them in place).
    pub fn skip_to(&mut self, pos: usize) -> Result<(), Error> {
        if pos > self.buf.len() {
            return Err(Error::Busy);
        }
        self.pos = pos;
        Ok(())
    }

    pub fn into_inner(self) -> &'a mut [u8] {
        self.buf
    }

    /// The bytes written so far.
    pub fn written(&mut self) -> Result<&mut [u8], Error> {
        self.buf.get_mut(..self.pos).ok_or(Error::Busy)
    }
}

/// The fields of an RMCP+ session header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V2Header {
    pub payload_type: u8,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub seq: u32,
}

/// A datagram split at its session header.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// IPMI v1.5 session (only pre-session Get Channel Authentication Capabilities here).
    V15 { session_id: u32, payload: &'a [u8] },
    /// RMCP+ session; `trailer` is everything after the payload (empty unless authenticated).
    V2 {
        header: V2Header,
        payload: &'a [u8],
        trailer: &'a [u8],
    },
}

/// Splits a datagram into its session header, payload and trailer.
pub fn parse(datagram: &[u8]) -> Result<Packet<'_>, Error> {
    let mut r = Reader::new(datagram);
    if r.array::<4>()? != RMCP_HEADER {
        return Err(Error::Malformed);
    }
    let format = r.u8()?;
    if format == FORMAT_RMCP_PLUS {
        let kind = r.u8()?;
        let header = V2Header {
            payload_type: kind & PAYLOAD_TYPE_MASK,
            encrypted: kind & PAYLOAD_ENCRYPTED != 0,
            authenticated: kind & PAYLOAD_AUTHENTICATED != 0,
            session_id: r.u32le()?,
            seq: r.u32le()?,
        };
        let len = usize::from(r.u16le()?);
        let payload = r.take(len)?;
        let trailer = r.rest();
        if !header.authenticated && !trailer.is_empty() {
            return Err(Error::Malformed);
        }
        return Ok(Packet::V2 {
            header,
            payload,
            trailer,
        });
    }
    // v1.5: only authentication type NONE is spoken (no AuthCode field follows).
    if format != 0 {
        return Err(Error::Malformed);
    }
    let _seq = r.u32le()?;
    let session_id = r.u32le()?;
    let len = usize::from(r.u8()?);
    let payload = r.take(len)?;
    // Some BMCs append a legacy pad byte: tolerate at most one.
    if r.rest().len() > 1 {
        return Err(Error::Malformed);
    }
    Ok(Packet::V15 {
        session_id,
        payload,
    })
}

/// Checks an authenticated packet's trailer (integrity pad of FFh bytes, pad length, next
/// header) and returns the AuthCode and how many datagram bytes it covers (from the session
/// header through the next-header byte).
pub fn split_trailer<'a>(
    datagram: &'a [u8],
    trailer: &'a [u8],
    auth_len: usize,
) -> Result<(&'a [u8], &'a [u8]), Error> {
    let code_at = trailer
        .len()
        .checked_sub(auth_len)
        .ok_or(Error::Malformed)?;
    let (fields, code) = trailer.split_at(code_at);
    let [pad @ .., pad_len, next] = fields else {
        return Err(Error::Malformed);
    };
    if *next != NEXT_HEADER || usize::from(*pad_len) != pad.len() || pad.len() > 3 {
        return Err(Error::Malformed);
    }
    if pad.iter().any(|&b| b != 0xFF) {
        return Err(Error::Malformed);
    }
    let signed_end = datagram
        .len()
        .checked_sub(auth_len)
        .ok_or(Error::Malformed)?;
    let signed = datagram
        .get(RMCP_HEADER.len()..signed_end)
        .ok_or(Error::Malformed)?;
    if signed.len() % 4 != 0 {
        return Err(Error::Malformed);
    }
    Ok((signed, code))
}

/// Writes the RMCP and v2.0 session headers; the payload follows at `V2_PAYLOAD_OFFSET`.
pub fn write_v2_header(w: &mut Writer<'_>, h: &V2Header, payload_len: usize) -> Result<(), Error> {
    let mut kind = h.payload_type & PAYLOAD_TYPE_MASK;
    if h.encrypted {
        kind |= PAYLOAD_ENCRYPTED;
    }
    if h.authenticated {
        kind |= PAYLOAD_AUTHENTICATED;
    }
    let len = u16::try_from(payload_len).map_err(|_| Error::Busy)?;
    w.put(&RMCP_HEADER)?;
    w.put(&[FORMAT_RMCP_PLUS, kind])?;
    w.u32le(h.session_id)?;
    w.u32le(h.seq)?;
    w.put(&len.to_le_bytes())
}

/// Appends the integrity pad, pad length and next header after a payload, so that the
/// signed range (session header to next header) is a multiple of four bytes.
pub fn write_trailer_fields(w: &mut Writer<'_>) -> Result<(), Error> {
    let signed = w
        .pos()
        .checked_sub(RMCP_HEADER.len())
        .ok_or(Error::Busy)?
        .checked_add(2)
        .ok_or(Error::Busy)?;
    let pad = (4 - signed % 4) % 4;
    for _ in 0..pad {
        w.u8(0xFF)?;
    }
    // `pad` is at most 3.
    w.put(&[pad as u8, NEXT_HEADER])
}

/// Builds an unauthenticated v2.0 packet outside a session (session id and sequence 0).
pub fn encode_v2_plain(out: &mut [u8], payload_type: u8, payload: &[u8]) -> Result<usize, Error> {
    let header = V2Header {
        payload_type,
        encrypted: false,
        authenticated: false,
        session_id: 0,
        seq: 0,
    };
    let mut w = Writer::new(out);
    write_v2_header(&mut w, &header, payload.len())?;
    w.put(payload)?;
    Ok(w.pos())
}

/// Builds a v1.5 packet with authentication type NONE outside a session.
pub fn encode_v15_plain(out: &mut [u8], payload: &[u8]) -> Result<usize, Error> {
    let len = u8::try_from(payload.len()).map_err(|_| Error::Busy)?;
    let mut w = Writer::new(out);
    w.put(&RMCP_HEADER)?;
    w.u8(0)?;
    w.u32le(0)?;
    w.u32le(0)?;
    w.u8(len)?;
    w.put(payload)?;
    Ok(w.pos())
}

/// Slave address of the BMC (responder) and of the remote console (software ID 81h).
pub const BMC_ADDR: u8 = 0x20;
pub const CONSOLE_ADDR: u8 = 0x81;

/// Two's-complement checksum: the covered bytes plus it sum to zero modulo 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, &b| acc.wrapping_add(b))
        .wrapping_neg()
}

/// An IPMI request as carried in a LAN payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub netfn: u8,
    pub cmd: u8,
    /// Requester sequence (6 bits): kept across retransmissions so the BMC can spot them.
    pub rq_seq: u8,
    pub data: &'a [u8],
}

impl Request<'_> {
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let head = [BMC_ADDR, self.netfn << 2];
        w.put(&head)?;
        w.u8(checksum(&head))?;
        let start = w.pos();
        w.put(&[CONSOLE_ADDR, (self.rq_seq & 0x3F) << 2, self.cmd])?;
        w.put(self.data)?;
        let body = w.written()?.get(start..).ok_or(Error::Busy)?;
        let sum = checksum(body);
        w.u8(sum)
    }
}

/// An IPMI response: the completion code and the data after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub netfn: u8,
    pub cmd: u8,
    pub rq_seq: u8,
    pub cc: u8,
    pub data: &'a [u8],
}

impl<'a> Response<'a> {
    /// Parses and checks a response addressed to the console (both checksums).
    pub fn parse(bytes: &'a [u8]) -> Result<Response<'a>, Error> {
        let [rq_addr, netfn_lun, sum1, rest @ ..] = bytes else {
            return Err(Error::Malformed);
        };
        if checksum(&[*rq_addr, *netfn_lun]) != *sum1 || *rq_addr != CONSOLE_ADDR {
            return Err(Error::Malformed);
        }
        let [body @ .., sum2] = rest else {
            return Err(Error::Malformed);
        };
        if checksum(body) != *sum2 {
            return Err(Error::Malformed);
        }
        let [_rs_addr, seq_lun, cmd, cc, data @ ..] = body else {
            return Err(Error::Malformed);
        };
        Ok(Response {
            netfn: netfn_lun >> 2,
            cmd: *cmd,
            rq_seq: seq_lun >> 2,
            cc: *cc,
            data,
        })
    }
}

#[cfg(test)]
mod tests;
