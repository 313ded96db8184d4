use super::*;

fn hex(s: &str) -> heapless::Vec<u8, 64> {
    let s: heapless::String<128> = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// A real exchange: `ipmitool -I lanplus -C 3 -U admin -P password -vvvv` (1.8.19, Debian
/// 12) against OpenIPMI's `ipmi_sim` 2.0.33, whose debug output prints every HMAC input
/// and result: session ids a0a2a3a4 (console) and 00000082 (BMC), Rm, Rc, the GUID, the
/// RAKP2 HMAC, the RAKP3 HMAC, SIK, K1, K2 and the RAKP4 ICV (first 12 bytes).
pub fn ipmitool_vector() -> Handshake {
    let suite = Suite::from_id(3).unwrap();
    let rm = hex("5b437927ff6b74eb0c452f560c09b5ab");
    let mut h = Handshake::new(
        suite,
        0xA0A2A3A4,
        rm[..].try_into().unwrap(),
        4,
        "admin",
        "password",
    )
    .unwrap();
    h.bmc_id = 0x82;
    h.rc.copy_from_slice(&hex("bb7c37605d1b9924ca7bd31118cfae56"));
    h.guid
        .copy_from_slice(&hex("a123456789abcdefa123456789abcdef"));
    h
}

#[test]
fn key_derivation_matches_ipmitool() {
    let h = ipmitool_vector();
    assert_eq!(h.role, 0x14);
    assert_eq!(
        h.rakp2_hmac().unwrap().as_slice(),
        &hex("72c5f7bdaa7448d24f351d50e7cea665c4b29594")[..]
    );
    let mut out = [0u8; 64];
    let mut w = Writer::new(&mut out);
    h.rakp3(7, 0, &mut w).unwrap();
    assert_eq!(
        &out[8..28],
        &hex("7bec43e0e980451d073c11d685a1bf81e3d4a84a")[..]
    );
    let sik = h.sik().unwrap();
    assert_eq!(
        sik.as_slice(),
        &hex("549fe97d6c0474437148ed0531b1ba44b748ea51")[..]
    );
    let keys = Keys::derive(Some(Hash::Sha1), &sik).unwrap();
    assert_eq!(
        keys.k1.as_slice(),
        &hex("b1f52762af01bee78e2b3fc7a23d55e41901ad15")[..]
    );
    assert_eq!(
        keys.k2.as_slice(),
        &hex("bbb35b90f989f2dc1c3badc2fe9d0af4111b7bd5")[..]
    );
    let mut rakp4 = heapless::Vec::<u8, 32>::new();
    rakp4
        .extend_from_slice(&[7, 0, 0, 0, 0xA4, 0xA3, 0xA2, 0xA0])
        .unwrap();
    rakp4
        .extend_from_slice(&hex("0cebc408e14417632facb207"))
        .unwrap();
    assert!(h.rakp4(7, &rakp4).is_ok());
    rakp4[10] ^= 1;
    assert_eq!(h.rakp4(7, &rakp4).unwrap_err(), Error::Auth);
}

#[test]
fn rakp2_wrong_hmac_is_auth_and_status_maps() {
    let mut h = ipmitool_vector();
    let mut p = heapless::Vec::<u8, 64>::new();
    p.extend_from_slice(&[9, 0, 0, 0, 0xA4, 0xA3, 0xA2, 0xA0])
        .unwrap();
    p.extend_from_slice(&h.rc.clone()).unwrap();
    p.extend_from_slice(&h.guid.clone()).unwrap();
    p.extend_from_slice(&hex("72c5f7bdaa7448d24f351d50e7cea665c4b29594"))
        .unwrap();
    assert!(h.rakp2(9, &p).is_ok());
    for i in 0..p.len() {
        assert!(h.rakp2(9, &p[..i]).is_err(), "truncated at {i}");
    }
    let last = p.len() - 1;
    p[last] ^= 0x80;
    assert_eq!(h.rakp2(9, &p), Err(Error::Auth));
    p[1] = status::INVALID_ROLE;
    assert_eq!(h.rakp2(9, &p), Err(Error::Auth));
    p[1] = status::NO_CIPHER_SUITE_MATCH;
    assert_eq!(h.rakp2(9, &p), Err(Error::NoCommonCipher));
    assert_eq!(h.rakp2(8, &p), Err(Error::Malformed));
}

#[test]
fn open_session_round_trip() {
    let mut h = ipmitool_vector();
    h.bmc_id = 0;
    let mut out = [0u8; 64];
    let mut w = Writer::new(&mut out);
    h.open_session(3, &mut w).unwrap();
    assert_eq!(w.pos(), 32);
    let mut resp = [0u8; 36];
    resp[..2].copy_from_slice(&[3, 0]);
    resp[2] = 4;
    resp[4..8].copy_from_slice(&h.console_id.to_le_bytes());
    resp[8..12].copy_from_slice(&0x82u32.to_le_bytes());
    resp[12..].copy_from_slice(&out[8..32]);
    h.open_session_response(3, &resp).unwrap();
    assert_eq!(h.bmc_id, 0x82);
    for i in 0..resp.len() {
        assert!(h.open_session_response(3, &resp[..i]).is_err());
    }
    resp[28 + 4] = 0; // no confidentiality: not what was proposed
    assert_eq!(
        h.open_session_response(3, &resp),
        Err(Error::NoCommonCipher)
    );
    assert!(Handshake::new(h.suite, 1, [0; 16], 4, "admin", "012345678901234567890").is_none());
    assert!(Handshake::new(h.suite, 1, [0; 16], 4, "01234567890123456", "pw").is_none());
}
