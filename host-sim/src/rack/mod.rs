//! `host-sim rack`: an in-process simulated rack. Machines power on at random moments and
//! PXE-boot from the appliance over a simulated Ethernet segment (delay, jitter and loss
//! injectable): DHCP, TFTP for the iPXE binary, DHCP as iPXE, HTTP for the script, the
//! kernel and the initrd. The appliance side is the same `Runtime` that `serve` runs on a
//! TAP device; each machine has its own smoltcp stack. Time is virtual, and everything is
//! deterministic for a given `--seed`.

mod dhcp_client;
mod http_client;
mod machine;
mod segment;
mod tftp_client;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::io;
use std::net::Ipv4Addr;
use std::time::Instant as WallClock;

use appliance::assets::StaticAssets;
use appliance::dhcp::{Config, Mode, Subnet};
use appliance::http::ScriptConfig;
use appliance::net::{Ipv4Net, MacAddr, Uuid};
use clap::Args;
use smoltcp::time::Instant;

use crate::runtime::{Runtime, Settings};
use dhcp_client::Firmware;
use machine::Machine;
use segment::{Impairment, Segment};

#[derive(Args)]
pub struct RackArgs {
    /// How many machines the rack holds.
    #[arg(long, default_value_t = 48)]
    machines: usize,
    /// Seed for power-on times, architectures, addresses and the segment's losses.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One-way delay on the segment, in milliseconds.
    #[arg(long, default_value_t = 1)]
    delay_ms: u64,
    /// Random extra delay up to this many milliseconds (frames to one host stay in order).
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Fraction of frames lost, e.g. 0.01.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Size of the kernel the machines fetch, in KiB (the iPXE binaries and the initrd
    /// scale with it).
    #[arg(long, default_value_t = 1024)]
    kernel_kib: usize,
}

const APPLIANCE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Machines power on within this window.
const POWER_ON_SPREAD_MS: u64 = 5_000;
/// Virtual time after which a machine that has not booted counts as failed.
const DEADLINE_MS: u64 = 600_000;
/// Virtual start: 2026-01-01, so lease expiry arithmetic is realistic.
const EPOCH_MS: u64 = 1_767_225_600_000;

pub fn run(args: &RackArgs) -> Result<(), String> {
    let wall = WallClock::now();
    let mut rng = Rng(args.seed.max(1));
    let impairment = Impairment {
        delay_ms: args.delay_ms,
        jitter_ms: args.jitter_ms,
        loss_ppm: (args.loss.clamp(0.0, 1.0) * 1e6) as u32,
    };
    let segment = Segment::new(impairment, rng.next());
    let files = boot_files(args.kernel_kib * 1024);
    let expected: HashMap<&str, (usize, Digest)> = files
        .iter()
        .map(|(name, data)| (*name, (data.len(), Digest::of(data))))
        .collect();
    let store = StaticAssets::new(files);

    let state_dir = std::env::temp_dir().join(format!("host-sim-rack-{}", std::process::id()));
    let mac = MacAddr([0x02, 0x00, 10, 77, 0, 1]);
    let mut nic = Segment::attach(&segment, mac, true);
    let start = Instant::from_millis(EPOCH_MS as i64);
    let settings = Settings {
        ip: Ipv4Net::new(APPLIANCE, 16).ok_or("bad subnet")?,
        mac,
        gateway: None,
        state_dir: state_dir.clone(),
        max_leases: 2 * args.machines.max(1),
        tftp_transfers: 128,
        http_port: 80,
        http_connections: 64,
        script: ScriptConfig::new(APPLIANCE),
        machine_boot: Vec::new(),
        quiet: true,
    };
    let mut runtime = Runtime::new(settings, dhcp_config()?, store, &mut nic, start)
        .map_err(|e| e.to_string())?;

    let mut machines: Vec<Machine> = (0..args.machines)
        .map(|i| {
            let firmware = Firmware::ALL[(rng.next() % 3) as usize];
            let mut uuid = [0u8; 16];
            uuid[..8].copy_from_slice(&rng.next().to_be_bytes());
            uuid[8..].copy_from_slice(&(i as u64).to_be_bytes());
            let n = (i as u32).to_be_bytes();
            let mac = MacAddr([0x52, 0x54, n[0], n[1], n[2], n[3]]);
            let powered_on = EPOCH_MS + rng.next() % POWER_ON_SPREAD_MS;
            let nic = Segment::attach(&segment, mac, false);
            Machine::new(mac, Uuid(uuid), firmware, rng.next(), nic, powered_on)
        })
        .collect();
    let port_of: HashMap<usize, usize> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.port(), i))
        .collect();
    let mut wake: Vec<u64> = machines.iter().map(|m| m.powered_on).collect();
    let mut timers: BinaryHeap<Reverse<(u64, usize)>> = wake
        .iter()
        .enumerate()
        .map(|(i, &at)| Reverse((at, i)))
        .collect();

    let mut now = EPOCH_MS;
    let mut appliance_wake = now;
    let mut reached = Vec::new();
    let mut due = Vec::new();
    let mut sink = io::sink();
    let mut last_progress = 0;
    let mut done = 0;
    for _ in 0..50_000_000u64 {
        if done == machines.len() || now > EPOCH_MS + DEADLINE_MS {
            break;
        }
        let next_timer = timers.peek().map_or(u64::MAX, |Reverse((at, _))| *at);
        let next_frame = segment.borrow().next_delivery().unwrap_or(u64::MAX);
        now = now.max(next_timer.min(next_frame).min(appliance_wake));
        reached.clear();
        segment.borrow_mut().deliver(now, &mut reached);
        due.clear();
        while let Some(&Reverse((at, i))) = timers.peek() {
            if at > now {
                break;
            }
            timers.pop();
            if wake[i] == at {
                due.push(i);
            }
        }
        if appliance_wake <= now || reached.contains(&nic.port()) {
            let delay = runtime
                .poll(Instant::from_millis(now as i64), &mut nic, &mut sink)
                .map_err(|e| e.to_string())?;
            appliance_wake = now + (delay.as_millis() as u64).max(1);
        }
        due.extend(reached.iter().filter_map(|p| port_of.get(p)));
        due.sort_unstable();
        due.dedup();
        for &i in &due {
            let m = &mut machines[i];
            if m.finished() {
                continue;
            }
            let at = m.poll(now, APPLIANCE);
            if m.finished() {
                done += 1;
            } else {
                wake[i] = at;
                timers.push(Reverse((at, i)));
            }
        }
        if done * 10 / machines.len().max(1) > last_progress {
            last_progress = done * 10 / machines.len();
            eprintln!(
                "rack: {done}/{} machines through (virtual t={} ms)",
                machines.len(),
                now - EPOCH_MS
            );
        }
    }
    let _ = std::fs::remove_dir_all(&state_dir);
    let (sent, lost) = {
        let s = segment.borrow();
        (s.sent, s.lost)
    };
    let failures = report(&machines, &expected, runtime.dhcp().stats().acks, wall);
    println!("segment: {sent} frames sent, {lost} lost");
    match failures {
        0 => Ok(()),
        n => Err(format!("{n} machines did not boot as expected")),
    }
}

fn dhcp_config() -> Result<Config, String> {
    let mut config = Config::new(Mode::Full, APPLIANCE);
    let pool = Subnet {
        net: Ipv4Net::new(APPLIANCE, 16).ok_or("bad subnet")?,
        pool_first: Ipv4Addr::new(10, 77, 1, 0),
        pool_last: Ipv4Addr::new(10, 77, 255, 254),
        router: None,
    };
    config.subnets.push(pool).map_err(|_| "subnets")?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The boot dir of the simulation: iPXE binaries, kernel and initrd with generated content.
fn boot_files(kernel: usize) -> &'static [(&'static str, &'static [u8])] {
    let file = |name: &'static str, len: usize| -> (&'static str, &'static [u8]) {
        let seed = Digest::of(name.as_bytes()).0;
        let data: Vec<u8> = (0..len)
            .map(|i| (seed.wrapping_add(i as u64).wrapping_mul(0x9E37_79B9) >> 24) as u8)
            .collect();
        (name, Box::leak(data.into_boxed_slice()))
    };
    let files = vec![
        file("undionly.kpxe", kernel / 16),
        file("ipxe.efi", kernel / 4),
        file("ipxe-arm64.efi", kernel / 4),
        file("vmlinuz", kernel),
        file("initrd.img", kernel / 2),
    ];
    Box::leak(files.into_boxed_slice())
}

fn expected_firmware_file(f: Firmware) -> &'static str {
    match f {
        Firmware::Bios => "undionly.kpxe",
        Firmware::UefiX64 => "ipxe.efi",
        Firmware::UefiArm64 => "ipxe-arm64.efi",
    }
}

/// Checks every machine got what its firmware needs, byte-exact, and prints the summary;
/// returns how many machines failed.
fn report(
    machines: &[Machine],
    expected: &HashMap<&str, (usize, Digest)>,
    acks: u32,
    wall: WallClock,
) -> usize {
    let script = format!("http://{APPLIANCE}/boot.ipxe");
    let mut rows: BTreeMap<Firmware, (usize, usize, u32)> = BTreeMap::new();
    let mut failures = 0;
    for m in machines {
        let tftp_ok = m.tftp.as_ref().is_some_and(|(name, digest)| {
            name == expected_firmware_file(m.firmware)
                && expected
                    .get(name.as_str())
                    .is_some_and(|(_, d)| d == digest)
        });
        let http_ok = ["/boot.ipxe", "/vmlinuz", "/initrd.img"].iter().all(|p| {
            m.http.iter().any(|(path, len, digest)| {
                path == p
                    && (p.ends_with(".ipxe")
                        || expected
                            .get(&p[1..])
                            .is_some_and(|(l, d)| l == len && d == digest))
            })
        });
        let ok = m.booted_at.is_some()
            && tftp_ok
            && http_ok
            && m.script.as_deref() == Some(script.as_str());
        let row = rows.entry(m.firmware).or_default();
        row.0 += 1;
        row.2 += m.retries;
        if ok {
            row.1 += 1;
        } else {
            failures += 1;
            eprintln!(
                "rack: machine {} ({}) failed: {} (firmware file {:?}, script {:?}, fetched {:?})",
                m.mac,
                m.firmware.name(),
                m.failure().unwrap_or("did not finish"),
                m.firmware_file,
                m.script,
                m.http.iter().map(|(p, l, _)| (p, l)).collect::<Vec<_>>()
            );
        }
    }
    println!(
        "{:<12} {:>8} {:>8} {:>8}  {:<16} then",
        "firmware", "machines", "booted", "retries", "first stage"
    );
    for (f, (n, ok, retries)) in &rows {
        println!(
            "{:<12} {n:>8} {ok:>8} {retries:>8}  {:<16} {script} -> vmlinuz, initrd.img",
            f.name(),
            expected_firmware_file(*f)
        );
    }
    let mut times: Vec<u64> = machines
        .iter()
        .filter_map(|m| Some(m.booted_at? - m.powered_on))
        .collect();
    times.sort_unstable();
    let addresses: Vec<_> = machines.iter().filter_map(|m| m.ip).collect();
    let distinct: HashSet<_> = addresses.iter().collect();
    println!(
        "booted {}/{}; distinct addresses {}/{}; DHCP ACKs {acks}",
        machines.len() - failures,
        machines.len(),
        distinct.len(),
        addresses.len()
    );
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        println!(
            "time to boot (virtual): min {min} ms, median {} ms, max {max} ms; wall time {} ms",
            times[times.len() / 2],
            wall.elapsed().as_millis()
        );
    }
    failures + (addresses.len() - distinct.len())
}

/// FNV-1a over a byte stream: enough to tell a file arrived intact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }
}

impl Digest {
    fn of(data: &[u8]) -> Digest {
        let mut d = Digest::default();
        d.update(data);
        d
    }

    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// xorshift64*: small, deterministic, good enough for a simulation.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }
}
