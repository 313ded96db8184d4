//! Test fixtures: requests built and replies decoded with `dhcproto`, a codec written
//! independently of the appliance's.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use appliance::dhcp::pxe::BootTarget;
use appliance::dhcp::{
    Config, Datagram, Destination, LeaseTable, Mode, Outcome, Server, Slot, Subnet,
};
use appliance::inventory::Inventory;
use appliance::net::{Ipv4Net, MacAddr};
use dhcproto::v4::{Architecture, DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const NOW: u64 = 1_800_000_000;

pub fn config(mode: Mode) -> Config {
    let mut c = Config::new(mode, SERVER);
    c.subnets
        .push(Subnet {
            net: Ipv4Net::parse("10.77.0.1/24").unwrap(),
            pool_first: Ipv4Addr::new(10, 77, 0, 100),
            pool_last: Ipv4Addr::new(10, 77, 0, 199),
            router: Some(Ipv4Addr::new(10, 77, 0, 254)),
        })
        .unwrap();
    c
}

pub fn mac(n: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0xaa, 0, n])
}

/// A request under construction.
pub struct Req(pub Message);

impl Req {
    pub fn new(kind: MessageType, mac: MacAddr) -> Req {
        let mut m = Message::new(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &mac.0,
        );
        m.set_xid(0x1234_5678);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        Req(m)
    }

    pub fn opt(mut self, o: DhcpOption) -> Req {
        self.0.opts_mut().insert(o);
        self
    }

    pub fn pxe(self, arch: u16) -> Req {
        let class = format!("PXEClient:Arch:{arch:05}:UNDI:003000");
        self.opt(DhcpOption::ClassIdentifier(class.into_bytes()))
            .opt(DhcpOption::ClientSystemArchitecture(Architecture::from(
                arch,
            )))
    }

    pub fn http(self, arch: u16) -> Req {
        let class = format!("HTTPClient:Arch:{arch:05}:UNDI:003000");
        self.opt(DhcpOption::ClassIdentifier(class.into_bytes()))
            .opt(DhcpOption::ClientSystemArchitecture(Architecture::from(
                arch,
            )))
    }

    pub fn ipxe(self, arch: u16) -> Req {
        self.pxe(arch).opt(DhcpOption::UserClass(b"iPXE".to_vec()))
    }

    /// Option 97 as firmware sends it: the SMBIOS UUID in EFI GUID byte order.
    pub fn uuid(self, uuid: [u8; 16]) -> Req {
        let mut v = vec![0];
        v.extend_from_slice(&appliance::net::Uuid(uuid).swap_guid_order().0);
        self.opt(DhcpOption::ClientMachineIdentifier(v))
    }

    pub fn requested(self, ip: Ipv4Addr) -> Req {
        self.opt(DhcpOption::RequestedIpAddress(ip))
    }

    pub fn server_id(self, ip: Ipv4Addr) -> Req {
        self.opt(DhcpOption::ServerIdentifier(ip))
    }

    pub fn ciaddr(mut self, ip: Ipv4Addr) -> Req {
        self.0.set_ciaddr(ip);
        self
    }

    pub fn giaddr(mut self, ip: Ipv4Addr) -> Req {
        self.0.set_giaddr(ip);
        self
    }

    pub fn broadcast(mut self) -> Req {
        self.0.set_flags(Flags::default().set_broadcast());
        self
    }

    pub fn asks(self, codes: &[OptionCode]) -> Req {
        self.opt(DhcpOption::ParameterRequestList(codes.to_vec()))
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.0.to_vec().unwrap()
    }
}

/// A server with its storage, and helpers to exchange messages with it.
pub struct Rig {
    pub server: Server<'static>,
    pub inventory: Inventory<16>,
}

impl Rig {
    pub fn new(config: Config) -> Rig {
        Rig::with_capacity(config, 64)
    }

    pub fn with_capacity(config: Config, leases: usize) -> Rig {
        config.validate().unwrap();
        let slots = Box::leak(vec![Slot::EMPTY; 2 * leases].into_boxed_slice());
        Rig {
            server: Server::new(config, LeaseTable::new(slots)),
            inventory: Inventory::default(),
        }
    }

    pub fn set_boot(&mut self, mac: MacAddr, target: BootTarget) {
        self.inventory
            .set_boot(appliance::inventory::MachineKey::Mac(mac), target)
            .unwrap();
    }

    /// Sends raw bytes to port `port`; returns the outcome and the decoded reply.
    pub fn raw(&mut self, now: u64, port: u16, bytes: &[u8]) -> (Outcome, Option<Reply>) {
        let mut out = [0u8; 1500];
        let src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
        let dg = Datagram {
            src,
            port,
            payload: bytes,
        };
        let outcome = self.server.handle(now, &dg, &mut self.inventory, &mut out);
        let reply = outcome
            .reply
            .map(|(to, len)| Reply::decode(to, &out[..len]));
        (outcome, reply)
    }

    pub fn send(&mut self, req: &Req) -> Option<Reply> {
        self.raw(NOW, 67, &req.bytes()).1
    }

    /// A full DORA; returns the ACK.
    pub fn dora(&mut self, discover: Req, request: impl FnOnce(Req) -> Req) -> Reply {
        let mac = MacAddr(discover.0.chaddr()[..6].try_into().unwrap());
        let offer = self.send(&discover).expect("offer");
        assert_eq!(offer.kind, MessageType::Offer);
        let req = Req::new(MessageType::Request, mac)
            .requested(offer.msg.yiaddr())
            .server_id(SERVER);
        let ack = self.send(&request(req)).expect("ack");
        assert_eq!(ack.kind, MessageType::Ack, "{ack:?}");
        ack
    }
}

#[derive(Debug)]
pub struct Reply {
    pub to: Destination,
    pub msg: Message,
    pub kind: MessageType,
    pub len: usize,
}

impl Reply {
    fn decode(to: Destination, bytes: &[u8]) -> Reply {
        let msg = Message::decode(&mut Decoder::new(bytes)).expect("dhcproto decodes the reply");
        assert_eq!(msg.opcode(), Opcode::BootReply);
        let kind = msg.opts().msg_type().expect("message type");
        Reply {
            to,
            msg,
            kind,
            len: bytes.len(),
        }
    }

    /// The `file` header field without its NUL terminator.
    pub fn file(&self) -> Option<String> {
        let f = self.msg.fname_str()?.ok()?.trim_end_matches('\0');
        (!f.is_empty()).then(|| f.to_owned())
    }

    pub fn opt(&self, code: OptionCode) -> Option<&DhcpOption> {
        self.msg.opts().get(code)
    }

    pub fn bytes_of(&self, code: OptionCode) -> Option<Vec<u8>> {
        match self.opt(code)? {
            DhcpOption::ClassIdentifier(b)
            | DhcpOption::BootfileName(b)
            | DhcpOption::TFTPServerName(b)
            | DhcpOption::ClientMachineIdentifier(b)
            | DhcpOption::VendorExtensions(b) => Some(b.clone()),
            DhcpOption::Unknown(u) => Some(u.data().to_vec()),
            other => panic!("not a byte option: {other:?}"),
        }
    }
}
