extern crate std;
use super::*;

fn ok(head: &str) -> Request<'_> {
    parse(head.as_bytes()).unwrap()
}

fn err(head: &str) -> Error {
    parse(head.as_bytes()).unwrap_err()
}

#[test]
fn request_line_and_target_forms() {
    let r = ok("GET /boot.ipxe?mac=52%3A54&arch=x86_64 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        (r.method, r.version, r.keep_alive),
        (Method::Get, Version::Http11, true)
    );
    assert_eq!((r.path, r.query), ("/boot.ipxe", "mac=52%3A54&arch=x86_64"));
    let r = ok("HEAD http://10.0.0.1:80/a/b?x HTTP/1.1\nHost: a\n\n");
    assert_eq!((r.method, r.path, r.query), (Method::Head, "/a/b", "x"));
    assert_eq!(ok("GET HTTP://h?q HTTP/1.1\r\nHost: h\r\n\r\n").path, "");
    assert_eq!(
        ok("POST / HTTP/1.1\r\nHost: a\r\n\r\n").method,
        Method::NotAllowed
    );
    assert_eq!(
        ok("BREW / HTTP/1.1\r\nHost: a\r\n\r\n").method,
        Method::Unknown
    );
    // 1.x above 1.1 is served as 1.1; other majors are refused.
    assert_eq!(
        ok("GET / HTTP/1.7\r\nHost: a\r\n\r\n").version,
        Version::Http11
    );
    assert_eq!(err("GET / HTTP/2.0\r\n\r\n"), Error::Version);
    for bad in [
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / http/1.1\r\nHost: a\r\n\r\n",
        "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n",
    ] {
        assert_eq!(err(bad), Error::Malformed, "{bad:?}");
    }
}

#[test]
fn headers_are_checked_and_bounded() {
    for bad in [
        // HTTP/1.1 needs exactly one Host.
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        assert_eq!(err(bad), Error::Malformed, "{bad:?}");
    }
    assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
    let r = ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(r.keep_alive);
    let r = ok("GET / HTTP/1.1\r\nhost: a\r\nConnection: foo, CLOSE\r\n\r\n");
    assert!(!r.keep_alive);
    let r = ok("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nX-Obs: café\r\n\r\n");
    assert_eq!(r.content_length, 5);
    let r = ok("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert!(r.transfer_encoding);

    let mut flood = std::string::String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..MAX_HEADERS {
        flood += &std::format!("X-{i}: y\r\n");
    }
    flood += "\r\n";
    assert_eq!(err(&flood), Error::TooLarge);
}

#[test]
fn head_ends_at_the_first_blank_line() {
    assert_eq!(head_len(b"GET / HTTP/1.0\r\n\r\nrest"), Some(18));
    assert_eq!(head_len(b"GET / HTTP/1.0\n\nrest"), Some(16));
    assert_eq!(head_len(b"GET / HTTP/1.0\r\nA: b\r\n"), None);
    // A blank first line is not a terminator: the caller skips leading blank lines.
    assert_eq!(head_len(b"\r\n"), None);
}

#[test]
fn ranges() {
    let range = |v: &str| {
        let head = std::format!("GET / HTTP/1.1\r\nHost: a\r\nRange: {v}\r\n\r\n");
        parse(head.as_bytes()).unwrap().range
    };
    let from = |first, last| Some(ByteRange::From { first, last });
    assert_eq!(range("bytes=0-99"), from(0, Some(99)));
    assert_eq!(range("Bytes = 5-"), from(5, None));
    assert_eq!(range("bytes=-7"), Some(ByteRange::Suffix(7)));
    assert_eq!(range("bytes=3-3,"), from(3, Some(3)));
    assert_eq!(
        range("bytes=99999999999999999999999-"),
        from(u64::MAX, None)
    );
    for ignored in [
        "bytes=0-1,5-6",
        "bytes=5-4",
        "items=0-1",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "0-1",
    ] {
        assert_eq!(range(ignored), None, "{ignored}");
    }
    let head = "GET / HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\nIf-Range: \"x\"\r\n\r\n";
    assert_eq!(ok(head).range, None);

    let span = |r: ByteRange, size| r.resolve(size);
    assert_eq!(
        span(
            ByteRange::From {
                first: 2,
                last: Some(5)
            },
            10
        ),
        Some((2, 6))
    );
    assert_eq!(
        span(
            ByteRange::From {
                first: 2,
                last: Some(50)
            },
            10
        ),
        Some((2, 10))
    );
    assert_eq!(
        span(
            ByteRange::From {
                first: 9,
                last: None
            },
            10
        ),
        Some((9, 10))
    );
    assert_eq!(
        span(
            ByteRange::From {
                first: 10,
                last: None
            },
            10
        ),
        None
    );
    assert_eq!(span(ByteRange::Suffix(3), 10), Some((7, 10)));
    assert_eq!(span(ByteRange::Suffix(30), 10), Some((0, 10)));
    assert_eq!(span(ByteRange::Suffix(0), 10), None);
    assert_eq!(span(ByteRange::Suffix(3), 0), None);
}
