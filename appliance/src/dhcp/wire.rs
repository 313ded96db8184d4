//! The DHCP message codec (RFC 2131, 2132, 3396): a zero-copy [`Message`] parsed from a
//! received datagram, and a [`Builder`] that emits a reply in place.

use core::net::Ipv4Addr;

use crate::net::{MacAddr, Uuid};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// The PXE boot-server port; UEFI firmware and iPXE send proxyDHCP requests here.
pub const PROXY_PORT: u16 = 4011;

const MAGIC: [u8; 4] = [99, 130, 83, 99];
const HEADER_LEN: usize = 236;
const OPTIONS_AT: usize = HEADER_LEN + MAGIC.len();
const SNAME: core::ops::Range<usize> = 44..108;
const FILE: core::ops::Range<usize> = 108..236;
/// BOOTP's minimum message size; some old clients drop shorter replies.
const MIN_REPLY_LEN: usize = 300;
pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
/// The broadcast bit of the `flags` field.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// DHCP option codes this server reads or writes.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const DOMAIN_NAME: u8 = 15;
    pub const BROADCAST: u8 = 28;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_NDI: u8 = 94;
    pub const CLIENT_UUID: u8 = 97;
    /// iPXE's encapsulated options; their presence marks iPXE.
    pub const IPXE_ENCAP: u8 = 175;
    pub const END: u8 = 255;
}

/// Why a datagram was not a usable DHCP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the fixed header and magic cookie.
    Truncated,
    /// The magic cookie is wrong: BOOTP or garbage.
    BadMagic,
    /// An option runs past the end of its area.
    BadOption,
    /// A known option has the wrong length.
    BadOptionLength(u8),
    /// No option 53, or an unknown message type.
    BadMessageType,
    /// Not Ethernet (htype 1, hlen 6).
    BadHardware,
    /// A reply did not fit the output buffer.
    NoSpace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<MessageType> {
        use MessageType::*;
        [Discover, Offer, Request, Decline, Ack, Nak, Release, Inform]
            .into_iter()
            .find(|t| *t as u8 == v)
    }

    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Discover => "DISCOVER",
            Offer => "OFFER",
            Request => "REQUEST",
            Decline => "DECLINE",
            Ack => "ACK",
            Nak => "NAK",
            Release => "RELEASE",
            Inform => "INFORM",
        }
    }
}

/// A parsed DHCP message borrowing the datagram. The options the server uses are picked out
/// once while the option areas are validated.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    pub op: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: MacAddr,
    pub message_type: MessageType,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub max_message_size: Option<u16>,
    /// Option 55, the codes the client asks for.
    pub parameters: &'a [u8],
    /// Option 60, e.g. `PXEClient:Arch:00007:UNDI:003000`.
    pub vendor_class: &'a [u8],
    /// Option 77, raw (iPXE) or RFC 3004 framed.
    pub user_class: &'a [u8],
    /// Option 93, first entry.
    pub client_arch: Option<u16>,
    /// Option 97 as received, echoed to PXE clients.
    pub client_uuid_raw: &'a [u8],
    /// Option 175 is present.
    pub ipxe_encap: bool,
    /// The raw bytes of the header fields copied into replies.
    header: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses and validates a datagram. Never panics on any input.
    pub fn parse(data: &'a [u8]) -> Result<Message<'a>, Error> {
        if data.len() < OPTIONS_AT {
            return Err(Error::Truncated);
        }
        if data[HEADER_LEN..OPTIONS_AT] != MAGIC {
            return Err(Error::BadMagic);
        }
        if data[1] != 1 || data[2] != 6 {
            return Err(Error::BadHardware);
        }
        let mut msg = Message {
            op: data[0],
            xid: be_u32(&data[4..8]),
            secs: u16::from_be_bytes([data[8], data[9]]),
            flags: u16::from_be_bytes([data[10], data[11]]),
            ciaddr: ip_at(data, 12),
            yiaddr: ip_at(data, 16),
            siaddr: ip_at(data, 20),
            giaddr: ip_at(data, 24),
            chaddr: MacAddr([data[28], data[29], data[30], data[31], data[32], data[33]]),
            message_type: MessageType::Discover,
            requested_ip: None,
            server_id: None,
            max_message_size: None,
            parameters: &[],
            vendor_class: &[],
            user_class: &[],
            client_arch: None,
            client_uuid_raw: &[],
            ipxe_encap: false,
            header: &data[..HEADER_LEN],
        };
        let mut message_type = None;
        let overload = core::cell::Cell::new(0u8);
        let mut take = |code: u8, value: &'a [u8]| -> Result<(), Error> {
            match code {
                opt::MESSAGE_TYPE => message_type = Some(exact::<1>(code, value)?[0]),
                opt::OVERLOAD => overload.set(exact::<1>(code, value)?[0]),
                opt::REQUESTED_IP => msg.requested_ip = Some(ip(exact::<4>(code, value)?)),
                opt::SERVER_ID => msg.server_id = Some(ip(exact::<4>(code, value)?)),
                opt::MAX_MESSAGE_SIZE => {
                    let v = exact::<2>(code, value)?;
                    msg.max_message_size = Some(u16::from_be_bytes(*v));
                }
                opt::PARAMETER_LIST => msg.parameters = value,
                opt::VENDOR_CLASS => msg.vendor_class = value,
                opt::USER_CLASS => msg.user_class = value,
                opt::CLIENT_ARCH => {
                    if value.len() < 2 || !value.len().is_multiple_of(2) {
                        return Err(Error::BadOptionLength(code));
                    }
                    msg.client_arch = Some(u16::from_be_bytes([value[0], value[1]]));
                }
                opt::CLIENT_UUID => msg.client_uuid_raw = value,
                opt::IPXE_ENCAP => msg.ipxe_encap = true,
                _ => {}
            }
            Ok(())
        };
        walk(&data[OPTIONS_AT..], &mut take)?;
        // RFC 2132 9.3: option 52 moves more options into `file` and/or `sname`.
        if overload.get() & 1 != 0 {
            walk(&data[FILE], &mut take)?;
        }
        if overload.get() & 2 != 0 {
            walk(&data[SNAME], &mut take)?;
        }
        msg.message_type = message_type
            .and_then(MessageType::from_u8)
            .ok_or(Error::BadMessageType)?;
        Ok(msg)
    }

    pub fn is_broadcast(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }

    pub fn requests(&self, code: u8) -> bool {
        self.parameters.contains(&code)
    }

    /// The SMBIOS UUID from option 97 (type 0 followed by 16 bytes in EFI GUID order),
    /// when it names a machine.
    pub fn client_uuid(&self) -> Option<Uuid> {
        match self.client_uuid_raw {
            [0, rest @ ..] => rest
                .try_into()
                .ok()
                .map(|b| Uuid(b).swap_guid_order())
                .filter(|u| !u.is_nil()),
            _ => None,
        }
    }
}

/// Walks one option area, calling `take` for each option. Pads are skipped; the area ends at
/// END or at its last byte.
fn walk<'a>(
    mut area: &'a [u8],
    take: &mut impl FnMut(u8, &'a [u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    while let Some((&code, rest)) = area.split_first() {
        match code {
            opt::PAD => area = rest,
            opt::END => return Ok(()),
            _ => {
                let (&len, rest) = rest.split_first().ok_or(Error::BadOption)?;
                let value = rest.get(..usize::from(len)).ok_or(Error::BadOption)?;
                take(code, value)?;
                area = &rest[usize::from(len)..];
            }
        }
    }
    Ok(())
}

fn exact<const N: usize>(code: u8, value: &[u8]) -> Result<&[u8; N], Error> {
    value.try_into().map_err(|_| Error::BadOptionLength(code))
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn ip(b: &[u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(*b)
}

fn ip_at(data: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3])
}

/// Emits a reply into a caller's buffer: the fixed header first, then options in call order.
pub struct Builder<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Builder<'b> {
    /// Starts a BOOTREPLY to `request`, copying xid, flags, giaddr and chaddr from it.
    pub fn reply(
        buf: &'b mut [u8],
        request: &Message<'_>,
        kind: MessageType,
    ) -> Result<Self, Error> {
        if buf.len() < MIN_REPLY_LEN {
            return Err(Error::NoSpace);
        }
        buf[..OPTIONS_AT].fill(0);
        buf[0] = BOOTREPLY;
        buf[1..3].copy_from_slice(&[1, 6]);
        // xid and flags, then giaddr and chaddr, as the request had them.
        buf[4..8].copy_from_slice(&request.header[4..8]);
        buf[10..12].copy_from_slice(&request.header[10..12]);
        buf[24..44].copy_from_slice(&request.header[24..44]);
        buf[HEADER_LEN..OPTIONS_AT].copy_from_slice(&MAGIC);
        let mut b = Builder {
            buf,
            len: OPTIONS_AT,
        };
        b.option(opt::MESSAGE_TYPE, &[kind as u8])?;
        Ok(b)
    }

    pub fn ciaddr(&mut self, ip: Ipv4Addr) -> &mut Self {
        self.buf[12..16].copy_from_slice(&ip.octets());
        self
    }

    pub fn yiaddr(&mut self, ip: Ipv4Addr) -> &mut Self {
        self.buf[16..20].copy_from_slice(&ip.octets());
        self
    }

    pub fn siaddr(&mut self, ip: Ipv4Addr) -> &mut Self {
        self.buf[20..24].copy_from_slice(&ip.octets());
        self
    }

    pub fn set_broadcast(&mut self) -> &mut Self {
        self.buf[10] |= 0x80;
        self
    }

    /// Writes the `sname` header field; `false` when the text does not fit (63 bytes + NUL).
    pub fn sname(&mut self, name: &str) -> bool {
        put_field(&mut self.buf[SNAME], name)
    }

    /// Writes the `file` header field; `false` when the text does not fit (127 bytes + NUL).
    pub fn file(&mut self, name: &str) -> bool {
        put_field(&mut self.buf[FILE], name)
    }

    /// Appends an option; values over 255 bytes are split into several instances (RFC 3396).
    pub fn option(&mut self, code: u8, value: &[u8]) -> Result<&mut Self, Error> {
        let mut chunks = value.chunks(255);
        let first = chunks.next().unwrap_or(&[]);
        for chunk in core::iter::once(first).chain(chunks) {
            // Keep room for the END byte.
            let end = self.len + 2 + chunk.len();
            if end + 1 > self.buf.len() {
                return Err(Error::NoSpace);
            }
            self.buf[self.len] = code;
            self.buf[self.len + 1] = chunk.len() as u8;
            self.buf[self.len + 2..end].copy_from_slice(chunk);
            self.len = end;
        }
        Ok(self)
    }

    pub fn option_ip(&mut self, code: u8, ip: Ipv4Addr) -> Result<&mut Self, Error> {
        self.option(code, &ip.octets())
    }

    pub fn option_u32(&mut self, code: u8, v: u32) -> Result<&mut Self, Error> {
        self.option(code, &v.to_be_bytes())
    }

    /// Ends the options and pads to BOOTP's minimum size; returns the reply's length.
    pub fn finish(self) -> usize {
        // `option` always leaves room for END, and `reply` checked MIN_REPLY_LEN.
        self.buf[self.len] = opt::END;
        let len = (self.len + 1).max(MIN_REPLY_LEN);
        self.buf[self.len + 1..len].fill(0);
        len
    }
}

fn put_field(field: &mut [u8], text: &str) -> bool {
    if text.len() >= field.len() {
        return false;
    }
    field.fill(0);
    field[..text.len()].copy_from_slice(text.as_bytes());
    true
}
