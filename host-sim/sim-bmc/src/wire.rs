//! Framing (IPMI v2.0 §13): the RMCP header, the ASF presence ping, the IPMI v1.5 and RMCP+
//! session headers with the integrity trailer, and the LAN IPMI message with its two checksums.

use crate::crypto::{Hash, hmac, hmac_matches};

/// RMCP header of every IPMI datagram: version 1.0, no RMCP ACK, class IPMI.
const RMCP_IPMI: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
/// ASF's IANA enterprise number, which frames the presence ping and pong.
const ASF_IANA: [u8; 4] = [0x00, 0x00, 0x11, 0xBE];
/// Session header auth type that marks an RMCP+ (IPMI v2.0) packet.
const AUTH_RMCP_PLUS: u8 = 0x06;
/// Payload types of §13.27.3.
pub const PAYLOAD_IPMI: u8 = 0x00;
pub const PAYLOAD_OPEN_REQUEST: u8 = 0x10;
pub const PAYLOAD_OPEN_RESPONSE: u8 = 0x11;
pub const PAYLOAD_RAKP1: u8 = 0x12;
pub const PAYLOAD_RAKP2: u8 = 0x13;
pub const PAYLOAD_RAKP3: u8 = 0x14;
pub const PAYLOAD_RAKP4: u8 = 0x15;

/// One datagram, as far as it can be read without session keys.
pub enum Packet<'a> {
    /// ASF presence ping, with its message tag.
    Ping(u8),
    /// IPMI v1.5 message outside a session (auth type none, session ID 0).
    V15(&'a [u8]),
    /// RMCP+ packet.
    V2(V2<'a>),
}

/// An RMCP+ packet (§13.6): header fields, payload and whatever follows it.
pub struct V2<'a> {
    pub encrypted: bool,
    pub authenticated: bool,
    pub payload_type: u8,
    pub session_id: u32,
    pub seq: u32,
    pub payload: &'a [u8],
    /// From the auth type byte to the end of the datagram (what the AuthCode covers, and it).
    session: &'a [u8],
    /// Bytes after the payload: the integrity pad, pad length, next header and AuthCode.
    trailer: &'a [u8],
}

impl V2<'_> {
    /// Checks the session trailer and its AuthCode (`icv_len` leftmost bytes of the HMAC keyed
    /// with K1 over auth type .. next header).
    pub fn integrity_ok(&self, hash: Hash, k1: &[u8], icv_len: usize) -> bool {
        let Some(pad) = self.trailer.len().checked_sub(icv_len + 2) else {
            return false;
        };
        let (pad_bytes, rest) = self.trailer.split_at(pad);
        let layout_ok = pad <= 3
            && pad_bytes.iter().all(|b| *b == 0xFF)
            && rest[0] as usize == pad
            && rest[1] == 0x07;
        let (signed, code) = self.session.split_at(self.session.len() - icv_len);
        layout_ok && hmac_matches(hash, k1, &[signed], code)
    }
}

fn u32_le(b: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
}

/// Reads a datagram's framing; `None` for anything this BMC does not answer.
pub fn parse(dgram: &[u8]) -> Option<Packet<'_>> {
    let (rmcp, rest) = dgram.split_at_checked(4)?;
    if rmcp[0] != 0x06 {
        return None;
    }
    match rmcp[3] {
        // ASF presence ping: IANA, type 0x80, tag, reserved, data length 0.
        0x06 if rest.get(..4)? == ASF_IANA && *rest.get(4)? == 0x80 => {
            Some(Packet::Ping(*rest.get(5)?))
        }
        0x07 if rest.first() == Some(&AUTH_RMCP_PLUS) => {
            let ptype = *rest.get(1)?;
            let len = usize::from(u16::from_le_bytes(rest.get(10..12)?.try_into().ok()?));
            let payload = rest.get(12..12 + len)?;
            Some(Packet::V2(V2 {
                encrypted: ptype & 0x80 != 0,
                authenticated: ptype & 0x40 != 0,
                payload_type: ptype & 0x3F,
                session_id: u32_le(rest.get(2..)?)?,
                seq: u32_le(rest.get(6..)?)?,
                payload,
                session: rest,
                trailer: &rest[12 + len..],
            }))
        }
        // v1.5 with auth type none: no AuthCode field, so the length sits at byte 9.
        0x07 if rest.get(..9)? == [0; 9] => {
            let len = usize::from(*rest.get(9)?);
            Some(Packet::V15(rest.get(10..10 + len)?))
        }
        _ => None,
    }
}

/// The ASF presence pong: IPMI supported, no ASF interactions.
pub fn pong(tag: u8) -> Vec<u8> {
    let mut out = vec![0x06, 0x00, 0xFF, 0x06];
    out.extend_from_slice(&ASF_IANA);
    out.extend_from_slice(&[0x40, tag, 0x00, 0x10]);
    out.extend_from_slice(&ASF_IANA);
    out.extend_from_slice(&[0; 4]); // OEM-defined
    out.extend_from_slice(&[0x81, 0x00]); // supported entities: IPMI, ASF 1.0
    out.extend_from_slice(&[0; 6]);
    out
}

/// A v1.5 session-less reply (auth type none).
pub fn v15(msg: &[u8]) -> Vec<u8> {
    let mut out = RMCP_IPMI.to_vec();
    out.extend_from_slice(&[0; 9]);
    out.push(msg.len() as u8);
    out.extend_from_slice(msg);
    out
}

/// An RMCP+ packet without integrity or confidentiality (handshake and session-less replies).
pub fn v2_plain(payload_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = RMCP_IPMI.to_vec();
    out.extend_from_slice(&[AUTH_RMCP_PLUS, payload_type]);
    out.extend_from_slice(&[0; 8]); // session ID and sequence number 0
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// An encrypted, authenticated RMCP+ packet in a session: `payload` is already encrypted; the
/// trailer pads auth type .. next header to a multiple of 4 and ends with the AuthCode.
pub fn v2_sealed(
    payload_type: u8,
    session_id: u32,
    seq: u32,
    payload: &[u8],
    (hash, k1, icv_len): (Hash, &[u8], usize),
) -> Vec<u8> {
    let mut out = RMCP_IPMI.to_vec();
    out.extend_from_slice(&[AUTH_RMCP_PLUS, 0xC0 | payload_type]);
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    let pad = (4 - (out.len() - 4 + 2) % 4) % 4;
    out.extend(std::iter::repeat_n(0xFF, pad));
    out.extend_from_slice(&[pad as u8, 0x07]);
    let code = hmac(hash, k1, &[&out[4..]]);
    out.extend_from_slice(&code[..icv_len]);
    out
}

/// An IPMI request from the LAN (§13.8): rsAddr, netFn/rsLUN, checksum, rqAddr, rqSeq/rqLUN,
/// cmd, data, checksum.
pub struct Request<'a> {
    pub netfn: u8,
    pub cmd: u8,
    pub data: &'a [u8],
    rs_lun: u8,
    rq_addr: u8,
    rq_seq_lun: u8,
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// Reads an IPMI request; `None` if it is short, a response, or a checksum is wrong.
pub fn request(msg: &[u8]) -> Option<Request<'_>> {
    if msg.len() < 7
        || checksum(&msg[..2]) != msg[2]
        || checksum(&msg[3..msg.len() - 1]) != msg[msg.len() - 1]
    {
        return None;
    }
    let netfn = msg[1] >> 2;
    netfn.is_multiple_of(2).then_some(Request {
        netfn,
        cmd: msg[5],
        data: &msg[6..msg.len() - 1],
        rs_lun: msg[1] & 3,
        rq_addr: msg[3],
        rq_seq_lun: msg[4],
    })
}

/// The response to `req`: completion code `cc`, then `data`.
pub fn response(req: &Request<'_>, cc: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![req.rq_addr, ((req.netfn | 1) << 2) | (req.rq_seq_lun & 3)];
    out.push(checksum(&out));
    out.extend_from_slice(&[0x20, (req.rq_seq_lun & 0xFC) | req.rs_lun, req.cmd, cc]);
    out.extend_from_slice(data);
    out.push(checksum(&out[3..]));
    out
}
