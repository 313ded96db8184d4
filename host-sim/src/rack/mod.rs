//! `host-sim rack`: an in-process simulated rack. Machines power on at random moments,
//! PXE-boot through the appliance's DHCP service (firmware stage, then iPXE stage) on a
//! simulated segment with virtual time, and a summary says what each architecture got.
//! Deterministic for a given `--seed`.

mod machine;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use appliance::dhcp::wire::{CLIENT_PORT, SERVER_PORT};
use appliance::dhcp::{Config, Datagram, Destination, LeaseTable, Mode, Server, Slot, Subnet};
use appliance::inventory::Inventory;
use appliance::net::{Ipv4Net, MacAddr, Uuid};
use clap::Args;

use machine::{Firmware, Machine};

#[derive(Args)]
pub struct RackArgs {
    /// How many machines the rack holds.
    #[arg(long, default_value_t = 48)]
    machines: usize,
    /// Seed for power-on times, architectures and addresses.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const APPLIANCE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// One-way delay on the simulated segment.
const WIRE_MS: u64 = 1;
/// Machines power on within this window.
const POWER_ON_SPREAD_MS: u64 = 5_000;
/// Virtual time after which a machine that has not booted counts as failed.
const DEADLINE_MS: u64 = 120_000;
/// Virtual start time: 2026-01-01, so lease expiry arithmetic is realistic.
const EPOCH_SECS: u64 = 1_767_225_600;

pub fn run(args: &RackArgs) -> Result<(), String> {
    let wall = Instant::now();
    let mut rng = Rng(args.seed.max(1));
    let mut config = Config::new(Mode::Full, APPLIANCE);
    let net = Ipv4Net::new(APPLIANCE, 16).ok_or("bad subnet")?;
    let pool = Subnet {
        net,
        pool_first: Ipv4Addr::new(10, 77, 1, 0),
        pool_last: Ipv4Addr::new(10, 77, 255, 254),
        router: None,
    };
    config.subnets.push(pool).map_err(|_| "subnets")?;
    config.validate().map_err(|e| e.to_string())?;
    let mut slots = vec![Slot::EMPTY; 2 * args.machines.max(1)];
    let mut server = Server::new(config, LeaseTable::new(&mut slots));
    let mut inventory = Box::<Inventory<{ crate::runtime::MACHINES }>>::default();

    let mut machines: Vec<Machine> = (0..args.machines)
        .map(|i| {
            let r = rng.next();
            let firmware = Firmware::ALL[(r % 3) as usize];
            let mut uuid = [0u8; 16];
            uuid[..8].copy_from_slice(&rng.next().to_be_bytes());
            uuid[8..].copy_from_slice(&(i as u64).to_be_bytes());
            let n = (i as u32).to_be_bytes();
            let mac = MacAddr([0x52, 0x54, n[0], n[1], n[2], n[3]]);
            Machine::new(mac, Uuid(uuid), firmware, rng.next() as u32)
        })
        .collect();
    let mut booted_at = vec![None; machines.len()];
    let started: Vec<u64> = machines
        .iter()
        .map(|_| rng.next() % POWER_ON_SPREAD_MS)
        .collect();
    let mut events: BinaryHeap<Reverse<(u64, usize)>> = started
        .iter()
        .enumerate()
        .map(|(i, &t)| Reverse((t, i)))
        .collect();

    let mut out = [0u8; 1500];
    let mut last_progress = 0;
    let mut steps = 0usize;
    while let Some(Reverse((now_ms, i))) = events.pop() {
        steps += 1;
        if now_ms > DEADLINE_MS || steps > 64 * args.machines + 1024 {
            break;
        }
        let Some(request) = machines[i].next_request() else {
            continue;
        };
        let src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT);
        let dg = Datagram {
            src,
            port: SERVER_PORT,
            payload: &request,
        };
        let now = EPOCH_SECS + now_ms / 1000;
        let outcome = server.handle(now, &dg, &mut inventory, &mut out);
        if let Some((to, len)) = outcome.reply
            && let Some(target) = recipient(&machines, to, &out[..len])
        {
            machines[target].receive(&out[..len]);
        }
        if machines[i].booted() {
            booted_at[i].get_or_insert(now_ms + WIRE_MS);
        } else {
            // iPXE takes a while to arrive over TFTP; DHCP steps follow each other quickly.
            let think = if outcome.decision.file.is_some() {
                200 + rng.next() % 600
            } else {
                2
            };
            events.push(Reverse((now_ms + 2 * WIRE_MS + think, i)));
        }
        let done = booted_at.iter().filter(|b| b.is_some()).count();
        if done * 10 / machines.len().max(1) > last_progress {
            last_progress = done * 10 / machines.len();
            eprintln!(
                "rack: {done}/{} machines booted (virtual t={now_ms} ms)",
                machines.len()
            );
        }
    }
    let failures = report(&machines, &started, &booted_at, &server, wall);
    match failures {
        0 => Ok(()),
        n => Err(format!("{n} machines did not boot as expected")),
    }
}

/// The machine a reply frame reaches: the one whose MAC is in `chaddr`.
fn recipient(machines: &[Machine], to: Destination, reply: &[u8]) -> Option<usize> {
    let chaddr = MacAddr(reply.get(28..34)?.try_into().ok()?);
    let mac = match to {
        Destination::Link { mac, .. } => mac,
        Destination::Broadcast => chaddr,
        Destination::Unicast(_) => return None,
    };
    machines.iter().position(|m| m.mac == mac)
}

/// Prints the summary table; returns how many machines failed.
fn report(
    machines: &[Machine],
    started: &[u64],
    booted_at: &[Option<u64>],
    server: &Server<'_>,
    wall: Instant,
) -> usize {
    let script = format!("http://{APPLIANCE}/boot.ipxe");
    let expected = |f: Firmware| match f {
        Firmware::Bios => "undionly.kpxe",
        Firmware::UefiX64 => "ipxe.efi",
        Firmware::UefiArm64 => "ipxe-arm64.efi",
    };
    let mut rows: BTreeMap<Firmware, (usize, usize)> = BTreeMap::new();
    let mut failures = 0;
    for (i, m) in machines.iter().enumerate() {
        let ok = booted_at[i].is_some()
            && m.learned.fault.is_none()
            && m.learned.firmware_file.as_deref() == Some(expected(m.firmware))
            && m.learned.script.as_deref() == Some(script.as_str());
        let row = rows.entry(m.firmware).or_default();
        row.0 += 1;
        if ok {
            row.1 += 1;
        } else {
            failures += 1;
            eprintln!(
                "rack: machine {} ({}) failed: {:?}",
                m.mac,
                m.firmware.name(),
                m.learned
            );
        }
    }
    println!(
        "{:<12} {:>8} {:>8}  {:<16} second stage",
        "firmware", "machines", "booted", "first stage"
    );
    for (f, (n, ok)) in &rows {
        println!(
            "{:<12} {n:>8} {ok:>8}  {:<16} {script}",
            f.name(),
            expected(*f)
        );
    }
    let mut times: Vec<u64> = (0..machines.len())
        .filter_map(|i| Some(booted_at[i]? - started[i]))
        .collect();
    times.sort_unstable();
    let distinct: HashSet<_> = machines.iter().filter_map(|m| m.learned.ip).collect();
    let exchanges: u32 = machines.iter().map(|m| m.learned.exchanges).sum();
    let s = server.stats();
    println!(
        "booted {}/{}; distinct addresses {}; DHCP exchanges {exchanges}; offers {} acks {} naks {}",
        machines.len() - failures,
        machines.len(),
        distinct.len(),
        s.offers,
        s.acks,
        s.naks
    );
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        println!(
            "time to boot (virtual): min {min} ms, median {} ms, max {max} ms; wall time {} ms",
            times[times.len() / 2],
            wall.elapsed().as_millis()
        );
    }
    let duplicates = machines.iter().filter(|m| m.learned.ip.is_some()).count() - distinct.len();
    failures + duplicates
}

/// xorshift64*: small, deterministic, good enough for a simulation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
