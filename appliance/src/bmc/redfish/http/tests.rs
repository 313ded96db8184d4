extern crate std;

use std::format;

use super::*;

fn encode(r: &Request) -> std::string::String {
    let mut buf = [0u8; 1024];
    let n = r.encode(&mut buf).unwrap();
    std::string::String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn basic_auth_get() {
    let r = Request {
        method: Method::Get,
        host: "10.0.0.5:8000",
        path: "/redfish/v1/",
        auth: Auth::Basic {
            user: "Aladdin",
            password: "open sesame",
        },
        body: None,
    };
    assert_eq!(
        encode(&r),
        "GET /redfish/v1/ HTTP/1.1\r\nHost: 10.0.0.5:8000\r\nAccept: application/json\r\n\
         OData-Version: 4.0\r\nAuthorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
    );
}

#[test]
fn base64_padding() {
    for (user, want) in [("a", "YTo="), ("ab", "YWI6"), ("abc", "YWJjOg==")] {
        let r = Request {
            method: Method::Get,
            host: "h",
            path: "/",
            auth: Auth::Basic { user, password: "" },
            body: None,
        };
        assert!(encode(&r).contains(&format!("Basic {want}\r\n")), "{user}");
    }
}

#[test]
fn token_post_with_body() {
    let r = Request {
        method: Method::Post,
        host: "bmc",
        path: "/x",
        auth: Auth::Token("abc123"),
        body: Some(b"{\"ResetType\":\"On\"}"),
    };
    assert_eq!(
        encode(&r),
        "POST /x HTTP/1.1\r\nHost: bmc\r\nAccept: application/json\r\nOData-Version: 4.0\r\n\
         X-Auth-Token: abc123\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n\
         {\"ResetType\":\"On\"}"
    );
}

#[test]
fn refuses_injection_and_small_buffers() {
    let mut r = Request {
        method: Method::Delete,
        host: "bmc",
        path: "/a\r\nEvil: 1",
        auth: Auth::None,
        body: None,
    };
    let mut buf = [0u8; 256];
    assert_eq!(r.encode(&mut buf), Err(Error::Malformed));
    r.path = "/ok";
    r.auth = Auth::Token("t\n");
    assert_eq!(r.encode(&mut buf), Err(Error::Malformed));
    r.auth = Auth::None;
    assert_eq!(r.encode(&mut buf[..10]), Err(Error::Busy));
}

/// Feeds `input` in pieces split at `cuts`; the status, token, location and body.
fn parse_split(input: &[u8], cut: usize) -> Result<(Head, std::vec::Vec<u8>), Error> {
    let mut r = Response::new();
    let mut body = [0u8; 256];
    let (a, b) = input.split_at(cut);
    for part in [a, b] {
        let mut part = part;
        while !part.is_empty() && !r.is_done() {
            let n = r.feed(part, &mut body)?;
            part = &part[n..];
        }
    }
    if !r.is_done() {
        r.eof()?;
    }
    let len = r.body_len();
    Ok((core::mem::take(&mut r.head), body[..len].to_vec()))
}

fn every_split(input: &[u8]) -> (Head, std::vec::Vec<u8>) {
    let whole = parse_split(input, 0).unwrap();
    for cut in 1..input.len() {
        let (head, body) = parse_split(input, cut).unwrap();
        assert_eq!(head.status, whole.0.status, "cut {cut}");
        assert_eq!(head.location, whole.0.location);
        assert_eq!(head.token, whole.0.token);
        assert_eq!(body, whole.1, "cut {cut}");
    }
    whole
}

#[test]
fn content_length_response() {
    let (head, body) = every_split(
        b"HTTP/1.1 201 Created\r\nX-Auth-Token: tok\r\nLocation: /redfish/v1/S/1\r\n\
          Content-Length: 5\r\n\r\nhello",
    );
    assert_eq!(head.status, 201);
    assert_eq!(head.token.as_deref(), Some("tok"));
    assert_eq!(head.location.as_deref(), Some("/redfish/v1/S/1"));
    assert!(!head.close);
    assert_eq!(body, b"hello");
}

#[test]
fn chunked_response_with_extensions_and_trailers() {
    let (head, body) = every_split(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert_eq!(body, b"hello world");
}

#[test]
fn http10_until_close_and_interim() {
    let (head, body) = every_split(b"HTTP/1.0 200 OK\nServer: x\n\n{\"a\":1}");
    assert!(head.close);
    assert_eq!(body, b"{\"a\":1}");
    let (head, body) = every_split(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 204);
    assert!(head.close);
    assert!(body.is_empty());
}

#[test]
fn long_uninteresting_header_is_skipped() {
    let mut r = std::vec::Vec::from(&b"HTTP/1.1 200 OK\r\nX-Big: "[..]);
    r.extend(std::iter::repeat_n(b'a', 3000));
    r.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(parse_split(&r, 0).unwrap().1, b"ok");
    // The same length in a header we keep is refused.
    let long = std::string::String::from_utf8(r)
        .unwrap()
        .replace("X-Big", "Location");
    assert_eq!(
        parse_split(long.as_bytes(), 0).err(),
        Some(Error::Malformed)
    );
}

#[test]
fn bad_responses() {
    let cases: &[&[u8]] = &[
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n",
        // Truncated: the connection closes before the body is whole.
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 O",
        // Larger than the body buffer (256 here).
        b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n",
    ];
    for case in cases {
        let mut input = case.to_vec();
        if case.ends_with(b"300\r\n\r\n") {
            input.extend([b'x'; 300]);
        }
        assert_eq!(
            parse_split(&input, 0).err(),
            Some(Error::Malformed),
            "{}",
            std::string::String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn header_count_and_head_size_are_bounded() {
    let mut many = std::string::String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..=MAX_HEADERS {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(
        parse_split(many.as_bytes(), 0).err(),
        Some(Error::Malformed)
    );
    let mut big = std::string::String::from("HTTP/1.1 200 OK\r\n");
    for _ in 0..20 {
        big.push_str(&format!("X-Pad: {}\r\n", "p".repeat(1000)));
    }
    assert_eq!(parse_split(big.as_bytes(), 0).err(), Some(Error::Malformed));
}
