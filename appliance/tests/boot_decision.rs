//! Every row of the PXE boot decision, checked on replies decoded by dhcproto.

mod support;

use std::net::Ipv4Addr;

use appliance::dhcp::pxe::{BootFile, BootTarget};
use appliance::dhcp::{Destination, Mode};
use dhcproto::v4::{MessageType, OptionCode};
use support::*;

fn offer_for(req: Req) -> Reply {
    let mut rig = Rig::new(config(Mode::Full));
    let reply = rig.send(&req).expect("an offer");
    assert_eq!(reply.kind, MessageType::Offer);
    reply
}

fn discover() -> Req {
    Req::new(MessageType::Discover, mac(1)).broadcast()
}

#[test]
fn firmware_pxe_gets_the_ipxe_binary_for_its_architecture() {
    for (arch, file) in [
        (0, "undionly.kpxe"),
        (6, "ipxe-i386.efi"),
        (7, "ipxe.efi"),
        (9, "ipxe.efi"),
        (11, "ipxe-arm64.efi"),
    ] {
        let r = offer_for(discover().pxe(arch));
        assert_eq!(r.file().as_deref(), Some(file), "arch {arch}");
        assert_eq!(r.msg.siaddr(), SERVER, "arch {arch}");
        assert_eq!(
            r.bytes_of(OptionCode::ClassIdentifier).unwrap(),
            b"PXEClient"
        );
        // PXE discovery control: boot the file in the header, no boot-server discovery.
        assert_eq!(
            r.bytes_of(OptionCode::VendorExtensions).unwrap(),
            [6, 1, 8, 255]
        );
        assert_eq!(
            r.msg.sname_str().unwrap().unwrap().trim_end_matches('\0'),
            "10.77.0.1"
        );
    }
}

#[test]
fn unsupported_architecture_gets_an_address_but_no_boot_file() {
    for arch in [10, 25, 27] {
        let r = offer_for(discover().pxe(arch));
        assert_eq!(r.file(), None, "arch {arch}");
        assert!(!r.msg.yiaddr().is_unspecified());
    }
}

#[test]
fn ipxe_gets_the_script_url_however_it_identifies() {
    let url = "http://10.77.0.1/boot.ipxe";
    let raw = discover().ipxe(7);
    let framed = discover()
        .pxe(0)
        .opt(dhcproto::v4::DhcpOption::UserClass(b"\x04iPXE".to_vec()));
    let encap = discover().pxe(0).opt(dhcproto::v4::DhcpOption::Unknown(
        dhcproto::v4::UnknownOption::new(OptionCode::Unknown(175), vec![0xb1, 1, 1]),
    ));
    for req in [raw, framed, encap] {
        let r = offer_for(req);
        assert_eq!(r.file().as_deref(), Some(url));
        assert_eq!(
            r.bytes_of(OptionCode::ClassIdentifier).unwrap(),
            b"PXEClient"
        );
        assert!(
            r.opt(OptionCode::VendorExtensions).is_none(),
            "no 43 for iPXE"
        );
    }
}

#[test]
fn uefi_http_boot_gets_an_http_url() {
    for (arch, url) in [
        (16, "http://10.77.0.1/ipxe.efi"),
        (15, "http://10.77.0.1/ipxe-i386.efi"),
        (19, "http://10.77.0.1/ipxe-arm64.efi"),
    ] {
        let r = offer_for(discover().http(arch));
        assert_eq!(r.file().as_deref(), Some(url), "arch {arch}");
        assert_eq!(
            r.bytes_of(OptionCode::ClassIdentifier).unwrap(),
            b"HTTPClient"
        );
    }
    assert_eq!(
        offer_for(discover().http(18)).file(),
        None,
        "arm32 HTTP: not served"
    );
}

#[test]
fn plain_clients_get_no_boot_information() {
    let r = offer_for(discover());
    assert_eq!(r.file(), None);
    assert_eq!(r.msg.siaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(r.opt(OptionCode::ClassIdentifier).is_none());
}

#[test]
fn options_66_67_when_requested_and_97_echoed() {
    let uuid = *b"\x12\x34\x56\x78\x9a\xbc\x4d\xef\x81\x23\0\0\0\x0b\x10\x51";
    let r = offer_for(
        discover()
            .pxe(7)
            .uuid(uuid)
            .asks(&[OptionCode::TFTPServerName, OptionCode::BootfileName]),
    );
    assert_eq!(
        r.bytes_of(OptionCode::TFTPServerName).unwrap(),
        b"10.77.0.1"
    );
    assert_eq!(r.bytes_of(OptionCode::BootfileName).unwrap(), b"ipxe.efi");
    // Echoed exactly as sent, in the client's byte order.
    let echoed = r.bytes_of(OptionCode::ClientMachineIdentifier).unwrap();
    assert_eq!(echoed[0], 0);
    assert_eq!(echoed[1..], appliance::net::Uuid(uuid).swap_guid_order().0);
    let unasked = offer_for(discover().pxe(7));
    assert!(unasked.opt(OptionCode::TFTPServerName).is_none());
    assert!(unasked.opt(OptionCode::BootfileName).is_none());
}

#[test]
fn a_url_too_long_for_the_header_goes_in_option_67() {
    let mut rig = Rig::new(config(Mode::Full));
    let long = format!("http://images.example/{}/boot.ipxe", "x".repeat(100));
    rig.set_boot(
        mac(1),
        BootTarget::Script(BootFile::try_from(long.as_str()).unwrap()),
    );
    let r = rig.send(&discover().ipxe(7)).unwrap();
    assert_eq!(r.file(), None);
    assert_eq!(
        r.bytes_of(OptionCode::BootfileName).unwrap(),
        long.as_bytes()
    );
}

#[test]
fn per_machine_overrides_steer_each_stage() {
    let mut rig = Rig::new(config(Mode::Full));
    let custom = BootFile::try_from("http://10.77.0.9/custom.ipxe").unwrap();
    rig.set_boot(mac(1), BootTarget::Script(custom.clone()));
    assert_eq!(
        rig.send(&discover().ipxe(7)).unwrap().file().as_deref(),
        Some(custom.as_str())
    );
    // The firmware stage still chains iPXE first.
    let firmware = Req::new(MessageType::Discover, mac(1)).broadcast().pxe(7);
    assert_eq!(
        rig.send(&firmware).unwrap().file().as_deref(),
        Some("ipxe.efi")
    );

    rig.set_boot(
        mac(2),
        BootTarget::File(BootFile::try_from("grubx64.efi").unwrap()),
    );
    let r = rig
        .send(&Req::new(MessageType::Discover, mac(2)).broadcast().pxe(7))
        .unwrap();
    assert_eq!(r.file().as_deref(), Some("grubx64.efi"));

    rig.set_boot(mac(3), BootTarget::Local);
    let r = rig
        .send(&Req::new(MessageType::Discover, mac(3)).broadcast().pxe(7))
        .unwrap();
    assert_eq!(
        (r.kind, r.file()),
        (MessageType::Offer, None),
        "an address, nothing to boot"
    );
}

#[test]
fn override_by_uuid_reaches_the_machine() {
    let mut rig = Rig::new(config(Mode::Full));
    let uuid = appliance::net::Uuid([0x42; 16]);
    rig.inventory
        .set_boot(
            appliance::inventory::MachineKey::Uuid(uuid),
            BootTarget::Local,
        )
        .unwrap();
    let r = rig.send(&discover().pxe(7).uuid(uuid.0)).unwrap();
    assert_eq!(r.file(), None);
}

#[test]
fn script_url_carries_a_non_default_http_port() {
    let mut c = config(Mode::Full);
    c.boot.http_port = 8080;
    let mut rig = Rig::new(c);
    let r = rig.send(&discover().ipxe(0)).unwrap();
    assert_eq!(r.file().as_deref(), Some("http://10.77.0.1:8080/boot.ipxe"));
}

#[test]
fn proxy_offers_boot_files_only_to_pxe_clients() {
    let mut rig = Rig::new(config(Mode::Proxy));
    let r = rig.send(&discover().pxe(7).uuid([3; 16])).unwrap();
    assert_eq!(r.kind, MessageType::Offer);
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.file().as_deref(), Some("ipxe.efi"));
    assert_eq!(
        r.bytes_of(OptionCode::ClassIdentifier).unwrap(),
        b"PXEClient"
    );
    assert!(r.opt(OptionCode::ClientMachineIdentifier).is_some());
    assert!(r.opt(OptionCode::AddressLeaseTime).is_none());
    assert_eq!(r.to, Destination::Broadcast);
    // iPXE beside the site's server gets the script.
    let r = rig
        .send(&Req::new(MessageType::Discover, mac(2)).ipxe(0))
        .unwrap();
    assert_eq!(r.file().as_deref(), Some("http://10.77.0.1/boot.ipxe"));
    // Plain clients and the site's DORA are none of the proxy's business.
    assert!(rig.send(&discover()).is_none());
    let to_site = Req::new(MessageType::Request, mac(1))
        .pxe(7)
        .requested(Ipv4Addr::new(10, 77, 0, 150));
    assert!(
        rig.send(&to_site.server_id(Ipv4Addr::new(10, 77, 0, 2)))
            .is_none()
    );
}

#[test]
fn port_4011_requests_are_acked_to_their_source_port() {
    for mode in [Mode::Proxy, Mode::Full] {
        let mut rig = Rig::new(config(mode));
        let client = Ipv4Addr::new(10, 77, 0, 150);
        let req = Req::new(MessageType::Request, mac(1))
            .pxe(7)
            .ciaddr(client)
            .server_id(SERVER);
        let mut out = [0u8; 1500];
        let src = std::net::SocketAddrV4::new(client, 4011);
        let dg = appliance::dhcp::Datagram {
            src,
            port: 4011,
            payload: &req.bytes(),
        };
        let outcome = rig.server.handle(NOW, &dg, &mut rig.inventory, &mut out);
        let (to, _) = outcome.reply.expect("an ACK");
        assert_eq!(to, Destination::Unicast(src));
        assert_eq!(outcome.decision.file.as_deref(), Some("ipxe.efi"));
        assert!(outcome.change.is_none(), "no lease in a proxy ACK");
    }
}
