use super::*;

#[test]
fn parses_requests_with_options() {
    let raw = b"\0\x01ipxe.efi\0OcTeT\0tsize\x000\0BLKSIZE\x001468\0windowsize\x004\0\0\0";
    let Ok(Packet::Read(req)) = Packet::parse(raw) else {
        panic!("not a read request")
    };
    assert_eq!(req.filename, b"ipxe.efi");
    assert_eq!(req.mode, Mode::Octet);
    let o = Options::parse(req.options());
    assert_eq!(o.tsize, Some(0));
    assert_eq!(o.blksize, Some(1468));
    assert_eq!(o.windowsize, Some(4));
    assert_eq!(o.timeout, None);
    assert_eq!(req.options().count(), 3);
}

#[test]
fn malformed_requests_and_values() {
    assert_eq!(Packet::parse(b"\0"), Err(Error::Truncated));
    assert_eq!(Packet::parse(b"\0\x01file"), Err(Error::Unterminated));
    assert_eq!(
        Packet::parse(b"\0\x01file\0octet"),
        Err(Error::Unterminated)
    );
    assert_eq!(Packet::parse(b"\0\x01file\0binary\0"), Err(Error::BadMode));
    assert_eq!(Packet::parse(b"\0\x09"), Err(Error::UnknownOpcode(9)));
    assert_eq!(Packet::parse(b"\0\x04\0"), Err(Error::Truncated));
    let mut long = [b'a'; 600];
    long[..2].copy_from_slice(&[0, 1]);
    assert_eq!(Packet::parse(&long), Err(Error::TooLong));
    let opts = |raw: &'static [u8]| Options::parse(OptionIter(raw));
    assert_eq!(opts(b"blksize\0abc\0").blksize, None);
    assert_eq!(opts(b"blksize\x007\0").blksize, None);
    assert_eq!(opts(b"blksize\x0099999\0").blksize, Some(MAX_BLKSIZE));
    assert_eq!(opts(b"blksize\0+512\0").blksize, None);
    assert_eq!(
        opts(b"timeout\x000\0timeout\x005\0timeout\x007\0").timeout,
        Some(5)
    );
    assert_eq!(opts(b"timeout\x000\0").timeout, None);
    assert_eq!(opts(b"timeout\x00256\0").timeout, None);
    assert_eq!(opts(b"windowsize\x000\0").windowsize, None);
    assert_eq!(opts(b"tsize\x0099999999999999999999999\0").tsize, None);
    // A pair missing its last NUL is dropped, the ones before it kept.
    assert_eq!(opts(b"blksize\x001024\0windowsize\x004").windowsize, None);
    assert_eq!(
        opts(b"blksize\x001024\0windowsize\x004").blksize,
        Some(1024)
    );
    assert!(opts(b"\0blksize\x001024\0").is_empty());
}

#[test]
fn emits_what_it_parses() {
    let mut buf = [0u8; 64];
    let o = Options {
        blksize: Some(1468),
        timeout: None,
        tsize: Some(1_032_192),
        windowsize: Some(4),
    };
    let n = emit_oack(&mut buf, &o).unwrap();
    assert_eq!(
        &buf[..n],
        b"\0\x06blksize\x001468\0tsize\x001032192\0windowsize\x004\0"
    );
    let Ok(Packet::Oack { options }) = Packet::parse(&buf[..n]) else {
        panic!()
    };
    assert_eq!(Options::parse(options), o);
    assert_eq!(emit_oack(&mut buf[..10], &o), None);

    let n = emit_error(&mut buf, ErrorCode::FileNotFound, "file not found").unwrap();
    assert_eq!(
        Packet::parse(&buf[..n]),
        Ok(Packet::Error {
            code: 1,
            message: b"file not found"
        })
    );
    // Shortened to fit, still NUL-terminated.
    assert_eq!(
        emit_error(&mut buf[..8], ErrorCode::NotDefined, "busy now"),
        Some(8)
    );
    assert_eq!(&buf[..8], b"\0\x05\0\0bus\0");
    assert_eq!(emit_error(&mut buf[..4], ErrorCode::NotDefined, "x"), None);

    emit_data_header(&mut buf, 65535);
    buf[4..7].copy_from_slice(b"abc");
    assert_eq!(
        Packet::parse(&buf[..7]),
        Ok(Packet::Data {
            block: 65535,
            data: b"abc"
        })
    );
    assert_eq!(emit_ack(&mut buf, 7), Some(4));
    assert_eq!(Packet::parse(&buf[..4]), Ok(Packet::Ack { block: 7 }));
}
