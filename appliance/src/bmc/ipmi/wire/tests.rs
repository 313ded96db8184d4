use super::*;

/// A response as a BMC frames it (the console's side of `Request::encode`).
fn response_bytes(netfn: u8, cmd: u8, rq_seq: u8, cc: u8, data: &[u8]) -> ([u8; 64], usize) {
    let mut buf = [0u8; 64];
    let head = [CONSOLE_ADDR, netfn << 2];
    buf[..2].copy_from_slice(&head);
    buf[2] = checksum(&head);
    let body = [BMC_ADDR, rq_seq << 2, cmd, cc];
    buf[3..7].copy_from_slice(&body);
    buf[7..7 + data.len()].copy_from_slice(data);
    let end = 7 + data.len();
    buf[end] = checksum(&buf[3..end]);
    (buf, end + 1)
}

#[test]
fn request_layout_and_checksums() {
    let mut buf = [0u8; 32];
    let mut w = Writer::new(&mut buf);
    Request {
        netfn: 0x06,
        cmd: 0x38,
        rq_seq: 5,
        data: &[0x8E, 0x04],
    }
    .encode(&mut w)
    .unwrap();
    let n = w.pos();
    assert_eq!(
        &buf[..n],
        &[0x20, 0x18, 0xC8, 0x81, 0x14, 0x38, 0x8E, 0x04, 0xA1]
    );
    assert_eq!(checksum(&buf[3..n]), 0);
}

#[test]
fn response_round_trip_and_bad_checksums() {
    let (buf, n) = response_bytes(0x01, 0x01, 9, 0, &[0x41, 0x10]);
    let r = Response::parse(&buf[..n]).unwrap();
    assert_eq!(
        (r.netfn, r.cmd, r.rq_seq, r.cc, r.data),
        (1, 1, 9, 0, &[0x41, 0x10][..])
    );
    for i in 0..n {
        let mut bad = buf;
        bad[i] ^= 0x01;
        assert!(Response::parse(&bad[..n]).is_err(), "flip at {i}");
        assert!(Response::parse(&buf[..i]).is_err(), "truncated at {i}");
    }
}

#[test]
fn v2_header_round_trip_with_trailer() {
    let mut buf = [0u8; 64];
    let h = V2Header {
        payload_type: 0,
        encrypted: true,
        authenticated: true,
        session_id: 0xA0A2A3A4,
        seq: 7,
    };
    let mut w = Writer::new(&mut buf);
    write_v2_header(&mut w, &h, 3).unwrap();
    w.put(&[1, 2, 3]).unwrap();
    write_trailer_fields(&mut w).unwrap();
    w.put(&[0xAA; 12]).unwrap();
    let n = w.pos();
    // 12 header + 3 payload + 2 (pad length, next header) = 17: 3 pad bytes make 20.
    assert_eq!(n, 4 + 12 + 3 + 3 + 2 + 12);
    let Packet::V2 {
        header,
        payload,
        trailer,
    } = parse(&buf[..n]).unwrap()
    else {
        panic!()
    };
    assert_eq!(header, h);
    assert_eq!(payload, &[1, 2, 3]);
    let (signed, code) = split_trailer(&buf[..n], trailer, 12).unwrap();
    assert_eq!(signed.len() % 4, 0);
    assert_eq!(code, &[0xAA; 12]);
    assert!(split_trailer(&buf[..n], trailer, 16).is_err());
    for i in 0..n {
        if let Ok(Packet::V2 { trailer, .. }) = parse(&buf[..i]) {
            assert!(
                split_trailer(&buf[..i], trailer, 12).is_err(),
                "truncated at {i}"
            );
        }
    }
}

#[test]
fn v15_round_trip() {
    let mut buf = [0u8; 32];
    let n = encode_v15_plain(&mut buf, &[9, 8, 7]).unwrap();
    assert_eq!(
        parse(&buf[..n]).unwrap(),
        Packet::V15 {
            session_id: 0,
            payload: &[9, 8, 7]
        }
    );
    for i in 0..n {
        assert!(parse(&buf[..i]).is_err());
    }
    assert_eq!(encode_v15_plain(&mut buf[..10], &[1; 8]), Err(Error::Busy));
}
