use super::*;

#[test]
fn only_3_and_17_are_strong() {
    let strong: heapless::Vec<u8, 8> = PREFERENCE
        .iter()
        .copied()
        .filter(|&id| Suite::from_id(id).unwrap().is_strong())
        .collect();
    assert_eq!(strong, [17, 3]);
    for id in [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 18, 255] {
        assert_eq!(Suite::from_id(id), None, "suite {id}");
    }
    assert_eq!(Suite::from_id(17).unwrap().algorithms(), [3, 4, 1]);
    assert_eq!(Suite::from_id(3).unwrap().algorithms(), [1, 1, 1]);
}

/// RFC 2202 test case 2 and RFC 4231 test case 2 (key "Jefe").
#[test]
fn hmac_known_answers() {
    let m = hmac(
        Some(Hash::Sha1),
        b"Jefe",
        &[b"what do ya want ", b"for nothing?"],
    )
    .unwrap();
    assert_eq!(
        m.as_slice(),
        &[
            0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
            0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
        ]
    );
    let m = hmac(
        Some(Hash::Sha256),
        b"Jefe",
        &[b"what do ya want for nothing?"],
    )
    .unwrap();
    assert_eq!(m.as_slice()[..4], [0x5b, 0xdc, 0xc1, 0x46]);
    assert!(m.matches(&m.as_slice()[..16], 16));
    assert!(!m.matches(&m.as_slice()[..15], 16));
    assert_eq!(hmac(None, b"x", &[b"y"]).unwrap().as_slice(), &[] as &[u8]);
}

#[test]
fn aes_round_trip_every_length() {
    let key = [7u8; 16];
    let iv = [9u8; 16];
    for len in 0..40 {
        let mut buf = [0u8; 64];
        for (i, b) in buf[..len].iter_mut().enumerate() {
            *b = i as u8;
        }
        let n = aes_encrypt(&key, &iv, &mut buf, len).unwrap();
        assert_eq!(n % 16, 0);
        assert!(n > len);
        let mut payload = [0u8; 80];
        payload[..16].copy_from_slice(&iv);
        payload[16..16 + n].copy_from_slice(&buf[..n]);
        let mut out = [0u8; 64];
        let plain = aes_decrypt(&key, &payload[..16 + n], &mut out).unwrap();
        assert_eq!(plain.len(), len);
        assert!(plain.iter().enumerate().all(|(i, &b)| b == i as u8));
        // A wrong key garbles the pad (with overwhelming likelihood for this input).
        let mut out = [0u8; 64];
        assert!(aes_decrypt(&[8; 16], &payload[..16 + n], &mut out).is_err() || len > 0);
        for cut in 0..16 + n {
            let mut out = [0u8; 64];
            assert!(aes_decrypt(&key, &payload[..cut], &mut out).is_err() || cut % 16 == 0);
        }
    }
    assert_eq!(aes_encrypt(&key, &iv, &mut [0u8; 16], 16), Err(Error::Busy));
}
