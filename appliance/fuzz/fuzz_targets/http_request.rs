//! The HTTP request parser, and a whole connection over a small in-memory store, on
//! arbitrary bytes: no input may panic, `send` stays inside its buffer, the bytes sent are
//! well-framed responses (head, then exactly the body the log event counts, Content-Length
//! of them when complete) and every file opened is closed.
#![no_main]

use std::net::Ipv4Addr;

use appliance::assets::{Asset, AssetError, AssetStore, Name, StaticAssets};
use appliance::dhcp::pxe::BootTarget;
use appliance::http::request;
use appliance::http::{BootTargets, Connection, Event, ScriptConfig, Site};
use appliance::net::{MacAddr, Uuid};
use libfuzzer_sys::fuzz_target;

struct Counting<'a> {
    inner: StaticAssets<'a>,
    open: i32,
}

impl AssetStore for Counting<'_> {
    fn open(&mut self, name: &Name) -> Result<Asset, AssetError> {
        let a = self.inner.open(name)?;
        self.open += 1;
        Ok(a)
    }
    fn read(&mut self, asset: Asset, offset: u64, buf: &mut [u8]) -> Result<usize, AssetError> {
        self.inner.read(asset, offset, buf)
    }
    fn close(&mut self, asset: Asset) {
        self.open -= 1;
        self.inner.close(asset);
    }
}

/// Every machine's target, and a join config for `/config`.
struct WithConfig(BootTarget);

impl BootTargets for WithConfig {
    fn boot_target(&self, _: Option<MacAddr>, _: Option<Uuid>) -> BootTarget {
        self.0.clone()
    }

    fn join_config(&self) -> Option<&str> {
        Some("apiVersion: v1alpha1\nkind: SideroLinkConfig\napiUrl: https://omni.example:8090\n")
    }
}

const BIG: [u8; 5000] = {
    let mut b = [0u8; 5000];
    let mut i = 0;
    while i < b.len() {
        b[i] = (i % 251) as u8;
        i += 1;
    }
    b
};

fuzz_target!(|data: &[u8]| {
    let _ = request::parse(data);
    // The first byte sets how the bytes arrive and how much room each send has, and which
    // boot target and template the script uses.
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let _ = request::parse(input);
    let chunk = 1 + usize::from(ctl & 0x0f) * 37;
    let room = [1, 7, 64, 1460][usize::from(ctl >> 4 & 3)];
    let target = WithConfig(match ctl >> 6 {
        0 => BootTarget::Default,
        1 => BootTarget::Local,
        2 => BootTarget::Script("http://10.0.0.9/x.ipxe".try_into().unwrap()), // ok: a constant that fits the string's capacity
        _ => BootTarget::File("f".try_into().unwrap()), // ok: a constant that fits the string's capacity
    });
    let files: [(&str, &[u8]); 3] = [("vmlinuz", &BIG), ("initrd.img", b"initrd"), ("a/b c", b"")];
    let mut store = Counting {
        inner: StaticAssets::new(&files),
        open: 0,
    };
    let mut script = ScriptConfig::new(Ipv4Addr::new(10, 0, 0, 1));
    if ctl & 0x80 != 0 {
        script.template = "#!ipxe\necho {{mac}} {{uuid}} {{arch}} {{server}}\n{{target}}\n";
    }

    let mut conn = Connection::new(0);
    let mut now = 0u64;
    let mut rx = input;
    let mut out = vec![0u8; room];
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut fin = false;
    for _ in 0..100_000 {
        let offer = &rx[..rx.len().min(chunk)];
        let took = conn.receive(now, offer);
        assert!(took <= offer.len());
        rx = &rx[took..];
        let mut site = Site {
            store: &mut store,
            script: &script,
            targets: &target,
        };
        let n = conn.send(now, &mut out, &mut site);
        assert!(n <= out.len());
        sent.extend_from_slice(&out[..n]);
        events.extend(std::iter::from_fn(|| conn.poll_event()));
        if conn.should_close() {
            break;
        }
        if took == 0 && n == 0 {
            if rx.is_empty() && !fin {
                conn.peer_closed(now);
                fin = true;
            } else {
                // Stuck until a deadline: jump to it.
                now = conn
                    .poll_at()
                    .expect("open connections have a deadline") // ok: a harness invariant; a panic is how the fuzzer reports a broken one
                    .max(now + 1);
                conn.tick(now);
            }
        }
    }
    assert!(conn.should_close(), "every connection ends");
    conn.release(now, &mut store);
    events.extend(std::iter::from_fn(|| conn.poll_event()));
    assert_eq!(store.open, 0, "every file closed");
    check_framing(&sent, &events);
});

/// Walks the responses sent along the log events, which come one per response in order.
fn check_framing(mut sent: &[u8], events: &[Event]) {
    for e in events {
        if !e.complete {
            return; // Cut short: the last thing on the connection.
        }
        let end = sent
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head") // ok: a harness invariant; a panic is how the fuzzer reports a broken one
            + 4;
        let head = std::str::from_utf8(&sent[..end]).expect("an ASCII head"); // ok: a harness invariant; a panic is how the fuzzer reports a broken one
        assert!(
            head.starts_with(&format!("HTTP/1.1 {} ", e.status)),
            "{head}"
        );
        let len: u64 = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("a length") // ok: a harness invariant; a panic is how the fuzzer reports a broken one
            .parse()
            .unwrap(); // ok: a harness invariant; a panic is how the fuzzer reports a broken one
        let body = if e.method == "HEAD" { 0 } else { len };
        assert_eq!(e.bytes, body, "{head}");
        sent = &sent[end + body as usize..];
    }
    assert!(sent.is_empty(), "bytes sent without an event");
}
