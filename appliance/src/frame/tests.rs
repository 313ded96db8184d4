use super::*;

#[test]
fn arp_request_parses_back() {
    let mut out = [0u8; 64];
    let (mac, me, bmc) = (
        MacAddr([2, 0, 0, 0, 0, 1]),
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 9),
    );
    let len = arp_request(mac, me, bmc, &mut out).unwrap();
    assert_eq!(len, 42);
    let eth = EthernetFrame::new_checked(&out[..len]).unwrap();
    assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    let ArpRepr::EthernetIpv4 {
        operation,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = arp
    else {
        panic!("not Ethernet/IPv4: {arp:?}");
    };
    assert_eq!(
        (operation, source_protocol_addr, target_protocol_addr),
        (ArpOperation::Request, me, bmc)
    );
    assert_eq!(arp_request(mac, me, bmc, &mut out[..41]), Err(TooSmall));
}
