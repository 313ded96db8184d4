//! A simulated machine's DHCP client: firmware PXE's DORA for the iPXE binary, then iPXE's
//! for the script URL. Messages are built and read with `dhcproto`, a codec written
//! independently of the appliance's, so each side checks the other.

use std::net::Ipv4Addr;

use appliance::net::{MacAddr, Uuid};
use dhcproto::v4::{Architecture, DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};

/// The firmware a simulated machine boots with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Firmware {
    Bios,
    UefiX64,
    UefiArm64,
}

impl Firmware {
    pub const ALL: [Firmware; 3] = [Firmware::Bios, Firmware::UefiX64, Firmware::UefiArm64];

    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::UefiX64 => "uefi-x64",
            Firmware::UefiArm64 => "uefi-arm64",
        }
    }

    fn arch(self) -> u16 {
        match self {
            Firmware::Bios => 0,
            Firmware::UefiX64 => 7,
            Firmware::UefiArm64 => 11,
        }
    }

    fn vendor_class(self) -> &'static str {
        match self {
            Firmware::Bios => "PXEClient:Arch:00000:UNDI:002001",
            Firmware::UefiX64 => "PXEClient:Arch:00007:UNDI:003000",
            Firmware::UefiArm64 => "PXEClient:Arch:00011:UNDI:003000",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Firmware,
    Ipxe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Discover,
    Request { offered: Ipv4Addr, server: Ipv4Addr },
    Bound,
}

/// A stage's DHCPACK: the address and the boot file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    pub stage: Stage,
    pub ip: Ipv4Addr,
    pub server: Ipv4Addr,
    pub file: Option<String>,
}

/// What a reply did to the client.
pub enum Reply {
    /// Not for this exchange, or nothing to act on.
    Ignored,
    /// An OFFER or a NAK: the next message is due now.
    Advanced,
    Bound(Bound),
}

pub struct DhcpClient {
    mac: MacAddr,
    uuid: Uuid,
    firmware: Firmware,
    stage: Stage,
    step: Step,
    xid: u32,
}

impl DhcpClient {
    pub fn new(mac: MacAddr, uuid: Uuid, firmware: Firmware, xid: u32) -> DhcpClient {
        DhcpClient {
            mac,
            uuid,
            firmware,
            stage: Stage::Firmware,
            step: Step::Discover,
            xid,
        }
    }

    /// Starts the iPXE stage's DORA (iPXE runs DHCP again after it loads).
    pub fn restart_as_ipxe(&mut self) {
        self.stage = Stage::Ipxe;
        self.step = Step::Discover;
        self.xid = self.xid.wrapping_add(1);
    }

    /// The datagram to (re)send now, unless bound.
    pub fn request(&self) -> Option<Vec<u8>> {
        let (kind, requested, server) = match self.step {
            Step::Discover => (MessageType::Discover, None, None),
            Step::Request { offered, server } => {
                (MessageType::Request, Some(offered), Some(server))
            }
            Step::Bound => return None,
        };
        let mut msg = Message::new(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &self.mac.0,
        );
        msg.set_xid(self.xid);
        let opts = msg.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ClientSystemArchitecture(Architecture::from(
            self.firmware.arch(),
        )));
        opts.insert(DhcpOption::ClassIdentifier(
            self.firmware.vendor_class().into(),
        ));
        // Option 97 carries the SMBIOS UUID in EFI GUID byte order, as firmware sends it.
        let mut uuid = vec![0u8];
        uuid.extend_from_slice(&self.uuid.swap_guid_order().0);
        opts.insert(DhcpOption::ClientMachineIdentifier(uuid));
        opts.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::TFTPServerName,
            OptionCode::BootfileName,
        ]));
        if let Some(ip) = requested {
            opts.insert(DhcpOption::RequestedIpAddress(ip));
        }
        if let Some(server) = server {
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
        match self.stage {
            // Firmware PXE sets the broadcast flag; iPXE does not and wants a unicast reply.
            Stage::Firmware => {
                msg.set_flags(Flags::default().set_broadcast());
            }
            Stage::Ipxe => {
                msg.opts_mut()
                    .insert(DhcpOption::UserClass(b"iPXE".to_vec()));
            }
        }
        msg.to_vec().ok()
    }

    /// Takes a reply. `Err` for a reply that breaks the protocol.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Reply, String> {
        let msg = Message::decode(&mut Decoder::new(bytes))
            .map_err(|e| format!("undecodable reply: {e}"))?;
        if msg.opcode() != Opcode::BootReply || msg.xid() != self.xid {
            return Ok(Reply::Ignored);
        }
        let Some(DhcpOption::ServerIdentifier(server)) =
            msg.opts().get(OptionCode::ServerIdentifier)
        else {
            return Err("reply without server identifier".into());
        };
        match (self.step, msg.opts().msg_type()) {
            (Step::Discover, Some(MessageType::Offer)) => {
                self.step = Step::Request {
                    offered: msg.yiaddr(),
                    server: *server,
                };
                Ok(Reply::Advanced)
            }
            (Step::Request { offered, .. }, Some(MessageType::Ack)) => {
                if msg.yiaddr() != offered {
                    return Err("ACK for another address than offered".into());
                }
                self.step = Step::Bound;
                let file = boot_file(&msg);
                Ok(Reply::Bound(Bound {
                    stage: self.stage,
                    ip: offered,
                    server: *server,
                    file,
                }))
            }
            (_, Some(MessageType::Nak)) => {
                self.step = Step::Discover;
                Ok(Reply::Advanced)
            }
            _ => Ok(Reply::Ignored),
        }
    }
}

/// The boot file: the header's `file` field, or option 67 when it did not fit there.
fn boot_file(msg: &Message) -> Option<String> {
    // dhcproto keeps the field's NUL terminator.
    let from_header = msg
        .fname_str()
        .and_then(Result::ok)
        .map(|s| s.trim_end_matches('\0'))
        .filter(|s| !s.is_empty());
    let from_option = match msg.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(b)) => String::from_utf8(b.clone()).ok(),
        _ => None,
    };
    from_header.map(str::to_owned).or(from_option)
}
