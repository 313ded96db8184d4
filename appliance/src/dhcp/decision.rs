//! What the server decided for one datagram, as one log line, and where a reply goes.

use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};

use super::pxe::{BootFile, ClientKind};
use super::wire::{self, Message, MessageType, PROXY_PORT};
use crate::net::{MacAddr, Uuid};

/// Where the adapter sends a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:68 to the Ethernet broadcast address.
    Broadcast,
    /// To port 68 of a client that has no address yet: the adapter addresses the frame to
    /// `mac` directly, since the client cannot answer ARP.
    Link { mac: MacAddr, ip: Ipv4Addr },
    /// A routable address: a relay, a renewing client, a proxyDHCP requester.
    Unicast(SocketAddrV4),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Broadcast => f.write_str("broadcast"),
            Destination::Link { mac, .. } => write!(f, "{mac}"),
            Destination::Unicast(addr) => write!(f, "{addr}"),
        }
    }
}

/// One DHCP decision; `Display` gives the log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub src: SocketAddrV4,
    /// The message type, or why the datagram was not a DHCP request.
    pub received: Result<MessageType, Option<wire::Error>>,
    pub port: u16,
    pub mac: MacAddr,
    pub uuid: Option<Uuid>,
    pub kind: ClientKind,
    pub arch: Option<u16>,
    pub relay: Option<Ipv4Addr>,
    pub reply: Option<MessageType>,
    pub ip: Option<Ipv4Addr>,
    pub file: Option<BootFile>,
    pub to: Option<Destination>,
    pub note: Option<&'static str>,
}

impl Decision {
    pub fn new(msg: &Message<'_>, port: u16, kind: ClientKind, uuid: Option<Uuid>) -> Decision {
        Decision {
            src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            received: Ok(msg.message_type),
            port,
            mac: msg.chaddr,
            uuid,
            kind,
            arch: msg.client_arch,
            relay: Some(msg.giaddr).filter(|g| !g.is_unspecified()),
            reply: None,
            ip: None,
            file: None,
            to: None,
            note: None,
        }
    }

    /// A datagram that was not a DHCP request: `error` is `None` for a well-formed reply
    /// or BOOTP message that a server ignores.
    pub fn malformed(src: SocketAddrV4, error: Option<wire::Error>) -> Decision {
        Decision {
            src,
            received: Err(error),
            port: 0,
            mac: MacAddr::default(),
            uuid: None,
            kind: ClientKind::Plain,
            arch: None,
            relay: None,
            reply: None,
            ip: None,
            file: None,
            to: None,
            note: Some(if error.is_some() {
                "malformed"
            } else {
                "not-a-request"
            }),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let received = match self.received {
            Ok(t) => t,
            Err(e) => {
                write!(f, "dhcp DROP from={}", self.src)?;
                if let Some(e) = e {
                    write!(f, " error={e:?}")?;
                }
                return write!(f, " -> none note={}", self.note.unwrap_or("dropped"));
            }
        };
        write!(f, "dhcp {} mac={}", received.name(), self.mac)?;
        if let Some(u) = self.uuid {
            write!(f, " uuid={u}")?;
        }
        write!(f, " kind={}", self.kind.name())?;
        if let Some(a) = self.arch {
            write!(f, " arch={a}")?;
        }
        if let Some(r) = self.relay {
            write!(f, " relay={r}")?;
        }
        if self.port == PROXY_PORT {
            write!(f, " port={PROXY_PORT}")?;
        }
        write!(f, " -> {}", self.reply.map_or("none", MessageType::name))?;
        if let Some(ip) = self.ip {
            write!(f, " ip={ip}")?;
        }
        if let Some(file) = &self.file {
            write!(f, " file={file}")?;
        }
        if let Some(to) = self.to {
            write!(f, " to={to}")?;
        }
        if let Some(note) = self.note {
            write!(f, " note={note}")?;
        }
        Ok(())
    }
}
