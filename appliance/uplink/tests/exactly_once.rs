//! The exactly-once property under random disconnects: an appliance session and a provider
//! (Inbox, unresolved commands) talk through frames over a stream that is cut at random
//! points, delivering random-sized chunks. Every event accepted by the outbox is applied at
//! most once and in order, every one that is not superseded state arrives, and every
//! command runs exactly once with exactly one result.
mod common;

use std::collections::{BTreeMap, HashMap};

use uplink::frame::{self, HEADER, MAX_FRAME};
use uplink::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const OUTBOX: usize = 16;

fn send<T: serde::Serialize>(wire: &mut Vec<u8>, msg: &T) {
    let mut buf = [0u8; HEADER + MAX_FRAME];
    let len = frame::encode(msg, &mut buf).unwrap();
    wire.extend_from_slice(&buf[..len]);
}

/// Takes up to `max` bytes off the front of `wire` and decodes the frames they complete.
fn deliver<T: serde::de::DeserializeOwned>(
    wire: &mut Vec<u8>,
    decoder: &mut FrameDecoder,
    max: usize,
) -> Vec<T> {
    let n = max.min(wire.len());
    let chunk: Vec<u8> = wire.drain(..n).collect();
    let mut input = &chunk[..];
    let mut out = Vec::new();
    while let Some(body) = decoder.decode(&mut input) {
        out.push(frame::decode(body.unwrap()).unwrap());
    }
    out
}

/// Everything but `decoder`, `welcomed` and `ack_due` is what the provider persists.
struct Provider {
    inbox: Inbox,
    applied: Vec<Sequenced>,
    unresolved: BTreeMap<u64, Command>,
    next_command: u64,
    results: HashMap<u64, Outcome>,
    decoder: FrameDecoder,
    welcomed: bool,
    ack_due: bool,
}

impl Provider {
    fn handle(&mut self, msg: ToProvider, out: &mut Vec<u8>) {
        match msg {
            ToProvider::Hello(hello) => {
                let protocol = negotiate(&hello).unwrap();
                let last_acked_seq = self.inbox.last_applied();
                send(
                    out,
                    &ToAppliance::Welcome(Welcome {
                        protocol,
                        last_acked_seq,
                        time: 0,
                    }),
                );
                for (&id, command) in &self.unresolved {
                    send(
                        out,
                        &ToAppliance::Command {
                            id,
                            command: command.clone(),
                        },
                    );
                }
                self.welcomed = true;
            }
            ToProvider::Event(e) => {
                if self.inbox.accept(e.seq) == Verdict::Apply {
                    if let Event::CommandResult(r) = &e.event {
                        assert!(self.unresolved.remove(&r.command_id).is_some(), "{r:?}");
                        assert!(
                            self.results
                                .insert(r.command_id, r.outcome.clone())
                                .is_none()
                        );
                    }
                    self.applied.push(e);
                    self.ack_due = true;
                }
            }
            ToProvider::Pong(_) => {}
        }
    }
}

struct Appliance {
    session: Session<OUTBOX>,
    decoder: FrameDecoder,
    running: Vec<u64>,
    executed: HashMap<u64, u32>,
}

#[derive(Default)]
struct Stats {
    refused: usize,
    disconnects: usize,
    applied: usize,
    commands: u64,
}

/// A state-like or log event tagged with `t`, which no other event shares.
fn event(rng: &mut Rng, t: u64) -> Event {
    let mac = Mac([2, 0, 0, 0, 0, rng.below(3) as u8]);
    match rng.below(4) {
        0 => Event::PowerState(PowerState {
            machine: MachineId::Mac(mac),
            state: if t.is_multiple_of(2) {
                Power::On
            } else {
                Power::Off
            },
            at: t,
        }),
        1 => Event::Lease(Lease {
            mac,
            ip: Ipv4([10, 0, 0, 1]),
            expires: t,
        }),
        2 => Event::MachineSeen(MachineSeen {
            mac,
            uuid: None,
            arch: None,
            first_seen: 1,
            last_seen: t,
        }),
        _ => Event::BootServed(BootServed {
            mac,
            what: Served::TftpFile(common::s("ipxe.efi")),
            at: t,
        }),
    }
}

fn tag(e: &Event) -> u64 {
    match e {
        Event::PowerState(p) => p.at,
        Event::Lease(l) => l.expires,
        Event::MachineSeen(m) => m.last_seen,
        Event::BootServed(b) => b.at,
        Event::CommandResult(_) => 0,
    }
}

struct World {
    app: Appliance,
    prov: Provider,
    a2p: Vec<u8>,
    p2a: Vec<u8>,
    connected: bool,
    accepted: Vec<Event>,
    t: u64,
}

impl World {
    fn new() -> Self {
        World {
            app: Appliance {
                session: Session::new(common::hello(), CommandFilter::new()),
                decoder: FrameDecoder::new(),
                running: Vec::new(),
                executed: HashMap::new(),
            },
            prov: Provider {
                inbox: Inbox::new(0),
                applied: Vec::new(),
                unresolved: BTreeMap::new(),
                next_command: 1,
                results: HashMap::new(),
                decoder: FrameDecoder::new(),
                welcomed: false,
                ack_due: false,
            },
            a2p: Vec::new(),
            p2a: Vec::new(),
            connected: false,
            accepted: Vec::new(),
            t: 0,
        }
    }

    /// The connection drops: bytes in flight are lost, so each side has received a prefix
    /// of what the other sent.
    fn cut(&mut self) {
        self.connected = false;
        self.app.session.disconnect();
        self.a2p.clear();
        self.p2a.clear();
        (self.prov.welcomed, self.prov.ack_due) = (false, false);
    }

    /// One random step; `quiet` stops new events, new commands and cuts.
    fn step(&mut self, rng: &mut Rng, quiet: bool, stats: &mut Stats) {
        let (app, prov) = (&mut self.app, &mut self.prov);
        match rng.below(100) {
            0..12 if !quiet => {
                self.t += 1;
                let e = event(rng, self.t);
                match app.session.report(e.clone()) {
                    Ok(_) => self.accepted.push(e),
                    Err(_) => stats.refused += 1,
                }
            }
            12..18 if !quiet && prov.unresolved.len() < COMMAND_WINDOW => {
                let id = prov.next_command;
                prov.next_command += 1;
                let command = Command::PowerCommand {
                    machine: MachineId::Mac(Mac([id as u8; 6])),
                    action: PowerAction::Cycle,
                    pxe_once: None,
                };
                if self.connected && prov.welcomed {
                    send(
                        &mut self.p2a,
                        &ToAppliance::Command {
                            id,
                            command: command.clone(),
                        },
                    );
                }
                prov.unresolved.insert(id, command);
            }
            18..30 if !app.running.is_empty() => {
                let i = rng.below(app.running.len() as u64) as usize;
                let id = app.running.swap_remove(i);
                app.session.complete(id, Outcome::Done).unwrap();
            }
            30..52 if self.connected => {
                let mut buf = [0u8; HEADER + MAX_FRAME];
                for _ in 0..=rng.below(4) {
                    let Some(len) = app.session.poll_transmit(&mut buf).unwrap() else {
                        break;
                    };
                    self.a2p.extend_from_slice(&buf[..len]);
                }
            }
            52..70 if self.connected => {
                let max = 1 + rng.below(200) as usize;
                for msg in deliver(&mut self.a2p, &mut prov.decoder, max) {
                    prov.handle(msg, &mut self.p2a);
                }
            }
            70..76 if self.connected && prov.ack_due => {
                send(
                    &mut self.p2a,
                    &ToAppliance::Ack {
                        upto: prov.inbox.last_applied(),
                    },
                );
                prov.ack_due = false;
            }
            76..90 if self.connected => {
                let max = 1 + rng.below(200) as usize;
                for msg in deliver(&mut self.p2a, &mut app.decoder, max) {
                    if let Action::Execute { id, .. } = app.session.handle(msg).unwrap() {
                        *app.executed.entry(id).or_default() += 1;
                        app.running.push(id);
                    }
                }
            }
            90..93 if self.connected && !quiet => {
                stats.disconnects += 1;
                self.cut();
            }
            93..100 if !self.connected => {
                self.connected = true;
                app.session.connect();
                app.decoder = FrameDecoder::new();
                prov.decoder = FrameDecoder::new();
            }
            _ => {}
        }
    }

    fn settled(&self) -> bool {
        self.app.session.outbox().is_empty()
            && self.prov.unresolved.is_empty()
            && self.app.running.is_empty()
    }
}

fn run(seed: u64, steps: usize, stats: &mut Stats) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut w = World::new();
    for _ in 0..steps {
        w.step(&mut rng, false, stats);
    }
    // Settle: no new work and no cuts, until everything is delivered and resolved. A
    // command left unaccepted (outbox full) waits for a reconnect, so reconnect now and then.
    let mut round = 0u32;
    while !w.settled() {
        w.step(&mut rng, true, stats);
        round += 1;
        assert!(round < 20_000, "seed {seed}: did not settle");
        if round.is_multiple_of(2000) && w.connected {
            w.cut();
        }
    }
    let (prov, app, accepted) = (&w.prov, &w.app, &w.accepted);

    // Applied in increasing sequence order, each event at most once.
    assert!(prov.applied.windows(2).all(|p| p[0].seq < p[1].seq));
    let applied: Vec<&Event> = prov
        .applied
        .iter()
        .map(|s| &s.event)
        .filter(|e| !matches!(e, Event::CommandResult(_)))
        .collect();
    let mut tags: Vec<u64> = applied.iter().map(|e| tag(e)).collect();
    let n = tags.len();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags.len(), n, "seed {seed}: an event applied twice");
    // Log events: all, in order.
    let logs = |events: Vec<&Event>| -> Vec<u64> {
        events
            .into_iter()
            .filter(|e| e.key().is_none())
            .map(tag)
            .collect()
    };
    assert_eq!(
        logs(applied.clone()),
        logs(accepted.iter().collect()),
        "seed {seed}"
    );
    // State: per key, in order, ending with the last state reported.
    let mut last: HashMap<Key, u64> = HashMap::new();
    for e in accepted {
        if let Some(k) = e.key() {
            last.insert(k, tag(e));
        }
    }
    let mut seen: HashMap<Key, u64> = HashMap::new();
    for e in &applied {
        if let Some(k) = e.key() {
            let prev = seen.insert(k, tag(e)).unwrap_or(0);
            assert!(prev < tag(e), "seed {seed}: state for {k:?} out of order");
        }
    }
    assert_eq!(seen, last, "seed {seed}: final state differs");
    // Commands: each ran once and has one result.
    for id in 1..prov.next_command {
        assert_eq!(app.executed.get(&id), Some(&1), "seed {seed}: command {id}");
        assert_eq!(
            prov.results.get(&id),
            Some(&Outcome::Done),
            "seed {seed}: command {id}"
        );
    }
    stats.applied += prov.applied.len();
    stats.commands += prov.next_command - 1;
}

#[test]
fn every_event_once_and_in_order_every_command_once() {
    let mut stats = Stats::default();
    for seed in 0..400 {
        run(seed, 2000, &mut stats);
    }
    println!(
        "disconnects {} events applied {} refused (outbox full) {} commands {}",
        stats.disconnects, stats.applied, stats.refused, stats.commands
    );
    assert!(stats.disconnects > 10_000 && stats.refused > 1000 && stats.commands > 10_000);
}
