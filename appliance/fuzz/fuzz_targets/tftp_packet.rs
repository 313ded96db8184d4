//! The TFTP codec, and the whole server behind it, on arbitrary bytes: no input may panic,
//! every packet sent must parse back, `poll_at` must agree with `dispatch`, and every asset
//! opened must be closed once the transfers have ended.
//!
//! After the codec sees the whole input, the input is read as a script of operations:
//! `[op, len, payload[len]]`. `op % 4`: 0 = RRQ/WRQ/anything on port 69, 1 = a datagram on a
//! slot's port, 2 = advance the clock by `len * 50` ms and flush, 3 = flush into an output
//! buffer of `len` bytes. Higher bits of `op` pick the sender and the slot.
#![no_main]

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use appliance::assets::{Asset, AssetError, AssetStore, Name, StaticAssets};
use appliance::tftp::wire::{OptionIter, Options, Packet};
use appliance::tftp::{Config, Server, Transfer};
use libfuzzer_sys::fuzz_target;

/// A small in-memory store that counts open handles.
struct Counted<'a> {
    inner: StaticAssets<'a>,
    open: i64,
}

impl AssetStore for Counted<'_> {
    fn open(&mut self, name: &Name) -> Result<Asset, AssetError> {
        let a = self.inner.open(name)?;
        self.open += 1;
        Ok(a)
    }

    fn read(&mut self, asset: Asset, offset: u64, buf: &mut [u8]) -> Result<usize, AssetError> {
        assert!(self.open > 0, "read with no handle open");
        self.inner.read(asset, offset, buf)
    }

    fn close(&mut self, asset: Asset) {
        self.open -= 1;
        assert!(self.open >= 0, "closed more than opened");
        self.inner.close(asset);
    }
}

const MAX_BLKSIZE: usize = 1468;

fn flush(server: &mut Server<'_>, now: u64, store: &mut Counted<'_>, out: &mut [u8]) {
    for _ in 0..10_000 {
        let Some(tx) = server.dispatch(now, store, out) else {
            // Nothing more now: the next deadline must be in the future.
            assert!(server.poll_at().is_none_or(|t| t > now), "poll_at is stale");
            return;
        };
        assert!(tx.len <= out.len());
        match Packet::parse(&out[..tx.len]) {
            Ok(Packet::Data { data, .. }) => assert!(data.len() <= MAX_BLKSIZE),
            Ok(Packet::Oack { .. } | Packet::Error { .. }) => {}
            other => panic!("server sent {other:?}"), // ok: the fuzzer's report of a broken invariant
        }
    }
    panic!("dispatch never returned None"); // ok: the fuzzer's report of a broken invariant
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Packet::Read(req) | Packet::Write(req)) = Packet::parse(data) {
        let _ = Options::parse(req.options());
    }
    let _ = Options::parse(OptionIter::new(data));

    let text: Vec<u8> = (0..3000u32)
        .map(|i| b"ab\r\ncd\n\re\0"[i as usize % 10])
        .collect();
    let files: [(&str, &[u8]); 3] = [("a", &text), ("b", b""), ("c", &[7; 1024])];
    let mut store = Counted {
        inner: StaticAssets::new(&files),
        open: 0,
    };
    let config = Config {
        max_blksize: MAX_BLKSIZE as u16,
        max_windowsize: 8,
        default_timeout_ms: 1000,
        max_timeout_ms: 4000,
        max_retries: 2,
    };
    let mut slots = [Transfer::EMPTY, Transfer::EMPTY];
    let mut server = Server::new(config, &mut slots);
    let mut out = [0u8; 4 + MAX_BLKSIZE];
    let mut now = 0u64;
    let mut line = String::new();
    let mut script = data;
    while let [op, len, rest @ ..] = script {
        let len = usize::from(*len).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        script = tail;
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 100), 2000 + u16::from(op >> 2 & 1));
        match op % 4 {
            0 => {
                let _ = server.request(now, src, payload, &mut store, &mut out);
            }
            1 => {
                let slot = usize::from(op >> 3) % 3;
                let _ = server.receive(now, slot, src, payload, &mut store, &mut out);
            }
            2 => now += len as u64 * 50,
            _ => {
                let mut small = vec![0u8; len];
                if let Some(tx) = server.dispatch(now, &mut store, &mut small) {
                    assert!(Packet::parse(&small[..tx.len]).is_ok());
                }
            }
        }
        flush(&mut server, now, &mut store, &mut out);
        while let Some(event) = server.poll_event() {
            line.clear();
            let _ = write!(line, "{event}");
        }
    }
    // Let every transfer finish or time out: all handles must then be closed.
    while let Some(at) = server.poll_at() {
        now = now.max(at);
        flush(&mut server, now, &mut store, &mut out);
    }
    assert_eq!(store.open, 0, "a handle leaked");
    let _ = write!(line, "{}", server.stats());
});
