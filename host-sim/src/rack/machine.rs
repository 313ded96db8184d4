//! A simulated rack machine's PXE client: firmware DHCP for the iPXE binary, then iPXE's
//! DHCP for the script URL. Messages are built and read with `dhcproto`, a codec written
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
enum Stage {
    Firmware,
    Ipxe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Discover,
    Request { offered: Ipv4Addr, server: Ipv4Addr },
    Done,
}

/// What a machine learned from the appliance.
#[derive(Clone, Debug, Default)]
pub struct Learned {
    pub firmware_file: Option<String>,
    pub script: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub exchanges: u32,
    /// A reply that contradicted the protocol, e.g. a changed address between stages.
    pub fault: Option<String>,
}

pub struct Machine {
    pub mac: MacAddr,
    pub uuid: Uuid,
    pub firmware: Firmware,
    stage: Stage,
    step: Step,
    xid: u32,
    pub learned: Learned,
}

impl Machine {
    pub fn new(mac: MacAddr, uuid: Uuid, firmware: Firmware, xid: u32) -> Machine {
        Machine {
            mac,
            uuid,
            firmware,
            stage: Stage::Firmware,
            step: Step::Discover,
            xid,
            learned: Learned::default(),
        }
    }

    pub fn booted(&self) -> bool {
        self.step == Step::Done
    }

    /// The next datagram this machine sends, if it is waiting on nothing.
    pub fn next_request(&self) -> Option<Vec<u8>> {
        let (kind, requested, server) = match self.step {
            Step::Discover => (MessageType::Discover, None, None),
            Step::Request { offered, server } => {
                (MessageType::Request, Some(offered), Some(server))
            }
            Step::Done => return None,
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
                let opts = msg.opts_mut();
                opts.insert(DhcpOption::UserClass(b"iPXE".to_vec()));
            }
        }
        msg.to_vec().ok()
    }

    /// Takes a reply addressed to this machine.
    pub fn receive(&mut self, bytes: &[u8]) {
        let Ok(msg) = Message::decode(&mut Decoder::new(bytes)) else {
            self.learned.fault = Some("undecodable reply".into());
            return;
        };
        if msg.opcode() != Opcode::BootReply || msg.xid() != self.xid {
            return;
        }
        let server = match msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => *ip,
            _ => return self.fail("reply without server identifier"),
        };
        let file = boot_file(&msg);
        match (self.step, msg.opts().msg_type()) {
            (Step::Discover, Some(MessageType::Offer)) => {
                self.step = Step::Request {
                    offered: msg.yiaddr(),
                    server,
                };
            }
            (Step::Request { offered, .. }, Some(MessageType::Ack)) => {
                self.learned.exchanges += 1;
                if msg.yiaddr() != offered || self.learned.ip.is_some_and(|ip| ip != offered) {
                    return self.fail("address changed");
                }
                self.learned.ip = Some(offered);
                self.xid = self.xid.wrapping_add(1);
                match self.stage {
                    Stage::Firmware => {
                        self.learned.firmware_file = file;
                        self.stage = Stage::Ipxe;
                        self.step = Step::Discover;
                    }
                    Stage::Ipxe => {
                        self.learned.script = file;
                        self.step = Step::Done;
                    }
                }
            }
            (_, Some(MessageType::Nak)) => {
                self.step = Step::Discover;
            }
            _ => {}
        }
    }

    fn fail(&mut self, why: &str) {
        self.learned.fault = Some(why.into());
        self.step = Step::Done;
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
