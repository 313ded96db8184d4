//! The full server's address lifecycle, reply routing, relays, persistence and hostile
//! input, with requests built and replies decoded by dhcproto.

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};

use appliance::dhcp::config::MAX_OPTION_LEN;
use appliance::dhcp::{Destination, Lease, LeaseState, Mode, Reservation, Subnet};
use appliance::inventory::MachineKey;
use appliance::journal::{Journal, RamStorage};
use appliance::net::{Ipv4Net, Uuid};
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use support::*;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, last)
}

#[test]
fn dora_reserves_at_offer_and_acks_with_every_configured_option() {
    let mut c = config(Mode::Full);
    c.dns.push(Ipv4Addr::new(10, 77, 0, 53)).unwrap();
    c.domain = "rack1.example".try_into().unwrap();
    c.lease_secs = 7200;
    c.extra_options
        .push((
            42,
            heapless::Vec::<u8, MAX_OPTION_LEN>::from_slice(&[10, 77, 0, 123]).unwrap(),
        ))
        .unwrap();
    let mut rig = Rig::new(c);
    let offer1 = rig.send(&Req::new(MessageType::Discover, mac(1))).unwrap();
    // The first client's offer is held: a second client gets another address.
    let offer2 = rig.send(&Req::new(MessageType::Discover, mac(2))).unwrap();
    assert_ne!(offer1.msg.yiaddr(), offer2.msg.yiaddr());
    let ack = rig.dora(Req::new(MessageType::Discover, mac(1)), |r| r);
    assert_eq!(ack.msg.yiaddr(), offer1.msg.yiaddr());
    let o = |c| ack.opt(c).cloned();
    assert_eq!(
        o(OptionCode::SubnetMask),
        Some(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        o(OptionCode::Router),
        Some(DhcpOption::Router(vec![ip(254)]))
    );
    assert_eq!(
        o(OptionCode::DomainNameServer),
        Some(DhcpOption::DomainNameServer(vec![ip(53)]))
    );
    assert_eq!(
        o(OptionCode::DomainName),
        Some(DhcpOption::DomainName("rack1.example".into()))
    );
    assert_eq!(
        o(OptionCode::BroadcastAddr),
        Some(DhcpOption::BroadcastAddr(ip(255)))
    );
    assert_eq!(
        o(OptionCode::AddressLeaseTime),
        Some(DhcpOption::AddressLeaseTime(7200))
    );
    assert_eq!(o(OptionCode::Renewal), Some(DhcpOption::Renewal(3600)));
    assert_eq!(o(OptionCode::Rebinding), Some(DhcpOption::Rebinding(6300)));
    assert_eq!(
        o(OptionCode::ServerIdentifier),
        Some(DhcpOption::ServerIdentifier(SERVER))
    );
    assert!(matches!(o(OptionCode::NtpServers), Some(DhcpOption::NtpServers(v)) if v == [ip(123)]));
}

#[test]
fn replies_are_routed_as_rfc_2131_says() {
    let mut rig = Rig::new(config(Mode::Full));
    // No broadcast flag and no address yet (iPXE): straight to the MAC.
    let r = rig.send(&Req::new(MessageType::Discover, mac(1))).unwrap();
    assert_eq!(
        r.to,
        Destination::Link {
            mac: mac(1),
            ip: r.msg.yiaddr()
        }
    );
    let r = rig
        .send(&Req::new(MessageType::Discover, mac(2)).broadcast())
        .unwrap();
    assert_eq!(r.to, Destination::Broadcast);
    // Renewing: unicast to the client's address.
    let ack = rig.dora(Req::new(MessageType::Discover, mac(3)), |r| r);
    let renew = Req::new(MessageType::Request, mac(3)).ciaddr(ack.msg.yiaddr());
    let r = rig.send(&renew).unwrap();
    assert_eq!(r.kind, MessageType::Ack);
    assert_eq!(
        r.to,
        Destination::Unicast(SocketAddrV4::new(ack.msg.yiaddr(), 68))
    );
    // A NAK is broadcast.
    let bad = Req::new(MessageType::Request, mac(4)).requested(Ipv4Addr::new(192, 168, 9, 9));
    let r = rig.send(&bad).unwrap();
    assert_eq!((r.kind, r.to), (MessageType::Nak, Destination::Broadcast));
}

fn with_relayed_subnet() -> Rig {
    let mut c = config(Mode::Full);
    c.subnets
        .push(Subnet {
            net: Ipv4Net::parse("10.78.0.0/24").unwrap(),
            pool_first: Ipv4Addr::new(10, 78, 0, 10),
            pool_last: Ipv4Addr::new(10, 78, 0, 20),
            router: Some(Ipv4Addr::new(10, 78, 0, 1)),
        })
        .unwrap();
    Rig::new(c)
}

#[test]
fn relayed_requests_use_the_relays_subnet_and_go_back_to_the_relay() {
    let mut rig = with_relayed_subnet();
    let relay = Ipv4Addr::new(10, 78, 0, 1);
    let ack = rig.dora(Req::new(MessageType::Discover, mac(1)).giaddr(relay), |r| {
        r.giaddr(relay)
    });
    assert!(
        Ipv4Net::parse("10.78.0.0/24")
            .unwrap()
            .contains(ack.msg.yiaddr())
    );
    assert_eq!(ack.to, Destination::Unicast(SocketAddrV4::new(relay, 67)));
    assert_eq!(
        ack.opt(OptionCode::Router).cloned(),
        Some(DhcpOption::Router(vec![relay]))
    );
    // A relay on a subnet we do not serve gets nothing.
    let stranger = Req::new(MessageType::Discover, mac(2)).giaddr(Ipv4Addr::new(10, 99, 0, 1));
    assert!(rig.send(&stranger).is_none());
    // A relayed NAK sets the broadcast bit so the relay broadcasts it.
    let nak = rig
        .send(
            &Req::new(MessageType::Request, mac(3))
                .giaddr(relay)
                .requested(ip(150)),
        )
        .unwrap();
    assert_eq!(nak.kind, MessageType::Nak);
    assert!(nak.msg.flags().broadcast());
}

#[test]
fn reservations_by_mac_and_by_uuid_are_honoured_and_kept_from_others() {
    let mut c = config(Mode::Full);
    let uuid = Uuid::parse("12345678-9abc-4def-8123-0000000b1051").unwrap();
    c.reservations
        .push(Reservation {
            key: MachineKey::Mac(mac(1)),
            ip: ip(50),
        })
        .unwrap();
    c.reservations
        .push(Reservation {
            key: MachineKey::Uuid(uuid),
            ip: ip(100),
        })
        .unwrap();
    let mut rig = Rig::new(c);
    // Outside the pool, by MAC.
    assert_eq!(
        rig.dora(Req::new(MessageType::Discover, mac(1)), |r| r)
            .msg
            .yiaddr(),
        ip(50)
    );
    // The pool's first address is reserved by UUID: a stranger asking for it gets another.
    let stranger = rig
        .send(&Req::new(MessageType::Discover, mac(2)).requested(ip(100)))
        .unwrap();
    assert_ne!(stranger.msg.yiaddr(), ip(100));
    let by_uuid = Req::new(MessageType::Discover, mac(3)).pxe(7).uuid(uuid.0);
    assert_eq!(
        rig.dora(by_uuid, |r| r.pxe(7).uuid(uuid.0)).msg.yiaddr(),
        ip(100)
    );
    // The reserved client asking for another address is refused.
    let wrong = Req::new(MessageType::Request, mac(1)).requested(ip(120));
    assert_eq!(rig.send(&wrong).unwrap().kind, MessageType::Nak);
}

#[test]
fn init_reboot_acks_known_naks_wrong_and_ignores_strangers() {
    let mut rig = Rig::new(config(Mode::Full));
    let leased = rig
        .dora(Req::new(MessageType::Discover, mac(1)), |r| r)
        .msg
        .yiaddr();
    let reboot = |m, addr| Req::new(MessageType::Request, mac(m)).requested(addr);
    assert_eq!(rig.send(&reboot(1, leased)).unwrap().kind, MessageType::Ack);
    assert_eq!(
        rig.send(&reboot(1, ip(177))).unwrap().kind,
        MessageType::Nak,
        "not its address"
    );
    assert_eq!(
        rig.send(&reboot(2, leased)).unwrap().kind,
        MessageType::Nak,
        "another's address"
    );
    assert!(
        rig.send(&reboot(3, ip(188))).is_none(),
        "no record: stay silent"
    );
    let other_net = Req::new(MessageType::Request, mac(1)).requested(Ipv4Addr::new(172, 16, 0, 5));
    assert_eq!(rig.send(&other_net).unwrap().kind, MessageType::Nak);
}

#[test]
fn renewing_and_rebinding_extend_the_lease() {
    let mut rig = Rig::new(config(Mode::Full));
    let leased = rig
        .dora(Req::new(MessageType::Discover, mac(1)), |r| r)
        .msg
        .yiaddr();
    let later = NOW + 1800;
    let renew = Req::new(MessageType::Request, mac(1))
        .ciaddr(leased)
        .broadcast();
    let (outcome, reply) = rig.raw(later, 67, &renew.bytes());
    assert_eq!(reply.unwrap().kind, MessageType::Ack);
    assert_eq!(outcome.change.unwrap().expires, later + 3600);
    // Someone else's address: NAK.
    let theft = Req::new(MessageType::Request, mac(2)).ciaddr(leased);
    assert_eq!(rig.send(&theft).unwrap().kind, MessageType::Nak);
}

#[test]
fn selecting_another_server_frees_our_offer() {
    let mut rig = Rig::new(config(Mode::Full));
    let offered = rig
        .send(&Req::new(MessageType::Discover, mac(1)))
        .unwrap()
        .msg
        .yiaddr();
    let elsewhere = Req::new(MessageType::Request, mac(1))
        .requested(Ipv4Addr::new(10, 77, 0, 9))
        .server_id(ip(2));
    assert!(rig.send(&elsewhere).is_none());
    // The address is free again for the next client.
    assert_eq!(
        rig.send(&Req::new(MessageType::Discover, mac(2)).requested(offered))
            .unwrap()
            .msg
            .yiaddr(),
        offered
    );
}

#[test]
fn release_and_decline() {
    let mut rig = Rig::new(config(Mode::Full));
    let a = rig
        .dora(Req::new(MessageType::Discover, mac(1)), |r| r)
        .msg
        .yiaddr();
    let release = Req::new(MessageType::Release, mac(1))
        .ciaddr(a)
        .server_id(SERVER);
    let (outcome, reply) = rig.raw(NOW, 67, &release.bytes());
    assert!(reply.is_none());
    assert_eq!(outcome.change.unwrap().state, LeaseState::Released);
    assert_eq!(rig.server.stats().releases, 1);
    // Its address is free for another client that asks for it.
    let b = rig
        .dora(Req::new(MessageType::Discover, mac(2)).requested(a), |r| r)
        .msg
        .yiaddr();
    assert_eq!(a, b);
    // mac(2) finds the address in use (ARP) and declines it: held back, mac(2) moves on.
    let decline = Req::new(MessageType::Decline, mac(2))
        .requested(b)
        .server_id(SERVER);
    let (outcome, _) = rig.raw(NOW, 67, &decline.bytes());
    assert_eq!(outcome.change.unwrap().state, LeaseState::Declined);
    let next = rig
        .send(&Req::new(MessageType::Discover, mac(2)).requested(b))
        .unwrap();
    assert_ne!(next.msg.yiaddr(), b);
    let third = rig
        .send(&Req::new(MessageType::Discover, mac(3)).requested(b))
        .unwrap();
    assert_ne!(third.msg.yiaddr(), b);
}

#[test]
fn inform_gets_configuration_without_a_lease() {
    let mut rig = Rig::new(config(Mode::Full));
    let r = rig
        .send(&Req::new(MessageType::Inform, mac(1)).ciaddr(ip(30)))
        .unwrap();
    assert_eq!(r.kind, MessageType::Ack);
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.msg.ciaddr(), ip(30));
    assert!(r.opt(OptionCode::AddressLeaseTime).is_none());
    assert!(r.opt(OptionCode::SubnetMask).is_some());
    assert_eq!(r.to, Destination::Unicast(SocketAddrV4::new(ip(30), 68)));
}

#[test]
fn an_exhausted_pool_and_a_full_table_answer_nothing_and_count() {
    let mut c = config(Mode::Full);
    c.subnets[0].pool_last = ip(102);
    let mut rig = Rig::new(c);
    for m in 1..=3 {
        rig.dora(Req::new(MessageType::Discover, mac(m)), |r| r);
    }
    assert!(rig.send(&Req::new(MessageType::Discover, mac(4))).is_none());
    assert_eq!(rig.server.stats().exhausted, 1);
    // A lease that expires makes room.
    let later = NOW + 3601;
    let (_, reply) = rig.raw(later, 67, &Req::new(MessageType::Discover, mac(4)).bytes());
    assert_eq!(reply.unwrap().kind, MessageType::Offer);

    let mut small = Rig::with_capacity(config(Mode::Full), 2);
    small.dora(Req::new(MessageType::Discover, mac(1)), |r| r);
    small.dora(Req::new(MessageType::Discover, mac(2)), |r| r);
    assert!(
        small
            .send(&Req::new(MessageType::Discover, mac(3)))
            .is_none(),
        "table full"
    );
    assert_eq!(small.server.stats().exhausted, 1);
}

#[test]
fn leases_survive_a_restart_through_the_journal() {
    let mut rig = Rig::new(config(Mode::Full));
    let (mut journal, _) = Journal::open(RamStorage::<4096>::default(), |_: Lease| {}).unwrap();
    let mut leased = vec![];
    for m in 1..=5 {
        let offer = rig.send(&Req::new(MessageType::Discover, mac(m))).unwrap();
        let req = Req::new(MessageType::Request, mac(m))
            .requested(offer.msg.yiaddr())
            .server_id(SERVER);
        let (outcome, _) = rig.raw(NOW, 67, &req.bytes());
        journal.append(&outcome.change.unwrap()).unwrap();
        leased.push(offer.msg.yiaddr());
    }
    // Restart: a new server replays the journal.
    let mut restarted = Rig::new(config(Mode::Full));
    let mut restore = vec![];
    let (_, replay) = Journal::open(journal.into_storage(), |l: Lease| restore.push(l)).unwrap();
    assert_eq!(replay.records, 5);
    for l in restore {
        assert!(restarted.server.restore(l));
    }
    for (m, addr) in (1..=5).zip(&leased) {
        let reboot = Req::new(MessageType::Request, mac(m)).requested(*addr);
        assert_eq!(restarted.send(&reboot).unwrap().kind, MessageType::Ack);
    }
    let newcomer = restarted
        .send(&Req::new(MessageType::Discover, mac(9)))
        .unwrap();
    assert!(!leased.contains(&newcomer.msg.yiaddr()));
}

#[test]
fn hostile_datagrams_are_dropped_and_counted() {
    let mut rig = Rig::new(config(Mode::Full));
    let good = Req::new(MessageType::Discover, mac(1)).pxe(7).bytes();
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        good[..239].to_vec(),
        {
            let mut b = good.clone();
            b[236] = 0;
            b
        },
        {
            // An option that runs past the end.
            let mut b = good[..240].to_vec();
            b.extend_from_slice(&[53, 1, 1, 12, 200, b'x']);
            b
        },
        {
            let mut b = good[..240].to_vec();
            b.extend_from_slice(&[53, 2, 1, 1, 255]);
            b
        },
        {
            // No message type at all.
            let mut b = good[..240].to_vec();
            b.push(255);
            b
        },
    ];
    let mut not_ethernet = good.clone();
    not_ethernet[1] = 6;
    cases.push(not_ethernet);
    for (i, case) in cases.iter().enumerate() {
        let (outcome, reply) = rig.raw(NOW, 67, case);
        assert!(reply.is_none(), "case {i}");
        assert!(outcome.change.is_none());
    }
    assert_eq!(rig.server.stats().malformed, cases.len() as u32);
    // Pseudo-random garbage and mutations of a valid request never panic.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = good.clone();
        let at = (x as usize) % b.len();
        b[at] = (x >> 32) as u8;
        b.truncate(240 + (x >> 40) as usize % (b.len() - 239));
        let _ = rig.raw(NOW + round, 67, &b);
    }
    // The server still works.
    assert_eq!(
        rig.send(&Req::new(MessageType::Discover, mac(2)))
            .unwrap()
            .kind,
        MessageType::Offer
    );
}

#[test]
fn option_overload_moves_options_into_file_and_sname() {
    let mut b = Req::new(MessageType::Discover, mac(1)).bytes();
    b.truncate(240);
    b.extend_from_slice(&[52, 1, 1, 255]);
    // Option 93 (arch 7) and the PXE class in the `file` field.
    let mut area = vec![93, 2, 0, 7, 60, 9];
    area.extend_from_slice(b"PXEClient");
    area.extend_from_slice(&[53, 1, 1, 255]);
    b[108..108 + area.len()].copy_from_slice(&area);
    let mut rig = Rig::new(config(Mode::Full));
    let (outcome, reply) = rig.raw(NOW, 67, &b);
    assert_eq!(reply.unwrap().kind, MessageType::Offer);
    assert_eq!(outcome.decision.file.as_deref(), Some("ipxe.efi"));
}

#[test]
fn config_validation_names_the_problem() {
    let mut c = config(Mode::Full);
    c.reservations
        .push(Reservation {
            key: MachineKey::Mac(mac(1)),
            ip: Ipv4Addr::new(10, 1, 1, 1),
        })
        .unwrap();
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "reservation 10.1.1.1 is in no served subnet"
    );
    let mut c = config(Mode::Full);
    c.subnets[0].pool_last = Ipv4Addr::new(10, 77, 1, 5);
    assert!(c.validate().is_err());
    let mut c = config(Mode::Full);
    c.extra_options.push((54, heapless::Vec::new())).unwrap();
    assert!(c.validate().is_err());
}
