//! The command runner against the inventory and the power port, with a recording [`Io`]
//! (no BMC answers: the operations' results are the power manager's and the IPMI client's
//! own tests' business, and e2e `uplink_power`/`firmware_power` run them against ipmi_sim).

use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use std::string::String;
use std::vec::Vec;

use rand_core::UnwrapErr;
use uplink::{BmcCredentials, BmcEndpoint, Command, Ipv4, Mac, MachineId, Outcome, Secret};

use super::power::{Io, PowerPort, Report};
use super::{Applied, BootTarget};
use crate::bmc::power::Slot;
use crate::inventory::Inventory;
use crate::net::MacAddr;

extern crate std;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const OTHER: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];
const BMC: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 5), 623);

#[derive(Default)]
struct Recorder {
    sent: Vec<SocketAddrV4>,
    arp: Vec<Ipv4Addr>,
    reports: Vec<Report>,
    log: Vec<String>,
}

impl Io for Recorder {
    fn send(&mut self, to: SocketAddrV4, _: &[u8]) {
        self.sent.push(to);
    }
    fn arp(&mut self, ip: Ipv4Addr) {
        self.arp.push(ip);
    }
    fn report(&mut self, report: Report) {
        self.reports.push(report);
    }
    fn log(&mut self, line: fmt::Arguments<'_>) {
        self.log.push(std::format!("{line}"));
    }
}

/// Not random: the tests look at where datagrams go, not at their contents.
struct Counter(u8);

impl rand_core::TryRng for Counter {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.0 = self.0.wrapping_add(1);
        Ok(u32::from(self.0))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.try_next_u32().map(u64::from)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(self.0);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Counter {}

struct Fixture {
    applied: Applied<4>,
    inventory: Inventory<4>,
    port: PowerPort<'static, 2>,
    io: Recorder,
}

impl Fixture {
    fn new() -> Fixture {
        let slots = std::boxed::Box::leak(std::vec![Slot::default(); 2].into_boxed_slice());
        Fixture {
            applied: Applied::default(),
            inventory: Inventory::new(),
            port: PowerPort::new(slots),
            io: Recorder::default(),
        }
    }

    fn run(&mut self, id: u64, command: Command) -> Option<Outcome> {
        let (inventory, port, reports) = (&mut self.inventory, &mut self.port, &mut self.io);
        let answer = &mut |r| reports.reports.push(r);
        self.applied.run(id, command, inventory, port, 0, answer)
    }
}

fn creds(mac: [u8; 6], addr: SocketAddrV4) -> Command {
    Command::BmcCredentials(BmcCredentials {
        machine: MachineId::Mac(Mac(mac)),
        endpoint: BmcEndpoint::Ipmi {
            ip: Ipv4(addr.ip().octets()),
            port: addr.port(),
        },
        user: "admin".try_into().unwrap(),
        password: Secret("password".try_into().unwrap()),
    })
}

fn failed(why: &str) -> Option<Outcome> {
    Some(Outcome::Failed(why.try_into().unwrap()))
}

fn boot(target: uplink::BootTarget) -> Command {
    Command::SetBootTarget {
        machine: MachineId::Mac(Mac(MAC)),
        target,
    }
}

#[test]
fn boot_targets_follow_the_table() {
    let mut f = Fixture::new();
    let url: uplink::Url = "http://10.0.0.1/installer.ipxe".try_into().unwrap();
    let target = |f: &Fixture| f.inventory.boot_target(MacAddr(MAC), None);
    let agent = uplink::BootTarget::Agent { wipe_id: None };
    assert_eq!(f.run(1, boot(agent)), Some(Outcome::Done));
    assert_eq!(target(&f), BootTarget::Default, "no agent URL configured");
    assert_eq!(
        f.run(2, boot(uplink::BootTarget::Disk)),
        Some(Outcome::Done)
    );
    assert_eq!(target(&f), BootTarget::Local);
    let script = uplink::BootTarget::Url(url.clone());
    assert_eq!(f.run(3, boot(script)), Some(Outcome::Done));
    assert_eq!(
        target(&f),
        BootTarget::Script(url.as_str().try_into().unwrap())
    );
    let install = uplink::BootTarget::Install {
        url,
        kernel_args: "console=ttyS0".try_into().unwrap(),
    };
    let refused = failed("install kernel arguments are not supported yet");
    assert_eq!(f.run(4, boot(install)), refused);
    let spaces = uplink::BootTarget::Script("http://a b".try_into().unwrap());
    assert_eq!(
        f.run(5, boot(spaces)),
        failed("boot URL is empty or has spaces")
    );
}

#[test]
fn power_needs_credentials_and_refuses_redfish() {
    let mut f = Fixture::new();
    let power = Command::PowerCommand {
        machine: MachineId::Mac(Mac(MAC)),
        action: uplink::PowerAction::On,
        pxe_once: None,
    };
    let none = failed("no BMC credentials for this machine");
    assert_eq!(f.run(1, power), none);
    let Command::BmcCredentials(mut redfish) = creds(MAC, BMC) else {
        unreachable!()
    };
    redfish.endpoint = BmcEndpoint::Redfish {
        url: "https://10.0.0.5".try_into().unwrap(),
        cert_sha256: None,
    };
    let outcome = f.run(2, Command::BmcCredentials(redfish));
    assert!(matches!(outcome, Some(Outcome::Failed(_))), "{outcome:?}");
}

#[test]
fn credentials_run_on_until_an_operation_proves_them() {
    let mut f = Fixture::new();
    assert_eq!(f.run(1, creds(MAC, BMC)), None);
    f.port.process(0, &mut UnwrapErr(Counter(0)), &mut f.io);
    // The first status read: the BMC is ARPed, then asked.
    assert_eq!(f.io.arp, [*BMC.ip()]);
    assert!(!f.io.sent.is_empty() && f.io.sent.iter().all(|to| *to == BMC));
    assert!(f.io.reports.is_empty());
    // Newer credentials supersede the waiting ones; another machine may not take the address.
    assert_eq!(f.run(2, creds(MAC, BMC)), None);
    let superseded = Report::Result {
        id: 1,
        what: "BmcCredentials",
        outcome: failed("superseded by a newer command").unwrap(),
    };
    assert_eq!(f.io.reports, [superseded]);
    let taken = failed("this BMC address belongs to another machine");
    assert_eq!(f.run(3, creds(OTHER, BMC)), taken);
    // The table holds two BMCs.
    let other = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 6), 623);
    assert_eq!(f.run(4, creds(OTHER, other)), None);
    let third = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 7), 623);
    let full = failed("BMC table full");
    assert_eq!(f.run(5, creds([0x52, 0x54, 0, 0, 0, 3], third)), full);
}
