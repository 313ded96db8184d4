use super::*;

#[test]
fn parses_and_prints() {
    let mac = MacAddr::parse("52:54:00:AA:00:01").unwrap();
    assert_eq!(mac.0, [0x52, 0x54, 0, 0xaa, 0, 1]);
    assert!(MacAddr::parse("52:54:00:aa:00").is_none());
    assert!(MacAddr::parse("52:54:00:aa:00:01:02").is_none());
    let uuid = Uuid::parse("8f1b2c3d-0000-4000-8000-00000000abcd").unwrap();
    extern crate std;
    assert_eq!(
        std::format!("{uuid}"),
        "8f1b2c3d-0000-4000-8000-00000000abcd"
    );
    assert!(Uuid::parse("8f1b").is_none());
    // What QEMU's iPXE and OVMF send for -smbios type=1,uuid=12345678-9abc-4def-8123-...
    let wire = Uuid::parse("78563412-bc9a-ef4d-8123-0000000b1051").unwrap();
    let smbios = Uuid::parse("12345678-9abc-4def-8123-0000000b1051").unwrap();
    assert_eq!(wire.swap_guid_order(), smbios);
    assert_eq!(smbios.swap_guid_order(), wire);
    let net = Ipv4Net::parse("10.77.0.1/24").unwrap();
    assert_eq!(net.mask(), Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(net.broadcast(), Ipv4Addr::new(10, 77, 0, 255));
    assert!(net.contains(Ipv4Addr::new(10, 77, 0, 200)));
    assert!(!net.contains(Ipv4Addr::new(10, 78, 0, 1)));
    assert_eq!(
        Ipv4Net::parse("0.0.0.0/0").unwrap().mask(),
        Ipv4Addr::UNSPECIFIED
    );
    assert!(Ipv4Net::parse("10.0.0.1/33").is_none());
}
