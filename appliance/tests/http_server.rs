//! The HTTP server driven as an adapter drives it: received bytes offered to `receive`
//! (what it does not consume is offered again later), `send` called with a fixed-size
//! buffer until it has nothing more, the clock advanced by hand. Responses are parsed here
//! independently of the server's code.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use appliance::assets::{Asset, AssetError, AssetStore, Name, StaticAssets};
use appliance::dhcp::pxe::BootTarget;
use appliance::http::request::{MAX_HEAD, MAX_HEADERS};
use appliance::http::script::MAX_SCRIPT;
use appliance::http::{
    BootTargets, Connection, Event, HEAD_TIMEOUT_MS, IDLE_TIMEOUT_MS, SEND_TIMEOUT_MS,
    ScriptConfig, Site,
};
use appliance::inventory::{Inventory, MachineKey};
use appliance::net::{MacAddr, Uuid};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// A store that counts open handles, so tests see every file closed.
struct Counting<'a> {
    inner: StaticAssets<'a>,
    open: i32,
    busy: bool,
}

impl AssetStore for Counting<'_> {
    fn open(&mut self, name: &Name) -> Result<Asset, AssetError> {
        if self.busy {
            return Err(AssetError::Busy);
        }
        let a = self.inner.open(name)?;
        self.open += 1;
        Ok(a)
    }
    fn read(&mut self, asset: Asset, offset: u64, buf: &mut [u8]) -> Result<usize, AssetError> {
        self.inner.read(asset, offset, buf)
    }
    fn close(&mut self, asset: Asset) {
        self.open -= 1;
        self.inner.close(asset)
    }
}

/// One connection and the adapter around it.
struct Rig<'a> {
    conn: Connection,
    store: Counting<'a>,
    script: ScriptConfig<'a>,
    targets: &'a dyn BootTargets,
    now: u64,
    /// Size of the buffer each `send` gets: what the socket has room for.
    room: usize,
    /// Received but not yet consumed, as in a socket's receive buffer.
    rx: VecDeque<u8>,
    sends: usize,
    events: Vec<Event>,
}

impl<'a> Rig<'a> {
    fn new(files: &'a [(&'a str, &'a [u8])], targets: &'a dyn BootTargets) -> Rig<'a> {
        Rig {
            conn: Connection::new(0),
            store: Counting {
                inner: StaticAssets::new(files),
                open: 0,
                busy: false,
            },
            script: ScriptConfig::new(SERVER),
            targets,
            now: 0,
            room: 1460,
            rx: VecDeque::new(),
            sends: 0,
            events: Vec::new(),
        }
    }

    /// Bytes arrive; the connection takes what it can.
    fn arrive(&mut self, data: &[u8]) {
        self.rx.extend(data);
        self.feed();
    }

    fn feed(&mut self) -> usize {
        let pending: Vec<u8> = self.rx.iter().copied().collect();
        let n = self.conn.receive(self.now, &pending);
        assert!(n <= pending.len());
        self.rx.drain(..n);
        n
    }

    /// Runs receive and send until neither makes progress; returns what was sent.
    fn run(&mut self) -> Vec<u8> {
        let mut sent = Vec::new();
        loop {
            let took = self.feed();
            let mut out = vec![0u8; self.room];
            let mut site = Site {
                store: &mut self.store,
                script: &self.script,
                targets: self.targets,
            };
            let n = self.conn.send(self.now, &mut out, &mut site);
            assert!(n <= out.len());
            if n > 0 {
                self.sends += 1;
            }
            sent.extend_from_slice(&out[..n]);
            while let Some(e) = self.conn.poll_event() {
                self.events.push(e);
            }
            if took == 0 && n == 0 {
                return sent;
            }
        }
    }

    fn exchange(&mut self, data: &[u8]) -> Vec<u8> {
        self.arrive(data);
        self.run()
    }

    fn at(&mut self, now: u64) {
        self.now = now;
        self.conn.tick(now);
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let value = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "{name} twice");
        value
    }
}

/// Parses responses off the front of `bytes`; `heads[i]` says whether the i-th answers a
/// HEAD (no body follows its Content-Length).
fn parse(mut bytes: &[u8], heads: &[bool]) -> Vec<Resp> {
    let mut out = Vec::new();
    for &head in heads {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head")
            + 4;
        let text = std::str::from_utf8(&bytes[..end - 4]).unwrap();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"));
        let status = parts.next().unwrap().parse().unwrap();
        assert!(!parts.next().unwrap().is_empty(), "a reason phrase");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("name: value");
                (n.to_string(), v.to_string())
            })
            .collect();
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = resp
            .header("Content-Length")
            .expect("a length")
            .parse()
            .unwrap();
        bytes = &bytes[end..];
        if !head {
            resp.body = bytes[..len].to_vec();
            bytes = &bytes[len..];
        }
        out.push(resp);
    }
    assert!(
        bytes.is_empty(),
        "trailing bytes: {:?}",
        String::from_utf8_lossy(bytes)
    );
    out
}

fn one(bytes: &[u8]) -> Resp {
    parse(bytes, &[false]).pop().unwrap()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 10.77.0.1\r\n\r\n")
}

fn big_file() -> Vec<u8> {
    (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn get_and_head_are_byte_exact_over_many_sends() {
    let data = big_file();
    let files = [("vmlinuz", &data[..])];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.room = 1000;
    let r = one(&rig.exchange(get("/vmlinuz").as_bytes()));
    assert_eq!(r.status, 200);
    assert!(r.body == data, "body differs");
    assert!(rig.sends > 100, "{} sends", rig.sends);
    assert_eq!(r.header("Content-Length"), Some("100000"));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.header("Connection"), None);

    let head = rig.exchange(b"HEAD /vmlinuz HTTP/1.1\r\nHost: a\r\n\r\n");
    let h = parse(&head, &[true]).pop().unwrap();
    assert_eq!((h.status, &h.headers), (200, &r.headers));
    assert_eq!(rig.store.open, 0, "every file closed");
    assert!(!rig.conn.should_close());

    // Even one byte of room at a time (the header is cut anywhere) gives the same bytes.
    let small: Vec<u8> = data[..3000].to_vec();
    let files = [("initrd.img", &small[..])];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.room = 1;
    let r = one(&rig.exchange(get("/initrd.img").as_bytes()));
    assert!(r.body == small);
    assert_eq!(rig.store.open, 0);
}

#[test]
fn keep_alive_serves_sequential_and_pipelined_requests_in_order() {
    let files: [(&str, &[u8]); 2] = [("a", b"first file"), ("dir/b", b"second")];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    for _ in 0..2 {
        let r = one(&rig.exchange(get("/a").as_bytes()));
        assert_eq!((r.status, &r.body[..]), (200, &b"first file"[..]));
        assert!(!rig.conn.should_close());
    }
    // Two requests in one segment: the second waits in the socket until the first is sent.
    let both = format!("{}{}", get("/dir/b"), get("/a"));
    rig.rx.extend(both.as_bytes());
    assert_eq!(
        rig.feed(),
        get("/dir/b").len(),
        "only the first head is taken"
    );
    let out = rig.run();
    let rs = parse(&out, &[false, false]);
    assert_eq!(rs[0].body, b"second");
    assert_eq!(rs[1].body, b"first file");
    assert!(!rig.conn.should_close());
    let targets: Vec<_> = rig.events.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["/a", "/a", "/dir/b", "/a"]);
    // Pipelined HEAD then GET: the HEAD's response has no body.
    let out =
        rig.exchange(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    let rs = parse(&out, &[true, false]);
    assert_eq!(rs[1].body, b"first file");
    assert_eq!(rig.conn.events_lost(), 0);

    // An adapter that polls events only after its loop sees the replaced ones counted.
    let mut conn = Connection::new(0);
    let mut store = StaticAssets::new(&files);
    let script = ScriptConfig::new(SERVER);
    let mut site = Site {
        store: &mut store,
        script: &script,
        targets: &BootTarget::Default,
    };
    let mut rx = both.as_bytes();
    let mut out = [0u8; 1460];
    loop {
        let took = conn.receive(0, rx);
        rx = &rx[took..];
        if took == 0 && conn.send(0, &mut out, &mut site) == 0 {
            break;
        }
    }
    assert_eq!(conn.events_lost(), 1);
    assert_eq!(conn.poll_event().unwrap().target, "/a");
}

#[test]
fn byte_ranges() {
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let files = [("f", &data[..])];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    for (range, status, span, content_range) in [
        ("bytes=0-99", 206, Some(0..100), Some("bytes 0-99/1000")),
        (
            "bytes=990-2000",
            206,
            Some(990..1000),
            Some("bytes 990-999/1000"),
        ),
        (
            "bytes=500-",
            206,
            Some(500..1000),
            Some("bytes 500-999/1000"),
        ),
        (
            "bytes=-10",
            206,
            Some(990..1000),
            Some("bytes 990-999/1000"),
        ),
        ("bytes=-5000", 206, Some(0..1000), Some("bytes 0-999/1000")),
        (
            "bytes=999-999",
            206,
            Some(999..1000),
            Some("bytes 999-999/1000"),
        ),
        ("bytes=1000-", 416, None, Some("bytes */1000")),
        ("bytes=-0", 416, None, Some("bytes */1000")),
        // Multiple ranges: the whole file (a multipart body is not worth its code here).
        ("bytes=0-1,5-6", 200, Some(0..1000), None),
        // Invalid or foreign ranges are ignored.
        ("bytes=9-3", 200, Some(0..1000), None),
        ("pages=1-2", 200, Some(0..1000), None),
    ] {
        let req = format!("GET /f HTTP/1.1\r\nHost: a\r\nRange: {range}\r\n\r\n");
        let r = one(&rig.exchange(req.as_bytes()));
        assert_eq!(r.status, status, "{range}");
        assert_eq!(r.header("Content-Range"), content_range, "{range}");
        assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
        if let Some(span) = span {
            assert!(r.body == data[span], "{range}");
        }
        assert!(!rig.conn.should_close(), "{range}");
    }
    // HEAD ignores Range; so does a request with If-Range (no validator can match).
    let out = rig.exchange(b"HEAD /f HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\n\r\n");
    assert_eq!(parse(&out, &[true])[0].status, 200);
    let req = b"GET /f HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\nIf-Range: \"v1\"\r\n\r\n";
    assert_eq!(one(&rig.exchange(req)).body.len(), 1000);
    assert_eq!(rig.store.open, 0);
}

#[test]
fn errors_and_their_connections() {
    let files: [(&str, &[u8]); 1] = [("a", b"x")];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    // Answered and kept open: the request itself was well formed.
    let r = one(&rig.exchange(get("/missing").as_bytes()));
    assert_eq!((r.status, &r.body[..]), (404, &b"404 Not Found\n"[..]));
    let r = one(&rig.exchange(get("/").as_bytes()));
    assert_eq!(r.status, 404);
    let r = one(&rig.exchange(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"));
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));
    let r = one(&rig.exchange(b"BREW /a HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_eq!(r.status, 501);
    let out = rig.exchange(b"HEAD /missing HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(parse(&out, &[true])[0].status, 404);
    assert!(!rig.conn.should_close());
    assert_eq!(one(&rig.exchange(get("/a").as_bytes())).body, b"x");

    // Malformed: 400 and close.
    for bad in [
        &b"GET /a HTTP/1.1\r\n\r\n"[..],
        b"GET /a HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"get /a HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let mut rig = Rig::new(&files, &BootTarget::Default);
        let r = one(&rig.exchange(bad));
        assert_eq!(
            (r.status, r.header("Connection")),
            (400, Some("close")),
            "{bad:?}"
        );
        assert!(rig.conn.should_close(), "{bad:?}");
        assert_eq!(rig.events[0].to_string(), "- - -> 400 bytes=16 ms=0");
    }
    let mut rig = Rig::new(&files, &BootTarget::Default);
    let r = one(&rig.exchange(b"GET /a HTTP/2.0\r\nHost: a\r\n\r\n"));
    assert_eq!(r.status, 505);
    assert!(rig.conn.should_close());
}

#[test]
fn traversal_and_bad_names_are_refused() {
    let files: [(&str, &[u8]); 2] = [("a b", b"spaced"), ("ipxe.efi", b"efi")];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    for path in [
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/a/%2E%2E/%2e%2E/b",
        "/x/..%5C..%5Cb",
        "/a%00b",
        "/bad%zzescape",
    ] {
        let r = one(&rig.exchange(get(path).as_bytes()));
        assert_eq!(r.status, 400, "{path}");
        assert!(!rig.conn.should_close());
    }
    let long = format!("/{}", "a".repeat(300));
    assert_eq!(one(&rig.exchange(get(&long).as_bytes())).status, 404);
    // Escapes, dot segments, backslashes and absolute-form all name the same files.
    for path in [
        "/a%20b",
        "/./a%20b",
        "//a%20b",
        "http://10.77.0.1/a%20b?x=1",
    ] {
        assert_eq!(
            one(&rig.exchange(get(path).as_bytes())).body,
            b"spaced",
            "{path}"
        );
    }
    assert_eq!(
        one(&rig.exchange(get("/%69pxe.efi").as_bytes())).body,
        b"efi"
    );
}

#[test]
fn connection_close_and_http_1_0() {
    let files: [(&str, &[u8]); 1] = [("a", b"x")];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    let out =
        rig.exchange(b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /a HTTP/1.1\r\n");
    let r = one(&out);
    assert_eq!((r.status, r.header("Connection")), (200, Some("close")));
    assert!(rig.conn.should_close());
    assert_eq!(rig.rx.len(), 17, "the request after close is never read");

    let mut rig = Rig::new(&files, &BootTarget::Default);
    let r = one(&rig.exchange(b"GET /a HTTP/1.0\r\n\r\n"));
    assert_eq!((r.status, r.header("Connection")), (200, Some("close")));
    assert!(rig.conn.should_close());

    let mut rig = Rig::new(&files, &BootTarget::Default);
    let req = b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    for _ in 0..2 {
        let r = one(&rig.exchange(req));
        assert_eq!(
            (r.status, r.header("Connection")),
            (200, Some("keep-alive"))
        );
        assert!(!rig.conn.should_close());
    }
}

#[test]
fn a_request_in_one_byte_pieces() {
    let files: [(&str, &[u8]); 1] = [("a", b"hello")];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    // Blank lines before the request line are skipped (RFC 9112 2.2).
    let req = format!("\r\n{}", get("/a"));
    for &b in req.as_bytes() {
        assert_eq!(rig.run(), b"", "nothing before the head is complete");
        rig.arrive(&[b]);
    }
    assert_eq!(one(&rig.run()).body, b"hello");
    // A request body, also bytewise, is skipped and the next request served.
    let req = b"GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody";
    let mut out = Vec::new();
    for &b in req {
        rig.arrive(&[b]);
        out.extend(rig.run());
    }
    assert_eq!(one(&out).body, b"hello");
    assert_eq!(one(&rig.exchange(get("/a").as_bytes())).body, b"hello");
    assert!(rig.rx.is_empty());
}

#[test]
fn oversized_heads_get_431_and_close() {
    let files: [(&str, &[u8]); 1] = [("a", b"x")];
    // More header lines than allowed, well within the byte limit.
    let mut flood = String::from("GET /a HTTP/1.1\r\nHost: a\r\n");
    for i in 0..MAX_HEADERS {
        flood += &format!("X-{i}: y\r\n");
    }
    flood += "\r\n";
    assert!(flood.len() < MAX_HEAD);
    let mut rig = Rig::new(&files, &BootTarget::Default);
    let r = one(&rig.exchange(flood.as_bytes()));
    assert_eq!((r.status, r.header("Connection")), (431, Some("close")));
    assert!(rig.conn.should_close());

    // A head that never ends: refused as soon as it passes the limit, the rest unread.
    let mut rig = Rig::new(&files, &BootTarget::Default);
    let mut endless = String::from("GET /a HTTP/1.1\r\nHost: a\r\n");
    while endless.len() < 3 * MAX_HEAD {
        endless += "X-Filler: 0123456789abcdef\r\n";
    }
    let r = one(&rig.exchange(endless.as_bytes()));
    assert_eq!(r.status, 431);
    assert_eq!(rig.rx.len(), endless.len() - MAX_HEAD);
    assert!(rig.conn.should_close());
    // A head of exactly the limit is fine.
    let mut rig = Rig::new(&files, &BootTarget::Default);
    let mut exact = String::from("GET /a HTTP/1.1\r\nHost: a\r\nX: ");
    exact += &"y".repeat(MAX_HEAD - exact.len() - 4);
    exact += "\r\n\r\n";
    assert_eq!(exact.len(), MAX_HEAD);
    assert_eq!(one(&rig.exchange(exact.as_bytes())).status, 200);
}

#[test]
fn slowloris_is_cut_off_at_the_head_deadline() {
    let files: [(&str, &[u8]); 1] = [("a", b"x")];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.at(1_000);
    assert_eq!(rig.conn.poll_at(), Some(IDLE_TIMEOUT_MS));
    rig.arrive(b"GET /a HTTP/1.1\r\n");
    assert_eq!(rig.conn.poll_at(), Some(1_000 + HEAD_TIMEOUT_MS));
    // A header byte every second keeps arriving; the deadline does not move.
    let mut t = 1_000;
    let mut out = Vec::new();
    while !rig.conn.should_close() {
        t += 1_000;
        rig.at(t);
        rig.arrive(b"X");
        out.extend(rig.run());
        assert!(t <= 1_000 + HEAD_TIMEOUT_MS, "still open at {t}");
    }
    assert_eq!(t, 1_000 + HEAD_TIMEOUT_MS);
    let r = one(&out);
    assert_eq!((r.status, r.header("Connection")), (408, Some("close")));
    assert_eq!(rig.conn.poll_at(), None);

    // Trickled blank lines count as the head's start too.
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.arrive(b"\r\n");
    assert_eq!(rig.conn.poll_at(), Some(HEAD_TIMEOUT_MS));
}

#[test]
fn idle_keep_alive_connections_time_out() {
    let files: [(&str, &[u8]); 1] = [("a", b"x")];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.at(5_000);
    one(&rig.exchange(get("/a").as_bytes()));
    assert_eq!(rig.conn.poll_at(), Some(5_000 + IDLE_TIMEOUT_MS));
    rig.at(5_000 + IDLE_TIMEOUT_MS - 1);
    assert!(!rig.conn.should_close());
    rig.at(5_000 + IDLE_TIMEOUT_MS);
    assert!(rig.conn.should_close());
    assert_eq!(rig.run(), b"", "an idle close sends nothing");
    assert_eq!(rig.events.len(), 1);
    // A connection that never sends a byte is closed the same way.
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.at(IDLE_TIMEOUT_MS);
    assert!(rig.conn.should_close());
}

#[test]
fn a_stalled_response_is_abandoned_and_its_file_closed() {
    let data = big_file();
    let files = [("big", &data[..])];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.room = 4096;
    rig.arrive(get("/big").as_bytes());
    let mut out = vec![0u8; 4096];
    let mut site = Site {
        store: &mut rig.store,
        script: &rig.script,
        targets: rig.targets,
    };
    assert_eq!(rig.conn.send(100, &mut out, &mut site), 4096);
    assert_eq!(site.store.open, 1);
    // The client stops reading: no room, so `send` is not called; the timer fires.
    assert_eq!(rig.conn.poll_at(), Some(100 + SEND_TIMEOUT_MS));
    rig.conn.tick(100 + SEND_TIMEOUT_MS);
    assert!(rig.conn.should_close());
    let e = rig.conn.poll_event().unwrap();
    assert!(!e.complete);
    assert_eq!(
        e.line("10.77.0.50:49152").to_string(),
        format!(
            "http GET /big from=10.77.0.50:49152 -> 200 bytes={} ms={} aborted",
            4096 - one_head_len(&out),
            100 + SEND_TIMEOUT_MS
        )
    );
    rig.conn.release(100 + SEND_TIMEOUT_MS, &mut rig.store);
    assert_eq!(rig.store.open, 0);

    // The adapter drops a connection mid-body (reset): release closes the file.
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.arrive(get("/big").as_bytes());
    let mut site = Site {
        store: &mut rig.store,
        script: &rig.script,
        targets: rig.targets,
    };
    rig.conn.send(0, &mut out, &mut site);
    rig.conn.release(0, &mut rig.store);
    assert_eq!(rig.store.open, 0);
    assert!(!rig.conn.poll_event().unwrap().complete);
}

fn one_head_len(out: &[u8]) -> usize {
    out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4
}

#[test]
fn the_client_half_closes_after_pipelining() {
    let files: [(&str, &[u8]); 1] = [("a", b"x")];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.rx
        .extend(format!("{}{}", get("/a"), get("/a")).as_bytes());
    let mut out = rig.run();
    // FIN arrived after both: the adapter says so once its receive buffer is empty.
    assert!(rig.rx.is_empty());
    rig.conn.peer_closed(0);
    out.extend(rig.run());
    assert_eq!(parse(&out, &[false, false]).len(), 2);
    assert!(rig.conn.should_close());
    // A half-read head is dropped without an answer.
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.arrive(b"GET /a HT");
    rig.conn.peer_closed(0);
    assert!(rig.conn.should_close());
    assert_eq!(rig.run(), b"");
}

#[test]
fn a_busy_store_is_a_503() {
    let files: [(&str, &[u8]); 1] = [("a", b"x")];
    let mut rig = Rig::new(&files, &BootTarget::Default);
    rig.store.busy = true;
    let r = one(&rig.exchange(get("/a").as_bytes()));
    assert_eq!((r.status, r.header("Retry-After")), (503, Some("1")));
    assert!(!rig.conn.should_close());
}

fn inventory() -> Inventory<8> {
    let mut inv = Inventory::default();
    let mac = |n| MacAddr([0x52, 0x54, 0, 0xaa, 0, n]);
    inv.observe(1, mac(1), None, Some(7));
    let url = BootTarget::Script("http://10.77.0.9/talos.ipxe".try_into().unwrap());
    inv.set_boot(MachineKey::Mac(mac(2)), url).unwrap();
    inv.set_boot(MachineKey::Mac(mac(3)), BootTarget::Local)
        .unwrap();
    let uuid = Uuid::parse("12345678-9abc-4def-8123-0000000b1051").unwrap();
    inv.set_boot(MachineKey::Uuid(uuid), BootTarget::Local)
        .unwrap();
    inv
}

const DEFAULT_BOOT: &str = "#!ipxe\n\
    kernel http://10.77.0.1/vmlinuz initrd=initrd.img console=ttyS0\n\
    initrd http://10.77.0.1/initrd.img\n\
    boot\n";

#[test]
fn the_script_boots_each_machines_target() {
    let inv = inventory();
    let mut rig = Rig::new(&[], &inv);
    for (query, script) in [
        ("", DEFAULT_BOOT),
        ("?mac=52:54:00:aa:00:01&arch=x86_64", DEFAULT_BOOT),
        (
            "?mac=52%3A54%3A00%3Aaa%3A00%3A02",
            "#!ipxe\nchain http://10.77.0.9/talos.ipxe\n",
        ),
        (
            "?mac=52-54-00-AA-00-02",
            "#!ipxe\nchain http://10.77.0.9/talos.ipxe\n",
        ),
        ("?arch=arm64&mac=52-54-00-aa-00-03", "#!ipxe\nexit\n"),
        // Known by UUID only (set before its first boot), as Omni's URL sends it.
        (
            "?uuid=12345678-9abc-4def-8123-0000000b1051&mac=${net0/mac}",
            "#!ipxe\nexit\n",
        ),
        (
            "?uuid=12345678%2D9ABC%2D4def%2D8123%2D0000000b1051",
            "#!ipxe\nexit\n",
        ),
        // Unknown machine, garbage values: the default boot.
        ("?mac=52:54:00:aa:00:09&uuid=nope", DEFAULT_BOOT),
    ] {
        let r = one(&rig.exchange(get(&format!("/boot.ipxe{query}")).as_bytes()));
        assert_eq!(r.status, 200, "{query}");
        assert_eq!(String::from_utf8_lossy(&r.body), script, "{query}");
        assert_eq!(r.header("Content-Type"), Some("text/plain"));
        assert_eq!(r.header("Cache-Control"), Some("no-store"));
        assert_eq!(r.header("Accept-Ranges"), None);
    }
    // HEAD gives the length of what GET would send; Range is not applied to the script.
    let out = rig.exchange(b"HEAD /boot.ipxe HTTP/1.1\r\nHost: a\r\n\r\n");
    let len = DEFAULT_BOOT.len().to_string();
    assert_eq!(
        parse(&out, &[true])[0].header("Content-Length"),
        Some(len.as_str())
    );
    let req = b"GET /boot.ipxe HTTP/1.1\r\nHost: a\r\nRange: bytes=0-3\r\n\r\n";
    assert_eq!(one(&rig.exchange(req)).body, DEFAULT_BOOT.as_bytes());
    let e = rig.events.first().unwrap();
    assert_eq!(
        e.line("10.77.0.100:2000").to_string(),
        format!("http GET /boot.ipxe from=10.77.0.100:2000 -> 200 bytes={len} ms=0")
    );
}

#[test]
fn a_site_template_with_every_placeholder_in_small_pieces() {
    let target = BootTarget::Default;
    let mut rig = Rig::new(&[], &target);
    rig.room = 7;
    rig.script.template = "#!ipxe\n\
        echo {{server}} {{mac}} {{uuid}} {{arch}} ${buildarch}\n\
        echo {{kernel}} {{initrd}} {{cmdline}}\n\
        {{target}}\n";
    rig.script.port = 8080;
    rig.script.kernel = "talos/vmlinuz-amd64";
    rig.script.initrd = "talos/initramfs-amd64.xz";
    rig.script.cmdline = "talos.platform=metal ip=${ip}";
    let query =
        "mac=52%3A54%3A00%3AAB%3A00%3A01&uuid=12345678-9abc-4def-8123-0000000b1051&arch=x86_64";
    let r = one(&rig.exchange(get(&format!("/boot.ipxe?{query}")).as_bytes()));
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        "#!ipxe\n\
         echo 10.77.0.1:8080 52:54:00:ab:00:01 12345678-9abc-4def-8123-0000000b1051 x86_64 ${buildarch}\n\
         echo talos/vmlinuz-amd64 talos/initramfs-amd64.xz talos.platform=metal ip=${ip}\n\
         kernel http://10.77.0.1:8080/talos/vmlinuz-amd64 initrd=initramfs-amd64.xz talos.platform=metal ip=${ip}\n\
         initrd http://10.77.0.1:8080/talos/initramfs-amd64.xz\n\
         boot\n"
    );
}

#[test]
fn a_script_that_cannot_be_rendered_is_a_500() {
    let target = BootTarget::Local;
    let big = format!("#!ipxe\n{}\n{{{{target}}}}\n", "#".repeat(MAX_SCRIPT));
    for template in [big.as_str(), "#!ipxe\n{{nope}}\n", "#!ipxe\n{{target\n"] {
        let mut rig = Rig::new(&[], &target);
        rig.script.template = template;
        let r = one(&rig.exchange(get("/boot.ipxe").as_bytes()));
        assert_eq!(r.status, 500);
        assert!(!rig.conn.should_close());
    }
    // Just under the limit is served.
    let mut rig = Rig::new(&[], &target);
    let fits = format!("{}{{{{target}}}}", "#".repeat(MAX_SCRIPT - 4));
    rig.script.template = &fits;
    let r = one(&rig.exchange(get("/boot.ipxe").as_bytes()));
    assert_eq!((r.status, r.body.len()), (200, MAX_SCRIPT));
}
