//! The TFTP server against simulated clients: byte-exact lockstep and windowed transfers,
//! option negotiation, EDK2's tsize probe, loss recovery, block-number rollover, TIDs, a
//! full table, refused requests, netascii and hostile input. Requests are built and server
//! packets decoded by hand here, independently of `tftp::wire`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use appliance::assets::{Asset, AssetError, AssetStore, Name};
use appliance::tftp::{
    Abort, Config, Event, Outcome, RequestOutcome, Server, Stats, Transfer, Transmit,
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);

fn from(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(CLIENT, port)
}

// ---- a store of generated files that checks handle discipline ----

enum Content {
    Bytes(Vec<u8>),
    /// `size` bytes, each a function of its offset: large files at no memory cost.
    Generated(u64),
}

fn gen_byte(offset: u64) -> u8 {
    (offset ^ (offset >> 8) ^ (offset >> 17)).wrapping_mul(31) as u8
}

#[derive(Default)]
struct Store {
    files: Vec<(&'static str, Content)>,
    open: HashMap<u32, usize>,
    next_id: u32,
    /// Reads at or past this offset fail.
    fail_at: Option<u64>,
}

impl Store {
    fn with(files: Vec<(&'static str, Content)>) -> Store {
        Store {
            files,
            ..Store::default()
        }
    }

    fn content(&self, name: &str) -> Vec<u8> {
        match &self.files.iter().find(|(n, _)| *n == name).unwrap().1 {
            Content::Bytes(b) => b.clone(),
            Content::Generated(size) => (0..*size).map(gen_byte).collect(),
        }
    }
}

impl AssetStore for Store {
    fn open(&mut self, name: &Name) -> Result<Asset, AssetError> {
        let i = self
            .files
            .iter()
            .position(|(n, _)| *n == name.as_str())
            .ok_or(AssetError::NotFound)?;
        let size = match &self.files[i].1 {
            Content::Bytes(b) => b.len() as u64,
            Content::Generated(size) => *size,
        };
        self.next_id += 1;
        self.open.insert(self.next_id, i);
        Ok(Asset {
            id: self.next_id,
            size,
        })
    }

    fn read(&mut self, asset: Asset, offset: u64, buf: &mut [u8]) -> Result<usize, AssetError> {
        let i = *self.open.get(&asset.id).expect("read on a closed handle");
        if self.fail_at.is_some_and(|f| offset >= f) {
            return Err(AssetError::Io);
        }
        match &self.files[i].1 {
            Content::Bytes(b) => {
                let start = (offset as usize).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                Ok(n)
            }
            Content::Generated(size) => {
                let n = buf.len().min(size.saturating_sub(offset) as usize);
                for (k, byte) in buf[..n].iter_mut().enumerate() {
                    *byte = gen_byte(offset + k as u64);
                }
                Ok(n)
            }
        }
    }

    fn close(&mut self, asset: Asset) {
        assert!(self.open.remove(&asset.id).is_some(), "closed twice");
    }
}

// ---- packets, built and decoded by hand ----

fn rrq(name: &[u8], mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    request(1, name, mode, options)
}

fn request(op: u8, name: &[u8], mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut b = vec![0, op];
    for part in [name, mode.as_bytes()] {
        b.extend_from_slice(part);
        b.push(0);
    }
    for (k, v) in options {
        b.extend_from_slice(k.as_bytes());
        b.push(0);
        b.extend_from_slice(v.as_bytes());
        b.push(0);
    }
    b
}

fn ack(block: u16) -> Vec<u8> {
    let [hi, lo] = block.to_be_bytes();
    vec![0, 4, hi, lo]
}

fn error(code: u16, message: &str) -> Vec<u8> {
    let mut b = vec![0, 5];
    b.extend_from_slice(&code.to_be_bytes());
    b.extend_from_slice(message.as_bytes());
    b.push(0);
    b
}

#[derive(Debug, PartialEq)]
enum Pkt {
    Data(u16, Vec<u8>),
    Oack(Vec<(String, String)>),
    Error(u16, String),
}

fn decode(b: &[u8]) -> Pkt {
    let op = u16::from_be_bytes([b[0], b[1]]);
    let text = |s: &[u8]| String::from_utf8(s.to_vec()).unwrap();
    match op {
        3 => Pkt::Data(u16::from_be_bytes([b[2], b[3]]), b[4..].to_vec()),
        5 => {
            assert_eq!(b.last(), Some(&0), "ERROR text is NUL-terminated");
            Pkt::Error(u16::from_be_bytes([b[2], b[3]]), text(&b[4..b.len() - 1]))
        }
        6 => {
            assert_eq!(b.last(), Some(&0));
            let parts: Vec<_> = b[2..b.len() - 1].split(|&c| c == 0).map(text).collect();
            Pkt::Oack(
                parts
                    .chunks(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
            )
        }
        _ => panic!("server sent opcode {op}"),
    }
}

fn oack(pairs: &[(&str, &str)]) -> Pkt {
    Pkt::Oack(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

// ---- the rig: a server over leaked slots, a store, a clock ----

struct Rig {
    server: Server<'static>,
    store: Store,
    now: u64,
    /// Every slot on one port, as a board runs it (`receive_shared`): `receive`'s slot is
    /// then ignored.
    shared: bool,
}

impl Rig {
    fn new(config: Config, slots: usize, store: Store) -> Rig {
        let slots = Box::leak(vec![Transfer::EMPTY; slots].into_boxed_slice());
        Rig {
            server: Server::new(config, slots),
            store,
            now: 0,
            shared: false,
        }
    }

    fn request(&mut self, src: SocketAddrV4, payload: &[u8]) -> (RequestOutcome, Option<Pkt>) {
        let mut out = [0u8; 1500];
        let r = self
            .server
            .request(self.now, src, payload, &mut self.store, &mut out);
        let reply = match r {
            RequestOutcome::Refused { len, .. } => Some(decode(&out[..len])),
            _ => None,
        };
        (r, reply)
    }

    fn start(&mut self, src: SocketAddrV4, payload: &[u8]) -> usize {
        match self.request(src, payload) {
            (RequestOutcome::Started { slot }, _) => slot,
            other => panic!("not started: {other:?}"),
        }
    }

    fn receive(&mut self, slot: usize, src: SocketAddrV4, payload: &[u8]) -> Option<Pkt> {
        let mut out = [0u8; 1500];
        let (now, store) = (self.now, &mut self.store);
        let len = if self.shared {
            self.server
                .receive_shared(now, src, payload, store, &mut out)?
        } else {
            self.server
                .receive(now, slot, src, payload, store, &mut out)?
        };
        Some(decode(&out[..len]))
    }

    /// Everything `dispatch` has to send now.
    fn flush(&mut self) -> Vec<(Transmit, Vec<u8>)> {
        let mut out = vec![0u8; 65536];
        let mut sent = Vec::new();
        while let Some(tx) = self.server.dispatch(self.now, &mut self.store, &mut out) {
            sent.push((tx, out[..tx.len].to_vec()));
            assert!(sent.len() < 100_000, "dispatch never returns None");
        }
        sent
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    fn finished(&mut self) -> Vec<(Outcome, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match &e {
                Event::Finished { outcome, .. } => Some((*outcome, e.to_string())),
                _ => None,
            })
            .collect()
    }

    fn stats(&self) -> Stats {
        self.server.stats()
    }
}

// ---- a client: RFC 1350 lockstep, or RFC 7440 windows when the OACK grants one ----

struct Client {
    addr: SocketAddrV4,
    slot: usize,
    blksize: usize,
    window: u64,
    /// The index of the next block wanted (1 = the first DATA).
    expected: u64,
    since_ack: u64,
    data: Vec<u8>,
    done: bool,
    oack: Option<Pkt>,
    error: Option<(u16, String)>,
    /// The first copy of each block, by index: every later copy must be identical.
    copies: HashMap<u64, Vec<u8>>,
    blocks_seen: Vec<u16>,
    data_packets: usize,
    acks: usize,
}

impl Client {
    fn new(addr: SocketAddrV4, slot: usize) -> Client {
        Client {
            addr,
            slot,
            blksize: 512,
            window: 1,
            expected: 1,
            since_ack: 0,
            data: Vec::new(),
            done: false,
            oack: None,
            error: None,
            copies: HashMap::new(),
            blocks_seen: Vec::new(),
            data_packets: 0,
            acks: 0,
        }
    }

    /// Handles one packet from the server; returns the block number to ACK, if any.
    fn on_packet(&mut self, bytes: &[u8]) -> Option<u16> {
        match decode(bytes) {
            Pkt::Oack(pairs) => {
                for (k, v) in &pairs {
                    match k.as_str() {
                        "blksize" => self.blksize = v.parse().unwrap(),
                        "windowsize" => self.window = v.parse().unwrap(),
                        _ => {}
                    }
                }
                self.oack = Some(Pkt::Oack(pairs));
                (self.expected == 1).then_some(0)
            }
            Pkt::Error(code, text) => {
                self.error = Some((code, text));
                None
            }
            Pkt::Data(block, payload) => {
                self.data_packets += 1;
                self.blocks_seen.push(block);
                assert!(payload.len() <= self.blksize, "block larger than agreed");
                let index = self.expected.wrapping_add_signed(i64::from(
                    block.wrapping_sub(self.expected as u16) as i16,
                ));
                let first = self.copies.entry(index).or_insert_with(|| payload.clone());
                assert_eq!(*first, payload, "block {index} changed on retransmission");
                if index == self.expected && !self.done {
                    self.data.extend_from_slice(&payload);
                    self.expected += 1;
                    self.since_ack += 1;
                    self.done = payload.len() < self.blksize;
                    if self.done || self.since_ack == self.window {
                        self.since_ack = 0;
                        return Some(block);
                    }
                    return None;
                }
                // A duplicate or a gap: acknowledge the last block in order.
                self.since_ack = 0;
                Some((self.expected - 1) as u16)
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Data,
    Ack,
}

/// Runs the clients against the server until all are done and the server is idle; `lose`
/// drops packets. Time only advances when nothing is to be sent, to `poll_at`.
fn drive(rig: &mut Rig, clients: &mut [Client], mut lose: impl FnMut(Dir, u16) -> bool) {
    for _ in 0..2_000_000 {
        let sent = rig.flush();
        if sent.is_empty() {
            let Some(at) = rig.server.poll_at() else {
                return;
            };
            assert!(
                at > rig.now,
                "poll_at {at} but nothing to send at {}",
                rig.now
            );
            rig.now = at;
            continue;
        }
        for (tx, bytes) in sent {
            let c = clients.iter_mut().find(|c| c.slot == tx.slot).unwrap();
            assert_eq!(tx.dst, c.addr);
            if bytes[1] == 3 && lose(Dir::Data, u16::from_be_bytes([bytes[2], bytes[3]])) {
                continue;
            }
            if let Some(block) = c.on_packet(&bytes) {
                c.acks += 1;
                if !lose(Dir::Ack, block) {
                    let (slot, addr) = (c.slot, c.addr);
                    assert_eq!(rig.receive(slot, addr, &ack(block)), None);
                }
            }
        }
    }
    panic!("transfer never ended");
}

/// One client fetching `name`; panics unless it completes.
fn fetch(rig: &mut Rig, port: u16, request: &[u8], lose: impl FnMut(Dir, u16) -> bool) -> Client {
    let slot = rig.start(from(port), request);
    let mut c = [Client::new(from(port), slot)];
    drive(rig, &mut c, lose);
    let [c] = c;
    assert_eq!(c.error, None);
    assert!(c.done);
    c
}

fn no_loss(_: Dir, _: u16) -> bool {
    false
}

fn store() -> Store {
    Store::with(vec![
        ("ipxe.efi", Content::Generated(100_000)),
        ("exact", Content::Generated(1024)),
        ("empty", Content::Bytes(Vec::new())),
        ("big", Content::Generated(70_000 * 8 + 5)),
    ])
}

fn rig(slots: usize) -> Rig {
    Rig::new(Config::default(), slots, store())
}

// ---- tests ----

#[test]
fn lockstep_transfer_is_byte_exact() {
    let mut rig = rig(4);
    let c = fetch(&mut rig, 2070, &rrq(b"ipxe.efi", "octet", &[]), no_loss);
    assert_eq!(c.data, rig.store.content("ipxe.efi"));
    assert!(c.oack.is_none(), "no options asked, so DATA 1 comes first");
    assert_eq!(c.data_packets, 196);
    assert_eq!(c.acks, 196);
    let events = rig.events();
    assert_eq!(
        events[0].to_string(),
        "tftp RRQ name=ipxe.efi from=10.77.0.100:2070 blksize=512 windowsize=1 size=100000 -> START slot=0"
    );
    assert_eq!(
        events[1].to_string(),
        "tftp RRQ name=ipxe.efi from=10.77.0.100:2070 blksize=512 windowsize=1 size=100000 -> DONE bytes=100000 ms=0 retransmits=0"
    );
    // A multiple of the block size ends with an empty block; an empty file is one.
    let c = fetch(&mut rig, 2071, &rrq(b"exact", "octet", &[]), no_loss);
    assert_eq!(c.data_packets, 3);
    assert_eq!(c.data, rig.store.content("exact"));
    let c = fetch(&mut rig, 2072, &rrq(b"empty", "OCTET", &[]), no_loss);
    assert_eq!((c.data_packets, c.data.len()), (1, 0));
    assert!(rig.store.open.is_empty(), "every handle closed");
    assert_eq!(rig.server.poll_at(), None);
    assert_eq!(rig.server.active(), 0);
    let s = rig.stats();
    assert_eq!(
        (s.started, s.completed, s.retransmits, s.timeouts),
        (3, 3, 0, 0)
    );
}

#[test]
fn options_are_negotiated_and_capped() {
    let mut rig = rig(4);
    let req = rrq(
        b"ipxe.efi",
        "octet",
        &[
            ("BLKSIZE", "65464"),
            ("x-vendor", "1"),
            ("windowsize", "100"),
            ("timeout", "3"),
            ("tsize", "0"),
        ],
    );
    let slot = rig.start(from(2070), &req);
    let sent = rig.flush();
    assert_eq!(sent.len(), 1, "the OACK alone, DATA waits for ACK 0");
    let expected = oack(&[
        ("blksize", "1468"),
        ("timeout", "3"),
        ("tsize", "100000"),
        ("windowsize", "64"),
    ]);
    assert_eq!(decode(&sent[0].1), expected);
    // The client's timeout is the retransmission timeout.
    assert_eq!(rig.server.poll_at(), Some(3000));
    assert_eq!(rig.receive(slot, from(2070), &ack(0)), None);
    let sent = rig.flush();
    assert_eq!(sent.len(), 64, "one window of 64 blocks");
    assert!(sent[..63].iter().all(|(_, b)| b.len() == 4 + 1468));
    rig.receive(slot, from(2070), &error(0, "enough"));
    rig.events();

    // The adapter's caps (from the MTU) win over the client's wishes.
    let config = Config {
        max_blksize: 1024,
        max_windowsize: 8,
        ..Config::default()
    };
    let mut rig = Rig::new(config, 2, store());
    let req = rrq(
        b"ipxe.efi",
        "octet",
        &[("blksize", "1468"), ("windowsize", "16")],
    );
    let c = fetch(&mut rig, 2070, &req, no_loss);
    assert_eq!(
        c.oack,
        Some(oack(&[("blksize", "1024"), ("windowsize", "8")]))
    );
    assert_eq!(c.data, rig.store.content("ipxe.efi"));
    assert_eq!(c.acks, 1 + 98usize.div_ceil(8));

    // Malformed values are ignored; with nothing left to acknowledge there is no OACK.
    let bad = [
        ("blksize", "abc"),
        ("blksize", "4"),
        ("timeout", "0"),
        ("timeout", "256"),
        ("windowsize", "0"),
        ("tsize", "-1"),
    ];
    let c = fetch(&mut rig, 2071, &rrq(b"ipxe.efi", "octet", &bad), no_loss);
    assert!(c.oack.is_none());
    assert_eq!(c.data_packets, 196, "RFC 1350 defaults");
    // A request padded with NULs after its options (some ROMs do) is fine.
    let mut padded = rrq(b"exact", "octet", &[("blksize", "512")]);
    padded.extend_from_slice(&[0, 0, 0]);
    let c = fetch(&mut rig, 2072, &padded, no_loss);
    assert_eq!(c.oack, Some(oack(&[("blksize", "512")])));
}

#[test]
fn edk2_tsize_probe_then_real_transfer() {
    let mut rig = rig(4);
    // EDK2 asks for the size first and aborts once it has it.
    let probe = rrq(
        b"ipxe.efi",
        "octet",
        &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
    );
    let slot = rig.start(from(1001), &probe);
    let sent = rig.flush();
    assert_eq!(
        decode(&sent[0].1),
        oack(&[
            ("blksize", "1468"),
            ("tsize", "100000"),
            ("windowsize", "4")
        ])
    );
    assert_eq!(
        rig.receive(slot, from(1001), &error(8, "User aborted the transfer")),
        None
    );
    assert!(rig.flush().is_empty(), "nothing more to the prober");
    assert_eq!(rig.server.poll_at(), None);
    let finished = rig.finished();
    assert_eq!(finished[0].0, Outcome::Probe);
    assert_eq!(
        finished[0].1,
        "tftp RRQ name=ipxe.efi from=10.77.0.100:1001 blksize=1468 windowsize=4 tsize=100000 -> PROBE bytes=0 ms=0 retransmits=0"
    );
    let real = rrq(
        b"ipxe.efi",
        "octet",
        &[("blksize", "1468"), ("windowsize", "4")],
    );
    let c = fetch(&mut rig, 1002, &real, no_loss);
    assert_eq!(c.data, rig.store.content("ipxe.efi"));
    // 69 blocks in windows of 4, plus the ACK of the OACK.
    assert_eq!((c.data_packets, c.acks), (69, 1 + 18));
    let s = rig.stats();
    assert_eq!((s.probes, s.completed, s.aborted), (1, 1, 0));
    assert!(rig.store.open.is_empty());
}

#[test]
fn windows_recover_from_a_lost_ack_by_timeout_without_a_duplicate_storm() {
    for w in [4u16, 8] {
        let mut rig = rig(2);
        let req = rrq(b"ipxe.efi", "octet", &[("windowsize", &w.to_string())]);
        // The ACK closing the first window is lost once.
        let mut lost = false;
        let c = fetch(&mut rig, 2070, &req, |dir, block| {
            let hit = dir == Dir::Ack && block == w && !lost;
            lost |= hit;
            hit
        });
        assert_eq!(c.data, rig.store.content("ipxe.efi"));
        let s = rig.stats();
        // One timeout resends the first window; the client acknowledges each duplicate
        // block, but only the first of those ACKs moves the window: no storm.
        assert_eq!(s.timeouts, 1, "w={w}");
        assert_eq!(s.retransmits, u32::from(w), "w={w}");
        assert_eq!(s.duplicate_acks, u32::from(w) - 1, "w={w}");
        assert_eq!(c.data_packets, 196 + usize::from(w));
        assert!(rig.now >= 1000, "recovered by the timer");
    }
}

#[test]
fn windows_recover_from_lost_data() {
    for w in [4u16, 8] {
        // The last block of the second window is lost: nothing reveals the gap, so only
        // the timer recovers it.
        let mut rig = rig(2);
        let req = rrq(b"ipxe.efi", "octet", &[("windowsize", &w.to_string())]);
        let mut lost = false;
        let c = fetch(&mut rig, 2070, &req, |dir, block| {
            let hit = dir == Dir::Data && block == 2 * w && !lost;
            lost |= hit;
            hit
        });
        assert_eq!(c.data, rig.store.content("ipxe.efi"));
        let s = rig.stats();
        assert_eq!(s.timeouts, 1, "w={w}");
        assert!(rig.now >= 1000);
        assert!(s.retransmits <= 2 * u32::from(w), "w={w}: {s}");

        // A block lost inside the window: the blocks after it make the client ACK the last
        // one in order, again and again. The first of those slides the window (new blocks
        // fill it), the rest are ignored, and the timer alone resends the lost block.
        let mut rig = Rig::new(Config::default(), 2, store());
        let mut lost = false;
        let c = fetch(&mut rig, 2071, &req, |dir, block| {
            let hit = dir == Dir::Data && block == 2 && !lost;
            lost |= hit;
            hit
        });
        assert_eq!(c.data, rig.store.content("ipxe.efi"));
        let s = rig.stats();
        assert_eq!(s.timeouts, 1, "w={w}");
        assert!(rig.now >= 1000);
        assert!(s.retransmits <= u32::from(w), "w={w}: {s}");
        assert!(s.duplicate_acks >= u32::from(w) - 3, "w={w}: {s}");
    }
}

#[test]
fn duplicate_acks_never_trigger_retransmissions() {
    let mut rig = rig(2);
    for (port, w) in [(2070, 1u16), (2071, 4)] {
        let req = rrq(b"ipxe.efi", "octet", &[("windowsize", &w.to_string())]);
        let slot = rig.start(from(port), &req);
        rig.flush();
        rig.receive(slot, from(port), &ack(0));
        assert_eq!(rig.flush().len(), usize::from(w));
        rig.receive(slot, from(port), &ack(w));
        assert_eq!(rig.flush().len(), usize::from(w));
        for _ in 0..3 {
            // The same ACK again, an older one, one for a block never sent.
            for block in [w, 0, 999] {
                assert_eq!(rig.receive(slot, from(port), &ack(block)), None);
            }
            assert!(rig.flush().is_empty());
        }
        rig.receive(slot, from(port), &error(0, "done"));
    }
    assert_eq!(rig.stats().duplicate_acks, 18);
    assert_eq!(rig.stats().retransmits, 0);
}

#[test]
fn block_numbers_roll_over_past_65535() {
    for w in ["1", "8"] {
        let mut rig = rig(1);
        let req = rrq(b"big", "octet", &[("blksize", "8"), ("windowsize", w)]);
        // With windows, also lose the block right after the wrap once.
        let mut lost = false;
        let c = fetch(&mut rig, 2070, &req, |dir, block| {
            let hit = w == "8" && dir == Dir::Data && block == 0 && !lost;
            lost |= hit;
            hit
        });
        assert_eq!(c.data.len(), 70_000 * 8 + 5);
        assert_eq!(c.data, rig.store.content("big"));
        assert!(
            c.blocks_seen.windows(2).any(|p| p == [65535, 0]),
            "65535 is followed by 0"
        );
        let finished = rig.finished();
        assert_eq!(finished[0].0, Outcome::Completed);
        assert!(finished[0].1.contains("bytes=560005 "), "{}", finished[0].1);
    }
}

#[test]
fn unknown_tid_gets_error_5_and_the_transfer_goes_on() {
    let mut rig = rig(2);
    let slot = rig.start(from(2070), &rrq(b"ipxe.efi", "octet", &[]));
    let mut c = Client::new(from(2070), slot);
    let sent = rig.flush();
    let first_ack = c.on_packet(&sent[0].1).unwrap();
    // Another port, another host: ERROR 5 back to them.
    let stranger = SocketAddrV4::new(CLIENT, 9999);
    let other_host = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 7), 2070);
    for src in [stranger, other_host] {
        match rig.receive(slot, src, &ack(1)) {
            Some(Pkt::Error(5, _)) => {}
            other => panic!("{other:?}"),
        }
    }
    // Never an ERROR in answer to an ERROR.
    assert_eq!(rig.receive(slot, stranger, &error(0, "x")), None);
    assert!(rig.flush().is_empty(), "the transfer is not disturbed");
    rig.receive(slot, from(2070), &ack(first_ack));
    let mut clients = [c];
    drive(&mut rig, &mut clients, no_loss);
    assert_eq!(clients[0].data, rig.store.content("ipxe.efi"));
    // A late packet to a slot with no transfer is dropped.
    assert_eq!(rig.receive(slot, from(2070), &ack(196)), None);
    assert_eq!(rig.receive(99, from(2070), &ack(1)), None);
    let s = rig.stats();
    assert_eq!((s.unknown_tid, s.completed, s.stray), (2, 1, 3));
}

#[test]
fn one_shared_port_serves_64_transfers_told_apart_by_client() {
    let mut rig = rig(64);
    rig.shared = true;
    let windowed = rrq(
        b"ipxe.efi",
        "octet",
        &[("blksize", "1428"), ("windowsize", "4")],
    );
    let plain = rrq(b"ipxe.efi", "octet", &[]);
    let mut clients: Vec<Client> = (0..64)
        .map(|i| {
            let addr = from(4000 + i);
            let req = if i % 2 == 0 { &windowed } else { &plain };
            Client::new(addr, rig.start(addr, req))
        })
        .collect();
    // A stranger on the shared port gets nothing and disturbs nothing.
    let stranger = SocketAddrV4::new(CLIENT, 9999);
    assert_eq!(rig.receive(0, stranger, &ack(1)), None);
    drive(&mut rig, &mut clients, no_loss);
    let want = rig.store.content("ipxe.efi");
    assert!(clients.iter().all(|c| c.data == want), "a transfer differs");
    // A late ACK of a finished transfer is dropped, not answered.
    assert_eq!(rig.receive(0, from(4000), &ack(1)), None);
    let s = rig.stats();
    assert_eq!((s.completed, s.unknown_tid, s.stray), (64, 0, 2));
}

#[test]
fn a_full_table_refuses_new_requests_and_running_transfers_interleave() {
    let mut rig = rig(2);
    let req = rrq(b"ipxe.efi", "octet", &[("windowsize", "4")]);
    let a = rig.start(from(3001), &req);
    let b = rig.start(from(3002), &req);
    let (outcome, reply) = rig.request(from(3003), &req);
    assert!(matches!(outcome, RequestOutcome::Refused { code: 0, .. }));
    assert_eq!(
        reply,
        Some(Pkt::Error(
            0,
            "server busy: too many transfers, retry later".into()
        ))
    );
    let refused = rig.events().pop().unwrap().to_string();
    assert_eq!(
        refused,
        "tftp RRQ name=ipxe.efi from=10.77.0.100:3003 -> ERROR 0 reason=table-full"
    );
    let mut clients = [Client::new(from(3001), a), Client::new(from(3002), b)];
    drive(&mut rig, &mut clients, no_loss);
    for c in &clients {
        assert_eq!(c.data, rig.store.content("ipxe.efi"));
    }
    let s = rig.stats();
    assert_eq!((s.full, s.refused, s.completed), (1, 1, 2));
    // Room again.
    assert!(matches!(
        rig.request(from(3003), &req).0,
        RequestOutcome::Started { .. }
    ));
}

#[test]
fn write_requests_are_refused() {
    let mut rig = rig(1);
    let (outcome, reply) = rig.request(from(2070), &request(2, b"upload.bin", "octet", &[]));
    assert!(matches!(outcome, RequestOutcome::Refused { code: 2, .. }));
    assert!(matches!(reply, Some(Pkt::Error(2, _))));
    assert_eq!(
        rig.events()[0].to_string(),
        "tftp WRQ name=upload.bin from=10.77.0.100:2070 -> ERROR 2 reason=read-only"
    );
    assert_eq!(rig.server.active(), 0);
    assert!(rig.store.open.is_empty());
}

#[test]
fn names_are_confined_to_the_store() {
    let mut rig = rig(1);
    let long = vec![b'a'; 200];
    let cases: [(&[u8], Option<u16>); 12] = [
        (b"../etc/passwd", Some(2)),
        (b"pxelinux.cfg/../../x", Some(2)),
        (b"a\\..\\..\\b", Some(2)),
        (b"ipxe\x01.efi", Some(2)),
        (b"ipxe\xff.efi", Some(2)),
        // Absolute names are relative to the store: nothing outside it can be named.
        (b"/etc/passwd", Some(1)),
        (b"C:\\Windows\\win.ini", Some(1)),
        (b"missing.efi", Some(1)),
        (b"", Some(1)),
        (&long, Some(1)),
        (b"/ipxe.efi", None),
        (b"\\\\.\\ipxe.efi", None),
    ];
    for (name, code) in cases {
        let (outcome, reply) = rig.request(from(2070), &rrq(name, "octet", &[]));
        match code {
            Some(code) => {
                assert_eq!(
                    reply.map(|r| matches!(r, Pkt::Error(c, _) if c == code)),
                    Some(true),
                    "{name:?}"
                );
            }
            None => {
                let RequestOutcome::Started { slot } = outcome else {
                    panic!("{name:?}: {outcome:?}")
                };
                rig.receive(slot, from(2070), &error(0, "bye"));
            }
        }
    }
    // A NUL inside the name ends it: the rest is read as the mode, which is wrong.
    let (_, reply) = rig.request(from(2070), b"\0\x01ipxe\0.efi\0octet\0");
    assert_eq!(reply, Some(Pkt::Error(4, "unknown transfer mode".into())));
    let events = rig.events();
    let line = |e: &Event| e.to_string();
    assert_eq!(
        line(&events[0]),
        "tftp RRQ name=../etc/passwd from=10.77.0.100:2070 -> ERROR 2 reason=traversal"
    );
    assert!(line(&events[4]).contains("name=ipxe\\xff.efi"));
    assert!(line(&events[9]).ends_with("reason=name-too-long"));
    assert!(line(&events[9]).contains(&format!("name={}...", "a".repeat(64))));
    assert_eq!(rig.stats().refused, 10);
    assert!(rig.store.open.is_empty());
}

fn to_netascii(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in text {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            b => out.push(b),
        }
    }
    out
}

#[test]
fn netascii_is_converted_and_retransmitted_identically() {
    // Expansions land on block boundaries (blksize 8): "abcdefg\n" puts the CR last in
    // block 1 and its LF first in block 2; "\r" at offset 15 does the same with NUL.
    let text = b"abcdefg\nhijklm\rnop\r\nqrs\n\n\n\n\rtuv\r\r\r\rwxyz\n".to_vec();
    let expected = to_netascii(&text);
    let files = vec![
        ("menu.cfg", Content::Bytes(text.clone())),
        ("exact.txt", Content::Bytes(b"abc\ndef\nhijk\n".to_vec())),
    ];
    let mut rig = Rig::new(Config::default(), 2, Store::with(files));
    let req = rrq(
        b"menu.cfg",
        "netascii",
        &[("blksize", "8"), ("tsize", "0"), ("windowsize", "4")],
    );
    // Lose one block inside a window (the client's gap ACK rewinds into the window) and
    // the last of another (only the timer recovers): the client checks that every copy
    // of a block is identical to the first.
    let mut lost = [false; 2];
    let c = fetch(&mut rig, 2070, &req, |dir, block| {
        let i = match (dir, block) {
            (Dir::Data, 2) => 0,
            (Dir::Data, 8) => 1,
            _ => return false,
        };
        let hit = !lost[i];
        lost[i] = true;
        hit
    });
    assert_eq!(c.data, expected);
    assert!(
        c.copies.values().any(|b| b.ends_with(b"\r")),
        "a pair split"
    );
    assert!(c.copies.values().any(|b| b.starts_with(b"\0")));
    assert_eq!(
        c.oack,
        Some(oack(&[("blksize", "8"), ("windowsize", "4")])),
        "no tsize for netascii"
    );
    let s = rig.stats();
    assert!(s.retransmits > 0 && s.timeouts == 1, "{s}");
    // Converted length a multiple of the block size: an empty last block.
    let c = fetch(
        &mut rig,
        2071,
        &rrq(b"exact.txt", "netascii", &[("blksize", "8")]),
        no_loss,
    );
    assert_eq!(c.data, b"abc\r\ndef\r\nhijk\r\n");
    assert_eq!(c.data_packets, 3);
    let finished = rig.finished();
    assert!(
        finished[1]
            .1
            .contains("mode=netascii blksize=8 windowsize=1 size=13 -> DONE bytes=16")
    );
}

#[test]
fn the_retry_limit_aborts_frees_the_slot_and_closes_the_asset() {
    let mut rig = rig(1);
    rig.start(from(2070), &rrq(b"ipxe.efi", "octet", &[]));
    let mut times = Vec::new();
    loop {
        let sent = rig.flush();
        for (_, b) in &sent {
            times.push((rig.now, decode(b)));
        }
        let Some(at) = rig.server.poll_at() else {
            break;
        };
        rig.now = at;
    }
    let at: Vec<u64> = times.iter().map(|(t, _)| *t).collect();
    // Backoff doubles to the 8 s cap; after 5 retries the client is told and it ends.
    assert_eq!(at, [0, 1000, 3000, 7000, 15000, 23000, 31000]);
    assert!(times[..6].iter().all(|(_, p)| matches!(p, Pkt::Data(1, _))));
    assert_eq!(
        times[6].1,
        Pkt::Error(0, "timed out waiting for ACK".into())
    );
    let finished = rig.finished();
    assert_eq!(finished[0].0, Outcome::Aborted(Abort::Timeout));
    assert!(
        finished[0]
            .1
            .ends_with("-> ABORT reason=timeout bytes=0 ms=31000 retransmits=5")
    );
    assert!(rig.store.open.is_empty(), "asset closed");
    assert_eq!(rig.server.active(), 0);
    let s = rig.stats();
    assert_eq!((s.timeouts, s.retransmits, s.aborted), (6, 5, 1));
    // The slot is free again.
    fetch(&mut rig, 2071, &rrq(b"exact", "octet", &[]), no_loss);

    // A read error aborts too, with an ERROR to the client.
    rig.store.fail_at = Some(1024);
    let slot = rig.start(from(2072), &rrq(b"ipxe.efi", "octet", &[]));
    let mut c = [Client::new(from(2072), slot)];
    drive(&mut rig, &mut c, no_loss);
    assert_eq!(c[0].error, Some((0, "read error".into())));
    assert_eq!(c[0].data.len(), 1024);
    assert_eq!(rig.finished()[1].0, Outcome::Aborted(Abort::Io));
    assert!(rig.store.open.is_empty());
}

#[test]
fn a_retransmitted_rrq_is_not_a_second_transfer() {
    let mut rig = rig(2);
    let req = rrq(b"ipxe.efi", "octet", &[("blksize", "1024")]);
    let slot = rig.start(from(2070), &req);
    rig.flush();
    assert_eq!(rig.request(from(2070), &req).0, RequestOutcome::Dropped);
    assert_eq!(rig.server.active(), 1);
    assert_eq!(rig.stats().duplicate_requests, 1);
    // Once the client has acknowledged something, an RRQ from it starts over.
    rig.receive(slot, from(2070), &ack(0));
    rig.flush();
    let again = rig.start(from(2070), &req);
    assert_ne!(again, slot, "the new transfer gets another slot (and port)");
    let finished = rig.finished();
    assert_eq!(finished[0].0, Outcome::Aborted(Abort::Superseded));
    assert_eq!(rig.server.active(), 1);
    assert_eq!(rig.store.open.len(), 1);
}

#[test]
fn hostile_input_is_dropped_or_refused_and_never_panics() {
    let mut rig = rig(2);
    let mut flood = rrq(b"ipxe.efi", "octet", &[]);
    while flood.len() < 500 {
        flood.extend_from_slice(b"a\0b\0");
    }
    let mut too_long = flood.clone();
    too_long.extend_from_slice(&[b'x'; 20]);
    // (datagram to port 69, expected ERROR code or None when dropped)
    let cases: Vec<(Vec<u8>, Option<u16>)> = vec![
        (vec![], None),
        (vec![0], None),
        (vec![0, 1], Some(4)),
        (b"\0\x01ipxe.efi".to_vec(), Some(4)),
        (b"\0\x01ipxe.efi\0octet".to_vec(), Some(4)),
        (b"\0\x01ipxe.efi\0mail\0".to_vec(), Some(4)),
        (vec![0, 99, 1, 2], Some(4)),
        (vec![0xff, 0xff], Some(4)),
        (ack(1), None),
        (vec![0, 3, 0, 1, 1, 2, 3], None),
        (error(0, "x"), None),
        (vec![0, 6, b'a', 0], None),
        (too_long, Some(4)),
    ];
    for (i, (payload, code)) in cases.iter().enumerate() {
        let (_, reply) = rig.request(from(2070), payload);
        assert_eq!(
            reply.map(|r| match r {
                Pkt::Error(c, _) => c,
                other => panic!("{other:?}"),
            }),
            *code,
            "case {i}"
        );
    }
    let s = rig.stats();
    assert_eq!((s.malformed, s.stray, s.refused, s.started), (8, 4, 1, 0));
    // An option flood within 512 bytes is only unknown options: served.
    let slot = rig.start(from(2071), &flood);
    for junk in [
        &[][..],
        &[0, 4, 0],
        &[0, 3, 0, 1, 9],
        &[0, 6, 0],
        &[7; 40],
        &flood,
    ] {
        assert_eq!(rig.receive(slot, from(2071), junk), None);
    }
    rig.receive(slot, from(2071), &error(0, "bye"));

    // An output buffer too small for a DATA block aborts rather than panics.
    rig.start(from(2072), &rrq(b"ipxe.efi", "octet", &[]));
    let mut small = [0u8; 100];
    let tx = rig.server.dispatch(0, &mut rig.store, &mut small).unwrap();
    assert_eq!(
        decode(&small[..tx.len]),
        Pkt::Error(0, "server buffer too small".into())
    );
    rig.events();

    // Mutations of valid packets, to either port, at random times.
    let valid = [
        rrq(
            b"ipxe.efi",
            "octet",
            &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
        ),
        rrq(b"exact", "netascii", &[("blksize", "8")]),
        ack(0),
        ack(1),
        error(8, "User aborted the transfer"),
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = [0u8; 1500];
    for round in 0..30_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = valid[(x >> 8) as usize % valid.len()].clone();
        if x & 3 != 0 {
            let at = (x >> 16) as usize % b.len();
            b[at] = (x >> 32) as u8;
        }
        b.truncate((x >> 40) as usize % (b.len() + 1));
        let src = from(4000 + (x >> 50) as u16 % 3);
        rig.now += (x >> 56) % 300;
        if x & 4 == 0 {
            rig.server
                .request(rig.now, src, &b, &mut rig.store, &mut out);
        } else {
            let slot = (x >> 24) as usize % 3;
            rig.server
                .receive(rig.now, slot, src, &b, &mut rig.store, &mut out);
        }
        rig.flush();
        rig.events();
        let _ = round;
    }
    // Everything times out or ends; no handle leaks; the server still serves.
    while let Some(at) = rig.server.poll_at() {
        rig.now = rig.now.max(at);
        rig.flush();
    }
    assert!(rig.store.open.is_empty());
    let c = fetch(&mut rig, 2073, &rrq(b"ipxe.efi", "octet", &[]), no_loss);
    assert_eq!(c.data, rig.store.content("ipxe.efi"));
}
