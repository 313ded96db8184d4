//! The DHCP decoder, and the whole server behind it, on arbitrary datagrams: no input may
//! panic, and a reply must always parse back.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use appliance::dhcp::wire::Message;
use appliance::dhcp::{Config, Datagram, LeaseTable, Mode, Server, Slot, Subnet};
use appliance::inventory::Inventory;
use appliance::net::Ipv4Net;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Message::parse(data);
    // The first byte picks the mode and port, so proxy and 4011 paths are reached too.
    let Some((&selector, payload)) = data.split_first() else { return };
    let mode = if selector & 1 == 0 { Mode::Full } else { Mode::Proxy };
    let port = if selector & 2 == 0 { 67 } else { 4011 };
    let server_ip = Ipv4Addr::new(10, 77, 0, 1);
    let mut config = Config::new(mode, server_ip);
    let _ = config.subnets.push(Subnet {
        net: Ipv4Net { addr: server_ip, prefix: 24 },
        pool_first: Ipv4Addr::new(10, 77, 0, 100),
        pool_last: Ipv4Addr::new(10, 77, 0, 103),
        router: None,
    });
    let mut slots = [Slot::EMPTY; 8];
    let mut server = Server::new(config, LeaseTable::new(&mut slots));
    let mut inventory = Inventory::<4>::default();
    let mut out = [0u8; 1500];
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 50), 68);
    // Twice, so the second pass meets the state the first one left.
    for now in [1_000, 2_000] {
        let dg = Datagram { src, port, payload };
        let outcome = server.handle(now, &dg, &mut inventory, &mut out);
        if let Some((_, len)) = outcome.reply {
            assert!(Message::parse(&out[..len]).is_ok(), "a reply must parse");
        }
    }
});
